"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): the statistics of PREDICT and CERTIFY
against scipy on fixed counts; the counts against the closed form of a linear victim; chunking;
abstention; the Gaussian-noise augmentation; bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_apply, make_linear_victim
from scipy import stats

from jaxadv import certify as smoothing
from jaxadv.models import Victim, with_input_noise
from jaxadv.models.saliency import SaliencyVictim
from jaxadv.training import gaussian_noise

ALPHA = 0.001
SIGMA = 0.5


# -- the statistics on fixed counts -------------------------------------------------------------


def test_predict_from_counts_is_the_binomial_test_of_the_top_two_counts():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60, (200, 4))
    counts[:20, 1] = counts[:20, 2] = 70  # tied top counts: p-value 1
    counts[20:30] = [0, 100, 0, 0]  # unanimous
    result = smoothing.predict_from_counts(counts, ALPHA)
    for i, row in enumerate(counts):
        order = np.argsort(-row, kind="stable")
        n_a, n_b = row[order[0]], row[order[1]]
        expected = stats.binomtest(int(n_a), int(n_a + n_b), 0.5).pvalue
        assert result.p_value[i] == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert result.abstain[i] == (expected > ALPHA)
        assert result.prediction[i] == (-1 if expected > ALPHA else order[0])
    assert result.abstain[:20].all() and not result.abstain[20:30].any()
    assert 0 < result.abstain.sum() < len(counts)  # both outcomes occur among the random rows
    prediction, abstain, *_ = result  # (class, abstain) first
    assert prediction.dtype == np.int32 and abstain.dtype == bool


def test_clopper_pearson_bound_is_the_beta_quantile_and_the_binomial_tail():
    n = np.array([1, 10, 100, 1000, 100_000, 100_000, 100_000])
    n_a = np.array([1, 7, 50, 999, 100_000, 60_000, 0])
    bound = smoothing.clopper_pearson_lower(n_a, n, ALPHA)
    for k, m, p in zip(n_a[:-1], n[:-1], bound[:-1]):
        assert p == pytest.approx(stats.beta.ppf(ALPHA, k, m - k + 1), rel=1e-12)
        # The definition: the p at which k or more successes have probability alpha.
        assert stats.binom.sf(k - 1, m, p) == pytest.approx(ALPHA, rel=1e-6)
    assert bound[-1] == 0.0
    assert bound[4] == pytest.approx(ALPHA ** (1 / 100_000), rel=1e-12)  # all n draws agree


def test_certify_from_counts_selects_by_the_selection_counts_and_bounds_the_estimate():
    selection = np.array([[90, 10, 0], [10, 90, 0], [0, 5, 95], [40, 60, 0]])
    counts = np.array([[9_900, 100, 0], [9_900, 100, 0], [0, 2_000, 8_000], [5_200, 4_800, 0]])
    result = smoothing.certify_from_counts(selection, counts, 0.25, ALPHA)
    n_a = np.array([9_900, 100, 8_000, 4_800])  # the estimation count of the SELECTED class
    p_lower = stats.beta.ppf(ALPHA, n_a, 10_000 - n_a + 1)
    np.testing.assert_allclose(result.p_lower, p_lower, rtol=1e-12)
    np.testing.assert_array_equal(result.abstain, p_lower < 0.5)
    np.testing.assert_array_equal(result.prediction, [0, -1, 2, -1])
    expected = np.where(p_lower < 0.5, 0.0, 0.25 * stats.norm.ppf(np.maximum(p_lower, 0.5)))
    np.testing.assert_allclose(result.radius, expected, rtol=1e-12)
    assert result.radius[0] > result.radius[2] > 0 and result.radius[1] == result.radius[3] == 0


