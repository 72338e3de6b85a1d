"""Imperceptibility metrics against hand-computed values: PSNR, and MAD's pieces (contrast
masking, CSF, block moments, the combination) by hand, the whole on noise of growing amplitude."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.metrics import mad, psnr
from jaxadv.metrics._mad import block_moments, combine, contrast_sensitivity, masked_contrast


def test_psnr_by_hand():
    x0 = jnp.zeros((2, 2, 1))
    x = x0.at[0, 0, 0].set(0.1)  # MSE = 0.01 / 4 = 0.0025: 10·log10(1 / 0.0025) = 26.0206 dB
    np.testing.assert_allclose(float(psnr(x0, x)), 10 * np.log10(400.0), rtol=1e-6)
    np.testing.assert_allclose(float(psnr(x0, x, data_range=255.0)), 10 * np.log10(255.0**2 * 400))
    assert float(psnr(x0, x0)) == np.inf
    batch = jax.vmap(psnr)(jnp.stack([x0, x0]), jnp.stack([x, x0]))
    np.testing.assert_allclose(batch, [10 * np.log10(400.0), np.inf], rtol=1e-6)


def test_psnr_bad_input_is_named():
    with pytest.raises(ValueError, match="`data_range`"):
        psnr(jnp.zeros((2, 2, 1)), jnp.zeros((2, 2, 1)), data_range=0.0)
    with pytest.raises(ValueError, match="`x_adv` must have the shape"):
        psnr(jnp.zeros((2, 2, 1)), jnp.zeros((2, 3, 1)))


def test_mad_pieces_by_hand():
    # ξ (contrast masking): ln C_err − ln C_org above the reference, ln C_err + 5 over a flat one.
    c_org = jnp.array([0.1, 0.2, np.exp(-6.0), np.exp(-6.0), 0.0])
    c_err = jnp.array([0.2, 0.1, np.exp(-4.0), np.exp(-5.5), 0.3])
    np.testing.assert_allclose(
        masked_contrast(c_org, c_err), [np.log(2.0), 0.0, 1.0, 0.0, np.log(0.3) + 5], atol=1e-5
    )
    # The CSF at the 64×64 grid point (row 32, col 63): u = 31.5, v = 0.5 cycles per 64 px,
    # 32 c/deg per half width: f = |(31.5, 0.5)| / (0.15·cos 4θ + 0.85), θ = atan(0.5/31.5).
    theta = np.arctan2(0.5, 31.5)
    f = np.hypot(31.5, 0.5) / (0.15 * np.cos(4 * theta) + 0.85)
    expected = 2.6 * (0.0192 + 0.114 * f) * np.exp(-((0.114 * f) ** 1.1))
    csf = contrast_sensitivity(64, 64)
    np.testing.assert_allclose(csf[32, 63], expected, rtol=1e-6)
    assert csf[32, 32] == 0.9809  # below 7.8909 c/deg: flat
    # Block moments of one 16×16 block: sample std, skewness, kurtosis (not excess).
    block = np.random.default_rng(0).gamma(2.0, size=(16, 16)).astype(np.float32)
    std, skew, kurt = (float(np.asarray(v)[0, 0]) for v in block_moments(jnp.asarray(block)))
    c = block - block.mean()
    np.testing.assert_allclose(std, block.std(ddof=1), rtol=1e-5)
    np.testing.assert_allclose(skew, np.mean(c**3) / np.mean(c**2) ** 1.5, rtol=1e-4)
    np.testing.assert_allclose(kurt, np.mean(c**4) / np.mean(c**2) ** 2, rtol=1e-4)
    # The combination: a = 1/(1 + 0.467·d^0.13); MAD = d_detect^a · d_appear^(1−a).
    a = 1 / (1 + 0.467 * 10.0**0.13)
    np.testing.assert_allclose(float(combine(10.0, 2.0)), 10.0**a * 2.0 ** (1 - a), rtol=1e-6)


@pytest.mark.slow  # one MAD compilation, 20 log-Gabor bands (~30 s on the loaded machine)
def test_mad_is_zero_on_identical_images_and_grows_with_visible_noise():
    rng = np.random.default_rng(1)
    # A 48×48 textured image (a product gradient and a brighter square), noise of growing size.
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    x0 = 0.2 + 0.5 * xx * yy
    x0[12:30, 16:36] += 0.2
    noise = rng.normal(size=(48, 48))
    amplitudes = (0.0, 8.0, 16.0, 32.0, 64.0)
    images = np.stack([np.clip(x0 + a / 255 * noise, 0, 1) for a in amplitudes])
    ref = np.broadcast_to(x0, images.shape)
    scores = np.asarray(jax.jit(jax.vmap(mad))(jnp.asarray(ref), jnp.asarray(images)))
    # Noise of 8 grey levels is below the detection model's threshold (d_detect = 0, so MAD = 0:
    # measured); from 16 on, MAD grows with the amplitude.
    assert scores[0] == 0.0 and np.all(np.isfinite(scores)), scores
    assert np.all(np.diff(scores[1:]) > 0) and scores[2] > 0, scores


def test_mad_bad_input_is_named():
    with pytest.raises(ValueError, match="at least 40 pixels"):
        mad(jnp.zeros((32, 48)), jnp.zeros((32, 48)))
    with pytest.raises(ValueError, match="`x_adv` must have the shape"):
        mad(jnp.zeros((48, 48)), jnp.zeros((48, 40)))
    with pytest.raises(ValueError, match=r"\[h, w, 1 or 3\]"):
        mad(jnp.zeros((48, 48, 2)), jnp.zeros((48, 48, 2)))
