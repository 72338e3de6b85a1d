"""Per-pixel perturbation weights from local image statistics (SAPF-VI, Fan, Wu et al., ECCV 2020,
§3.4 and §4.3; after Luo et al., AAAI 2018): humans notice changes in flat, dark regions most, so
those get the largest weight in ``‖w ⊙ δ ⊙ G‖²``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks

WEIGHTINGS = ("uniform", "variance", "variance_mean")


def _box3(a: jax.Array) -> jax.Array:
    """Sum over the 3×3 neighbourhood of each pixel, per channel, inside the image only."""
    padded = jnp.pad(a, ((1, 1), (1, 1), (0, 0)))
    h, w = a.shape[:2]
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3))


def sensitivity_weights(image: jax.Array, kind: str = "variance") -> jax.Array:
    """Weights ``w ∈ [0, 1]`` of ONE image ``[h, w, c]`` for SAPF-VI's ``‖w ⊙ δ ⊙ G‖²``.

    ``"uniform"``: all ones. ``"variance"``: ``s`` = standard deviation over the 3×3 neighbourhood
    (the part inside the image; unbiased, as the published code computes it);
    ``"variance_mean"``: ``s`` = that deviation times the neighbourhood mean. Then, as in the
    code, ``w = 1/(s + 1e-4)`` min–max normalised to [0, 1] per channel (a channel with no spread
    of ``w`` gets weight 1). The paper writes the deviation with an ``n²`` denominator; the
    difference is a constant factor inside the 3×3 window, removed by the normalisation except at
    the border.

    Args:
      image: ``[h, w, c]``.
      kind: ``"uniform"`` or ``"variance"``.

    Returns:
      ``[h, w, 1]`` weights in [0, 1].

    References:
      Fan, Wu, Li, Zhang, Li & Yang, "Sparse Adversarial Attack via Perturbation Factorization",
      ECCV 2020.
    """
    _checks.check_choice("kind", kind, WEIGHTINGS)
    image = jnp.asarray(image, jnp.float32)
    if image.ndim != 3:
        raise ValueError(f"`image` must have shape (h, w, c); got {image.shape}.")
    if kind == "uniform":
        return jnp.ones_like(image)
    n = _box3(jnp.ones_like(image))
    total = _box3(image)
    mean = total / n
    var = (_box3(jnp.square(image)) - total * mean) / (n - 1)
    s = jnp.sqrt(jnp.maximum(var, 0.0))
    if kind == "variance_mean":
        s = s * mean
    w = 1.0 / (s + 1e-4)
    lo = jnp.min(w, axis=(0, 1), keepdims=True)
    hi = jnp.max(w, axis=(0, 1), keepdims=True)
    return jnp.where(hi > lo, (w - lo) / jnp.where(hi > lo, hi - lo, 1.0), 1.0)


def check_weights(name: str, weights: Any, shape: tuple[int, ...]) -> None:
    """Raises a ValueError unless ``weights`` broadcast to ``shape`` and (if concrete) are >= 0.

    Args:
      name: the argument's name, for the message.
      weights: the weights to check.
      shape: the shape they must broadcast to.

    Raises:
      ValueError: naming ``name``.
    """
    wshape = tuple(np.shape(weights))
    try:
        ok = np.broadcast_shapes(wshape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must broadcast to the image shape {tuple(shape)}; got {wshape}."
        )
    _checks.check_nonnegative(name, weights)
