"""Aggregate metrics against hand-computed values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import metrics
from jaxadv.attacks import AttackResult, perturbation_norms


def _result(success, logits, deltas):
    norms = metrics.per_example_norms(deltas)
    n = len(success)
    return AttackResult(
        x_adv=deltas,
        delta=deltas,
        success=jnp.asarray(success),
        loss=jnp.zeros(n),
        logits=jnp.asarray(logits, jnp.float32),
        steps=jnp.ones(n, jnp.int32),
        queries=jnp.ones(n, jnp.int32),
        trace=jnp.zeros((n, 1)),
        **norms,
    )


def test_norms_match_numpy():
    delta = jax.random.normal(jax.random.key(0), (3, 4, 4, 2)).at[0, 0].set(0.0)
    per = metrics.per_example_norms(delta)
    flat = np.asarray(delta).reshape(3, -1)
    np.testing.assert_allclose(per["l0"], np.count_nonzero(flat, axis=1))
    np.testing.assert_allclose(per["l1"], np.abs(flat).sum(1), rtol=1e-6)
    np.testing.assert_allclose(per["l2"], np.linalg.norm(flat, axis=1), rtol=1e-6)
    np.testing.assert_allclose(per["linf"], np.abs(flat).max(1), rtol=1e-6)
    one = perturbation_norms(delta[1])
    for name in metrics.NORM_NAMES:
        np.testing.assert_allclose(one[name], per[name][1], rtol=1e-6)


def test_robust_accuracy_success_rate_and_summary():
    labels = np.array([0, 1, 2, 0])
    clean_correct = np.array([True, True, True, False])
    # adversarial predictions: 0 (still right), 2 (fooled), 2 (still right), 1
    logits = np.eye(3)[[0, 2, 2, 1]]
    deltas = jnp.stack([jnp.zeros(2), jnp.array([0.3, -0.4]), jnp.zeros(2), jnp.array([1.0, 0.0])])
    result = _result([False, True, False, True], logits, deltas)
    assert metrics.robust_accuracy(result, labels, clean_correct) == pytest.approx(0.5)
    assert metrics.success_rate(result) == pytest.approx(0.5)
    row = metrics.summarize(result, labels, clean_correct)
    assert row["success_rate"] == pytest.approx(1 / 3)
    assert row["l2"] == pytest.approx(0.5) and row["l0"] == pytest.approx(2.0)
    assert metrics.accuracy(logits, labels) == pytest.approx(0.5)


def test_sweep_results_give_one_robust_accuracy_per_grid_point_and_others_refuse():
    labels = np.array([0, 1])
    logits = np.stack([np.eye(2)[[0, 1]], np.eye(2)[[1, 1]]])  # grid point 1 fools example 0
    result = AttackResult(*[None] * 13)._replace(
        logits=logits, success=np.array([[0, 0], [1, 0]], bool)
    )
    np.testing.assert_allclose(metrics.robust_accuracy(result, labels, [True, True]), [1.0, 0.5])
    with pytest.raises(ValueError, match="one batch"):
        metrics.success_rate(result)
    with pytest.raises(ValueError, match=r"`logits` must be \[batch, classes\]"):
        metrics.accuracy(logits, labels)


def test_accuracy_refuses_bad_input_eagerly_and_is_nan_under_jit():
    logits = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]
    labels = np.array([0, 1, 2, 0])
    nan_logits = logits.copy()
    nan_logits[1, 0] = np.nan  # argmax of a NaN row is 0: a "correct" answer for label 0
    with pytest.raises(ValueError, match=r"`logits` must be finite; got 1 NaN/inf"):
        metrics.accuracy(nan_logits, labels)
    with pytest.raises(ValueError, match=r"`labels` must hold integer class indices; got dtype"):
        metrics.accuracy(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 2\] for 3 classes"):
        metrics.accuracy(logits, np.array([0, 1, 2, 7]))
    jitted = jax.jit(metrics.accuracy)
    assert float(jitted(logits, labels)) == pytest.approx(0.5)  # the eager value, traced
    assert np.isnan(jitted(nan_logits, labels))
    assert np.isnan(jitted(logits, np.array([0, 1, 2, -1])))
    with pytest.raises(ValueError, match="integer class indices"):  # dtypes are static
        jitted(logits, labels.astype(np.float32))


def test_norms_of_a_non_finite_delta_are_refused_or_nan():
    delta = np.zeros((2, 3), np.float32)
    delta[0] = np.nan  # counted as non-zeros, ℓ0 would read a plausible 3
    with pytest.raises(ValueError, match=r"`delta` must be finite; got 3 NaN/inf"):
        metrics.per_example_norms(delta)
    traced = jax.jit(metrics.per_example_norms)(delta)
    for name in metrics.NORM_NAMES:
        assert np.isnan(traced[name][0]) and traced[name][1] == 0, name


def test_host_metrics_name_masks_and_labels_that_do_not_fit():
    labels = np.array([0, 1, 2, 0])
    logits = np.eye(3)[[0, 2, 2, 1]]
    result = _result([False, True, False, True], logits, jnp.zeros((4, 2)))
    correct = np.array([True, True, True, False])
    with pytest.raises(ValueError, match=r"`labels` must have shape \(4,\), one per example"):
        metrics.summarize(result, labels[:1], correct)  # broadcast silently before
    with pytest.raises(ValueError, match=r"`clean_correct` must have shape \(4,\)"):
        metrics.robust_accuracy(result, labels, correct[:2])
    with pytest.raises(ValueError, match=r"`mask` must be a boolean mask .*indices\?"):
        metrics.success_rate(result, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(4,\)"):
        metrics.mean_norms(result, correct[:3])
    with pytest.raises(ValueError, match="host .*outside jit"):
        jax.jit(lambda r: metrics.success_rate(r))(result)
    with pytest.raises(ValueError, match=r"`success` must be booleans \(or 0/1\)"):
        metrics.success_probability([0.5, 1.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="`distortion` must be finite wherever `success`"):
        metrics.min_successful_distortion([[True, False]], [[np.nan, 0.1]])
    with pytest.raises(ValueError, match="`grid` must be a 1-D array of finite budgets"):
        metrics.operating_characteristic([True, False], [0.1, 0.2], grid=[np.nan])
    with pytest.raises(ValueError, match="`labels` must hold integer class indices"):
        metrics.target_pairs(np.zeros((2, 4)), np.array([0.5, 1.2]), 3)  # truncated before
    with pytest.raises(ValueError, match=r"`num_classes` must be an int >= 2; got 3.5"):
        metrics.target_pairs(np.zeros((2, 4)), np.array([0, 1]), 3.5)
