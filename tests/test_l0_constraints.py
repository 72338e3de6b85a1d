"""ℓ0 and ℓ0 + ℓ∞ projections: exact (brute force over supports), feasible, traced budgets."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxadv.constraints._l0 import l0_ball, l0_linf_ball, project_l0_box, top_k_mask

project = jax.jit(project_l0_box, static_argnames="unit")


def brute_force_distance(y, k, lower, upper, units):
    """min ‖y − x‖² over x in the box with at most k non-zero units, enumerating every support.

    ``units`` lists one boolean mask (shaped like ``y``) per unit.
    """
    clipped = np.clip(y, lower, upper)
    best = np.inf
    for size in range(k + 1):
        for support in itertools.combinations(units, size):
            keep = np.any(np.stack([np.zeros(y.shape, bool), *support]), axis=0)
            best = min(best, float(np.sum(np.square(y - np.where(keep, clipped, 0.0)))))
    return best


floats = st.floats(-3.0, 3.0, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(floats, min_size=6, max_size=6),  # one shape: one compilation
    k_frac=st.floats(0.0, 1.0),
    eps=st.floats(0.05, 2.0),
    x0=st.floats(0.0, 1.0),
)
@example(y=[0.0, 0.0, 0.0, 0.0, -0.06123254, 1.1754944e-38], k_frac=0.875, eps=1.0, x0=0.0)
def test_element_projection_is_exact_and_feasible(y, k_frac, eps, x0):
    y = np.asarray(y, np.float32)
    n = y.size
    k = 1 + int(k_frac * (n - 1))
    lower = np.float32(max(-eps, 0.0 - x0))  # ℓ∞ cube ∩ the box [0, 1] around x0
    upper = np.float32(min(eps, 1.0 - x0))
    x = np.asarray(project(jnp.asarray(y), k, lower, upper, unit="element"))
    assert np.count_nonzero(x) <= k
    assert np.all(x >= lower) and np.all(x <= upper) and np.all(np.abs(x) <= eps * (1 + 1e-6))
    expected = brute_force_distance(y, k, lower, upper, list(np.eye(n, dtype=bool)))
    np.testing.assert_allclose(np.sum(np.square(y - x)), expected, rtol=1e-5, atol=1e-6)
    again = np.asarray(project(jnp.asarray(x), k, lower, upper, unit="element"))
    # Idempotent, bit for bit, except where entries tie: an entry below ~1e-19 has a gain v²
    # that underflows to 0 in float32, and which of such tied entries is kept is arbitrary.
    np.testing.assert_allclose(again, x, rtol=0, atol=1e-19)


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(floats, min_size=6, max_size=6),
    k=st.integers(1, 3),
    lows=st.lists(st.floats(-1.0, 0.0), min_size=6, max_size=6),
)
def test_pixel_projection_is_exact_and_counts_pixels(y, k, lows):
    y = np.asarray(y, np.float32).reshape(3, 2)  # 3 pixels of 2 channels
    lower = np.asarray(lows, np.float32).reshape(3, 2)
    upper = lower + 1.0  # a box containing 0, different for every entry
    x = np.asarray(project(jnp.asarray(y), k, lower, upper, unit="pixel"))
    assert np.count_nonzero(np.any(x != 0, axis=-1)) <= k
    assert np.all(x >= lower) and np.all(x <= upper)
    pixels = [np.arange(3)[:, None] == i for i in range(3)]
    expected = brute_force_distance(y, k, lower, upper, [np.repeat(p, 2, axis=1) for p in pixels])
    np.testing.assert_allclose(np.sum(np.square(y - x)), expected, rtol=1e-5, atol=1e-6)


def test_top_k_keeps_exactly_k_with_ties_broken_by_position():
    scores = jnp.array([1.0, 3.0, 3.0, 0.0, 3.0])
    np.testing.assert_array_equal(top_k_mask(scores, 2), [False, True, True, False, False])
    np.testing.assert_array_equal(top_k_mask(scores, 5), [True] * 5)


def test_traced_budget_vmaps_and_jits_like_a_loop_over_budgets():
    y = jax.random.normal(jax.random.key(0), (4, 4, 3))
    x0 = jax.random.uniform(jax.random.key(1), (4, 4, 3))
    ks = jnp.array([1.0, 3.0, 7.0, 16.0])

    def run(k):
        return l0_linf_ball(k, 0.3, unit="pixel", bounds=(0.0, 1.0)).project(y, x0)

    swept = jax.jit(jax.vmap(run))(ks)
    one = jax.jit(run)
    for i, k in enumerate(ks):
        x = np.asarray(one(k))
        np.testing.assert_array_equal(swept[i], x)
        changed = np.any(x != 0, axis=-1)
        assert changed.sum() == int(k)  # a Gaussian y has no zero pixel: the budget is used fully
        assert np.all(np.abs(x) <= 0.3)
        assert np.all((x0 + x >= 0.0) & (x0 + x <= 1.0))
    np.testing.assert_array_equal(run(3), swept[1])  # eager (a Python int budget) == jit


def test_l0_ball_without_a_box_keeps_the_largest_pixels():
    y = jnp.array([[0.1, 0.0], [-2.0, 0.5], [0.3, 0.3], [1.0, -1.0]])
    x = l0_ball(2, unit="pixel").project(y, jnp.zeros_like(y))
    np.testing.assert_array_equal(x, [[0.0, 0.0], [-2.0, 0.5], [0.0, 0.0], [1.0, -1.0]])


def test_random_starts_lie_in_the_set():
    x0 = jax.random.uniform(jax.random.key(2), (5, 5, 3))
    c = l0_linf_ball(4, 0.2, unit="pixel", bounds=(0.0, 1.0))
    delta = jax.jit(c.sample)(jax.random.key(3), x0)
    assert np.count_nonzero(np.any(np.asarray(delta) != 0, axis=-1)) == 4
    assert float(jnp.max(jnp.abs(delta))) <= 0.2
    assert np.all((x0 + delta >= 0.0) & (x0 + delta <= 1.0))
    np.testing.assert_array_equal(jax.jit(c.project)(delta, x0), delta)


def test_bad_budgets_radii_and_units():
    with pytest.raises(ValueError, match=r"`k` must be a whole number >= 1; got 0.0"):
        l0_ball(0)
    with pytest.raises(ValueError, match=r"`k` must be a whole number >= 1; got -2.0"):
        l0_linf_ball(-2, 0.1)
    with pytest.raises(ValueError, match=r"`k` must be a whole number >= 1; got 2.5"):
        l0_ball(2.5)
    with pytest.raises(ValueError, match=r"`eps` must be finite and > 0; got 0.0"):
        l0_linf_ball(3, 0.0)
    with pytest.raises(ValueError, match=r"`eps` must be finite and > 0; got -0.1"):
        l0_linf_ball(3, -0.1)
    with pytest.raises(
        ValueError, match=r"`unit` must be one of 'pixel', 'element'; got 'channel'"
    ):
        l0_ball(3, unit="channel")
    x0 = jnp.zeros((4, 4, 3))
    with pytest.raises(
        ValueError, match=r"`k` must be at most the number of maskable pixels .* 16"
    ):
        l0_ball(17, unit="pixel").project(x0, x0)
    with pytest.raises(ValueError, match=r"maskable elements .* 48; got 49"):
        l0_ball(49, unit="element").project(x0, x0)
    with pytest.raises(ValueError, match=r"`unit='pixel'` needs a channels-last example"):
        l0_ball(1, unit="pixel").project(jnp.zeros(5), jnp.zeros(5))
