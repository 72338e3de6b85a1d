"""The 19 image transformations of Che et al.'s saliency robustness study (issue 18).

Che, Borji, Zhai, Min, Guo & Le Callet, "How is gaze influenced by image transformations? Dataset
and model" (TIP 2019), as summarised in the saliency-robustness paper's "1st Challenge" table
(``shared/papers/000``): each transformation is one MATLAB call on a CAT2000 image, which is the
specification followed here (values in [0, 1], one image ``f32[h, w, c]``; batch with ``vmap``):

==============  ==================================================  ===============================
name            MATLAB                                              here
==============  ==================================================  ===============================
Reference       the image                                           identity
MotionBlur1/2   ``imfilter(img, fspecial('motion', 15, 0))``,        :func:`motion_blur` (zero
                ``(35, 90)``                                        borders, as ``imfilter``)
Noise1/2        ``imnoise(img, 'gaussian', 0, 0.1)``, ``0.2``       :func:`gaussian_noise` (clipped)
JPEG1/2         ``imwrite(..., 'Quality', 5)``, ``0``               :func:`jaxadv.image.jpeg`
Contrast1/2     ``imadjust(img, [], [0.3, 0.7])``, ``[0.4, 0.6]``   :func:`adjust_contrast`
Rotation1/2     ``imrotate(img, -45, 'bilinear', 'loose')``, -135   :func:`rotate` + fit
Shearing1/2/3   ``imwarp(img, affine2d(T))``                        :func:`affine_warp` + fit
Inversion       ``imrotate(img, -180, 'bilinear', 'loose')``        :func:`rotate` (an exact flip)
Mirroring       the mirror image                                    left–right flip
Boundary        ``edge(img, 'canny', 0.3, sqrt(2))``                :func:`boundary`
Cropping1/2     a 1080×200 band off the left / 200×1920 off the     :func:`crop_band` + fit
                top of a 1920×1080 image
==============  ==================================================  ===============================

Choices the table leaves open, made here and kept uniform:

* **Same shape out.** The transformed stimuli were shown on the same 1920×1080 screen; the paper
  does not say how the enlarged 'loose' canvases (rotation, shearing) or the narrower cropped
  images were placed. :func:`transform_image` fits each canvas into the input's ``h × w``
  keeping its aspect ratio (antialiased linear resize when it must shrink) and centres it on a
  black (0) background: a letterbox, as a screen shows an image of another shape. So every
  transformation maps ``[h, w, c] → [h, w, c]`` and can be vmapped or stacked.
* **The crop bands scale with the image**: 200/1920 of the width (Cropping1, the band is removed
  from the left) and 200/1080 of the height (Cropping2, from the top), rounded, at least 1 pixel.
* **Loose canvas size**: the transformed image's bounding box rounded to whole pixels,
  ``int(extent + 0.5)``, centred (``scipy.ndimage.rotate(reshape=True)``'s rule; for the paper's
  shears on 1920×1080 the extents are whole numbers and every rule agrees).
* **Interpolation**: bilinear with zeros outside the image (``'grid-constant'`` in scipy's
  terms); at integer positions it returns pixels exactly, so Inversion and Mirroring are exact
  flips. MATLAB's 8-bit rounding of intermediate images is not reproduced (all float).
* **Boundary** runs on the grey image (``rgb2gray`` weights 0.2989, 0.5870, 0.1140) and repeats
  the binary edge map over the channels.

Ground truth follows the image (:func:`transform_density`, :func:`transform_fixations`):
photometric transformations (blur, noise, JPEG, contrast, Boundary) leave it unchanged; geometric
ones move it by the same map. A density is warped like a one-channel image and rescaled to its
original mass (mass carried out of the frame, by Cropping, is given back proportionally; a density
that leaves the frame entirely becomes uniform); a fixation map's counts are moved to the nearest
output pixel of each fixated pixel's image and those leaving the frame are dropped.

Valid and invalid augmentation (the paper's "Data Augmentation Application"): the label-preserving
set :data:`VALID_AUGMENTATIONS` and the label-damaging set :data:`INVALID_AUGMENTATIONS`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv._checks import check_in_bounds, check_key
from jaxadv.image._canny import canny
from jaxadv.image._jpeg import jpeg
from jaxadv.image._motion import sample_bilinear

TRANSFORMATION_NAMES = (
    "Reference",
    "MotionBlur1",
    "MotionBlur2",
    "Noise1",
    "Noise2",
    "JPEG1",
    "JPEG2",
    "Contrast1",
    "Contrast2",
    "Rotation1",
    "Rotation2",
    "Shearing1",
    "Shearing2",
    "Shearing3",
    "Inversion",
    "Mirroring",
    "Boundary",
    "Cropping1",
    "Cropping2",
)
VALID_AUGMENTATIONS = (
    "Reference",
    "Mirroring",
    "Inversion",
    "Contrast1",
    "Shearing1",
    "JPEG1",
    "Noise1",
)
INVALID_AUGMENTATIONS = (
    "Rotation1",
    "Rotation2",
    "Shearing2",
    "Shearing3",
    "Cropping1",
    "Cropping2",
    "MotionBlur2",
)

# The paper's arguments (its MATLAB calls).
MOTION_ARGS = {"MotionBlur1": (15, 0.0), "MotionBlur2": (35, 90.0)}
NOISE_VARIANCES = {"Noise1": 0.1, "Noise2": 0.2}
JPEG_QUALITIES = {"JPEG1": 5, "JPEG2": 0}
CONTRAST_RANGES = {"Contrast1": (0.3, 0.7), "Contrast2": (0.4, 0.6)}
ROTATION_ANGLES = {"Rotation1": -45.0, "Rotation2": -135.0, "Inversion": -180.0}
# affine2d matrices (MATLAB's row-vector convention: [u v 1] = [x y 1] · T).
SHEAR_MATRICES = {
    "Shearing1": ((1.0, 0.0, 0.0), (0.5, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "Shearing2": ((1.0, 0.5, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "Shearing3": ((1.0, 0.5, 0.0), (0.5, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
# Bands off a 1920×1080 CAT2000 image, as fractions of the side they are taken from.
CROP_BANDS = {"Cropping1": ("left", 200 / 1920), "Cropping2": ("top", 200 / 1080)}
CANNY_THRESHOLD, CANNY_SIGMA = 0.3, math.sqrt(2.0)
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # MATLAB rgb2gray
CROP_SIDES = ("left", "right", "top", "bottom")
GEOMETRIC = (*ROTATION_ANGLES, *SHEAR_MATRICES, "Mirroring", *CROP_BANDS)


def check_name(name) -> None:
    """Raises a ValueError unless ``name`` is one of :data:`TRANSFORMATION_NAMES`.

    Args:
      name: the transformation's name.

    Raises:
      ValueError: naming the valid names.
    """
    if not isinstance(name, str) or name not in TRANSFORMATION_NAMES:
        raise ValueError(
            f"`name` must be one of the transformations {', '.join(TRANSFORMATION_NAMES)}; "
            f"got {name!r}."
        )


def _check_image(image, *, name: str = "image") -> None:
    if jnp.ndim(image) != 3:
        raise ValueError(
            f"`{name}` must be one image of shape [h, w, c] (rank 3; batch with jax.vmap); got "
            f"shape {tuple(jnp.shape(image))}."
        )
    check_in_bounds(name, image, (0.0, 1.0))


def _check_map(arr, name: str) -> None:
    if jnp.ndim(arr) != 2:
        raise ValueError(
            f"`{name}` must be one map of shape [h, w] (rank 2; batch with jax.vmap); got shape "
            f"{tuple(jnp.shape(arr))}."
        )


# ----------------------------------------------------------------------------- photometric


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """MATLAB's ``fspecial('motion', length, angle)``: a line of ``length`` pixels at ``angle``
    degrees (counter-clockwise from the x axis), anti-aliased across its width, summing to 1.

    Args:
      length: the line's length in pixels, ≥ 1.
      angle: its direction in degrees.

    Returns:
      ``f64[kh, kw]``: the kernel (``[1, 15]`` for (15, 0); ``[35, 1]`` for (35, 90)).
    """
    length = max(1.0, float(length))
    half = (length - 1) / 2
    phi = math.radians(math.fmod(math.fmod(angle, 180.0) + 180.0, 180.0))
    cosphi, sinphi = math.cos(phi), math.sin(phi)
    xsign = 1.0 if cosphi > 0 else (-1.0 if cosphi < 0 else 0.0)
    eps = np.finfo(float).eps
    sx = math.trunc(half * cosphi + xsign - length * eps)
    sy = math.trunc(half * sinphi + 1.0 - length * eps)
    xs = np.arange(0, sx + xsign, xsign) if xsign != 0 else np.array([0.0])
    if xsign != 0:
        xs = xs[(xs <= sx) if xsign > 0 else (xs >= sx)]
    x, y = np.meshgrid(xs, np.arange(0, sy + 1.0))
    dist = y * cosphi - x * sinphi
    rad = np.hypot(x, y)
    last = (rad >= half) & (np.abs(dist) <= 1.0)
    x2last = half - np.abs((x[last] + dist[last] * sinphi) / cosphi)
    dist[last] = np.sqrt(dist[last] ** 2 + x2last**2)
    dist = 1.0 + eps - np.abs(dist)
    dist[dist < 0] = 0.0
    r, c = dist.shape
    k = np.zeros((2 * r - 1, 2 * c - 1))
    k[:r, :c] = np.rot90(dist, 2)
    k[r - 1 :, c - 1 :] = dist
    k = k / (k.sum() + eps * length * length)
    if cosphi > 0:
        k = np.flipud(k)
    return k


def filter2d(image: jax.Array, kernel) -> jax.Array:
    """MATLAB's ``imfilter(image, kernel)``: correlation per channel, zero borders, same size.

    Args:
      image: ``f32[h, w, c]``.
      kernel: ``[kh, kw]`` (static); its centre tap is ``floor((k + 1) / 2)``, 1-based.

    Returns:
      ``f32[h, w, c]``.
    """
    k = jnp.asarray(np.asarray(kernel, np.float32))
    kh, kw = k.shape
    c = image.shape[-1]
    ch, cw = (kh + 1) // 2 - 1, (kw + 1) // 2 - 1
    rhs = jnp.tile(k[:, :, None, None], (1, 1, 1, c))
    out = jax.lax.conv_general_dilated(
        image[None].astype(jnp.float32),
        rhs,
        window_strides=(1, 1),
        padding=((ch, kh - 1 - ch), (cw, kw - 1 - cw)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out[0]


def motion_blur(image: jax.Array, length: int = 15, angle: float = 0.0) -> jax.Array:
    """``imfilter(image, fspecial('motion', length, angle))`` (MotionBlur1 is (15, 0), MotionBlur2
    (35, 90)).

    Args:
      image: ``f32[h, w, c]``.
      length: the blur's length in pixels (static).
      angle: its direction in degrees (static).

    Returns:
      ``f32[h, w, c]``; near the borders the zero padding darkens the image, as in MATLAB.
    """
    return filter2d(image, motion_kernel(length, angle))


def gaussian_noise(image: jax.Array, key: jax.Array, variance=0.01) -> jax.Array:
    """``imnoise(image, 'gaussian', 0, variance)``: ``clip(image + √variance · N(0, 1), 0, 1)``.

    Args:
      image: ``f32[h, w, c]`` in [0, 1].
      key: one PRNG key.
      variance: the noise variance (may be traced); Noise1 is 0.1, Noise2 0.2.

    Returns:
      ``f32[h, w, c]`` in [0, 1].
    """
    check_key("key", key)
    noise = jax.random.normal(key, image.shape, jnp.float32)
    return jnp.clip(image + jnp.sqrt(jnp.asarray(variance, jnp.float32)) * noise, 0.0, 1.0)


def adjust_contrast(image: jax.Array, low=0.0, high=1.0) -> jax.Array:
    """``imadjust(image, [], [low, high])``: the full input range [0, 1] mapped linearly onto
    ``[low, high]`` (γ = 1). Contrast1 is (0.3, 0.7), Contrast2 (0.4, 0.6).

    Args:
      image: ``f32[h, w, c]`` in [0, 1].
      low: the output for 0 (may be traced).
      high: the output for 1 (may be traced).

    Returns:
      ``f32[h, w, c]``: ``low + (high − low) · image``.
    """
    return low + (high - low) * jnp.clip(image, 0.0, 1.0)


def to_gray(image: jax.Array) -> jax.Array:
    """MATLAB's ``rgb2gray`` of an ``[h, w, 3]`` image (a 1-channel image is returned as is).

    Args:
      image: ``f32[h, w, c]`` with ``c`` 1 or 3.

    Returns:
      ``f32[h, w]``.
    """
    if image.shape[-1] == 1:
        return image[..., 0]
    if image.shape[-1] != 3:
        raise ValueError(f"`image` must have 1 or 3 channels; got shape {tuple(image.shape)}.")
    return jnp.tensordot(image, jnp.asarray(GRAY_WEIGHTS, image.dtype), axes=1)


def boundary(image: jax.Array, threshold=CANNY_THRESHOLD, sigma: float = CANNY_SIGMA) -> jax.Array:
    """Canny edges of the grey image, repeated over the channels (``edge(gray, 'canny', 0.3,
    sqrt(2))``, see :func:`jaxadv.image.canny`).

    Args:
      image: ``f32[h, w, c]``, ``c`` 1 or 3.
      threshold: Canny's high threshold (may be traced).
      sigma: its smoothing σ (static).

    Returns:
      ``f32[h, w, c]`` of 0 and 1.
    """
    edges = canny(to_gray(image), threshold, sigma)
    return jnp.broadcast_to(edges[..., None], image.shape)


# ----------------------------------------------------------------------------- geometric


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


def _geometry(name: str, h: int, w: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Forward map (input pixel → canvas pixel, 2×3) and canvas shape of a geometric name."""
    if name in ROTATION_ANGLES:
        return _loose_affine(rotation_matrix(ROTATION_ANGLES[name]), h, w)
    if name in SHEAR_MATRICES:
        return _loose_affine(np.asarray(SHEAR_MATRICES[name])[:2, :2].T, h, w)
    if name == "Mirroring":
        return np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]]), (h, w)
    side, frac = CROP_BANDS[name]
    extent = w if side == "left" else h
    band = crop_band_size(name, h, w)
    if band >= extent:
        raise ValueError(
            f"`image` of shape ({h}, {w}) is too small for {name}: its band of {band} pixels "
            f"covers the whole {'width' if side == 'left' else 'height'}."
        )
    if side == "left":
        return np.array([[1.0, 0.0, -band], [0.0, 1.0, 0.0]]), (h, w - band)
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -band]]), (h - band, w)


