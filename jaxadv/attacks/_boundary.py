"""Linearised decision boundaries: DeepFool's closest hyperplane and the step onto it.

Around ``x``, the boundary between the wanted class and class ``k`` is linearised as the
hyperplane ``f_k + w_k·r = 0`` (``f_k`` a logit difference, ``w_k`` its gradient). The least
``ℓp`` move onto it has length ``|f_k| / ‖w_k‖_q`` (``q`` the dual exponent, ``1/p + 1/q = 1``)
along the ``ℓp``-steepest direction of ``w_k`` (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a
simple and accurate method to fool deep neural networks", CVPR 2016, Eqs. 10-11 and §3.3). Shared
by DeepFool and SparseFool. Only ``p = 2`` (``q = 2``) and ``p = ∞`` (``q = 1``) are used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORMS = ("l2", "linf")

# The least length of a DeepFool step: a point lying exactly on a boundary (a tie of logits,
# which a long run can reach in float32) would otherwise not move. The reference codes add 1e-4
# to every step's length; as a floor it leaves every longer step exact.
MIN_STEP = 1e-4

_TINY = 1e-12  # keeps a zero gradient from dividing by zero (it then gives a zero step)


def dual_norm(w: jax.Array, norm: str) -> jax.Array:
    """``‖w‖_q`` over all entries of ``w``: ``ℓ2`` for ``norm="l2"``, ``ℓ1`` for ``"linf"``."""
    if norm == "l2":
        return jnp.sqrt(jnp.sum(jnp.square(w)))
    return jnp.sum(jnp.abs(w))


def boundary_distance(f: jax.Array, w: jax.Array, norm: str) -> jax.Array:
    """The ``norm``-distance ``|f| / ‖w‖_q`` to the hyperplane ``f + w·r = 0``."""
    return jnp.abs(f) / (dual_norm(w, norm) + _TINY)


def nearest_boundary(f: jax.Array, w: jax.Array, norm: str, valid: jax.Array) -> jax.Array:
    """The index of the closest linearised boundary among the ``valid`` rows of ``(f, w)``
    (``f: (m,)``, ``w: (m, ...)``): DeepFool's ``l̂ = argmin_k |f_k| / ‖w_k‖_q``."""
    distance = jax.vmap(lambda f_k, w_k: boundary_distance(f_k, w_k, norm))(f, w)
    return jnp.argmin(jnp.where(valid, distance, jnp.inf))


def boundary_step(f: jax.Array, w: jax.Array, norm: str, min_length: float = 0.0) -> jax.Array:
    """The least-``norm`` move ``r`` with ``f + w·r = 0``: ``|f|/‖w‖_q · |w|^{q−1}⊙sign(w) /
    ‖w‖_q^{q−1}``, i.e. ``|f|/‖w‖₂² · w`` (ℓ2) and ``|f|/‖w‖₁ · sign(w)`` (ℓ∞).

    Its length (in ``norm``) is at least ``min_length`` (a floor that lets a point lying exactly
    on a linear boundary still move). ``w`` points where ``f`` grows: the move raises a negative
    ``f`` to 0 (the caller's sign convention).
    """
    length = jnp.maximum(boundary_distance(f, w, norm), min_length)
    if norm == "l2":
        return length * w / (dual_norm(w, norm) + _TINY)
    return length * jnp.sign(w)
