"""SSIM and MS-SSIM against a numpy implementation of the published formulas, their invariants and
bad input; the SSIM budget (a retraction) and penalty, and an attack that keeps its SSIM budget.

scikit-image is not installed here; the reference below is its algorithm for
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=L, channel_axis=-1)``: scipy's Gaussian filter truncated at 3.5σ (11 taps), the map
cropped by the 5-pixel radius (the valid positions), population statistics, mean per channel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim
from scipy.ndimage import gaussian_filter

from jaxadv.attacks._rule_library import rule_attack
from jaxadv.image._ssim import (
    MS_SSIM_WEIGHTS,
    gaussian_window,
    ms_ssim,
    ms_ssim_min_size,
    penalized,
    perceptual_distance,
    ssim,
    ssim_budget,
)


def _maps(a, b, data_range):
    """Per-position luminance×contrast-structure and contrast-structure maps (valid positions)."""
    f = lambda z: gaussian_filter(z, 1.5, truncate=3.5)[5:-5, 5:-5]  # noqa: E731
    mx, my = f(a), f(b)
    vx, vy, cov = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cs = (2 * cov + c2) / (vx + vy + c2)
    return (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs, cs


def ref_ssim(x, y, data_range=1.0):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return np.mean([_maps(x[..., c], y[..., c], data_range)[0].mean() for c in range(x.shape[-1])])


def _pool(z):
    z = np.pad(z, ((0, z.shape[0] % 2), (0, z.shape[1] % 2)), mode="symmetric")
    return z.reshape(z.shape[0] // 2, 2, z.shape[1] // 2, 2).mean(axis=(1, 3))


def ref_ms_ssim(x, y, weights=MS_SSIM_WEIGHTS, data_range=1.0):
    """Wang, Simoncelli & Bovik 2003: Π_{j<M} cs_j^{w_j} · ssim_M^{w_M}, per channel, averaged."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    per_channel = []
    for c in range(x.shape[-1]):
        a, b, value = x[..., c], y[..., c], 1.0
        for j, w in enumerate(weights):
            full, cs = _maps(a, b, data_range)
            term = full.mean() if j == len(weights) - 1 else cs.mean()
            value *= max(term, 0.0) ** w
            a, b = _pool(a), _pool(b)
        per_channel.append(value)
    return np.mean(per_channel)


def _pair(shape, noise, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    # A smooth component so that local variances differ across the image.
    x = 0.5 * x + 0.5 * gaussian_filter(x, (3, 3, 0)[: len(shape)])
    y = np.clip(x + noise * rng.normal(size=shape), 0, 1)
    return (x * scale).astype(np.float32), (y * scale).astype(np.float32)


@pytest.mark.parametrize(
    "shape, noise, scale",
    [((16, 19, 3), 0.1, 1.0), ((12, 11, 1), 0.3, 1.0), ((14, 14), 0.05, 255.0)],
)
def test_ssim_matches_the_published_formula(shape, noise, scale):
    x, y = _pair(shape, noise, scale=scale)
    want = ref_ssim(x[..., None] if x.ndim == 2 else x, y[..., None] if y.ndim == 2 else y, scale)
    np.testing.assert_allclose(float(ssim(x, y, data_range=scale)), want, rtol=1e-5, atol=1e-6)


def test_ssim_window_and_invariants():
    taps = gaussian_window()
    assert taps.shape == (11,) and abs(taps.sum() - 1) < 1e-6 and taps.argmax() == 5
    x, y = _pair((13, 15, 2), 0.2)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(x, y)) == pytest.approx(float(ssim(y, x)), abs=1e-6)
    assert float(ssim(x, y)) < 1.0
    grad = jax.grad(lambda z: ssim(jnp.asarray(x), z))
    g = grad(jnp.asarray(y))
    assert g.dtype == jnp.float32 and np.all(np.isfinite(g)) and np.any(g != 0)
    np.testing.assert_allclose(grad(jnp.asarray(x)), 0.0, atol=1e-5)  # SSIM is maximal at x


