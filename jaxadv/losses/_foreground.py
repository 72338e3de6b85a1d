"""The foreground score of a saliency map: the share of its mass on the foreground.

Tong, Guo, Prakash, Vorobeychik et al., "Towards robustness against unsuspicious adversarial
examples": ``S(map, F) = Σ map·F / Σ map``. The dual-perturbation attack maximises it (with weight
λ) so that the perturbed image still draws the eye to its foreground.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _spatial(name: str, array: jax.Array) -> jax.Array:
    """``(h, w)`` or ``(h, w, 1)`` as ``(h, w)``."""
    shape = jnp.shape(array)
    if len(shape) == 3 and shape[-1] == 1:
        return jnp.reshape(array, shape[:2])
    if len(shape) != 2:
        raise ValueError(f"`{name}` must have shape (h, w) or (h, w, 1); got {shape}.")
    return array


def foreground_score(saliency_map: jax.Array, mask: jax.Array) -> jax.Array:
    """``Σ map·mask / Σ map``: the share of the (non-negative) saliency mass on the foreground.

    Args:
      saliency_map: a non-negative map of ONE image, ``(h, w)`` or ``(h, w, 1)`` (a log-density
        goes through ``jaxadv.losses.to_saliency_map`` first).
      mask: the foreground mask of the same ``(h, w)``, ``(h, w)`` or ``(h, w, 1)``; 1 = foreground.

    Returns:
      A float32 scalar in [0, 1], differentiable in ``saliency_map``; 0 for an all-zero map (the
      0/0 is guarded, its gradient finite).
    """
    s = _spatial("saliency_map", saliency_map)
    m = _spatial("mask", mask)
    if s.shape != m.shape:
        raise ValueError(
            f"`saliency_map` and `mask` must cover the same (h, w); got {s.shape} and {m.shape}."
        )
    s = jnp.asarray(s, jnp.float32)
    total = jnp.sum(s)
    positive = total > 0
    safe = jnp.where(positive, total, 1.0)  # both branches finite: finite gradients at 0
    return jnp.where(positive, jnp.sum(s * m) / safe, 0.0)