def test_certified_accuracy_counts_correct_images_certified_at_each_radius():
    result = smoothing.certify_from_counts(
        np.array([[9, 1], [1, 9], [9, 1], [5, 5]]),
        np.array([[990, 10], [10, 990], [600, 400], [500, 500]]),
        1.0,
        ALPHA,
    )
    labels = np.array([0, 0, 0, 0])  # image 1 is certified, but wrongly
    radii = np.array([0.0, result.radius[2], result.radius[2] + 1e-9, result.radius[0], 10.0])
    curve = smoothing.certified_accuracy(result, labels, radii)
    np.testing.assert_allclose(curve, [0.5, 0.5, 0.25, 0.25, 0.0])
    assert smoothing.certified_accuracy(result, labels, 0.0) == 0.5


# -- the counts against the closed form of a linear victim ------------------------------------


def _two_class_problem():
    """A 2-class linear victim and images at chosen margins m = (w_0 - w_1)·x: the base class is
    0 iff m(x + η) > 0, so P(class 0) = Φ(m / (σ‖w_0 − w_1‖)) exactly, and the smoothed
    classifier's exact ℓ2 robust radius is |m| / ‖w_0 − w_1‖ = σ·Φ⁻¹(p_max)."""
    victim = make_linear_victim(dim=12, num_classes=2, seed=3)
    d = np.asarray(victim.variables["w"][0] - victim.variables["w"][1], np.float64)
    norm = np.linalg.norm(d)
    probabilities = np.array([0.99, 0.9, 0.7, 0.2, 0.5])  # the last one is a coin flip
    margins = SIGMA * norm * stats.norm.ppf(probabilities)
    images = (margins[:, None] * d[None] / norm**2).astype(np.float32)
    return victim, images, probabilities, np.abs(margins) / norm


@functools.cache
def _linear_certify():
    victim, images, _, _ = _two_class_problem()
    return smoothing.certify(victim, images, jax.random.key(12), sigma=SIGMA, n=20_000)


@functools.cache
def _linear_counts(batch_size):
    """1,000 draws per image: one image per network call (1,000), 3 chunks of 334 with 2 spare
    draws (384), 2 images per call with one padding image (2,500)."""
    victim, images, _, _ = _two_class_problem()
    key = jax.random.key(5)
    return np.asarray(
        smoothing.sample_counts(victim, images, key, sigma=SIGMA, n=1000, batch_size=batch_size)
    )


def test_linear_victim_counts_match_the_closed_form_probability():
    _, images, p, _ = _two_class_problem()
    counts = _linear_certify().counts  # the 20,000 estimation draws
    assert counts.dtype == np.int32 and counts.shape == (len(images), 2)
    np.testing.assert_array_equal(counts.sum(axis=1), 20_000)
    # CERTIFY counts the class selected by the first draws; here the top class (p != 1/2).
    top = np.where(p >= 0.5, 0, 1)
    np.testing.assert_array_equal(_linear_certify().selection_counts.argmax(axis=1)[:4], top[:4])
    error = np.sqrt(p * (1 - p) / 20_000)
    assert np.all(np.abs(counts[:, 0] / 20_000 - p) < 4.5 * error), (counts[:, 0] / 20_000, p)


def test_linear_victim_certified_radius_is_below_the_exact_one_within_clopper_pearson_slack():
    _, _, p, exact = _two_class_problem()
    result = _linear_certify()
    n = 20_000
    p_top = np.maximum(p, 1 - p)
    decided = p_top > 0.55
    np.testing.assert_array_equal(result.prediction[decided], np.where(p > 0.5, 0, 1)[decided])
    # Sound: never above the exact radius (the bound holds with probability 1 - alpha).
    assert np.all(result.radius <= exact + 1e-12), (result.radius, exact)
    # Tight: p_lower sits below p by the one-sided z_(1-alpha) standard errors of the bound plus
    # the estimate's own sampling error (4.5 standard errors).
    slack = (stats.norm.ppf(1 - ALPHA) + 4.5) * np.sqrt(p_top * (1 - p_top) / n)
    floor = SIGMA * stats.norm.ppf(np.clip(p_top - slack, 0.5, None))
    assert np.all(result.radius[decided] >= floor[decided]), (result.radius, floor)
    assert np.all(result.p_lower[decided] <= p_top[decided])
    # The coin flip (p = 1/2) abstains: prediction -1, radius 0, as data.
    assert result.abstain[-1] and result.prediction[-1] == -1 and result.radius[-1] == 0.0


