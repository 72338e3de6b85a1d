"""Imperceptibility metrics against hand-computed values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.metrics import psnr


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
