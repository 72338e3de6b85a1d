"""SLIC superpixels in JAX (Achanta et al., "SLIC superpixels compared to state-of-the-art
superpixel methods", TPAMI 2012): k-means on (intensity, position) started from a regular grid.

Written for ONE small image (a few thousand pixels): every pixel is compared with every centre, and
centres farther than 2S (S the grid step) are masked out, which is SLIC's local search without its
windowed bookkeeping. Shapes are static, so it runs inside ``jit``/``vmap`` (SAPF-GS computes the
groups of each attacked image inside the compiled attack). Unlike scikit-image it does not enforce
connectivity of the segments afterwards; labels are renumbered to be contiguous.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxadv import _checks


def slic_grid(shape: tuple[int, ...], n_segments: int) -> tuple[int, int]:
    """Rows and columns of the initial grid of centres for about ``n_segments`` segments."""
    h, w = shape[0], shape[1]
    step = math.sqrt(h * w / n_segments)
    return max(1, min(h, round(h / step))), max(1, min(w, round(w / step)))


def slic(
    image: jax.Array,
    n_segments: int = 150,
    *,
    compactness: float = 0.1,
    iterations: int = 10,
) -> jax.Array:
    """Superpixel labels ``i32[h, w]`` of ONE image ``[h, w, c]`` (or ``[h, w]``), values in [0, 1].

    Args:
      image: the image; pixel values are compared as they are (no colour-space conversion).
      n_segments: the approximate number of segments (the initial grid has about that many
        centres; empty clusters disappear, so there may be fewer).
      compactness: weight of spatial against intensity distance, in intensity units per grid step
        (scikit-image's 10 on Lab's 0–100 scale corresponds to 0.1 here).
      iterations: k-means iterations.

    Labels are contiguous ``0 .. m−1`` (renumbered after dropping empty clusters), with ``m``
    data-dependent but at most the number of grid centres.

    Returns:
      ``int32[h, w]`` segment labels in ``[0, num_segments_bound(shape, n_segments))``.

    References:
      Achanta, Shaji, Smith, Lucchi, Fua & Süsstrunk, "SLIC Superpixels Compared to
      State-of-the-Art Superpixel Methods", IEEE TPAMI 2012.
    """
    _checks.check_positive_int("n_segments", n_segments)
    _checks.check_positive_int("iterations", iterations)
    _checks.check_nonnegative("compactness", compactness)
    image = jnp.asarray(image, jnp.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"`image` must have shape (h, w, c) or (h, w); got {image.shape}.")
    rows, cols = slic_grid(image.shape, n_segments)
    return _slic(image, jnp.float32(compactness), rows, cols, iterations)


# One compiled program per shape and grid: called eagerly, every op would compile apart (~10 s
# for a 28×28 digit); inside a user's jit it inlines.
@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _slic(image, compactness, rows: int, cols: int, iterations: int) -> jax.Array:
    h, w, c = image.shape
    step = math.sqrt(h * w / (rows * cols))
    yy, xx = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    pos = jnp.stack([yy.ravel(), xx.ravel()], axis=-1)  # [p, 2]
    col = image.reshape(-1, c)  # [p, c]
    cy = (jnp.arange(rows, dtype=jnp.float32) + 0.5) * h / rows
    cx = (jnp.arange(cols, dtype=jnp.float32) + 0.5) * w / cols
    cpos = jnp.stack(jnp.meshgrid(cy, cx, indexing="ij"), axis=-1).reshape(-1, 2)
    nearest = jnp.clip(jnp.round(cpos - 0.5).astype(jnp.int32), 0, jnp.array([h - 1, w - 1]))
    ccol = image[nearest[:, 0], nearest[:, 1]]  # [m, c]
    m = rows * cols
    spatial_weight = (compactness / step) ** 2

    def assign(cpos, ccol):
        d_pos = jnp.sum(jnp.square(pos[:, None, :] - cpos[None]), axis=-1)  # [p, m]
        d_col = jnp.sum(jnp.square(col[:, None, :] - ccol[None]), axis=-1)
        # SLIC's local search: a pixel only joins centres within 2S in each direction.
        near = jnp.all(jnp.abs(pos[:, None, :] - cpos[None]) <= 2 * step, axis=-1)
        return jnp.argmin(jnp.where(near, d_col + spatial_weight * d_pos, jnp.inf), axis=-1)

    def update(carry, _):
        cpos, ccol = carry
        labels = assign(cpos, ccol)
        count = jax.ops.segment_sum(jnp.ones(h * w), labels, num_segments=m)
        safe = jnp.maximum(count, 1.0)[:, None]
        new_pos = jax.ops.segment_sum(pos, labels, num_segments=m) / safe
        new_col = jax.ops.segment_sum(col, labels, num_segments=m) / safe
        keep = count[:, None] > 0  # an empty cluster keeps its centre
        return (jnp.where(keep, new_pos, cpos), jnp.where(keep, new_col, ccol)), None

    (cpos, ccol), _ = jax.lax.scan(update, (cpos, ccol), length=iterations)
    labels = assign(cpos, ccol)
    used = jax.ops.segment_sum(jnp.ones(h * w, jnp.int32), labels, num_segments=m) > 0
    renumber = jnp.cumsum(used.astype(jnp.int32)) - 1
    return renumber[labels].reshape(h, w).astype(jnp.int32)


def num_segments_bound(shape: tuple[int, ...], n_segments: int) -> int:
    """The static upper bound on the number of labels :func:`slic` returns for this shape.

    Args:
      shape: the image's shape ``(h, w, ...)``.
      n_segments: the requested number of segments.

    Returns:
      A Python int.
    """
    rows, cols = slic_grid(shape, n_segments)
    return rows * cols
