"""Ground truth for the saliency metrics: fixation count maps, fixation densities (MIT's
Fourier blur or a spatial Gaussian), and MATLAB's ``imresize`` of a map to the ground truth's grid."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.metrics import _saliency_density as _density
from jaxadv.metrics._saliency_common import (
    _as_fixations,
    _as_map,
    _float,
    _nan_where,
    _nonfinite,
)
from jaxadv.metrics._saliency_resize import resize_to


def fixation_map(xs, ys, shape) -> jax.Array:
    """Count map ``int32[h, w]`` from 0-based fixation coordinates: pixel ``(ys[i], xs[i])`` += 1.

    Duplicates accumulate (the pysaliency variants weigh them; the MIT ones see ``> 0``). Eagerly,
    a coordinate outside the grid is a ``ValueError``; under ``jit`` it adds nothing, so padded
    fixation lists can mark unused slots with -1.

    Args:
      xs: ``int[n]`` column indices (0-based; MATLAB/SALICON files are 1-based: subtract 1).
      ys: ``int[n]`` row indices, same length.
      shape: ``(h, w)`` of the grid, Python ints.

    Example:
      >>> fixation_map([0, 2, 2], [1, 0, 0], (2, 3)).tolist()
      [[0, 0, 2], [1, 0, 0]]

    Returns:
      ``int32[h, w]`` fixation counts.
    """
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape)
        or min(shape) < 1
    ):
        raise ValueError(f"`shape` must be (h, w) with positive Python ints; got {shape!r}.")
    h, w = int(shape[0]), int(shape[1])
    xs, ys = (v if isinstance(v, (jax.Array, jax.core.Tracer)) else np.asarray(v) for v in (xs, ys))
    for name, v in (("xs", xs), ("ys", ys)):
        if v.ndim != 1 or not jnp.issubdtype(v.dtype, jnp.integer):
            raise ValueError(
                f"`{name}` must be a 1-D array of integer pixel indices; got shape {v.shape}, "
                f"dtype {v.dtype} (round or floor float coordinates first; pysaliency truncates)."
            )
    if xs.shape != ys.shape:
        raise ValueError(f"`xs` and `ys` must have the same length; got {xs.shape} and {ys.shape}.")
    for name, v, size in (("xs", xs, w), ("ys", ys, h)):
        if _checks.is_concrete(v) and v.size:
            lo, hi = int(np.min(v)), int(np.max(v))
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"`{name}` must lie in [0, {size - 1}] for a grid of shape {(h, w)}; got "
                    f"values in [{lo}, {hi}]."
                )
    return _fixation_counts(xs, ys, shape=(h, w))

@functools.partial(jax.jit, static_argnames="shape")
def _fixation_counts(xs, ys, *, shape):
    return _density.fixation_counts(xs, ys, shape)

def fixation_density(fixations, *, sigma: float | None = None, fc=8.0) -> jax.Array:
    """The continuous ground truth: the fixation map blurred, clipped at 0 and scaled to sum 1.

    Default: MIT's ``antonioGaussian(F, fc)`` with ``fc = 8`` cycles per image, the benchmark's
    ground truth (cvzoya/saliency ``code_forMetrics/README``) — a Gaussian low-pass in the Fourier
    domain on a zero-padded power-of-two canvas of side ``n``, i.e. a circular convolution with
    std ``n sqrt(ln 2) / (sqrt(2) pi fc)`` pixels (23.99 px on MIT1003's 1024 canvas). With
    ``sigma`` given: a spatial Gaussian of that std in pixels with reflected borders, as
    ``scipy.ndimage.gaussian_filter(mode='reflect')`` (pysaliency's ``FixationMap``; the
    MIT/Tübingen benchmark uses ``sigma = 23.99``).

    The map is blurred as given: MIT blurs the binary map, so pass ``fixations > 0`` to match it
    exactly; a count map keeps duplicates, as pysaliency does. Scaling to sum 1 changes none of
    the metrics here. The clip at 0 removes round-off, and also — a departure from MATLAB — the
    negative side lobes the FFT blur has when its transfer function is still non-negligible at the
    Nyquist frequency, i.e. on canvases small next to ``fc`` (with ``fc = 8``, lobes reach -2% of
    the peak at ``n = 16``, -1e-6 at ``n = 64``, round-off from ``n = 128``). A map without
    fixations gives zeros.

    Args:
      fixations: ``[h, w]`` non-negative counts (or binary).
      sigma: static std in pixels (> 0), or ``None`` for the MIT blur.
      fc: cut-off frequency of the MIT blur in cycles per image (> 0; may be traced).

    Returns:
      ``f32[h, w]`` summing to 1.
    """
    f = _as_fixations("fixations", fixations)
    if sigma is None:
        _checks.check_positive("fc", fc)
        return _density_fft(f, fc)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"`sigma` must be a positive Python number (static); got {sigma!r}.")
    return _density_spatial(f, sigma=float(sigma))

@jax.jit
def _density_fft(f, fc):
    density = _density.normalized_density(_density.antonio_gaussian(_float(f), fc))
    return _nan_where(_nonfinite(f, fc), density)

@functools.partial(jax.jit, static_argnames="sigma")
def _density_spatial(f, *, sigma):
    density = _density.normalized_density(_density.spatial_gaussian(_float(f), sigma))
    return _nan_where(_nonfinite(f), density)

def resize_map(saliency_map, shape) -> jax.Array:
    """MATLAB's ``imresize(map, shape)`` (bicubic, antialiased): what every metric here applies to
    a map whose size differs from the ground truth's (see the module docstring).

    Args:
      saliency_map: ``f[h, w]``.
      shape: the new ``(h', w')``, Python ints.

    Returns:
      ``f[h', w']``.
    """
    s = _as_map("saliency_map", saliency_map)
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in shape)
    ):
        raise ValueError(f"`shape` must be (h, w) with positive Python ints; got {shape!r}.")
    return _resize(s, shape=(int(shape[0]), int(shape[1])))

@functools.partial(jax.jit, static_argnames="shape")
def _resize(s, *, shape):
    return resize_to(_float(s), shape)
