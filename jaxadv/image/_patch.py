"""Adversarial patches (Brown, Mané, Roy, Abadi & Gilmer, "Adversarial Patch", 2017): a patch
pasted onto an image by a mask, at a placement, scale and rotation.

:func:`apply_patch` is pure and jittable: every output pixel is mapped back into the patch's
frame (inverse rotation and scaling about the patch centre); where it lands inside the patch
(and inside the optional patch ``mask``) the pixel is the patch's value there (bilinear), and
elsewhere it is the image's, bit for bit. At scale 1, angle 0 and an integer top-left corner
the pasted pixels are the patch's exactly. :func:`sample_placement` draws the transformation of
Brown et al.'s expectation over transformation: a scale and an angle uniformly in their ranges,
and a centre uniformly among those that keep the (unrotated) scaled patch inside the image.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_EDGE = 1e-4  # pixels: tolerance of the "inside the patch" test against float rounding


class Placement(NamedTuple):
    """Where a patch goes: ``center`` ``f32[2]`` (row, column, in pixels), ``scale`` (pasted
    side / patch side) and ``angle`` (radians, counter-clockwise in the (row, col) plane).

    Attributes:
      center: ``f32[2]``, the patch centre ``(row, col)`` in image pixels.
      scale: ``f32[]``, the pasted patch's side over the patch's side.
      angle: ``f32[]``, the rotation in radians.
    """

    center: jax.Array
    scale: jax.Array
    angle: jax.Array


def check_patch(patch_shape: Any, image_shape: Any, max_scale: float = 1.0) -> None:
    """Raises unless a patch of ``patch_shape`` ``(ph, pw[, c])`` scaled by ``max_scale`` fits
    in an image of ``image_shape`` ``(h, w, c)``.

    Args:
      patch_shape: the patch's shape ``(ph, pw)`` or ``(ph, pw, c)``, every side >= 1 and, with
        3 axes, the image's channels.
      image_shape: the shape of ONE image, ``(h, w, c)``.
      max_scale: the largest scale the patch is pasted at (1: its own size).

    Raises:
      ValueError: if a shape is malformed, the channels differ, or ``ph * max_scale > h`` or
        ``pw * max_scale > w``.
    """
    patch_shape, image_shape = tuple(patch_shape), tuple(image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"`image` must be one image [h, w, c]; got shape {image_shape}.")
    if len(patch_shape) not in (2, 3) or min(patch_shape) < 1:
        raise ValueError(
            f"`patch` must have shape (height, width) or (height, width, channels) >= 1; got "
            f"{patch_shape}."
        )
    if len(patch_shape) == 3 and patch_shape[2] != image_shape[2]:
        raise ValueError(
            f"`patch` must have the image's {image_shape[2]} channels; got shape {patch_shape}."
        )
    h, w = image_shape[:2]
    ph, pw = patch_shape[:2]
    if ph * max_scale > h or pw * max_scale > w:
        raise ValueError(
            f"`patch` must fit in the image: a {ph}x{pw} patch at scale {max_scale:g} covers "
            f"{ph * max_scale:g}x{pw * max_scale:g} pixels but the image is {h}x{w}."
        )


def apply_patch(
    image: jax.Array,
    patch: jax.Array,
    *,
    center: Any,
    scale: Any = 1.0,
    angle: Any = 0.0,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Pastes ``patch`` onto ONE ``image`` (module docstring).

    Args:
      image: ``f32[h, w, c]``.
      patch: ``f32[ph, pw, c]`` with ``ph <= h`` and ``pw <= w``.
      center: ``(row, col)`` of the patch centre in image pixels (may be traced). With
        ``scale=1`` and ``angle=0`` the patch covers rows ``row - (ph-1)/2 ... row + (ph-1)/2``.
      scale: the pasted patch's side over the patch's side (> 0; may be traced).
      angle: rotation in radians (may be traced).
      mask: optional ``[ph, pw]`` patch-shaped mask (e.g. a disc): only pixels where it is
        > 0.5 are pasted (nearest-neighbour lookup). None: the whole square.

    Returns:
      ``f32[h, w, c]``: the patch's (bilinear) values where the mapped pixel falls inside the
      patch and its mask, the image's exactly elsewhere. Differentiable in ``patch`` and
      ``image``.
    """
    check_patch(jnp.shape(patch), jnp.shape(image))
    h, w = image.shape[:2]
    ph, pw = patch.shape[:2]
    if mask is not None and tuple(jnp.shape(mask)) != (ph, pw):
        raise ValueError(f"`mask` must have the patch's shape ({ph}, {pw}); got {jnp.shape(mask)}.")
    center = jnp.asarray(center, jnp.float32)
    if center.shape != (2,):
        raise ValueError(f"`center` must be (row, col); got shape {center.shape}.")
    scale = jnp.asarray(scale, jnp.float32)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                              jnp.arange(w, dtype=jnp.float32), indexing="ij")  # fmt: skip
    dy, dx = rows - center[0], cols - center[1]
    # The inverse of "rotate by angle, then scale" about the patch centre.
    u = (cos * dy + sin * dx) / scale + (ph - 1) / 2.0
    v = (-sin * dy + cos * dx) / scale + (pw - 1) / 2.0
    inside = (u > -_EDGE) & (u < ph - 1 + _EDGE) & (v > -_EDGE) & (v < pw - 1 + _EDGE)
    u, v = jnp.clip(u, 0.0, ph - 1.0), jnp.clip(v, 0.0, pw - 1.0)
    u0, v0 = jnp.floor(u), jnp.floor(v)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]
    i0, j0 = u0.astype(jnp.int32), v0.astype(jnp.int32)
    i1, j1 = jnp.minimum(i0 + 1, ph - 1), jnp.minimum(j0 + 1, pw - 1)
    sampled = ((1 - fu) * (1 - fv) * patch[i0, j0] + (1 - fu) * fv * patch[i0, j1]
               + fu * (1 - fv) * patch[i1, j0] + fu * fv * patch[i1, j1])  # fmt: skip
    if mask is not None:
        inside &= mask[jnp.round(u).astype(jnp.int32), jnp.round(v).astype(jnp.int32)] > 0.5
    return jnp.where(inside[..., None], sampled.astype(image.dtype), image)


