"""Encoder-style block motion vectors: full-search block matching (minimum SAD per macroblock).

The ME-Sampler thesis (chapter 3) compares optical flow with the motion vectors of compressed
video (MPEG-4). A codec finds them by block matching: each macroblock of ``block × block`` pixels
is compared, by the sum of absolute differences (SAD) of luma, with every block displaced by
``(dx, dy)``, ``|dx|, |dy| ≤ search`` pixels, in the other frame, and the displacement of least
SAD is its vector. This computes that exhaustive search (no sub-pixel refinement, no predictive
search), in the motion-field convention of ``jaxadv.image`` (``_motion.py``): ``motion[t]`` is the
displacement from frame ``t`` to frame ``t + 1``, so the blocks of frame ``t`` are searched for in
frame ``t + 1`` (an encoder's vectors of frame ``t + 1`` point back into frame ``t``: about the
negative, on the other frame's blocks). Candidates must lie inside the frame; ties go to the
shorter displacement (|dx| + |dy|), then to the lower ``(dy, dx)``. The field is upsampled to
pixels as a codec applies it: every pixel of a macroblock gets its vector; pixels past the last
whole block (when ``block`` does not divide the size) take the nearest block's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.image._motion import check_video


def candidates(search: int) -> np.ndarray:
    """``int32[(2·search + 1)², 2]`` displacements ``(dx, dy)`` in tie-break order."""
    span = np.arange(-search, search + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    pairs = np.stack([dx.ravel(), dy.ravel()], axis=1)
    order = np.lexsort((pairs[:, 0], pairs[:, 1], np.abs(pairs).sum(1)))  # last key is primary
    return pairs[order].astype(np.int32)


def _pair_vectors(first, second, block: int, search: int) -> jax.Array:
    """``(by, bx, 2)`` vectors (x, y) of ``first``'s macroblocks found in ``second``."""
    h, w = first.shape
    by, bx = h // block, w // block
    cands = jnp.asarray(candidates(search))
    padded = jnp.pad(second, search)
    reference = first[: by * block, : bx * block]
    rows = jnp.arange(by)[:, None] * block
    cols = jnp.arange(bx)[None, :] * block

    def sad(d):
        dx, dy = d[0], d[1]
        moved = jax.lax.dynamic_slice(padded, (search + dy, search + dx), (by * block, bx * block))
        cost = jnp.abs(moved - reference).reshape(by, block, bx, block).sum(axis=(1, 3))
        inside = (rows + dy >= 0) & (rows + dy + block <= h) & (cols + dx >= 0)
        inside = inside & (cols + dx + block <= w)
        return jnp.where(inside, cost, jnp.inf)

    costs = jax.vmap(sad)(cands)  # (candidates, by, bx); the zero vector is always inside
    return cands[jnp.argmin(costs, axis=0)].astype(jnp.float32)


def block_motion_vectors(video: jax.Array, *, block: int = 16, search: int = 7) -> jax.Array:
    """Motion vectors of full-search block matching (module docstring), per pixel.

    Args:
      video: ``(T, H, W, C)`` with ``T ≥ 2`` and ``H, W ≥ block``; luma is the channel mean.
      block: the macroblock side in pixels (MPEG's 16).
      search: the search range in pixels, ``|dx|, |dy| ≤ search``.

    Returns: ``(T, H, W, 2)`` float32 integer displacements (x, y) from frame t to frame t + 1;
    the last frame repeats the previous field. Jittable (``block``/``search`` static).
    """
    check_video(video)
    _checks.check_positive_int("block", block)
    if not isinstance(search, int) or isinstance(search, bool) or search < 0:
        raise ValueError(f"`search` must be a non-negative integer; got {search!r}.")
    t, h, w = video.shape[:3]
    if h < block or w < block:
        raise ValueError(f"`block` must fit the frames ({h}×{w}); got {block}.")
    gray = jnp.mean(jnp.asarray(video, jnp.float32), axis=-1)
    vectors = jax.vmap(lambda a, b: _pair_vectors(a, b, block, search))(gray[:-1], gray[1:])
    ys = np.minimum(np.arange(h) // block, h // block - 1)
    xs = np.minimum(np.arange(w) // block, w // block - 1)
    field = vectors[:, ys][:, :, xs]  # (T − 1, H, W, 2)
    return jnp.concatenate([field, field[-1:]], axis=0)