def test_ms_ssim_matches_the_published_formula_with_three_and_five_scales():
    x, y = _pair((41, 46, 2), 0.1, seed=1)  # 41 → 21 → 11: three scales fit exactly
    three = (0.2, 0.3, 0.5)
    np.testing.assert_allclose(
        float(ms_ssim(x, y, weights=three)), ref_ms_ssim(x, y, three), rtol=1e-5
    )
    x, y = _pair((161, 163, 1), 0.1, seed=2)
    np.testing.assert_allclose(float(ms_ssim(x, y)), ref_ms_ssim(x, y), rtol=1e-5)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_ms_ssim_weights_and_scales():
    assert MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    assert sum(MS_SSIM_WEIGHTS) == pytest.approx(1.0, abs=1e-3)
    assert [ms_ssim_min_size(n) for n in (1, 3, 5)] == [11, 41, 161]
    x, y = _pair((20, 20, 1), 0.1)
    # One scale of weight 1 is plain SSIM.
    np.testing.assert_allclose(float(ms_ssim(x, y, weights=(1.0,))), float(ssim(x, y)), rtol=1e-6)
    # Two scales: cs at full resolution times SSIM of the 2× average-pooled images.
    x, y = _pair((22, 24, 1), 0.2, seed=3)
    _, cs = _maps(x[..., 0].astype(np.float64), y[..., 0].astype(np.float64), 1.0)
    coarse = ref_ssim(_pool(x[..., 0])[..., None], _pool(y[..., 0])[..., None])
    want = cs.mean() ** 0.4 * coarse**0.6
    np.testing.assert_allclose(float(ms_ssim(x, y, weights=(0.4, 0.6))), want, rtol=1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: ssim(np.zeros((10, 12)), np.zeros((10, 12))),
            "at least 11×11 pixels; got `x` of 10×12",
        ),
        (lambda: ms_ssim(np.zeros((160, 200)), np.zeros((160, 200))), "at least 161×161"),
        (
            lambda: ms_ssim(np.zeros((40, 40)), np.zeros((40, 40)), weights=(0.3, 0.3, 0.4)),
            "MS-SSIM with 3 scales needs images of at least 41×41",
        ),
        (lambda: ssim(np.zeros((12, 12, 1)), np.zeros((12, 13, 1))), "same shape"),
        (lambda: ssim(np.zeros((2, 12, 12, 1)), np.zeros((2, 12, 12, 1))), "ONE image"),
        (lambda: ms_ssim(np.zeros((12, 12)), np.zeros((12, 12)), weights=()), "`weights`"),
        (lambda: perceptual_distance("lpips", 0.0, 0.0), "`kind` must be one of"),
        (lambda: ssim_budget(-0.1), "`eps` must be >= 0"),
        (lambda: ssim_budget(0.1, bounds=(1.0, 0.0)), "`bounds`"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_perceptual_distances_and_penalty():
    x0, x = _pair((12, 12, 1), 0.1)
    d = x - x0
    assert float(perceptual_distance("l1", x0, x)) == pytest.approx(np.abs(d).mean(), rel=1e-5)
    assert float(perceptual_distance("l2", x0, x)) == pytest.approx((d**2).mean(), rel=1e-5)
    assert float(perceptual_distance("linf", x0, x)) == pytest.approx(np.abs(d).max(), rel=1e-6)
    assert float(perceptual_distance("ssim", x0, x)) == pytest.approx(1 - ref_ssim(x0, x), abs=1e-5)
    loss = penalized(lambda x, out: jnp.sum(out), jnp.asarray(x0), "ssim", 2.0)
    got = loss(jnp.asarray(x), jnp.ones(3))
    assert float(got) == pytest.approx(3.0 + 2.0 * (1 - ref_ssim(x0, x)), abs=1e-5)


def test_ssim_budget_retracts_along_the_ray_and_keeps_feasible_points():
    x0, x = _pair((14, 14, 1), 0.3, seed=4)
    x0, delta = jnp.asarray(x0), jnp.asarray(x - x0)
    eps = 0.05
    budget = ssim_budget(eps, bisection_steps=14)
    assert 1 - float(ssim(x0, x0 + delta)) > eps  # the step leaves the budget …
    out = jax.jit(budget.project)(delta, x0)
    dissim = 1 - float(ssim(x0, x0 + out))
    assert dissim <= eps + 1e-6 and dissim > eps - 5e-3  # … and comes back to its edge,
    scale = float(jnp.sum(out * delta) / jnp.sum(delta * delta))
    np.testing.assert_allclose(out, scale * delta, atol=1e-6)  # along its own ray
    assert 0.0 < scale < 1.0
    inside = 0.2 * out
    np.testing.assert_array_equal(budget.project(inside, x0), inside)  # feasible: unchanged
    start = budget.project(budget.sample(jax.random.key(0), x0), x0)
    assert 1 - float(ssim(x0, x0 + start)) <= eps + 1e-6
    assert float(jnp.min(x0 + start)) >= 0.0 and float(jnp.max(x0 + start)) <= 1.0


def test_hot_cold_attack_keeps_its_ssim_budget_and_lowers_the_loss():
    victim = make_mlp_victim(shape=(14, 14, 1))  # the budget test's shape: SSIM compiled once
    images = np.random.default_rng(5).uniform(size=(2,) + victim.input_shape).astype(np.float32)
    logits = np.asarray(victim.batch(images))
    labels = logits.argmax(axis=-1).astype(np.int32)
    targets = ((labels + 1) % victim.num_classes).astype(np.int32)
    # The SSIM penalty is checked above (penalized); here the budget, to keep one compilation small.
    attack = rule_attack("hot_cold", targeted=True, steps=1, bisection_steps=6, penalty="none")
    hp = attack.hparams(eps=0.02, step_size=0.05)
    res = attack.batch(victim, hp, images, labels, jax.random.key(0), targets=targets)
    for x0, x_adv in zip(images, res.x_adv):
        assert 1 - float(ssim(x0, x_adv)) <= 0.02 + 1e-5
    rows = np.arange(2)
    clean = logits[rows, labels] - logits[rows, targets]  # z_label − z_target at x0
    np.testing.assert_allclose(res.trace[:, 0], clean, rtol=1e-5)  # the first iterate is x0
    assert np.all(res.loss < clean)  # the hot/cold objective went down