def crop_band_size(name: str, h: int, w: int) -> int:
    """The band (pixels) that Cropping1/Cropping2 remove from an ``h × w`` image: the paper's
    200 of 1920 columns / 200 of 1080 rows, scaled and rounded, at least 1.

    Args:
      name: ``"Cropping1"`` or ``"Cropping2"``.
      h: the image height.
      w: the image width.

    Returns:
      The band's width in pixels.
    """
    side, frac = CROP_BANDS[name]
    return max(1, int(round(frac * (w if side == "left" else h))))


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


def _geometric_image(name: str, image: jax.Array) -> jax.Array:
    h, w = image.shape[0], image.shape[1]
    forward, shape = _geometry(name, h, w)
    return _fit_image(_warp(image, forward, shape), h, w)


# ----------------------------------------------------------------------------- public API


def transform_image(name: str, image: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """Applies one of Che et al.'s transformations to ONE image, with the paper's parameters.

    Jittable for a static ``name``; differentiable in ``image`` except where the operation is
    piecewise constant (JPEG's rounding, Boundary's binary edges, the clipping of Noise). The
    output has the input's shape (the module docstring says how enlarged or cropped canvases are
    placed).

    Args:
      name: one of :data:`TRANSFORMATION_NAMES` (static).
      image: ``f32[h, w, c]`` in [0, 1] (``c`` 1 or 3 for JPEG and Boundary).
      key: one PRNG key, required for Noise1/Noise2 and ignored otherwise.

    Returns:
      ``f32[h, w, c]`` in [0, 1].

    Raises:
      ValueError: for an unknown name, an image of the wrong rank or outside [0, 1], a missing
        key for Noise, or an image too small for a crop band.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxadv.image import transform_image
      >>> x = jnp.linspace(0.0, 1.0, 48).reshape(4, 4, 3)
      >>> transform_image("Rotation1", x).shape
      (4, 4, 3)
      >>> float(transform_image("Contrast1", x).max())
      0.7
    """
    check_name(name)
    _check_image(image)
    image = image.astype(jnp.float32)
    if name == "Reference":
        return image
    if name in MOTION_ARGS:
        return motion_blur(image, *MOTION_ARGS[name])
    if name in NOISE_VARIANCES:
        if key is None:
            raise ValueError(f"`key` is required for {name} (a PRNG key for the noise); got None.")
        return gaussian_noise(image, key, NOISE_VARIANCES[name])
    if name in JPEG_QUALITIES:
        return jpeg(image, JPEG_QUALITIES[name])
    if name in CONTRAST_RANGES:
        return adjust_contrast(image, *CONTRAST_RANGES[name])
    if name == "Boundary":
        return boundary(image)
    return _geometric_image(name, image)


def transform_density(name: str, density: jax.Array) -> jax.Array:
    """Moves a fixation density (or any non-negative map) the way :func:`transform_image` moves
    the image, keeping its total mass.

    Photometric transformations leave it unchanged. Geometric ones warp it like a one-channel
    image (bilinear, letterboxed) and rescale it to the input's sum; if nothing of it stays in
    the frame it becomes uniform with that sum.

    Args:
      name: one of :data:`TRANSFORMATION_NAMES` (static).
      density: ``f32[h, w]``, non-negative.

    Returns:
      ``f32[h, w]`` with the same sum.

    Raises:
      ValueError: for an unknown name or a density that is not 2-D.
    """
    check_name(name)
    _check_map(density, "density")
    density = density.astype(jnp.float32)
    if name not in GEOMETRIC:
        return density
    moved = jnp.maximum(_geometric_image(name, density[..., None])[..., 0], 0.0)
    mass, kept = jnp.sum(density), jnp.sum(moved)
    uniform = jnp.full_like(density, 1.0 / density.size)
    return jnp.where(kept > 0, moved / jnp.where(kept > 0, kept, 1.0), uniform) * mass


def transform_points(name: str, xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Where pixel positions of an ``h × w`` image land after a transformation (float, x then y,
    0-based pixel centres); photometric transformations leave them in place.

    Args:
      name: one of :data:`TRANSFORMATION_NAMES`.
      xy: ``[n, 2]`` positions ``(x, y)`` (column, row).
      h: the image height.
      w: the image width.

    Returns:
      ``[n, 2]`` positions in the transformed image (possibly outside it, for Cropping).
    """
    check_name(name)
    xy = np.asarray(xy, np.float64)
    if name not in GEOMETRIC:
        return xy
    forward, (hh, ww) = _geometry(name, h, w)
    canvas = xy @ forward[:, :2].T + forward[:, 2]
    fh, fw, top, left = _fit((hh, ww), h, w)
    x = (canvas[:, 0] + 0.5) * fw / ww - 0.5 + left
    y = (canvas[:, 1] + 0.5) * fh / hh - 0.5 + top
    return np.stack([x, y], 1)


def transform_fixations(name: str, fixations: jax.Array) -> jax.Array:
    """Moves a fixation map (counts per pixel) the way :func:`transform_image` moves the image.

    Each pixel's count goes to the output pixel nearest to where that pixel's centre lands;
    counts landing outside the frame (Cropping's band) are dropped. Photometric transformations
    leave the map unchanged.

    Args:
      name: one of :data:`TRANSFORMATION_NAMES` (static).
      fixations: ``[h, w]`` counts (binary maps are counts of 0 and 1).

    Returns:
      ``f32[h, w]`` counts.

    Raises:
      ValueError: for an unknown name or a map that is not 2-D.
    """
    check_name(name)
    _check_map(fixations, "fixations")
    fixations = jnp.asarray(fixations, jnp.float32)
    if name not in GEOMETRIC:
        return fixations
    h, w = fixations.shape
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    moved = transform_points(name, np.stack([xs.ravel(), ys.ravel()], 1), h, w)
    col, row = np.floor(moved[:, 0] + 0.5).astype(np.int64), np.floor(moved[:, 1] + 0.5)
    row = row.astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = np.where(inside, row * w + col, h * w)  # h·w is out of range: dropped
    out = jnp.zeros(h * w, jnp.float32).at[jnp.asarray(flat)].add(fixations.ravel(), mode="drop")
    return out.reshape(h, w)
