"""Imperceptibility of a perturbation: PSNR (Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial
examples", EURASIP JIS 2020, §5.1 cite it among the fidelity metrics compared by their [34])."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks


def psnr(x0: jax.Array, x_adv: jax.Array, data_range: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio ``10·log10(data_range² / MSE)`` in dB of ONE image pair.

    ``MSE`` is the mean of ``(x_adv − x0)²`` over every pixel and channel; identical images give
    ``inf``. Higher is less perceptible. ``vmap`` for batches.

    Args:
      x0: the clean image, any shape.
      x_adv: the adversarial image, the shape of ``x0``.
      data_range: the span of the pixel values (1 for [0, 1] images, 255 for 8-bit).

    Returns:
      A float32 scalar in dB (``inf`` for identical images).
    """
    _checks.check_positive("data_range", data_range)
    if jnp.shape(x0) != jnp.shape(x_adv):
        raise ValueError(
            f"`x_adv` must have the shape of `x0` {jnp.shape(x0)}; got {jnp.shape(x_adv)}."
        )
    diff = jnp.asarray(x_adv, jnp.float32) - jnp.asarray(x0, jnp.float32)
    mse = jnp.mean(jnp.square(diff))
    peak = jnp.square(jnp.asarray(data_range, jnp.float32))
    return jnp.where(mse > 0, 10.0 * jnp.log10(peak / jnp.where(mse > 0, mse, 1.0)), np.inf)
