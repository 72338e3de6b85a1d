"""The geometric transformations of Che et al.'s table (issue 18): MATLAB's ``imrotate(...,
'bilinear', 'loose')`` and ``imwarp(img, affine2d(T))`` on the canvas that holds the whole
transformed image, crops, and the letterbox that fits a canvas back into ``h × w``. Coordinates
are 0-based pixel centres, x along columns and y along rows; sampling is bilinear with zeros
outside the image."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.image._motion import sample_bilinear

CROP_SIDES = ("left", "right", "top", "bottom")


def _loose_affine(linear: np.ndarray, h: int, w: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The forward map (2×3, pixel centres, (x, y)) of a linear map about the image centre onto
    its bounding-box canvas, and that canvas's (H, W)."""
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float)
    ext = np.ptp(corners @ linear.T, axis=0)
    size_w, size_h = (int(e + 0.5) for e in ext)
    c_in = np.array([(w - 1) / 2, (h - 1) / 2])
    c_out = np.array([(size_w - 1) / 2, (size_h - 1) / 2])
    return np.concatenate([linear, (c_out - linear @ c_in)[:, None]], 1), (size_h, size_w)


def _sample_zero(image: jax.Array, px: jax.Array, py: jax.Array) -> jax.Array:
    """Bilinear samples with zeros outside the image."""
    padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)))
    return sample_bilinear(padded, px + 1.0, py + 1.0)


def _warp(image: jax.Array, forward: np.ndarray, out_shape: tuple[int, int]) -> jax.Array:
    """Samples ``image`` on an ``out_shape`` canvas through the inverse of the forward map."""
    a = forward[:, :2]
    inv = np.linalg.inv(a)
    offset = -inv @ forward[:, 2]
    hh, ww = out_shape
    ys, xs = np.meshgrid(
        np.arange(hh, dtype=np.float64), np.arange(ww, dtype=np.float64), indexing="ij"
    )
    px = inv[0, 0] * xs + inv[0, 1] * ys + offset[0]
    py = inv[1, 0] * xs + inv[1, 1] * ys + offset[1]
    # positions within 1e-9 of an integer are snapped, so that flips and crops are exact
    px = np.where(np.abs(px - np.round(px)) < 1e-9, np.round(px), px)
    py = np.where(np.abs(py - np.round(py)) < 1e-9, np.round(py), py)
    return _sample_zero(image, jnp.asarray(px, jnp.float32), jnp.asarray(py, jnp.float32))


def rotation_matrix(angle: float) -> np.ndarray:
    """The 2×2 map on (x right, y down) that turns an image counter-clockwise on screen by
    ``angle`` degrees (MATLAB ``imrotate``'s sign).

    Args:
      angle: degrees; negative turns clockwise.

    Returns:
      ``f64[2, 2]``.
    """
    a = math.radians(angle)
    m = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    m[np.abs(m) < 1e-12] = 0.0
    return np.round(m, 15)


def affine_warp(image: jax.Array, matrix) -> jax.Array:
    """``imwarp(image, affine2d(matrix))`` on the loose canvas (the whole transformed image):
    bilinear, zeros outside.

    Args:
      image: ``f32[h, w, c]``.
      matrix: MATLAB's 3×3 ``affine2d`` matrix (row vectors: ``[u v 1] = [x y 1] · T``; static);
        its translation is irrelevant on a loose canvas.

    Returns:
      The canvas, ``f32[H, W, c]`` with ``(H, W)`` the bounding box of the transformed image.
    """
    t = np.asarray(matrix, float)
    if t.shape != (3, 3) or abs(np.linalg.det(t[:2, :2])) < 1e-12:
        raise ValueError(f"`matrix` must be an invertible 3x3 affine2d matrix; got {t.tolist()}.")
    forward, shape = _loose_affine(t[:2, :2].T, image.shape[0], image.shape[1])
    return _warp(image, forward, shape)


def rotate(image: jax.Array, angle: float) -> jax.Array:
    """``imrotate(image, angle, 'bilinear', 'loose')``: turned ``angle`` degrees counter-clockwise
    on screen, on the canvas that holds all of it, zeros outside.

    Args:
      image: ``f32[h, w, c]``.
      angle: degrees (static); Rotation1 is −45, Rotation2 −135, Inversion −180.

    Returns:
      ``f32[H, W, c]``, the loose canvas (``[h, w, c]`` for multiples of 180°).
    """
    forward, shape = _loose_affine(rotation_matrix(angle), image.shape[0], image.shape[1])
    return _warp(image, forward, shape)


def crop_band(image: jax.Array, side: str, band: int) -> jax.Array:
    """The image without a band of ``band`` pixels along one side.

    Args:
      image: ``f32[h, w, c]``.
      side: ``"left"``, ``"right"``, ``"top"`` or ``"bottom"``.
      band: the band's width in pixels, ``0 ≤ band <`` the image's extent across it.

    Returns:
      ``f32[h, w − band, c]`` (left/right) or ``f32[h − band, w, c]`` (top/bottom).
    """
    if side not in CROP_SIDES:
        raise ValueError(f"`side` must be one of {CROP_SIDES}; got {side!r}.")
    extent = image.shape[1] if side in ("left", "right") else image.shape[0]
    if not isinstance(band, (int, np.integer)) or not 0 <= band < extent:
        raise ValueError(
            f"`band` must be an integer in [0, {extent}) for an image of shape "
            f"{tuple(image.shape)} cropped from the {side}; got {band!r}."
        )
    h, w = image.shape[0], image.shape[1]
    return {
        "left": image[:, band:],
        "right": image[:, : w - band],
        "top": image[band:],
        "bottom": image[: h - band],
    }[side]


def _fit(canvas_hw: tuple[int, int], h: int, w: int) -> tuple[int, int, int, int]:
    """Letterbox: the canvas scaled by ``min(h/H, w/W)`` → ``(fh, fw, top, left)``."""
    hh, ww = canvas_hw
    s = min(h / hh, w / ww)
    fh, fw = min(h, max(1, int(round(hh * s)))), min(w, max(1, int(round(ww * s))))
    return fh, fw, (h - fh) // 2, (w - fw) // 2


def _fit_image(canvas: jax.Array, h: int, w: int) -> jax.Array:
    fh, fw, top, left = _fit(canvas.shape[:2], h, w)
    if (fh, fw) != canvas.shape[:2]:
        canvas = jax.image.resize(canvas, (fh, fw, canvas.shape[2]), "linear", antialias=True)
    return jnp.pad(canvas, ((top, h - fh - top), (left, w - fw - left), (0, 0)))
