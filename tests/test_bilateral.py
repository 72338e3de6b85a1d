"""Bilateral filter and adversarial magnification: brute-force references, limits, invariants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.image._bilateral import bilateral_filter, default_radius, guided_bilateral_filter
from jaxadv.image._magnify import magnified_to_unit, magnify


def reference_filter(x, guide, sigma_domain, sigma_range, radius):
    """Brute force in float64: a double loop over pixels and over the window cut at the border."""
    x, guide = np.asarray(x, np.float64), np.asarray(guide, np.float64)
    h, w, _ = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            num, den = np.zeros(x.shape[2]), 0.0
            for k in range(max(0, i - radius), min(h, i + radius + 1)):
                for m in range(max(0, j - radius), min(w, j + radius + 1)):
                    spatial = ((k - i) ** 2 + (m - j) ** 2) / (2 * sigma_domain**2)
                    photometric = np.sum((guide[k, m] - guide[i, j]) ** 2) / (2 * sigma_range**2)
                    weight = np.exp(-spatial - photometric)
                    num += weight * x[k, m]
                    den += weight
            out[i, j] = num / den
    return out


def reference_gaussian_blur(x, sigma, radius):
    """Separable truncated Gaussian, renormalised over the in-image part of the window."""
    x = np.asarray(x, np.float64)
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))

    def blur(a, axis):
        # Full convolution, then the centred part (mode="same" breaks when taps outgrow v).
        conv = lambda v: np.convolve(v, taps, mode="full")[radius : radius + len(v)]  # noqa: E731
        return np.apply_along_axis(conv, axis, a)

    ones = np.ones(x.shape[:2] + (1,))
    return blur(blur(x, 0), 1) / blur(blur(ones, 0), 1)


SHAPE = (6, 6, 3)  # one shape and radii 1 (unrolled) and 3 (scanned): few compilations


def _image(shape=SHAPE, seed=0):
    # Test-side arrays and arithmetic stay in numpy: every eager jnp op would compile a kernel.
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("radius", [1, 3])
def test_matches_brute_force(radius):
    x = _image()
    got = bilateral_filter(x, 1.5, 0.3, radius=radius)
    want = reference_filter(x, x, 1.5, 0.3, radius)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_guided_matches_brute_force_with_other_channel_count():
    x = _image(seed=1)
    guide = _image((6, 6, 1), seed=2)
    got = guided_bilateral_filter(x, guide, 1.0, 0.2, radius=3)
    want = reference_filter(x, guide, 1.0, 0.2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The guide matters: filtering with x's own range kernel gives another result.
    assert not np.allclose(got, reference_filter(x, x, 1.0, 0.2, 3), atol=1e-3)


def test_guided_with_itself_equals_unguided():
    x = _image(seed=3)
    np.testing.assert_allclose(
        guided_bilateral_filter(x, x, 2.0, 0.1, radius=3),
        bilateral_filter(x, 2.0, 0.1, radius=3),
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("radius", [1, 3])
def test_constant_image_unchanged(radius):
    x = np.full(SHAPE, 0.37, np.float32)
    np.testing.assert_array_equal(bilateral_filter(x, 2.0, 0.1, radius=radius), x)


def test_huge_range_sigma_is_gaussian_blur():
    x = _image(seed=4)
    got = bilateral_filter(x, 1.3, 1e6, radius=3)
    np.testing.assert_allclose(got, reference_gaussian_blur(x, 1.3, 3), rtol=1e-5, atol=1e-6)


def test_tiny_domain_sigma_is_identity():
    x = _image(seed=5)
    np.testing.assert_allclose(bilateral_filter(x, 1e-3, 0.5, radius=3), x, atol=1e-7)


def _step():
    x = np.zeros(SHAPE, np.float32)
    x[:, 3:] = 1.0
    return x


def test_step_edge_is_preserved_for_small_range_sigma():
    x = _step()
    np.testing.assert_allclose(bilateral_filter(x, 2.0, 0.05, radius=3), x, atol=1e-6)
    # A wide range kernel blurs the same step: the check above can fail.
    blurred = bilateral_filter(x, 2.0, 10.0, radius=3)
    assert float(blurred[0, 2, 0]) > 0.1 and float(blurred[0, 3, 0]) < 0.9


def test_noise_is_smoothed_within_regions_but_not_across_the_edge():
    noise = 0.02 * np.random.default_rng(6).normal(size=SHAPE).astype(np.float32)
    step = _step()
    out = np.asarray(bilateral_filter(step + noise, 1.5, 0.1, radius=3))
    assert np.std(out - step) < 0.5 * np.std(noise)
    assert out[:, 3:].min() > 0.9 and out[:, :3].max() < 0.1


def test_default_radius():
    assert default_radius(0.5) == 1
    assert default_radius(5.0) == 10
    assert default_radius(0.1) == 1
    x = _image(seed=7)
    np.testing.assert_allclose(
        bilateral_filter(x, 1.2, 0.3), reference_filter(x, x, 1.2, 0.3, 3), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("radius", [1, 3])
def test_jit_equals_no_jit(radius):
    x = _image(seed=8)
    eager = bilateral_filter(x, 1.0, 0.2, radius=radius)
    jitted = jax.jit(lambda x, sd, sr: bilateral_filter(x, sd, sr, radius=radius))(x, 1.0, 0.2)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)


def test_vmap_over_images_and_sigmas_equals_loop():
    xs = _image((3,) + SHAPE, seed=9)
    got = jax.vmap(lambda x: bilateral_filter(x, 1.0, 0.2, radius=3))(xs)
    want = np.stack([bilateral_filter(x, 1.0, 0.2, radius=3) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)

    sigmas = np.array([0.05, 0.2, 1.0], np.float32)
    got = jax.vmap(lambda s: bilateral_filter(xs[0], 1.0, s, radius=3))(sigmas)
    want = np.stack([bilateral_filter(xs[0], 1.0, float(s), radius=3) for s in sigmas])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got[0], got[2], atol=1e-3)


@pytest.mark.parametrize("radius", [1, 3])
def test_gradients_match_finite_differences(radius):
    rng = np.random.default_rng(radius)
    weights = rng.normal(size=(3, 4, 2))
    x = rng.uniform(size=(3, 4, 2))
    guide = rng.uniform(size=(3, 4, 1))
    # A flat patch in both: zero differences must not give NaN gradients.
    x[:2, :2], guide[:2, :2] = x[0, 0], guide[0, 0]
    args = (
        x,
        guide,
        np.float64(0.9),
        np.float64(0.3),
    )
    with jax.enable_x64(True):
        # In float64 a central difference with h = 1e-6 is accurate to ~1e-9.
        def loss(x, guide, sd, sr):
            return jnp.sum(weights * guided_bilateral_filter(x, guide, sd, sr, radius=radius))

        # One compiled function gives both the gradient and the values for the differences.
        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
        _, grads = value_and_grad(*args)
        for g in grads:
            assert g.dtype == jnp.float64 and np.all(np.isfinite(g))
        assert np.any(np.abs(grads[1]) > 1e-3)  # the guide really receives a gradient
        h = 1e-6
        for i, (arg, g) in enumerate(zip(args, grads)):
            direction = rng.normal(size=np.shape(arg))
            plus, minus = list(args), list(args)
            plus[i] = arg + h * direction
            minus[i] = arg - h * direction
            fd = (value_and_grad(*plus)[0] - value_and_grad(*minus)[0]) / (2 * h)
            np.testing.assert_allclose(np.sum(g * direction), fd, rtol=1e-6, atol=1e-9)


# -- magnification ---------------------------------------------------------------------------------


def reference_magnify(x, beta, sigma_domain, sigma_range, radius, eps):
    x = np.asarray(x, np.float64)
    mu = reference_filter(x, x, sigma_domain, sigma_range, radius)
    sigma_loc = np.sqrt(reference_filter((x - mu) ** 2, x, sigma_domain, sigma_range, radius))
    sigma_glob = x.std(axis=(0, 1), keepdims=True)
    return (x - mu) / (beta * sigma_loc + (1 - beta) * sigma_glob + eps)


@pytest.mark.parametrize("beta", [0.0, 0.8, 1.0])
def test_magnify_matches_reference(beta):
    x = _image(seed=14)
    got = magnify(x, beta=beta, sigma_domain=1.5, sigma_range=0.4, radius=3, eps=1e-6)
    want = reference_magnify(x, beta, 1.5, 0.4, 3, 1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_magnify_standardises_in_the_global_limit():
    # beta = 0 and a filter that averages the whole image with equal weights (huge σ's, window
    # covering the image): mu is the channel mean, so Eq. 22 is (x - mean) / std per channel.
    x = _image(seed=15) * np.float32([1.0, 0.1, 3.0]) + np.float32([0.0, 2.0, -1.0])
    m = np.asarray(magnify(x, beta=0.0, sigma_domain=1e4, sigma_range=1e4, radius=5, eps=0.0))
    np.testing.assert_allclose(m.mean(axis=(0, 1)), 0.0, atol=1e-5)
    np.testing.assert_allclose(m.std(axis=(0, 1)), 1.0, rtol=1e-4)


def test_magnify_constant_plus_noise_has_predicted_global_scale():
    # beta = 0, x = c + n with i.i.d. noise and a range kernel wide enough to be flat: away from
    # the border mu = c + sum_q w_q n_q (w: normalised domain weights), so x - mu has variance
    # var(n) * ((1 - w_0)^2 + sum_{q != 0} w_q^2) while sigma_glob = std(n). Hence the global std
    # of mag(x) is sqrt((1 - w_0)^2 + sum_{q != 0} w_q^2), independent of c and of var(n).
    sigma_d, radius = 1.0, 3
    offsets = np.arange(-radius, radius + 1)
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma_d**2))
    w = w / w.sum()
    w0 = w[radius, radius]
    predicted = np.sqrt((1 - w0) ** 2 + np.sum(w**2) - w0**2)

    noise = np.random.default_rng(16).normal(size=(96, 96, 1)).astype(np.float32)
    for c, scale in [(0.5, 0.01), (3.0, 0.2)]:
        m = magnify(
            c + scale * noise,
            beta=0.0,
            sigma_domain=sigma_d,
            sigma_range=1e3 * scale,
            radius=radius,
        )
        interior = np.asarray(m[radius:-radius, radius:-radius])
        np.testing.assert_allclose(interior.std(), predicted, rtol=0.03)
        np.testing.assert_allclose(interior.mean(), 0.0, atol=0.03)


def test_magnify_is_invariant_to_affine_intensity_changes():
    # Eq. 22 is a ratio of deviations: mag(a x + b) with sigma_r scaled by a equals mag(x).
    x = _image(seed=17)
    base = magnify(x, beta=0.8, sigma_domain=1.0, sigma_range=0.3, radius=3, eps=0.0)
    scaled = magnify(4.0 * x - 2.0, beta=0.8, sigma_domain=1.0, sigma_range=1.2, radius=3, eps=0.0)
    np.testing.assert_allclose(scaled, base, rtol=1e-4, atol=1e-4)


def test_magnify_constant_image_is_zero_and_finite():
    m = magnify(np.full(SHAPE, 0.4, np.float32), radius=3)
    np.testing.assert_array_equal(m, 0.0)


def test_magnify_defaults_are_figure_1():
    x = _image((12, 12, 3), seed=18)
    np.testing.assert_array_equal(
        magnify(x), magnify(x, beta=0.8, sigma_domain=5.0, sigma_range=5.0 / 255.0, radius=10)
    )


def test_magnify_jit_and_vmap_over_beta():
    x = _image(seed=19)
    betas = np.array([0.0, 0.5, 1.0], np.float32)
    got = jax.jit(jax.vmap(lambda b: magnify(x, beta=b, radius=3)))(betas)
    want = np.stack([magnify(x, beta=float(b), radius=3) for b in betas])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_magnified_to_unit():
    m = np.array([-10.0, -3.0, 0.0, 1.5, 3.0, 10.0], np.float32)
    np.testing.assert_allclose(magnified_to_unit(m), [0.0, 0.0, 0.5, 0.75, 1.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(magnified_to_unit(m, clip=6.0)[3], 0.625, atol=1e-7)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(sigma_domain=0.0), "sigma_domain"),
        (dict(sigma_domain=-1.0), "sigma_domain"),
        (dict(sigma_range=0.0), "sigma_range"),
        (dict(sigma_range=float("nan")), "sigma_range"),
        (dict(sigma_range=np.array([0.1, 0.2])), "sigma_range"),
        (dict(radius=0), "radius"),
        (dict(radius=1.5), "radius"),
    ],
)
def test_bad_filter_arguments(kwargs, name):
    args = dict(sigma_domain=1.0, sigma_range=0.2, radius=2) | kwargs
    x = _image()
    with pytest.raises(ValueError, match=f"`{name}`"):
        bilateral_filter(x, args["sigma_domain"], args["sigma_range"], radius=args["radius"])


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4, 1)])
def test_bad_image_rank(shape):
    with pytest.raises(ValueError, match=r"`x` must be ONE image of rank 3.*got shape"):
        bilateral_filter(np.zeros(shape), 1.0, 0.2)
    with pytest.raises(ValueError, match="`guide`"):
        guided_bilateral_filter(np.zeros((4, 4, 1)), np.zeros(shape), 1.0, 0.2)


def test_bad_guide_shape():
    with pytest.raises(ValueError, match=r"`guide` must have the spatial shape.*\(4, 5\)"):
        guided_bilateral_filter(np.zeros((4, 5, 3)), np.zeros((5, 4, 3)), 1.0, 0.2)


def test_nan_image_rejected():
    with pytest.raises(ValueError, match="`x` must be finite"):
        bilateral_filter(np.full((3, 3, 1), np.nan), 1.0, 0.2)


def test_traced_domain_sigma_needs_a_radius():
    with pytest.raises(ValueError, match="`radius` must be given"):
        jax.jit(lambda s: bilateral_filter(np.zeros((4, 4, 1)), s, 0.2))(1.0)


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan")])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=r"`beta` must be a scalar in \[0, 1\]"):
        magnify(_image(), beta=beta, radius=1)


def test_bad_magnify_and_display_arguments():
    with pytest.raises(ValueError, match="`eps`"):
        magnify(_image(), eps=-1.0, radius=1)
    with pytest.raises(ValueError, match="`sigma_range`"):
        magnify(_image(), sigma_range=-5.0, radius=1)
    with pytest.raises(ValueError, match="`clip`"):
        magnified_to_unit(np.zeros(3), clip=0.0)
