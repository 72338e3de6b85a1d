"""Norm balls around the clean input, over optax's projections.

The projections act on the whole ``delta`` tree (one example), so under ``vmap`` each example is
projected onto its own ball. Radii may be traced (swept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.constraints._constraint import Constraint

# The norms a ball (and hence a norm-budget attack) can be taken in. Not the norms an attack result
# records: those are ``jaxadv.results.NORM_NAMES`` (l0, l1, l2, linf).
NORMS = ("linf", "l2", "l1")


def _zero_radius_safe(projection, eps):
    """``projection(delta, eps)``, but exactly zero for ``eps = 0`` (optax's divides 0 by 0)."""

    def project(delta, x0):
        del x0
        safe_eps = jnp.where(eps > 0, eps, 1.0)
        return jnp.where(eps > 0, projection(delta, safe_eps), jnp.zeros_like(delta))

    return project


def linf_ball(eps: jax.Array | float) -> Constraint:
    """``‖delta‖∞ ≤ eps``; random starts uniform in the cube ``[-eps, eps]^n``.

    Args:
      eps: the radius, ≥ 0 (may be traced: swept under ``vmap``).

    Returns:
      A :class:`Constraint` whose ``project`` is the Euclidean projection onto the ℓ∞ ball.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.constraints import linf_ball
      >>> linf_ball(0.5).project(jnp.array([0.2, -0.9, 1.5]), jnp.zeros(3))
      Array([ 0.2, -0.5,  0.5], dtype=float32)
    """
    _checks.check_nonnegative("eps", eps)

    def sample(key, x0):
        return jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0) * eps

    return Constraint(
        project=lambda delta, x0: optax.projections.projection_linf_ball(delta, eps),
        sample=sample,
    )


def l2_ball(eps: jax.Array | float) -> Constraint:
    """``‖delta‖₂ ≤ eps``; random starts uniform in the ball's volume.

    Uniform sampling: a Gaussian direction times ``eps·u^{1/n}`` with ``u ~ U(0, 1)``; in high
    dimension this lies close to the sphere, as the uniform distribution on the ball does.

    Args:
      eps: the radius, ≥ 0 (may be traced: swept under ``vmap``).

    Returns:
      A :class:`Constraint` whose ``project`` is the Euclidean projection onto the ℓ2 ball.
    """
    _checks.check_nonnegative("eps", eps)

    def sample(key, x0):
        k_dir, k_rad = jax.random.split(key)
        direction = jax.random.normal(k_dir, x0.shape, x0.dtype)
        direction = direction / jnp.maximum(jnp.linalg.norm(direction.ravel()), 1e-12)
        radius = eps * jax.random.uniform(k_rad, (), x0.dtype) ** (1.0 / x0.size)
        return direction * radius

    return Constraint(
        project=_zero_radius_safe(optax.projections.projection_l2_ball, eps), sample=sample
    )


def l1_ball(eps: jax.Array | float) -> Constraint:
    """``‖delta‖₁ ≤ eps`` (sort-based exact projection); random starts uniform in the ball.

    Uniform sampling (Barthe, Guédon, Mendelson & Naor, Ann. Probab. 2005): ``y/(‖y‖₁ + z)`` with
    ``y`` i.i.d. Laplace and ``z ~ Exp(1)`` is uniform in the unit ℓ1 ball.

    Args:
      eps: the radius, ≥ 0 (may be traced: swept under ``vmap``).

    Returns:
      A :class:`Constraint` whose ``project`` is the Euclidean projection onto the ℓ1 ball.
    """
    _checks.check_nonnegative("eps", eps)

    def sample(key, x0):
        k_y, k_z = jax.random.split(key)
        y = jax.random.laplace(k_y, x0.shape, x0.dtype)
        z = jax.random.exponential(k_z, (), x0.dtype)
        return eps * y / (jnp.sum(jnp.abs(y)) + z)

    return Constraint(
        project=_zero_radius_safe(optax.projections.projection_l1_ball, eps), sample=sample
    )


def norm_ball(norm: str, eps: jax.Array | float) -> Constraint:
    """The ball of the named norm (``"linf"``, ``"l2"`` or ``"l1"``) and radius ``eps``.

    Args:
      norm: ``"linf"``, ``"l2"`` or ``"l1"``.
      eps: the radius, ≥ 0.

    Returns:
      The :class:`Constraint` of :func:`linf_ball`, :func:`l2_ball` or :func:`l1_ball`.
    """
    _checks.check_choice("norm", norm, NORMS)
    return {"linf": linf_ball, "l2": l2_ball, "l1": l1_ball}[norm](eps)
