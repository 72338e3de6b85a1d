"""Layers shared by the victims, written in the form that is fast on every backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2×2 max-pool with stride 2 on ``[batch, h, w, c]`` (odd trailing rows/columns dropped).

    Written as a reshape and a max instead of ``flax.linen.max_pool``: the same values, but its
    gradient is a cheap select instead of XLA's select-and-scatter, which runs as a slow scatter on
    CPU (1.5–1.6× the cost of the whole PGD step on the C&W net, measured on a 2-core CPU).

    Args:
      x: ``[batch, h, w, c]`` feature maps.

    Returns:
      ``[batch, h // 2, w // 2, c]``, the maximum of each 2×2 block, in ``x``'s dtype.
    """
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    x = x.reshape(b, h // 2, 2, w // 2, 2, c)
    return jnp.max(x, axis=(2, 4))
