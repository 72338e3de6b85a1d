"""MATLAB's ``imresize(A, ..., 'bicubic')`` (antialiased) as two dense linear maps.

The MIT saliency benchmark (cvzoya/saliency, ``code_forMetrics``) resizes a saliency map to the
ground truth's grid with MATLAB's default ``imresize`` before every comparison. This module ports
its resampling rule, not an approximation of it:

- kernel: Keys' cubic convolution with ``a = -0.5`` (Keys, "Cubic convolution interpolation for
  digital image processing", IEEE TASSP 1981), support 4 input pixels;
- antialiasing when shrinking: the kernel is stretched by ``1 / scale`` (and scaled by ``scale``),
  so a shrink averages over the input pixels an output pixel covers;
- pixel grid: output pixel ``x`` (1-based) samples input position
  ``u = x / scale + (1 - 1 / scale) / 2`` (pixel centres aligned), with taps
  ``floor(u - width / 2) + 0 .. ceil(width) + 1``;
- each output pixel's weights are renormalised to sum to 1;
- borders: symmetric padding (the edge pixel is repeated: ``... b a | a b ... y z | z y ...``);
- the scale per axis is ``out / in`` when a size is given, or the given factor, with
  ``out = ceil(factor * in)`` as MATLAB computes it.

Each axis becomes an ``(out, in)`` matrix built once per static shape on the host (numpy float64)
and applied as ``W_rows @ map @ W_cols.T`` at the highest matmul precision, so the resize is
jit-able, vmap-able and differentiable. Sizes that match give the identity. Differences from
MATLAB: the arithmetic runs in the map's dtype (float32 unless x64 is enabled) where MATLAB uses
double, and uint8 inputs are treated as numbers (MATLAB would round and clip a uint8 result).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, inner, np.where(ax <= 2.0, outer, 0.0))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """``(out_len, in_len)`` float64 matrix of one axis of MATLAB's antialiased bicubic resize."""
    stretch = min(scale, 1.0)  # < 1 only when shrinking: widen the kernel (antialiasing)
    width = 4.0 / stretch
    centres = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    first = np.floor(centres - width / 2.0)
    taps = first[:, None] + np.arange(math.ceil(width) + 2, dtype=np.float64)  # 1-based
    weights = stretch * _keys_cubic(stretch * (centres[:, None] - taps))
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: 1-based tap t reads the mirrored input pixel of period 2 * in_len.
    folded = np.mod(taps.astype(np.int64) - 1, 2 * in_len)
    source = np.where(folded < in_len, folded, 2 * in_len - 1 - folded)
    matrix = np.zeros((out_len, in_len))
    np.add.at(
        matrix, (np.repeat(np.arange(out_len), taps.shape[1]), source.ravel()), weights.ravel()
    )
    matrix.setflags(write=False)
    return matrix


def _apply(x: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
    high = jax.lax.Precision.HIGHEST
    y = jnp.matmul(jnp.asarray(rows, x.dtype), x, precision=high)
    return jnp.matmul(y, jnp.asarray(cols.T, x.dtype), precision=high)


def resize_to(x: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Resizes a 2-D float map to ``shape`` (MATLAB ``imresize(x, shape)``); identity if equal."""
    (h, w), (oh, ow) = x.shape, tuple(shape)
    if (h, w) == (oh, ow):
        return x
    return _apply(x, resize_matrix(h, oh, oh / h), resize_matrix(w, ow, ow / w))


def resize_by(x: jax.Array, factor: float) -> jax.Array:
    """Resizes a 2-D float map by ``factor`` (MATLAB ``imresize(x, factor)``)."""
    h, w = x.shape
    oh, ow = math.ceil(factor * h), math.ceil(factor * w)
    return _apply(x, resize_matrix(h, oh, factor), resize_matrix(w, ow, factor))
