"""Steps taken region by region: the dual-perturbation attack's normalised steepest step.

Tong, Guo, Prakash, Vorobeychik et al., "Towards robustness against unsuspicious adversarial
examples" (appendix A, Eqs. 2-3): the gradient is split by the foreground mask ``F`` and the
background ``B = 1 − F``, each part is normalised by its own norm (``G``: sign for ℓ∞,
``g/‖g‖₂`` for ℓ2) and scaled by its own step ``α_F`` or ``α_B``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.transforms._normalize import normalize_by_l2_norm, sign

REGION_NORMS = ("linf", "l2")


def _foreground(mask) -> jax.Array:
    return jnp.asarray(mask) > 0.5


def region_steepest(mask: jax.Array, norm: str) -> optax.GradientTransformation:
    """``g ↦ G(g∘F)`` on ``F`` and ``G(g∘B)`` on ``B``: each region's steepest direction of unit
    ``norm`` (``"linf"``: sign; ``"l2"``: the region's gradient over its own ℓ2 norm, zero for a
    region whose gradient is zero).

    ``mask`` (``F``, values in {0, 1}, broadcasting against every leaf; may be traced) is one
    example's: chain it per example inside the traced attack. With ``F = 1`` it is ``sign()`` /
    ``normalize_by_l2_norm()`` exactly. Chain with :func:`region_scale` (the descent signs).

    Args:
      mask: the foreground mask ``F`` of one example (values in {0, 1}; a value above 0.5 counts
        as foreground), broadcasting against every leaf of the update.
      norm: ``"linf"`` (sign) or ``"l2"`` (division by the region's ℓ2 norm).

    Returns:
      A stateless ``optax.GradientTransformation`` giving each region's normalised direction.
    """
    _checks.check_choice("norm", norm, REGION_NORMS)
    direction = sign() if norm == "linf" else normalize_by_l2_norm()
    fg = _foreground(mask)

    def update_fn(updates, state, params=None):
        del params
        on_f, _ = direction.update(jax.tree.map(lambda g: jnp.where(fg, g, 0.0), updates), ())
        on_b, _ = direction.update(jax.tree.map(lambda g: jnp.where(fg, 0.0, g), updates), ())
        return jax.tree.map(lambda f, b: jnp.where(fg, f, b), on_f, on_b), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def region_scale(mask: jax.Array, scale_f, scale_b) -> optax.GradientTransformation:
    """``u ↦ scale_f·u`` on the foreground ``F`` and ``scale_b·u`` on the background (the two
    step sizes of the dual-perturbation attack, negated to descend; may be traced).

    Args:
      mask: the foreground mask ``F`` of one example (a value above 0.5 counts as foreground),
        broadcasting against every leaf of the update.
      scale_f: the factor applied on the foreground (scalar; may be traced).
      scale_b: the factor applied on the background (scalar; may be traced).

    Returns:
      A stateless ``optax.GradientTransformation`` scaling each region by its own factor (the
      result keeps each leaf's dtype).
    """
    fg = _foreground(mask)

    def update_fn(updates, state, params=None):
        del params
        scaled = lambda u: jnp.where(fg, u * scale_f, u * scale_b).astype(u.dtype)  # noqa: E731
        return jax.tree.map(scaled, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