def sample_placement(
    key: jax.Array,
    image_shape: tuple[int, ...],
    patch_shape: tuple[int, ...],
    scale_range: tuple[float, float] = (1.0, 1.0),
    max_angle: float = 0.0,
) -> Placement:
    """A random :class:`Placement` (module docstring): scale ~ U(scale_range), angle ~
    U(-max_angle, max_angle), the centre uniform where the scaled unrotated patch fits.

    Args:
      key: a ``jax.random`` key; split into the scale's, the angle's, the row's and the
        column's.
      image_shape: the image's shape ``(h, w[, c])``; only ``h, w`` are read.
      patch_shape: the patch's shape ``(ph, pw[, c])``; only ``ph, pw`` are read.
      scale_range: ``(lo, hi)`` of the uniform scale (``(1, 1)``: always the patch's size).
      max_angle: the largest rotation in radians, either way (0: no rotation).

    Returns:
      A :class:`Placement` of 0-d ``float32`` scale and angle and an ``f32[2]`` centre. The
      ranges are not checked here (see :func:`check_placement_ranges`).
    """
    h, w = image_shape[:2]
    ph, pw = patch_shape[:2]
    k_scale, k_angle, k_row, k_col = jax.random.split(key, 4)
    lo, hi = scale_range
    scale = jax.random.uniform(k_scale, (), jnp.float32, lo, hi)
    angle = jax.random.uniform(k_angle, (), jnp.float32, -max_angle, max_angle)
    half_h, half_w = scale * ph / 2.0, scale * pw / 2.0  # the footprint's half sides
    row = half_h - 0.5 + jax.random.uniform(k_row) * (h - 2 * half_h)
    col = half_w - 0.5 + jax.random.uniform(k_col) * (w - 2 * half_w)
    return Placement(jnp.stack([row, col]), scale, angle)


def check_placement_ranges(scale_range: Any, max_angle: Any, patch_shape, image_shape) -> None:
    """Validates a scale range ``(lo, hi)`` with ``0 < lo <= hi`` (the patch must fit at
    ``hi``) and an angle ``0 <= max_angle <= pi``.

    Args:
      scale_range: ``(lo, hi)``, finite, with ``0 < lo <= hi``.
      max_angle: a Python or numpy number of radians in ``[0, pi]``.
      patch_shape: the patch's shape, as in :func:`check_patch`.
      image_shape: the shape of ONE image ``(h, w, c)``, as in :func:`check_patch`.

    Raises:
      ValueError: if a range is malformed or out of bounds, or the patch does not fit at
        scale ``hi`` (:func:`check_patch`).
    """
    try:
        lo, hi = (float(s) for s in scale_range)
    except (TypeError, ValueError):
        raise ValueError(f"`scale_range` must be (low, high); got {scale_range!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"`scale_range` must be (low, high) with 0 < low <= high; got "
                         f"{scale_range!r}.")  # fmt: skip
    if not (isinstance(max_angle, (int, float, np.floating)) and 0 <= max_angle <= np.pi):
        raise ValueError(f"`max_angle` must be a number of radians in [0, pi]; got {max_angle!r}.")
    check_patch(patch_shape, image_shape, hi)
