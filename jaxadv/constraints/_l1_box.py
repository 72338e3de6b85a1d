"""The exact Euclidean projection onto the ℓ1 ball ∩ the pixel box (Croce & Hein, "Mind the box:
ℓ1-APGD for sparse adversarial attacks on image classifiers", ICML 2021, Sec. 3.3).

Projecting onto the ℓ1 ball and then clipping to the box (the usual ℓ1-PGD) is feasible but not
the nearest point of the intersection: it spends budget on coordinates the box then cuts. The
nearest point has the form ``δ_i = sign(y_i)·clip(|y_i| − λ, 0, r_i)``, with ``r_i`` the room the
box leaves in the direction of ``y_i`` and ``λ ≥ 0`` the smallest threshold whose result fits the
budget (KKT conditions of the separable problem). ``φ(λ) = Σ_i clip(|y_i| − λ, 0, r_i)`` is
piecewise linear and non-increasing with breakpoints at ``|y_i| − r_i`` and ``|y_i|``, so one sort
of the 2d breakpoints and a cumulative sum give ``λ`` exactly (O(d log d)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.constraints._constraint import Constraint


def project_l1_box(
    delta: jax.Array,
    eps: jax.Array | float,
    lower: jax.Array | float,
    upper: jax.Array | float,
) -> jax.Array:
    """The Euclidean projection of ``delta`` onto ``{‖δ‖₁ ≤ eps} ∩ [lower, upper]``.

    ``lower <= 0 <= upper`` entry-wise (the box of ``delta`` around a clean input inside the pixel
    box); ``eps >= 0`` may be traced.

    Args:
      delta: one example's perturbation.
      eps: the ℓ1 radius, ≥ 0 (may be traced).
      lower: entry-wise lower bounds on ``delta`` (≤ 0).
      upper: entry-wise upper bounds on ``delta`` (≥ 0).

    Returns:
      The projected perturbation, of the shape of ``delta``.

    References:
      Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image classifiers",
      ICML 2021.
    """
    eps = jnp.asarray(eps, delta.dtype)
    lower = jnp.broadcast_to(lower, delta.shape)
    upper = jnp.broadcast_to(upper, delta.shape)
    a = jnp.ravel(jnp.abs(delta))
    room = jnp.ravel(jnp.maximum(jnp.where(delta >= 0, upper, -lower), 0.0))
    # Each coordinate declines at unit slope for λ in [max(a − r, 0), a] (empty when r = 0).
    start = jnp.clip(a - room, 0.0, a)
    positions = jnp.concatenate([start, a])
    events = jnp.concatenate([jnp.ones_like(a), -jnp.ones_like(a)])
    order = jnp.argsort(positions, stable=True)
    positions, events = positions[order], events[order]
    active = jnp.cumsum(events)  # declining coordinates just after each breakpoint
    gaps = jnp.diff(positions, append=positions[-1:])
    phi0 = jnp.sum(jnp.minimum(a, room))  # φ(0): the box projection's ℓ1 norm
    phi = phi0 - jnp.concatenate([jnp.zeros((1,), a.dtype), jnp.cumsum(active * gaps)[:-1]])
    # The last breakpoint where φ is still >= eps; λ lies on the linear piece after it.
    m = jnp.maximum(jnp.sum(phi >= eps) - 1, 0)
    lam = positions[m] + (phi[m] - eps) / jnp.maximum(active[m], 1.0)
    lam = jnp.where(phi0 > eps, jnp.maximum(lam, 0.0), 0.0)
    # One Newton step on φ evaluated directly: the cumulative sums above lose ~1e-7·‖y‖₁ in
    # float32, which is much of a small eps. Then a scale (box-safe: toward 0) absorbs rounding.
    inside = (a - lam > 0) & (a - lam < room)
    excess = jnp.sum(jnp.clip(a - lam, 0.0, room)) - eps
    lam = jnp.where(phi0 > eps, lam + excess / jnp.maximum(jnp.sum(inside), 1), lam)
    magnitude = jnp.clip(a - lam, 0.0, room)
    magnitude = magnitude * jnp.minimum(1.0, eps / jnp.maximum(jnp.sum(magnitude), 1e-30))
    projected = (jnp.sign(jnp.ravel(delta)) * magnitude).reshape(delta.shape)
    return jnp.where(eps > 0, projected, jnp.zeros_like(delta))


def l1_box_ball(eps: jax.Array | float, bounds: tuple[float, float]) -> Constraint:
    """``‖delta‖₁ ≤ eps`` with ``x0 + delta`` in ``bounds``, projected exactly
    (:func:`project_l1_box`); random starts are Gaussian draws projected onto the set (the start of
    ℓ1-APGD's reference code), which puts them on the ℓ1 sphere when the box allows.

    Args:
      eps: the ℓ1 radius, ≥ 0 (may be traced).
      bounds: the pixel box ``(low, high)``.

    Returns:
      A :class:`Constraint`.

    References:
      Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image classifiers",
      ICML 2021.
    """
    _checks.check_nonnegative("eps", eps)
    low, high = bounds

    def project(delta, x0):
        return project_l1_box(delta, eps, low - x0, high - x0)

    def sample(key, x0):
        return project(jax.random.normal(key, x0.shape, x0.dtype), x0)

    return Constraint(project=project, sample=sample)
