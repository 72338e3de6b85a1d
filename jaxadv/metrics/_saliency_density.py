"""Fixation count maps and the blurred fixation density (the continuous ground truth).

Two blurs:

- MIT's ``antonioGaussian.m`` (cvzoya/saliency ``code_forMetrics``; the benchmark's ground truth
  uses cut-off ``fc = 8`` cycles per image, about one degree of visual angle): the map is
  zero-padded at the bottom/right to an ``n x n`` canvas, ``n`` the next power of two of the larger
  side (rounded up to even), its 2-D FFT is multiplied by ``exp(-(fx² + fy²) / s²)`` with
  ``s = fc / sqrt(ln 2)`` and integer frequencies ``fx, fy`` in cycles per canvas, and the real part
  of the inverse FFT is cropped. That is a *circular* convolution on the padded canvas with a
  Gaussian of ``sigma = n sqrt(ln 2) / (sqrt(2) pi fc)`` pixels (23.99 px for ``n = 1024``).
- a spatial Gaussian of std ``sigma`` pixels as ``scipy.ndimage.gaussian_filter(mode='reflect',
  truncate=4)`` computes it (pysaliency's ``FixationMap`` and the MIT/Tübingen benchmark's
  empirical maps use this with ``sigma = 23.99``): half-sample symmetric borders, kernel radius
  ``int(4 sigma + 0.5)``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def fixation_counts(xs, ys, shape):
    """Count map ``int32[h, w]``; coordinates outside the grid add nothing."""
    h, w = shape
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    rows, cols = jnp.clip(ys, 0, h - 1), jnp.clip(xs, 0, w - 1)
    return jnp.zeros((h, w), jnp.int32).at[rows, cols].add(inside.astype(jnp.int32))


def antonio_canvas(h: int, w: int) -> int:
    """Side of the FFT canvas of ``antonioGaussian.m``: next power of two of max(h, w) made even."""
    n = max(h, w)
    n += n % 2
    return 2 ** math.ceil(math.log2(n))


def antonio_gaussian(x: jax.Array, fc) -> jax.Array:
    """``antonioGaussian(x, fc)``: Gaussian low-pass in the Fourier domain on a padded canvas."""
    h, w = x.shape
    n = antonio_canvas(h, w)
    freq = jnp.asarray(np.fft.fftfreq(n) * n, x.dtype)  # 0, 1, ..., n/2 - 1, -n/2, ..., -1
    s2 = jnp.asarray(fc, x.dtype) ** 2 / math.log(2.0)
    transfer = jnp.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / s2)
    spectrum = jnp.fft.fft2(x, s=(n, n))  # zero-pads at the bottom/right, as MATLAB fft2(x, n, n)
    return jnp.real(jnp.fft.ifft2(spectrum * transfer))[:h, :w].astype(x.dtype)


@functools.lru_cache(maxsize=32)
def reflect_gaussian_matrix(length: int, sigma: float) -> np.ndarray:
    """``(length, length)`` matrix of a 1-D Gaussian filter with half-sample symmetric borders."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    targets = np.arange(length)[:, None] + offsets[None, :]
    folded = np.mod(targets, 2 * length)
    source = np.where(folded < length, folded, 2 * length - 1 - folded)
    matrix = np.zeros((length, length))
    np.add.at(
        matrix,
        (np.repeat(np.arange(length), offsets.size), source.ravel()),
        np.tile(kernel, length),
    )
    matrix.setflags(write=False)
    return matrix


def spatial_gaussian(x: jax.Array, sigma: float) -> jax.Array:
    h, w = x.shape
    high = jax.lax.Precision.HIGHEST
    rows = jnp.asarray(reflect_gaussian_matrix(h, sigma), x.dtype)
    cols = jnp.asarray(reflect_gaussian_matrix(w, sigma), x.dtype)
    return jnp.matmul(jnp.matmul(rows, x, precision=high), cols.T, precision=high)


def normalized_density(blurred: jax.Array) -> jax.Array:
    """Clips values below zero and scales to sum 1; an all-zero map stays zero.

    The spatial Gaussian is non-negative up to round-off. The FFT blur is a periodic Gaussian only
    when its transfer function has vanished by the Nyquist frequency (``fc`` small next to the
    canvas, as on benchmark images); on tiny canvases it is cut off early and the kernel has small
    negative side lobes, which the clip removes so that the result is a density."""
    blurred = jnp.maximum(blurred, 0)
    total = jnp.sum(blurred)
    return jnp.where(total > 0, blurred / jnp.where(total > 0, total, 1), 0)