def test_a_coin_flip_victim_abstains_in_predict():
    victim, images, p, _ = _two_class_problem()
    predicted = smoothing.predict(victim, images, jax.random.key(5), sigma=SIGMA, n=1000)
    # The last image has margin 0: every draw is a fair coin.
    assert predicted.abstain[-1] and predicted.prediction[-1] == -1
    assert predicted.p_value[-1] > ALPHA
    np.testing.assert_array_equal(predicted.prediction[:-1], [0, 0, 0, 1])  # clear majorities
    np.testing.assert_array_equal(predicted.counts, _linear_counts(1000))  # PREDICT's draws


# -- sampling: sums, chunking, keys ------------------------------------------------------------


def test_counts_sum_to_n_and_do_not_depend_on_the_chunking():
    runs = {bs: _linear_counts(bs) for bs in (1000, 384, 2500)}
    for counts in runs.values():
        np.testing.assert_array_equal(counts.sum(axis=1), 1000)
    # Draw j of image i has its own key, so the chunking changes no draw (up to rounding).
    np.testing.assert_array_equal(runs[384], runs[1000])
    np.testing.assert_array_equal(runs[2500], runs[1000])
    victim, images, _, _ = _two_class_problem()
    again = smoothing.sample_counts(victim, images, jax.random.key(5), sigma=SIGMA, n=1000)
    np.testing.assert_array_equal(again, runs[1000])  # same key, same counts
    raw = smoothing.sample_counts(victim, images, jax.random.PRNGKey(5), sigma=SIGMA, n=1000)
    np.testing.assert_array_equal(raw, runs[1000])  # the same key as raw key data
    other = smoothing.sample_counts(victim, images, jax.random.key(6), sigma=SIGMA, n=1000)
    assert not np.array_equal(other, runs[1000])
    # Image i's draws depend on its index, not on the other images.
    changed = images.copy()
    changed[2:] = images[0]
    first = smoothing.sample_counts(victim, changed, jax.random.key(5), sigma=SIGMA, n=1000,
                                    batch_size=2500)
    np.testing.assert_array_equal(first[:2], runs[1000][:2])
    assert not np.array_equal(first[2:], runs[1000][2:])


def test_smoothed_binds_the_victim_and_sigma():
    victim, images, _, _ = _two_class_problem()
    g = smoothing.Smoothed(victim, SIGMA)
    np.testing.assert_array_equal(g.predict(images, jax.random.key(5), n=1000).counts,
                                  _linear_counts(1000))
    np.testing.assert_array_equal(g.counts(images, jax.random.key(5), n=1000), _linear_counts(1000))


# -- Gaussian-noise augmentation ------------------------------------------------------------------


def test_gaussian_noise_adds_centred_noise_of_std_sigma_independent_of_the_images():
    augment = gaussian_noise(0.25)
    images = jax.random.uniform(jax.random.key(0), (64, 8, 8, 1))
    key = jax.random.key(3)
    noisy = jax.jit(augment)(key, images)
    assert noisy.shape == images.shape and noisy.dtype == images.dtype
    noise = np.asarray(noisy - images, np.float64).ravel()  # 4,096 draws
    se = 0.25 / np.sqrt(noise.size)
    assert abs(noise.mean()) < 4.5 * se
    assert abs(noise.std() - 0.25) < 4.5 * 0.25 / np.sqrt(2 * noise.size)
    assert stats.kstest(noise / 0.25, "norm").pvalue > 1e-3
    np.testing.assert_allclose(augment(key, jnp.zeros_like(images)), noisy - images, atol=1e-6)
    assert not np.allclose(augment(jax.random.key(4), images), noisy)
    assert gaussian_noise(0.25) == augment and hash(gaussian_noise(0.25)) == hash(augment)
    assert gaussian_noise(0.5) != augment


