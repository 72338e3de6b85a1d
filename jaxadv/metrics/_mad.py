"""Most apparent distortion (MAD) of one image pair: Larson & Chandler, "Most apparent distortion:
full-reference image quality assessment and the role of strategy", J. Electronic Imaging 19(1),
2010. The smooth-examples paper (Zhang, Avrithis, Furon & Amsaleg, EURASIP JIS 2020, §5.1) scores
imperceptibility with it; lower is better.

Two indices on 8-bit grey levels ``I`` (images are rescaled to [0, 255] and colour is turned grey
with ITU-R BT.601 weights), both computed on 16×16 blocks at a stride of 4 whose values fill the
block's 4×4 top-left cell, then pooled as the root mean square over the map less its border (16
pixels before, 17 after, as the released code drops them):

- ``d_detect`` (near-threshold, detection strategy): lightness ``L = 0.02874·I^{2.2/3}`` filtered
  by the contrast sensitivity function ``csf(f) = 2.6(0.0192 + 0.114f)e^{−(0.114f)^{1.1}}``
  (``f`` in cycles/degree at 32 cycles per half image width, divided by the oblique-effect
  factor ``(1−w)/2·cos 4θ + (1+w)/2``, w = 0.7; flat at 0.9809 below 7.8909 c/deg). Per block:
  the reference's contrast ``C_org = σ_min/μ`` (σ_min the least standard deviation of the block's
  four 8×8 quadrants, μ its mean) and the error's ``C_err = σ_err/μ`` (0 where μ ≤ 0.5). The
  visible distortion is ``ξ = ln C_err − ln C_org`` where ``ln C_err > ln C_org > −5``,
  ``ln C_err + 5`` where ``ln C_err > −5 ≥ ln C_org``, else 0, weighted by the local mean squared
  error of ``I`` (16×16 window, grey levels 0–255 as the public translation of the released code
  computes it) and scaled by 200. Near-threshold noise gives ``ξ = 0`` everywhere, so
  ``d_detect = 0`` and MAD = 0 (measured: Gaussian noise of σ = 8 grey levels on a 48×48 image).
- ``d_appear`` (supra-threshold, appearance strategy): log-Gabor responses of ``I`` at 5 scales
  (wavelengths 3, 9, 27, 81, 243 px; σ/f0 = 0.55) × 4 orientations (angular σ = π/4/1.5); per
  block and band the standard deviation, skewness and kurtosis of the response magnitude; the map
  ``η = Σ_s w_s Σ_o |Δσ| + 2|Δskew| + |Δkurt|`` with scale weights (0.5, 0.75, 1, 5, 6)/13.25.

``MAD = d_detect^a · d_appear^{1−a}`` with ``a = 1/(1 + β1·d_detect^{β2})``, β1 = 0.467,
β2 = 0.130. Constants are those of the paper and its released code; where the code and the paper
differ (the code's quadrant search for σ_min reads overlapping cells) the paper is followed, so
values match the reference implementation only approximately. IQA-PyTorch's port (pyiqa) departs
further from the code; tests/test_mad_reference.py rebuilds its values from these pieces and
experiments/README.md lists the departures.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks

BLOCK, STRIDE = 16, 4
BETA1, BETA2 = 0.467, 0.130
SCALE_WEIGHTS = (0.5, 0.75, 1.0, 5.0, 6.0)
_GREY = (0.2989, 0.5870, 0.1140)


def _grey(x, data_range):
    x = jnp.asarray(x, jnp.float32) * (255.0 / data_range)
    if x.ndim == 3:
        x = x[..., 0] if x.shape[-1] == 1 else jnp.tensordot(x, jnp.asarray(_GREY), axes=1)
    return x


def _centred_frequencies(m, n):
    """Centred frequency grid (as ``fftshift`` orders it), half-pixel offset, in units of 1/n."""
    u = np.arange(-n / 2 + 0.5, n / 2 + 0.5)
    v = np.arange(-m / 2 + 0.5, m / 2 + 0.5)
    return np.meshgrid(u, v)


def contrast_sensitivity(m: int, n: int, cycles: float = 32.0) -> np.ndarray:
    """The CSF of ``d_detect`` on an ``m×n`` centred frequency grid (``fftshift`` order)."""
    u, v = _centred_frequencies(m, n)
    plane = (u + 1j * v) * 2.0 * cycles / n
    w = 0.7
    oblique = (1 - w) / 2 * np.cos(4 * np.angle(plane)) + (1 + w) / 2
    f = np.abs(plane) / oblique
    csf = 2.6 * (0.0192 + 0.114 * f) * np.exp(-((0.114 * f) ** 1.1))
    return np.where(f < 7.8909, 0.9809, csf)


def _filter(image, transfer):
    spectrum = jnp.fft.fftshift(jnp.fft.fft2(image))
    return jnp.fft.ifft2(jnp.fft.ifftshift(spectrum * transfer))


def log_gabor_bank(m: int, n: int) -> np.ndarray:
    """The 5×4 log-Gabor transfer functions of ``d_appear``, ``f32[5, 4, m, n]`` (centred)."""
    u, v = np.meshgrid(
        (np.arange(n) - n // 2) / n, (np.arange(m) - m // 2) / m
    )  # normalised frequency, DC at (m//2, n//2)
    radius = np.hypot(u, v)
    radius[m // 2, n // 2] = 1.0
    theta = np.arctan2(-v, u)
    bank = np.zeros((5, 4, m, n))
    for s in range(5):
        f0 = 1.0 / (3.0 * 3.0**s)
        radial = np.exp(-(np.log(radius / f0) ** 2) / (2 * np.log(0.55) ** 2))
        radial[m // 2, n // 2] = 0.0
        for o in range(4):
            angle = o * np.pi / 4
            d = np.abs(np.arctan2(np.sin(theta - angle), np.cos(theta - angle)))
            spread = np.exp(-(d**2) / (2 * (np.pi / 4 / 1.5) ** 2))
            bank[s, o] = radial * spread
    return bank.astype(np.float32)


def _blocks(a, size=BLOCK, stride=STRIDE):
    """``[P, Q, size, size]``: the blocks at top-left corners ``(stride·p, stride·q)``."""
    m, n = a.shape
    rows = np.arange(0, m - size + 1, stride)[:, None] + np.arange(size)
    cols = np.arange(0, n - size + 1, stride)[:, None] + np.arange(size)
    return a[rows[:, None, :, None], cols[None, :, None, :]]


def _spread(stat, shape):
    """Each block's value on its stride×stride top-left cell; zero where no block starts."""
    cells = jnp.repeat(jnp.repeat(stat, STRIDE, axis=0), STRIDE, axis=1)
    m, n = shape
    return jnp.pad(cells, ((0, m - cells.shape[0]), (0, n - cells.shape[1])))


