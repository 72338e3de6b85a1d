"""Two norm balls on the two regions of one image: the dual-perturbation budget.

Tong, Guo, Prakash, Vorobeychik et al., "Towards robustness against unsuspicious adversarial
examples" (appendix A): ``‖δ∘F‖_p ≤ ε_F`` on the foreground ``F`` and ``‖δ∘B‖_p ≤ ε_B`` on the
background ``B = 1 − F``. The two sets constrain disjoint coordinates, so projecting onto their
product is projecting each region onto its own ball and merging (Eqs. 1, 2, 4); a random start
draws one point in each ball and merges them (step 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.constraints._balls import norm_ball
from jaxadv.constraints._constraint import Constraint

DUAL_NORMS = ("linf", "l2")


def _l2_part(direction, region, eps, u):
    """The ``region`` part of an ℓ2 draw: the region's Gaussian direction, normalised over the
    region, at radius ``eps·u^{1/n}`` (uniform in the region's ball, ``n`` its coordinates).
    Written as ``l2_ball``'s sampler so that a region covering everything draws what it draws."""
    norm = jnp.linalg.norm(jnp.where(region, direction, 0.0).ravel())
    count = jnp.maximum(jnp.sum(jnp.broadcast_to(region, direction.shape)), 1)
    # Masked after the division, so that with `region` everywhere XLA sees l2_ball's expression.
    unit = jnp.where(region, direction / jnp.maximum(norm, 1e-12), 0.0)
    return unit * (eps * u ** (1.0 / count.astype(direction.dtype)))


def dual_ball(norm: str, eps_f, eps_b, mask: jax.Array) -> Constraint:
    """``‖δ∘F‖ ≤ eps_f`` and ``‖δ∘(1−F)‖ ≤ eps_b`` in the ``norm`` (``"linf"`` or ``"l2"``).

    Args:
      norm: ``"linf"`` or ``"l2"``.
      eps_f: the foreground radius (may be traced: swept).
      eps_b: the background radius (may be traced).
      mask: the foreground ``F`` of ONE example, ``(h, w, 1)`` for an input ``(h, w, c)`` (any
        shape that broadcasts against ``delta``), values in {0, 1}; may be traced.

    Returns:
      A :class:`Constraint`: ``project`` projects each region onto its own ball and merges;
      ``sample`` draws a uniform point of each ball and merges them; with ``F = 1`` it is
      ``norm_ball(norm, eps_f).sample`` and with ``F = 0`` ``norm_ball(norm, eps_b).sample``,
      draw for draw (same key).
    """
    _checks.check_choice("norm", norm, DUAL_NORMS)
    _checks.check_nonnegative("eps_f", eps_f)
    _checks.check_nonnegative("eps_b", eps_b)
    fg = jnp.asarray(mask) > 0.5
    fore, back = norm_ball(norm, eps_f), norm_ball(norm, eps_b)

    def project(delta, x0):
        on_f = fore.project(jnp.where(fg, delta, 0.0), x0)
        on_b = back.project(jnp.where(fg, 0.0, delta), x0)
        return jnp.where(fg, on_f, on_b)

    def sample(key, x0):
        # The regions are disjoint coordinates, so ONE coordinate-wise draw serves both; an ℓ2
        # draw's radii are two uniforms, the background's from `fold_in` (or the foreground's
        # own when the foreground is empty). So with F = 1 (F = 0) the draw is
        # norm_ball(norm, eps_f) (norm_ball(norm, eps_b))'s with the same key, number for number.
        if norm == "linf":
            u = jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0)
            return jnp.where(fg, u * eps_f, u * eps_b)
        k_dir, k_rad = jax.random.split(key)
        direction = jax.random.normal(k_dir, x0.shape, x0.dtype)
        u_f = jax.random.uniform(k_rad, (), x0.dtype)
        u_b = jnp.where(
            jnp.any(fg), jax.random.uniform(jax.random.fold_in(k_rad, 1), (), x0.dtype), u_f
        )
        on_f = _l2_part(direction, fg, eps_f, u_f)
        on_b = _l2_part(direction, ~fg, eps_b, u_b)
        return jnp.where(fg, on_f, on_b)

    return Constraint(project=project, sample=sample)
