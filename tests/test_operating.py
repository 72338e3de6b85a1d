"""The P_suc / D̄ / operating-characteristic protocol on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from jaxadv import metrics


def test_min_successful_distortion_keeps_the_smallest_successful_run():
    success = np.array([[True, False, False], [True, True, False]])
    distortion = np.array([[3.0, 1.0, 0.5], [2.0, 4.0, 0.1]])
    ok, dist = metrics.min_successful_distortion(success, distortion)
    np.testing.assert_array_equal(ok, [True, True, False])
    np.testing.assert_array_equal(dist, [2.0, 4.0, np.inf])


def test_statistics_count_only_correctly_classified_images():
    success = np.array([True, True, False, True])
    distortion = np.array([1.0, 3.0, np.inf, 100.0])
    correct = np.array([True, True, True, False])  # the last image was misclassified already
    assert metrics.success_probability(success, distortion, correct) == pytest.approx(2 / 3)
    assert metrics.conditional_distortion(success, distortion, correct) == pytest.approx(2.0)
    assert metrics.protocol_row(success, distortion, correct) == pytest.approx(
        {"P_suc": 2 / 3, "D_bar": 2.0}
    )


def test_operating_characteristic_is_the_step_function_of_eq21():
    success = np.array([True, True, False, True])
    distortion = np.array([2.0, 1.0, np.inf, 2.0])
    budgets, prob = metrics.operating_characteristic(success, distortion)
    np.testing.assert_array_equal(budgets, [0.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(prob, [0.0, 0.25, 0.75, 0.75])
    _, on_grid = metrics.operating_characteristic(success, distortion, grid=[0.5, 1.5, 9.0])
    np.testing.assert_allclose(on_grid, [0.0, 0.25, 0.75])  # ends at P_suc = 3/4


def test_no_success_gives_nan_distortion_and_a_flat_curve():
    success = np.zeros(3, bool)
    distortion = np.full(3, np.inf)
    assert np.isnan(metrics.conditional_distortion(success, distortion))
    assert metrics.success_probability(success, distortion) == 0.0
    _, prob = metrics.operating_characteristic(success, distortion)
    np.testing.assert_array_equal(prob, [0.0])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"per-image vectors .* \(2, 3\)"):
        metrics.success_probability(np.ones((2, 3), bool), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"`clean_correct` must have shape \(3,\)"):
        metrics.success_probability(np.ones(3, bool), np.ones(3), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"`distortion` must be finite wherever `success`"):
        metrics.conditional_distortion(np.ones(2, bool), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"\[K runs, b images\]"):
        metrics.min_successful_distortion(np.ones(3, bool), np.ones(3))
