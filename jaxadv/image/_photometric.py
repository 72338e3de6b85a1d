"""The photometric transformations of Che et al.'s table (issue 18), as MATLAB computes them:
``fspecial('motion')`` kernels and ``imfilter``, ``imnoise``'s Gaussian noise, ``imadjust``,
``rgb2gray`` and the Canny boundary map. One image ``f32[h, w, c]``; batch with ``vmap``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv._checks import check_key
from jaxadv.image._canny import canny

CANNY_THRESHOLD, CANNY_SIGMA = 0.3, math.sqrt(2.0)
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # MATLAB rgb2gray


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
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2:
        raise ValueError(f"`kernel` must be a 2-D array; got shape {k.shape}.")
    kh, kw = k.shape
    ch, cw = (kh + 1) // 2 - 1, (kw + 1) // 2 - 1
    h, w = image.shape[0], image.shape[1]
    padded = jnp.pad(image.astype(jnp.float32), ((ch, kh - 1 - ch), (cw, kw - 1 - cw), (0, 0)))
    # a sum of shifted copies over the kernel's non-zero taps: motion kernels are thin lines, and
    # XLA fuses the sum into one pass (a depthwise convolution is far slower on CPU)
    out = jnp.zeros(image.shape, jnp.float32)
    for i, j in zip(*np.nonzero(k)):
        out = out + np.float32(k[i, j]) * padded[i : i + h, j : j + w]
    return out


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
