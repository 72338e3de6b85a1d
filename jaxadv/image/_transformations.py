"""The 19 image transformations of Che et al.'s saliency robustness study (issue 18).

Che, Borji, Zhai, Min, Guo & Le Callet, "How is gaze influenced by image transformations? Dataset
and model" (TIP 2019), as summarised in the saliency-robustness paper's "1st Challenge" table
(``shared/papers/000``): each transformation is one MATLAB call on a CAT2000 image, which is the
specification followed here (values in [0, 1], one image ``f32[h, w, c]``; batch with ``vmap``):

* Reference: the image itself (identity).
* MotionBlur1/2: ``imfilter(img, fspecial('motion', 15, 0))`` and ``(35, 90)``, zero borders as
  ``imfilter`` (:func:`jaxadv.image.motion_blur`).
* Noise1/2: ``imnoise(img, 'gaussian', 0, 0.1)`` and ``0.2``, clipped
  (:func:`jaxadv.image.gaussian_noise`).
* JPEG1/2: ``imwrite(img, f, 'Quality', 5)`` and ``0`` (:func:`jaxadv.image.jpeg`).
* Contrast1/2: ``imadjust(img, [], [0.3, 0.7])`` and ``[0.4, 0.6]``
  (:func:`jaxadv.image.adjust_contrast`).
* Rotation1/2: ``imrotate(img, -45, 'bilinear', 'loose')`` and ``-135``
  (:func:`jaxadv.image.rotate`, then the fit below).
* Shearing1/2/3: ``imwarp(img, affine2d(T))`` with the table's ``T``
  (:func:`jaxadv.image.affine_warp`, then the fit).
* Inversion: ``imrotate(img, -180, 'bilinear', 'loose')``, an exact flip of both axes.
* Mirroring: the left-right mirror image.
* Boundary: ``edge(img, 'canny', 0.3, sqrt(2))`` (:func:`jaxadv.image.boundary`).
* Cropping1/2: a 1080×200 band off the left, a 200×1920 band off the top of the 1920×1080 image
  (:func:`jaxadv.image.crop_band`, then the fit).

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


import jax
import jax.numpy as jnp
import numpy as np

from jaxadv._checks import check_in_bounds
from jaxadv.image._geometric import _fit, _fit_image, _loose_affine, _warp, rotation_matrix
from jaxadv.image._jpeg import jpeg
from jaxadv.image._photometric import adjust_contrast, boundary, gaussian_noise, motion_blur

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


def _geometric_image(name: str, image: jax.Array) -> jax.Array:
    h, w = image.shape[0], image.shape[1]
    forward, shape = _geometry(name, h, w)
    # bilinear sampling and the antialiased shrink are convex combinations of pixels, but their
    # float32 weights can sum to 1 + 2e-7: clip so a [0, 1] image stays one
    return jnp.clip(_fit_image(_warp(image, forward, shape), h, w), 0.0, 1.0)


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
      >>> import jax.numpy as jnp
      >>> from jaxadv.image import transform_image
      >>> x = jnp.linspace(0.0, 1.0, 48).reshape(4, 4, 3)
      >>> y = transform_image("Contrast1", x)  # imadjust(x, [], [0.3, 0.7])
      >>> y.shape, round(float(y.min()), 4), round(float(y.max()), 4)
      ((4, 4, 3), 0.3, 0.7)
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
