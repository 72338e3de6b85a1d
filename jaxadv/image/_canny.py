"""Canny edges in JAX, as MATLAB's ``edge(I, 'canny', thresh, sigma)`` computes them (issue 18).

Che et al.'s Boundary transformation is ``edge(img, 'canny', 0.3, sqrt(2))`` (on the grey image).
MATLAB's Canny (Canny, "A computational approach to edge detection", TPAMI 1986), step by step:

1. smoothed gradient: a sampled Gaussian of σ over ``8·ceil(σ)`` taps (even: the taps sit at
   half-integers ``−n … n``, ``n = (L − 1) / 2``), normalised to sum 1, and its numerical
   derivative (central differences, one-sided at the ends) with positive and negative parts each
   normalised to total ±1; ``gx`` = Gaussian along y then derivative along x, ``gy`` the transpose,
   each a convolution with replicated borders;
2. magnitude ``hypot(gx, gy)`` divided by its maximum;
3. non-maximum suppression: a pixel is kept when its magnitude is at least the magnitudes
   interpolated linearly one step either way along the gradient (between the axial and the
   diagonal neighbour, as MATLAB's ``cannyFindLocalMaxima``); border pixels are never edges;
4. hysteresis: the high threshold is ``thresh``, the low one ``0.4 · thresh``; a kept pixel above
   the low threshold is an edge when its 8-connected component of such pixels holds one above the
   high threshold.

The result is binary, so it has no useful gradient. The even-length kernel's half-sample shift is
placed like MATLAB's ``imfilter`` (centre tap ``floor((L + 1) / 2)``, 1-based).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# MATLAB edge.m: the low threshold is this fraction of the high one when only one is given.
THRESHOLD_RATIO = 0.4


def canny_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's Canny smoothing kernel and its normalised derivative for a σ (static numpy).

    Args:
      sigma: the Gaussian's standard deviation in pixels, > 0.

    Returns:
      ``(gauss, dgauss)``, each ``f64[8·ceil(σ)]``.
    """
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0; got {sigma!r}.")
    length = 8 * math.ceil(sigma)
    n = (length - 1) / 2
    x = np.arange(-n, n + 1)
    g = np.exp(-(x**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    g = g / g.sum()
    d = np.gradient(g)
    pos, neg = d > 0, d < 0
    d[pos] = d[pos] / d[pos].sum()
    d[neg] = d[neg] / abs(d[neg].sum())
    return g, d


def _conv1d_replicate(x: jax.Array, kernel: np.ndarray, axis: int) -> jax.Array:
    """MATLAB ``imfilter(x, k, 'conv', 'replicate')`` along one axis of a 2-D array."""
    k = np.asarray(kernel)[::-1]  # convolution = correlation with the flipped kernel
    length = k.shape[0]
    centre = (length + 1) // 2 - 1  # 0-based centre tap of the (flipped) kernel
    pad = [(0, 0), (0, 0)]
    pad[axis] = (centre, length - 1 - centre)
    xp = jnp.pad(x, pad, mode="edge")
    n = x.shape[axis]
    out = jnp.zeros_like(x)
    for j in range(length):
        out = out + float(k[j]) * jax.lax.slice_in_dim(xp, j, j + n, axis=axis)
    return out


def canny_gradient(gray: jax.Array, sigma: float) -> tuple[jax.Array, jax.Array]:
    """MATLAB Canny's smoothed gradient ``(gx, gy)`` of a 2-D image (x along columns).

    Args:
      gray: ``f32[h, w]``.
      sigma: the smoothing σ in pixels.

    Returns:
      ``(gx, gy)``, each ``f32[h, w]``.
    """
    g, d = canny_kernels(sigma)
    gx = _conv1d_replicate(_conv1d_replicate(gray, g, 0), d, 1)
    gy = _conv1d_replicate(_conv1d_replicate(gray, g, 1), d, 0)
    return gx, gy


def _shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
    """``out[i, j] = x[i + dy, j + dx]`` (edge-replicated; only read at interior pixels)."""
    h, w = x.shape
    xp = jnp.pad(x, 1, mode="edge")
    return xp[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _along_gradient(mag, gx, gy, sign: int) -> jax.Array:
    """The magnitude one step along ``sign · (gx, gy)``, interpolated between the axial and the
    diagonal neighbour (the step's longer component is exactly one pixel)."""
    ax, ay = jnp.abs(gx), jnp.abs(gy)
    sx = (sign * jnp.sign(gx)).astype(jnp.int32)
    sy = (sign * jnp.sign(gy)).astype(jnp.int32)
    x_major = ax >= ay
    ratio = jnp.where(x_major, ay / jnp.where(ax > 0, ax, 1.0), ax / jnp.where(ay > 0, ay, 1.0))
    neigh = {(dy, dx): _shift(mag, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}

    def pick(dys, dxs):
        out = jnp.zeros_like(mag)
        for (dy, dx), v in neigh.items():
            out = jnp.where((dys == dy) & (dxs == dx), v, out)
        return out

    axial = jnp.where(x_major, pick(jnp.zeros_like(sy), sx), pick(sy, jnp.zeros_like(sx)))
    diagonal = pick(sy, sx)
    return axial * (1.0 - ratio) + diagonal * ratio


def _hysteresis(weak: jax.Array, strong: jax.Array) -> jax.Array:
    """The pixels of ``weak`` 8-connected (through ``weak``) to a pixel of ``strong``."""

    def grow(state):
        edges, _ = state
        grown = edges
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown = grown | _shift(edges, dy, dx)
        grown = grown & weak
        return grown, jnp.any(grown != edges)

    edges, _ = jax.lax.while_loop(lambda s: s[1], grow, (strong & weak, jnp.array(True)))
    return edges


def canny(gray: jax.Array, threshold=0.3, sigma: float = math.sqrt(2.0)) -> jax.Array:
    """Binary Canny edges of one grey image, as MATLAB's ``edge(gray, 'canny', threshold, sigma)``.

    Args:
      gray: ``f32[h, w]``.
      threshold: the high hysteresis threshold on the max-normalised gradient magnitude, in
        (0, 1) (may be traced); the low one is ``0.4 · threshold``.
      sigma: the Gaussian's σ in pixels (static: it sets the kernel length).

    Returns:
      ``f32[h, w]``, 1 on edges and 0 elsewhere.

    Raises:
      ValueError: if ``gray`` is not 2-D.

    """
    if jnp.ndim(gray) != 2:
        raise ValueError(f"`gray` must be one [h, w] image; got shape {tuple(jnp.shape(gray))}.")
    gray = gray.astype(jnp.float32)
    gx, gy = canny_gradient(gray, sigma)
    mag = jnp.hypot(gx, gy)
    top = jnp.max(mag)
    mag = mag / jnp.where(top > 0, top, 1.0)
    local_max = (mag >= _along_gradient(mag, gx, gy, 1)) & (mag >= _along_gradient(mag, gx, gy, -1))
    local_max = local_max & ((gx != 0) | (gy != 0))
    h, w = gray.shape
    interior = np.zeros((h, w), bool)
    interior[1:-1, 1:-1] = True
    high = jnp.asarray(threshold, jnp.float32)
    weak = local_max & jnp.asarray(interior) & (mag > THRESHOLD_RATIO * high)
    strong = weak & (mag > high)
    return _hysteresis(weak, strong).astype(jnp.float32)