def _pool(a):
    """RMS over rows/cols ``16 … m−18`` (0-based): the released code's ``BSIZE+1:end-BSIZE-1``."""
    m, n = a.shape
    inner = a[BLOCK : m - BLOCK - 1, BLOCK : n - BLOCK - 1]
    return jnp.sqrt(jnp.mean(jnp.square(inner)))


def _std(blocks, axes=(-2, -1)):
    count = np.prod([blocks.shape[a] for a in axes])
    centred = blocks - jnp.mean(blocks, axis=axes, keepdims=True)
    return jnp.sqrt(jnp.sum(jnp.square(centred), axis=axes) / (count - 1))


def _local_mse(err):
    """Mean of ``err`` over the 16×16 window rows/cols ``p−7 … p+8`` (mirrored at the edges):
    the window of the released code's ``imfilter(·, 'same')``/``filter2(·, 'same')``, whose
    anchor is the kernel's 8th of 16 entries (scipy's ``'same'`` centres one pixel earlier)."""
    half = BLOCK // 2
    padded = jnp.pad(err, ((half - 1, half), (half - 1, half)), mode="symmetric")
    kernel = jnp.ones((BLOCK, BLOCK), err.dtype) / BLOCK**2
    return jax.scipy.signal.convolve2d(padded, kernel, mode="valid")


def detection_index(ref: jax.Array, dst: jax.Array) -> jax.Array:
    """``d_detect`` of two grey images on the 0–255 scale (``[m, n]``)."""
    csf = jnp.asarray(contrast_sensitivity(*ref.shape), jnp.float32)
    lightness = lambda i: 0.02874 * jnp.power(jnp.maximum(i, 0.0), 2.2 / 3.0)  # noqa: E731
    i_org = jnp.real(_filter(lightness(ref), csf))
    i_err = jnp.real(_filter(lightness(dst), csf)) - i_org
    org = _blocks(i_org)
    mu = jnp.mean(org, axis=(-2, -1))
    h = BLOCK // 2
    quadrants = jnp.stack(
        [_std(org[..., a : a + h, b : b + h]) for a in (0, h) for b in (0, h)], axis=-1
    )
    sigma_org = jnp.min(quadrants, axis=-1)
    sigma_err = _std(_blocks(i_err))
    safe = jnp.where(mu > 0.5, mu, 1.0)
    c_org = jnp.where(mu > 0.5, sigma_org / safe, 0.0)
    c_err = jnp.where(mu > 0.5, sigma_err / safe, 0.0)
    visible = masked_contrast(c_org, c_err)
    mse = _local_mse(jnp.square(dst - ref))
    return 200.0 * _pool(_spread(visible, ref.shape) * mse)