# -- bad input -----------------------------------------------------------------------------------


def _saliency_victim():
    return SaliencyVictim(
        variables={}, apply_fn=lambda v, x: x[..., 0], capture_fn=None, input_shape=(4, 4, 1),
        output="unit", map_shape=(4, 4),
    )


_V = make_linear_victim(dim=12, num_classes=2, seed=3)
_X = np.zeros((2, 12), np.float32)
_K = jax.random.key(0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: smoothing.certify(_V, _X, _K, sigma=0.0), "`sigma`"),
        (lambda: smoothing.certify(_V, _X, _K, sigma=-1.0), "`sigma`"),
        (lambda: smoothing.predict(_V, _X, _K, sigma=float("nan")), "`sigma`"),
        (lambda: smoothing.predict(_V, _X, _K, sigma=0.5, n=0), "`n` must be an integer >= 1"),
        (lambda: smoothing.certify(_V, _X, _K, sigma=0.5, n0=0), "`n0` must be an integer"),
        (lambda: smoothing.certify(_V, _X, _K, sigma=0.5, n0=10, n=5), "`n0`.*<= `n`"),
        (lambda: smoothing.certify(_V, _X, _K, sigma=0.5, n=0), "`n` must be an integer"),
        (lambda: smoothing.predict(_V, _X, _K, sigma=0.5, alpha=0.0), r"`alpha`.*\(0, 1\)"),
        (lambda: smoothing.certify(_V, _X, _K, sigma=0.5, alpha=1.0), r"`alpha`.*\(0, 1\)"),
        (lambda: smoothing.predict(_V, _X, _K, sigma=0.5, alpha=-0.1), "`alpha`"),
        (lambda: smoothing.predict(_V, _X, _K, sigma=0.5, batch_size=0), "`batch_size`"),
        (lambda: smoothing.sample_counts(_V, _X, _K, sigma=0.5, n=10, batch_size=1.5),
         "`batch_size`"),
        (lambda: smoothing.sample_counts(_V, _X[0], _K, sigma=0.5, n=10), "`images` must be a "),
        (lambda: smoothing.certify(_V, np.zeros((2, 11), np.float32), _K, sigma=0.5), "`images`"),
        (lambda: smoothing.certify(_V, _X + 20.0, _K, sigma=0.5), "`images` must lie within"),
        (lambda: smoothing.predict(_V, _X[:0], _K, sigma=0.5), "`images` must hold at least"),
        (lambda: smoothing.predict(_V, _X, 0, sigma=0.5), "`key`"),
        (lambda: smoothing.predict(with_input_noise(_V, 0.5), _X, _K, sigma=0.5),
         "RandomizedVictim"),
        (lambda: smoothing.predict(_saliency_victim(), np.zeros((1, 4, 4, 1)), _K, sigma=0.5),
         "`victim` must be a classifier with logits.*saliency maps"),
        (lambda: smoothing.Smoothed(_V.replace(num_classes=3), 0.5), r"logits \[batch, 3\]"),
        (lambda: smoothing.Smoothed(_V, 0.0), "`sigma`"),
        (lambda: smoothing.predict_from_counts(np.zeros((2, 3), np.int32), 0.01), "`counts`"),
        (lambda: smoothing.certify_from_counts(np.ones((2, 3), int), np.ones((3, 3), int), 1.0,
                                               0.01), "same shape"),
        (lambda: smoothing.certified_accuracy(
            smoothing.certify_from_counts(np.ones((2, 2), int), np.ones((2, 2), int), 1.0, 0.1),
            np.zeros(3, int), [0.0]), "`labels` must have shape"),
        (lambda: gaussian_noise(0.0), "`sigma`"),
        (lambda: gaussian_noise(-0.1), "`sigma`"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_victim_object_that_is_not_a_victim_is_refused():
    with pytest.raises(ValueError, match="`victim` must be a classifier with logits"):
        smoothing.predict(linear_apply, _X, _K, sigma=0.5)
    assert isinstance(_V, Victim)
