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


def _l2_region_sample(key, x0, eps, region):
    """Uniform in the ℓ2 ball of radius ``eps`` over the coordinates of ``region`` (zero
    elsewhere). With ``region`` everywhere it is ``l2_ball(eps).sample`` draw for draw."""
    k_dir, k_rad = jax.random.split(key)
    direction = jax.random.normal(k_dir, x0.shape, x0.dtype)
    norm = jnp.linalg.norm(jnp.where(region, direction, 0.0).ravel())
    # Masked after the division, so that with `region` everywhere XLA sees l2_ball's expression.
    direction = jnp.where(region, direction / jnp.maximum(norm, 1e-12), 0.0)
    count = jnp.maximum(jnp.sum(jnp.broadcast_to(region, x0.shape)), 1).astype(x0.dtype)
    radius = eps * jax.random.uniform(k_rad, (), x0.dtype) ** (1.0 / count)
    return direction * radius


def _region_sample(norm, key, x0, eps, region):
    if norm == "l2":
        return _l2_region_sample(key, x0, eps, region)
    return norm_ball(norm, eps).sample(key, x0)  # ℓ∞: a coordinate-wise draw, any region


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
      ``sample`` draws a uniform point of each ball (the foreground with ``key`` itself, so with
      ``F = 1`` it is ``norm_ball(norm, eps_f).sample``; the background with ``fold_in(key, 1)``)
      and merges them.
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
        d_f = _region_sample(norm, key, x0, eps_f, fg)
        d_b = _region_sample(norm, jax.random.fold_in(key, 1), x0, eps_b, ~fg)
        return jnp.where(fg, d_f, d_b)

    return Constraint(project=project, sample=sample)