def masked_contrast(c_org: jax.Array, c_err: jax.Array) -> jax.Array:
    """ξ of ``d_detect``: how far the error's log contrast rises above the reference's (or above
    −5 where the reference is flatter than that); 0 where it does not."""
    lo, le = jnp.log(jnp.maximum(c_org, 1e-30)), jnp.log(jnp.maximum(c_err, 1e-30))
    lo = jnp.where(c_org > 0, lo, -jnp.inf)
    le = jnp.where(c_err > 0, le, -jnp.inf)
    above = (le > lo) & (lo > -5.0)
    floor = (le > -5.0) & (lo <= -5.0)
    return jnp.where(above, le - jnp.where(above, lo, 0.0), jnp.where(floor, le + 5.0, 0.0))


def block_moments(a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per 16×16 block (stride 4): standard deviation (n − 1), skewness and kurtosis (not excess;
    both 0 on a constant block)."""
    blocks = _blocks(a)
    centred = blocks - jnp.mean(blocks, axis=(-2, -1), keepdims=True)
    m2 = jnp.mean(jnp.square(centred), axis=(-2, -1))
    flat = m2 <= 0
    safe = jnp.where(flat, 1.0, m2)
    skew = jnp.where(flat, 0.0, jnp.mean(centred**3, axis=(-2, -1)) / safe**1.5)
    kurt = jnp.where(flat, 0.0, jnp.mean(centred**4, axis=(-2, -1)) / safe**2)
    return _std(blocks), skew, kurt


def appearance_index(ref: jax.Array, dst: jax.Array) -> jax.Array:
    """``d_appear`` of two grey images on the 0–255 scale (``[m, n]``)."""
    bank = jnp.asarray(log_gabor_bank(*ref.shape))
    weights = np.asarray(SCALE_WEIGHTS) / np.sum(SCALE_WEIGHTS)
    eta = jnp.zeros(ref.shape, jnp.float32)
    for s in range(5):
        for o in range(4):
            r = block_moments(jnp.abs(_filter(ref, bank[s, o])))
            d = block_moments(jnp.abs(_filter(dst, bank[s, o])))
            diff = jnp.abs(r[0] - d[0]) + 2.0 * jnp.abs(r[1] - d[1]) + jnp.abs(r[2] - d[2])
            eta = eta + weights[s] * _spread(diff, ref.shape)
    return _pool(eta)


def combine(d_detect: jax.Array, d_appear: jax.Array) -> jax.Array:
    """``d_detect^a · d_appear^{1−a}``, ``a = 1/(1 + β1·d_detect^{β2})``."""
    a = 1.0 / (1.0 + BETA1 * jnp.power(d_detect, BETA2))
    return jnp.power(d_detect, a) * jnp.power(d_appear, 1.0 - a)


def mad(x0: jax.Array, x_adv: jax.Array, data_range: float = 1.0) -> jax.Array:
    """MAD of ONE image pair ``[h, w]`` or ``[h, w, c]`` (c = 1 or 3) with values in
    ``[0, data_range]``; both sides must be at least 40 pixels (two 16-pixel borders and a block
    stride remain). 0 for identical images; lower is less perceptible. ``vmap`` for batches.

    Args:
      x0: the reference image.
      x_adv: the distorted image, the shape of ``x0``.
      data_range: the span of the pixel values (1 for [0, 1] images, 255 for 8-bit).

    Returns:
      A float32 scalar, the MAD index.

    References:
      Larson & Chandler, "Most apparent distortion: full-reference image quality assessment and
      the role of strategy", J. Electronic Imaging 19(1), 2010.
    """
    _checks.check_positive("data_range", data_range)
    shape = jnp.shape(x0)
    if shape != jnp.shape(x_adv):
        raise ValueError(f"`x_adv` must have the shape of `x0` {shape}; got {jnp.shape(x_adv)}.")
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] not in (1, 3)):
        raise ValueError(f"`x0` must be one image [h, w] or [h, w, 1 or 3]; got shape {shape}.")
    if min(shape[:2]) < 2 * BLOCK + 2 * STRIDE:
        raise ValueError(
            f"`x0` must be at least {2 * BLOCK + 2 * STRIDE} pixels on each side for MAD's "
            f"16-pixel blocks and borders; got {shape[:2]}."
        )
    ref, dst = _grey(x0, data_range), _grey(x_adv, data_range)
    return combine(detection_index(ref, dst), appearance_index(ref, dst))
