"""The ACS histogram loss's options (issue 18): wider and Gaussian kernels, no min-max rescaling,
and the named variant ``smooth_acs_loss`` that GazeGAN trains with.

References: numpy transcriptions of the kernels (each value's weights normalised to sum to 1),
the hard nearest-centre histogram (``np.histogram`` with edges halfway between the centres) that
a Gaussian kernel tends to as it narrows, and the symmetric chi-square of two frequency vectors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv.losses import _saliency as sl
from jaxadv.training import resolve_saliency_loss, saliency_image_loss

KERNELS = [("triangular", 1.0), ("triangular", 0.7), ("triangular", 3.0), ("gaussian", 0.3),
           ("gaussian", 2.0), ("gaussian", 6.0)]  # fmt: skip


def _numpy_histogram(values, bins, kernel, bandwidth):
    centres = np.arange(bins) / (bins - 1)
    d = np.abs(np.clip(values, 0, 1)[:, None] - centres[None, :]) * (bins - 1) / bandwidth
    w = np.exp(-0.5 * d**2) if kernel == "gaussian" else np.maximum(0.0, 1.0 - d)
    return (w / w.sum(axis=1, keepdims=True)).sum(axis=0) / values.size


@pytest.mark.parametrize("kernel,bandwidth", KERNELS)
def test_kernel_histograms_sum_to_one_and_match_numpy(kernel, bandwidth):
    values = np.concatenate([[0.0, 1.0, 0.5], np.random.default_rng(0).uniform(size=40)])
    got = sl.soft_histogram(jnp.asarray(values, jnp.float32), 11, kernel=kernel,
                            bandwidth=bandwidth)  # fmt: skip
    np.testing.assert_allclose(float(jnp.sum(got)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, _numpy_histogram(values, 11, kernel, bandwidth), atol=1e-6)


def test_triangle_two_bins_wide_by_hand():
    # A value on centre 2 of 5: weights (0.5, 1, 0.5) on centres 1..3, normalised to 1/4, 1/2, 1/4.
    got = sl.soft_histogram(jnp.array([0.5]), 5, bandwidth=2.0)
    np.testing.assert_allclose(got, [0.0, 0.25, 0.5, 0.25, 0.0], atol=1e-6)


def test_a_narrow_gaussian_is_the_hard_histogram():
    values = np.random.default_rng(1).uniform(size=500).astype(np.float32)
    bins = 20
    edges = np.concatenate([[0.0], (np.arange(bins - 1) + 0.5) / (bins - 1), [1.0]])
    hard = np.histogram(values, edges)[0] / values.size
    errors = [float(np.abs(sl.soft_histogram(jnp.asarray(values), bins, kernel="gaussian",
                                             bandwidth=b) - hard).sum())
              for b in (0.5, 0.2, 0.05, 0.005)]  # fmt: skip
    assert errors[0] > errors[1] > errors[2] > errors[3] and errors[3] < 2e-3, errors


@pytest.mark.parametrize("rescale", sl.ACS_RESCALES)
@pytest.mark.parametrize("kernel,bandwidth", [("triangular", 1.0), ("gaussian", 2.0)])
def test_every_form_is_zero_for_equal_maps_positive_otherwise_with_finite_gradients(
    rescale, kernel, bandwidth
):
    kw = dict(kernel=kernel, bandwidth=bandwidth, rescale=rescale)
    m = jax.random.uniform(jax.random.key(3), (8, 7))
    assert float(sl.acs_loss(m, m, **kw)) < 1e-5
    permuted = jnp.reshape(jnp.ravel(m)[::-1], m.shape)  # same values elsewhere: same histogram
    assert float(sl.acs_loss(m, permuted, **kw)) < 1e-5
    peaked = jnp.zeros((8, 7)).at[2, 2].set(1.0)
    assert float(sl.acs_loss(m, peaked, **kw)) > 0.1
    for pred in (m, jnp.full((8, 7), 0.5)):  # a constant map: a fresh or collapsed model
        grad = jax.jit(jax.grad(lambda p: sl.acs_loss(p, peaked, **kw)))(pred)
        assert np.all(np.isfinite(grad))


def test_without_rescaling_it_is_the_symmetric_chi_square_of_the_frequencies():
    a = jax.random.uniform(jax.random.key(4), (9, 9))
    b = jax.random.uniform(jax.random.key(5), (9, 9)) ** 3
    p = _numpy_histogram(np.asarray(a).ravel(), 30, "gaussian", 2.0)
    q = _numpy_histogram(np.asarray(b).ravel(), 30, "gaussian", 2.0)
    expected = 2 * np.sum((p - q) ** 2 / (p + q + sl.EPS))
    np.testing.assert_allclose(sl.smooth_acs_loss(a, b, bins=30), expected, rtol=1e-4)
    # Frequencies, not rescaled: bounded by 4 even for disjoint value ranges.
    low, high = jnp.zeros((4, 4)), jnp.ones((4, 4))
    np.testing.assert_allclose(sl.smooth_acs_loss(low, high), 4.0, rtol=1e-4)
    # Maps as they are: a map and its half no longer score 0 (the paper's form is blind to it).
    assert float(sl.smooth_acs_loss(a, a / 2)) > 0.5 > float(sl.acs_loss(a, a / 2)) + 0.4


def test_the_smooth_form_descends_where_the_paper_form_stalls():
    # The diagnosis of issue 18 in small: a free 16×16 map (sigmoid of free pixels) fitted to a
    # peaked target's value histogram by Adam. The loss after 300 steps relative to its start.
    target = jnp.exp(-((jnp.arange(16.0)[:, None] - 5) ** 2 + (jnp.arange(16.0) - 9) ** 2) / 18)

    def fit(loss):
        opt = optax.adam(0.05)

        def step(carry, _):
            z, state = carry
            value, grad = jax.value_and_grad(lambda z: loss(jax.nn.sigmoid(z), target))(z)
            updates, state = opt.update(grad, state)
            return (optax.apply_updates(z, updates), state), value

        z0 = 0.1 * jax.random.normal(jax.random.key(6), target.shape)
        _, values = jax.lax.scan(step, (z0, opt.init(z0)), length=300)
        return values[-1] / values[0]

    paper = float(jax.jit(lambda: fit(sl.acs_loss))())
    smooth = float(jax.jit(lambda: fit(sl.smooth_acs_loss))())
    assert smooth < 0.05 and paper > 0.2, (paper, smooth)


def test_training_compares_smooth_acs_with_the_density_scaled_to_max_one():
    rng = np.random.default_rng(2)
    out = jnp.asarray(rng.uniform(0.0, 1.0, (6, 5)), jnp.float32)
    density = jnp.asarray(rng.uniform(0.0, 0.01, (6, 5)), jnp.float32)
    got = saliency_image_loss(out, density, density > 0.005, kind="unit",
                              weights={"acs_smooth": 1.0})  # fmt: skip
    want = sl.smooth_acs_loss(out, density / (jnp.max(density) + 1e-7))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert resolve_saliency_loss({"acs_smooth": 1.0}, "signed") == {"acs_smooth": 1.0}
    with pytest.raises(ValueError, match="acs_smooth"):
        resolve_saliency_loss({"kl": 1.0, "acs_smooth": 1.0}, "log_density")


def test_bad_options_are_named():
    m = jnp.ones((3, 3))
    with pytest.raises(ValueError, match="kernel"):
        sl.soft_histogram(m, 10, kernel="box")
    with pytest.raises(ValueError, match="bandwidth.*0.5"):
        sl.soft_histogram(m, 10, bandwidth=0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        sl.soft_histogram(m, 10, kernel="gaussian", bandwidth=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        sl.soft_histogram(m, 10, kernel="gaussian", bandwidth=float("nan"))
    with pytest.raises(ValueError, match="bandwidth"):
        sl.soft_histogram(m, 10, bandwidth="wide")
    with pytest.raises(ValueError, match="rescale"):
        sl.acs_loss(m, m, rescale="max")
    with pytest.raises(ValueError, match="same"):
        sl.smooth_acs_loss(m, jnp.ones((3, 4)))
