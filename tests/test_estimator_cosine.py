"""The cosine of a gradient estimate with the exact gradient (thesis Table 2.6), for any oracle.

Closed forms: the exact oracle gives 1; RGF with orthonormal directions on a linear loss returns
the mean projection ``1/q · Σ (u_i·w) u_i``, whose cosine with ``w`` is ``‖P w‖ / ‖w‖``
(``P`` the projection onto the directions' span).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import gradients, metrics

W = jax.random.normal(jax.random.key(3), (4, 4, 2))


def linear(theta):
    return jnp.vdot(W, theta), None


@dataclasses.dataclass(frozen=True)
class Fixed:
    """An oracle that returns one fixed vector (and spends 7 queries)."""

    vector: np.ndarray

    def init(self, theta):
        return ()

    def __call__(self, loss_fn, theta, key, state):
        return loss_fn(theta), jnp.asarray(self.vector), state, jnp.asarray(7, jnp.int32)


def test_exact_oracle_has_cosine_one():
    cos, queries = metrics.estimator_cosine(gradients.exact(), linear, jnp.ones((4, 4, 2)),
                                            jax.random.key(0))  # fmt: skip
    assert float(cos) == pytest.approx(1.0, abs=1e-6) and int(queries) == 1


def test_fixed_vector_matches_numpy_cosine_and_zero_vector_gives_zero():
    v = np.random.default_rng(0).normal(size=(4, 4, 2)).astype(np.float32)
    w = np.asarray(W).ravel()
    expected = v.ravel() @ w / (np.linalg.norm(v) * np.linalg.norm(w))
    cos, queries = metrics.estimator_cosine(Fixed(v), linear, jnp.zeros((4, 4, 2)), None)
    assert float(cos) == pytest.approx(expected, abs=1e-6) and int(queries) == 7
    zero, _ = metrics.estimator_cosine(Fixed(np.zeros_like(v)), linear, jnp.zeros((4, 4, 2)), None)
    assert float(zero) == 0.0


def test_orthogonal_rgf_cosine_is_the_projected_norm_ratio_under_vmap():
    q, keys = 6, jax.random.split(jax.random.key(5), 2)
    oracle = gradients.RGF(samples=q, sigma=1.0, orthogonal=True)
    cos, queries = jax.jit(jax.vmap(
        lambda k: metrics.estimator_cosine(oracle, linear, jnp.zeros((4, 4, 2)), k)))(keys)
    w = np.asarray(W).ravel()
    for i, key in enumerate(keys):  # each example with its own key
        u = np.asarray(gradients.rgf_directions(key, q, (4, 4, 2), orthogonal=True))
        expected = np.linalg.norm(u.reshape(q, -1) @ w) / np.linalg.norm(w)
        assert float(cos[i]) == pytest.approx(expected, rel=1e-4)
    assert queries.tolist() == [q + 1, q + 1]


def test_zoo_cosine_is_the_chosen_coordinates_norm_ratio():
    oracle, theta, key = gradients.zoo(coordinates=5, h=1.0), jnp.zeros((4, 4, 2)), jax.random.key(2)

    @jax.jit
    def both(key):  # one program: the metric, and the coordinates the same call chose
        chosen = oracle(linear, theta, key, oracle.init(theta))[1].chosen
        return metrics.estimator_cosine(oracle, linear, theta, key)[0], chosen

    cos, chosen = both(key)
    chosen = np.asarray(chosen)
    w = np.asarray(W)
    assert chosen.sum() == 5
    assert float(cos) == pytest.approx(np.linalg.norm(w[chosen]) / np.linalg.norm(w), rel=1e-4)


def test_gradient_cosine_per_example_and_bad_oracle():
    a = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    b = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    expected = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(metrics.gradient_cosine(a, b), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="`oracle`"):
        metrics.estimator_cosine(lambda *a: a, linear, jnp.zeros(3), jax.random.key(0))
