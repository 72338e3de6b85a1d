"""Property tests (hypothesis) of the ℓ∞, ℓ2 and ℓ1 balls of ``jaxadv.constraints`` against numpy
references: the projection lands inside the ball (and the pixel box when intersected), is
idempotent, and is the nearest point (ℓ∞: a clip; ℓ2: a scaling; ℓ1: the sort-based projection
onto the simplex, written here); the random starts land inside. (ℓ0: tests/test_l0_constraints.py.)

Each function is jitted with the radius as an argument, so a test compiles once per input size.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxadv.constraints import intersect, norm_ball, pixel_box

SIZES = (1, 5, 12)
LOW, HIGH = 0.0, 1.0
PROFILE = settings(max_examples=40, deadline=None, database=None)


@functools.partial(jax.jit, static_argnums=(0, 1))
def project(norm, boxed, delta, x0, eps):
    ball = norm_ball(norm, eps)
    constraint = intersect(ball, pixel_box(LOW, HIGH)) if boxed else ball
    return constraint.project(delta, x0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def sample(norm, boxed, key, x0, eps):
    ball = norm_ball(norm, eps)
    constraint = intersect(ball, pixel_box(LOW, HIGH)) if boxed else ball
    return constraint.sample(key, x0)


# -- numpy references ------------------------------------------------------------------------------


def simplex_projection(v, radius):
    """Euclidean projection of ``v ≥ 0`` onto ``{w ≥ 0, Σw = radius}`` (sort-based; Held, Wolfe &
    Crowder 1974; Duchi, Shalev-Shwartz, Singer & Chandra 2008)."""
    u = np.sort(v)[::-1]
    cssv = np.cumsum(u) - radius
    ind = np.arange(1, v.size + 1)
    rho = np.nonzero(u - cssv / ind > 0)[0][-1]
    theta = cssv[rho] / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


def reference(norm, delta, eps):
    delta = np.asarray(delta, np.float64)
    if eps == 0:
        return np.zeros_like(delta)
    if norm == "linf":
        return np.clip(delta, -eps, eps)
    if norm == "l2":
        n = np.linalg.norm(delta)
        return delta if n <= eps else delta * (eps / n)
    if np.sum(np.abs(delta)) <= eps:
        return delta
    return np.sign(delta) * simplex_projection(np.abs(delta), eps)


def norm_of(norm, v):
    v = np.asarray(v, np.float64).ravel()
    return {"linf": np.max(np.abs(v)), "l2": np.linalg.norm(v), "l1": np.sum(np.abs(v))}[norm]


# -- strategies ------------------------------------------------------------------------------------

finite = st.floats(-4.0, 4.0, allow_nan=False, width=32)


@st.composite
def problems(draw, sizes=SIZES):
    n = draw(st.sampled_from(sizes))
    delta = np.asarray(draw(st.lists(finite, min_size=n, max_size=n)), np.float32)
    x0 = np.asarray(
        draw(st.lists(st.floats(LOW, HIGH, width=32), min_size=n, max_size=n)), np.float32
    )
    eps = draw(st.one_of(st.just(0.0), st.floats(0.125, 5.0, width=32)))
    return delta, x0, np.float32(eps)


NORMS = st.sampled_from(("linf", "l2", "l1"))


def _tol(eps):
    return 1e-5 * max(float(eps), 1.0)


# -- the balls -------------------------------------------------------------------------------------


@PROFILE
@given(norm=NORMS, problem=problems())
def test_projection_is_the_nearest_point_of_the_ball_and_idempotent(norm, problem):
    delta, x0, eps = problem
    p = np.asarray(project(norm, False, delta, x0, eps))
    assert p.dtype == np.float32 and p.shape == delta.shape
    assert norm_of(norm, p) <= eps + _tol(eps)  # inside
    np.testing.assert_allclose(p, reference(norm, delta, float(eps)), atol=_tol(eps) * 4)  # nearest
    np.testing.assert_allclose(project(norm, False, p, x0, eps), p, atol=_tol(eps))  # idempotent
    # nearest among feasible points: no point of the ball is closer (a random one, and 0)
    other = reference(norm, np.random.default_rng(0).normal(size=delta.shape) * 3, float(eps))
    for y in (other, np.zeros_like(p)):
        assert np.linalg.norm(p - delta) <= np.linalg.norm(y - delta) + 1e-4


@PROFILE
@given(norm=NORMS, problem=problems())
def test_projection_onto_ball_and_box_is_feasible_and_idempotent(norm, problem):
    delta, x0, eps = problem
    p = np.asarray(project(norm, True, delta, x0, eps))
    assert norm_of(norm, p) <= eps + _tol(eps)
    assert np.all(x0 + p >= LOW - 1e-6) and np.all(x0 + p <= HIGH + 1e-6)
    np.testing.assert_allclose(project(norm, True, p, x0, eps), p, atol=_tol(eps))
    if norm == "linf":  # two boxes: the composition is the exact projection onto the intersection
        lo, hi = np.maximum(-eps, LOW - x0), np.minimum(eps, HIGH - x0)
        np.testing.assert_allclose(p, np.clip(delta, lo, hi), atol=1e-6)


@PROFILE
@given(
    norm=NORMS, problem=problems(SIZES[-1:]), seed=st.integers(0, 2**31 - 1), boxed=st.booleans()
)
def test_random_starts_land_inside(norm, problem, seed, boxed):
    _, x0, eps = problem
    s = np.asarray(sample(norm, boxed, jax.random.key(seed), x0, eps))
    assert s.dtype == np.float32 and s.shape == x0.shape and np.all(np.isfinite(s))
    assert norm_of(norm, s) <= eps + _tol(eps)
    if boxed:
        assert np.all(x0 + s >= LOW - 1e-6) and np.all(x0 + s <= HIGH + 1e-6)
    if eps == 0:
        np.testing.assert_array_equal(s, np.zeros_like(s))


def test_simplex_reference_is_a_projection():
    """The numpy reference itself, on a case worked by hand: (3, 1, 0) onto the simplex of radius
    2 is (2, 0, 0); (1, 1) onto radius 1 is (½, ½)."""
    np.testing.assert_allclose(simplex_projection(np.array([3.0, 1.0, 0.0]), 2.0), [2.0, 0, 0])
    np.testing.assert_allclose(simplex_projection(np.array([1.0, 1.0]), 1.0), [0.5, 0.5])
