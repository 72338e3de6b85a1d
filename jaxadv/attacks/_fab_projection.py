"""FAB's projection: the least ℓp move of a point onto a hyperplane inside a box, for ONE point.

Croce & Hein (ICML 2020, §3.1) solve, for p ∈ {1, 2, ∞},

    min_δ ‖δ‖_p   subject to   ⟨w, x + δ⟩ + b = 0,   low ≤ x + δ ≤ high.

Write ``v = ⟨w, x⟩ + b``. Every optimal ``δ_i`` moves coordinate ``i`` in the direction
``−sign(v)·sign(w_i)`` that shrinks ``|v|`` (moving the other way only costs norm), by some
``t_i`` in ``[0, room_i]`` (``room_i``: the distance to the box face in that direction). The
problem becomes ``min ‖t‖_p`` subject to ``Σ |w_i| t_i = |v|``, ``0 ≤ t ≤ room``:

* ℓ∞: ``t_i = min(λ, room_i)``; ℓ2 (KKT): ``t_i = min(λ |w_i|, room_i)``. Both reach
  ``Σ |w_i| t_i`` as a piecewise-linear increasing function of ``λ`` with kinks at
  ``room_i / rate_i``: sort the kinks once, evaluate the reach at every kink by cumulative sums,
  and solve the one linear piece that crosses ``|v|`` (no loop over coordinates).
* ℓ1 (a fractional knapsack): fill the coordinates of largest ``|w_i|`` first, each to its box
  face, and move the one where the cumulative reach crosses ``|v|`` part of its room.

When the hyperplane misses the box (the reach of every coordinate at its face is short of
``|v|``), the result is the box point nearest to the hyperplane that moves least: every
coordinate with ``w_i ≠ 0`` at its face, the others unchanged (the paper's and AutoAttack's
choice for p ∈ {1, ∞}; for p = 2 AutoAttack moves along ``w`` past the box instead and clips).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORMS = ("linf", "l2", "l1")


def lp_norm(v: jax.Array, norm: str) -> jax.Array:
    """The ``norm`` ("linf", "l2", "l1") of ``v`` flattened."""
    flat = jnp.abs(jnp.ravel(v))
    if norm == "linf":
        return jnp.max(flat)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(flat * flat))
    return jnp.sum(flat)


def dual_norm(v: jax.Array, norm: str) -> jax.Array:
    """The dual of ``norm`` (ℓ∞ ↔ ℓ1, ℓ2 ↔ ℓ2) of ``v`` flattened: the distance from a point to
    the hyperplane ``⟨v, z⟩ + b = 0`` in ``norm`` is ``|⟨v, x⟩ + b| / dual_norm(v)``."""
    return lp_norm(v, {"linf": "l1", "l2": "l2", "l1": "linf"}[norm])


def _exclusive_cumsum(a: jax.Array) -> jax.Array:
    return jnp.concatenate([jnp.zeros((1,), a.dtype), jnp.cumsum(a)[:-1]])


def _water_fill(size, rate, room, need):
    """``t = min(λ·rate, room)`` with the least ``λ ≥ 0`` such that ``Σ size·t = need`` (λ = ∞,
    every ``t = room``, when even that falls short). ``rate > 0`` exactly where ``size > 0``."""
    movable = rate > 0
    kink = jnp.where(movable, room / jnp.where(movable, rate, 1.0), jnp.inf)
    order = jnp.argsort(kink)
    kink, size_s, rate_s, room_s = kink[order], size[order], rate[order], room[order]
    full = jnp.cumsum(size_s * room_s)  # reach of coordinates 0..k, each at its face
    speed = size_s * rate_s
    # Σ_{j>k} size·rate, as a suffix sum (no cancellation of a total minus a prefix)
    after = jnp.concatenate([jnp.cumsum(speed[::-1])[::-1][1:], jnp.zeros((1,), speed.dtype)])
    reach = full + jnp.where(after > 0, kink * after, 0.0)  # the reach at λ = kink_k
    k = jnp.sum(reach < need)  # the linear piece [kink_{k-1}, kink_k] that crosses `need`
    before = jnp.concatenate([jnp.zeros((1,), full.dtype), full])[k]
    slope = jnp.concatenate([after[:1] + speed[:1], after])[k]
    lam = jnp.where(slope > 0, (need - before) / jnp.where(slope > 0, slope, 1.0), 0.0)
    lam = jnp.where(k < size.shape[0], lam, jnp.inf)
    return jnp.where(movable, jnp.minimum(lam * rate, room), 0.0)


def _greedy_fill(size, room, need):
    """The least ``Σ t`` with ``Σ size·t = need``, ``0 ≤ t ≤ room``: largest ``size`` first."""
    order = jnp.argsort(-size, stable=True)
    size_s, room_s = size[order], room[order]
    before = _exclusive_cumsum(size_s * room_s)
    movable = size_s > 0
    t = jnp.clip((need - before) / jnp.where(movable, size_s, 1.0), 0.0, room_s)
    return jnp.zeros_like(t).at[order].set(jnp.where(movable, t, 0.0))


def hyperplane_box_projection(
    x: jax.Array, w: jax.Array, b: jax.Array, low: float, high: float, norm: str
) -> jax.Array:
    """The least-``norm`` ``δ`` with ``⟨w, x + δ⟩ + b = 0`` and ``low ≤ x + δ ≤ high``.

    Args:
      x: the point (any shape; it must lie in the box).
      w: the hyperplane's normal, shaped like ``x``.
      b: its offset (a scalar).
      low, high: the box.
      norm: "linf", "l2" or "l1".

    Returns:
      ``δ`` shaped like ``x``. Where the hyperplane misses the box: the least move to the box
      point nearest the hyperplane (module docstring). ℓ∞ and ℓ1 minimisers need not be unique:
      this is the one that spreads the ℓ∞ move evenly (``t_i = min(λ, room_i)``) and the ℓ1
      move over the fewest coordinates.
    """
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {NORMS}; got {norm!r}.")
    flat_x, flat_w = jnp.ravel(x), jnp.ravel(w)
    value = jnp.vdot(flat_w, flat_x) + b
    toward = -jnp.sign(value) * jnp.sign(flat_w)  # the direction in which each coordinate helps
    room = jnp.where(toward > 0, high - flat_x, jnp.where(toward < 0, flat_x - low, 0.0))
    room = jnp.maximum(room, 0.0)
    size = jnp.where(toward != 0, jnp.abs(flat_w), 0.0)
    need = jnp.abs(value)
    if norm == "l1":
        t = _greedy_fill(size, room, need)
    else:
        rate = size if norm == "l2" else (size > 0).astype(size.dtype)
        t = _water_fill(size, rate, room, need)
    return (toward * t).reshape(jnp.shape(x)).astype(jnp.result_type(x))
