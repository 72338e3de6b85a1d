"""Foreground masks from saliency maps: the most salient pixels are the foreground.

Where no segmentation exists, the dual-perturbation paper takes the foreground from a fixation
prediction (DeepGaze II on STL-10 and ImageNet-10). The mask keeps a fixed share of the pixels
(``top_q``) or those at or above a level (``threshold``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks


def foreground_from_saliency(maps: Any, *, top_q: Any = None, threshold: Any = None) -> jax.Array:
    """Binary foreground masks ``float32[..., h, w, 1]`` of saliency maps ``[..., h, w]``.

    Exactly one rule:

    * ``top_q`` in ``[0, 1]``: each map's ``k = floor(top_q · h · w + 1/2)`` most salient pixels
      are foreground, exactly ``k`` of them. Ties are broken by position: among equal values the
      pixel first in row-major order is taken first. The rule depends only on the order of the
      values, so it reads log-densities, ``[0, 1]`` and ``[-1, 1]`` maps alike.
    * ``threshold``: pixels with ``map >= threshold`` are foreground (on the map's own scale).

    A pure array function: it runs under ``jit`` and ``vmap`` (``top_q`` and ``threshold`` may be
    traced; the value checks then skip). Leading axes are batch axes; a trailing axis of size 1
    (maps ``[..., h, w, 1]``) is read as a channel axis. Maps of a size other than the images'
    must be resized first.

    Example, with a saliency victim of the zoo (``jaxadv.models.saliency``)::

        sal = from_flax_saliency(*saliency_model("deepgaze", key=key, input_shape=(64, 64, 3)),
                                 input_shape=(64, 64, 3))
        masks = foreground_from_saliency(sal.batch(images), top_q=0.2)  # [n, 64, 64, 1]

    Args:
      maps: real saliency maps ``[..., h, w]`` (or ``[..., h, w, 1]``), finite.
      top_q: share of each map's pixels kept as foreground, in ``[0, 1]``.
      threshold: the level at and above which a pixel is foreground, finite.

    Returns:
      ``float32[..., h, w, 1]`` masks in {0, 1}.

    Raises:
      ValueError: unless exactly one of ``top_q`` and ``threshold`` is given; for maps with fewer
        than two axes, of a non-real dtype or (when concrete) not finite; for ``top_q`` outside
        ``[0, 1]`` or a ``threshold`` that is not one finite number.
    """
    if (top_q is None) == (threshold is None):
        raise ValueError(
            "Exactly one of `top_q` and `threshold` must be given; got "
            f"top_q={top_q!r}, threshold={threshold!r}."
        )
    maps = jnp.asarray(maps)
    if maps.ndim >= 3 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.ndim < 2:
        raise ValueError(f"`maps` must have shape [..., h, w]; got shape {maps.shape}.")
    if maps.dtype == jnp.bool_ or not (
        jnp.issubdtype(maps.dtype, jnp.integer) or jnp.issubdtype(maps.dtype, jnp.floating)
    ):
        raise ValueError(f"`maps` must hold real numbers; got dtype {maps.dtype}.")
    _checks.check_finite("maps", maps)
    maps = maps.astype(jnp.float32)
    if threshold is not None:
        if np.ndim(threshold) != 0:
            raise ValueError(f"`threshold` must be one number; got shape {np.shape(threshold)}.")
        _checks.check_finite("threshold", threshold)
        foreground = maps >= threshold
    else:
        if np.ndim(top_q) != 0:
            raise ValueError(f"`top_q` must be one number; got shape {np.shape(top_q)}.")
        _checks.check_unit_interval("top_q", top_q)
        h, w = maps.shape[-2:]
        # `+ 0.0` turns -0.0 into 0.0, so that signed zeros tie by position whatever order a
        # sort gives them.
        flat = -maps.reshape(*maps.shape[:-2], h * w) + 0.0
        order = jnp.argsort(flat, axis=-1, stable=True)  # most salient first, ties by index
        rank = jnp.argsort(order, axis=-1, stable=True)
        keep = jnp.floor(jnp.asarray(top_q, jnp.float32) * (h * w) + 0.5)
        foreground = (rank < keep).reshape(maps.shape)
    return foreground.astype(jnp.float32)[..., None]
