"""Saliency benchmark metrics against hand-computed cases, brute force and published properties.

Hand values follow the reference code line by line (cvzoya/saliency code_forMetrics for
variant="mit", pysaliency 0.2.22 for variant="pysaliency"); the comments show the arithmetic.
Shapes are kept few and tiny so that each jitted metric compiles a handful of times.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jaxadv.metrics import saliency as sal

EPS = 2.220446049250313e-16
RAMP = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)  # already min-max normalised
# MATLAB imresize([0 1], [1 4]) by hand: output x samples u = x/2 + 1/4 with Keys weights
# c(1.75) = -0.0234375, c(0.75) = 0.2265625, c(0.25) = 0.8671875, c(1.25) = -0.0703125 on the
# symmetrically padded input [1 0 | 0 1 | 1 0] -> [c(1.75) + c(1.25), c(0.75) + c(1.75), ...].
UPSAMPLED_01 = np.array([-0.09375, 0.203125, 0.796875, 1.09375])


def _fix(*flat_counts):
    """A 1 x n count map from per-pixel counts."""
    return np.array([flat_counts], np.int32)


def _close(actual, expected, **kw):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, **kw)


SETTINGS = settings(max_examples=20, deadline=None)


# --------------------------------------------------------------------------------- ground truth


def test_fixation_map_counts_duplicates_and_drops_padding_under_jit():
    counts = sal.fixation_map(np.array([0, 2, 2, 4]), np.array([0, 1, 1, 0]), (2, 5))
    assert counts.dtype == jnp.int32
    np.testing.assert_array_equal(counts, [[1, 0, 0, 0, 1], [0, 0, 2, 0, 0]])
    padded = jax.jit(lambda x, y: sal.fixation_map(x, y, (2, 5)))(
        jnp.array([1, -1, 7]), jnp.array([1, -1, 0])
    )
    np.testing.assert_array_equal(padded, [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"`xs` must lie in \[0, 4\].*got values in \[0, 5\]"):
        sal.fixation_map(np.array([0, 5]), np.array([0, 0]), (2, 5))
    with pytest.raises(ValueError, match="`xs` must be a 1-D array of integer"):
        sal.fixation_map(np.array([0.5]), np.array([0]), (2, 5))


def test_matlab_resize_by_hand():
    _close(sal.resize_map([[0.0, 1.0]], (1, 4)), UPSAMPLED_01[None], atol=1e-7)
    # Shrinking 4 -> 2 widens the kernel to 8 px (antialiasing): first output pixel's weights on
    # inputs 1..4 are 0.5*c(d/2) summed over the mirrored taps: 0.546875, 0.3984375, 0.1015625,
    # -0.046875; on the ramp 0..3 that is 0.4609375, and the mirror image 3 - 0.4609375.
    _close(sal.resize_map([[0.0, 1.0, 2.0, 3.0]], (1, 2)), [[0.4609375, 2.5390625]], atol=1e-6)
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(sal.resize_map(x, (3, 4)), x)  # same size: identity
    _close(
        sal.resize_map(np.full((3, 4), 0.3, np.float32), (5, 2)), np.full((5, 2), 0.3), rtol=1e-6
    )


def test_antonio_gaussian_is_the_published_gaussian():
    # fc -> spatial sigma = n sqrt(ln 2) / (sqrt(2) pi fc); the 40 x 50 grid pads to n = 64.
    fc = 4.0
    sigma = 64 * math.sqrt(math.log(2)) / (math.sqrt(2) * math.pi * fc)
    f = np.zeros((40, 50), np.float32)
    f[20, 30] = 1
    yy, xx = np.mgrid[:40, :50]
    expected = np.exp(-((yy - 20) ** 2 + (xx - 30) ** 2) / (2 * sigma**2))
    _close(sal.fixation_density(f, fc=fc), expected / expected.sum(), atol=2e-7)


def test_antonio_gaussian_against_the_direct_circular_sum():
    # Brute force on the same 40 x 50 grid (n = 64): kernel
    # k(d) = (1/n^2) sum_f exp(-|f|^2 / s^2) cos(2 pi f.d / n) on the n x n canvas (no FFT),
    # summed over the fixations (counts weigh), cropped. fc = 2 blurs wide (sigma ~ 6 px), so
    # mass wraps around the padded canvas and the crop cuts it.
    f = np.zeros((40, 50), np.float32)
    f[0, 3], f[39, 48], f[20, 25] = 1, 2, 1
    n, s2 = 64, 2.0**2 / math.log(2)
    freq = np.fft.fftfreq(n) * n
    transfer = np.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / s2)
    phase = 2 * np.pi * np.outer(freq, np.arange(n)) / n  # [f, d]
    kernel = np.einsum("ab,ai,bj->ij", transfer, np.cos(phase), np.cos(phase)) - np.einsum(
        "ab,ai,bj->ij", transfer, np.sin(phase), np.sin(phase)
    )
    kernel /= n * n
    out = np.zeros((40, 50))
    for (y, x), c in np.ndenumerate(f):
        if c:
            out += c * kernel[(np.arange(40)[:, None] - y) % n, (np.arange(50)[None] - x) % n]
    _close(sal.fixation_density(f, fc=2.0), out / out.sum(), atol=1e-7)


def test_spatial_gaussian_matches_scipy_reflect():
    from scipy.ndimage import gaussian_filter

    f = np.zeros((6, 9), np.float32)
    f[0, 1], f[5, 8], f[3, 3] = 1, 1, 3
    expected = gaussian_filter(f.astype(np.float64), 1.3, mode="reflect")
    _close(sal.fixation_density(f, sigma=1.3), expected / expected.sum(), atol=1e-7)
    assert float(jnp.sum(sal.fixation_density(np.zeros((6, 9)), sigma=1.3))) == 0.0


# ------------------------------------------------------------------------------------- AUCs


def test_auc_judd_without_ties():
    fix = _fix(0, 0, 1, 0, 1)  # fixated values 0.5 and 1.0; negatives 0, 0.25, 0.75
    # MIT: thresholds 1.0, 0.5 -> (fp, tp) = (0, 1/2), ((3 - 2)/3, 1); area 1/4 + 2/3.
    _close(sal.auc_judd(RAMP, fix), 11 / 12, rtol=1e-6)
    _close(
        sal.auc_judd(RAMP, fix, variant="pysaliency", thresholds="fixations"), 11 / 12, rtol=1e-6
    )
    # Exact: 1.0 beats all 3 negatives, 0.5 beats 2: 5/6 (0.75 gets no half credit).
    _close(sal.auc_judd(RAMP, fix, variant="pysaliency"), 5 / 6, rtol=1e-6)


def test_auc_judd_with_ties_differs_per_convention():
    s = np.array([[0.5, 0.5, 1.0, 0.0, 0.5]], np.float32)
    fix = _fix(1, 1, 0, 0, 0)  # both fixations on 0.5; negatives 1.0, 0.0, 0.5
    # MIT: thresholds 0.5, 0.5; #{S >= .5} = 4 -> (fp, tp) = (3/3, 1/2), (2/3, 1): the curve
    # steps back; trapz = 1/4 - 1/4 + 1/3.
    _close(sal.auc_judd(s, fix), 1 / 3, rtol=1e-6)
    # pysaliency thresholds='fixations': one point (2/3, 1): area 1/3 + 1/3.
    _close(sal.auc_judd(s, fix, variant="pysaliency", thresholds="fixations"), 2 / 3, rtol=1e-6)
    # Exact: each fixation beats 0.0, ties 0.5, loses to 1.0 -> 1.5 / 3.
    _close(sal.auc_judd(s, fix, variant="pysaliency"), 0.5, rtol=1e-6)
    # Jitter draws (unit, scaled by 1e-7) break the ties: 0.5 + 3e-7 > 0.5 + 2e-7 > 0.5 + 1e-7.
    # Thresholds at pixel 0 (#above 2) and pixel 1 (#above 4): (1/3, 1/2), (2/3, 1) -> 2/3.
    jitter = np.array([[3.0, 1.0, 0.0, 0.0, 2.0]], np.float32)
    _close(sal.auc_judd(s, fix, jitter=jitter), 2 / 3, rtol=1e-6)


def test_auc_judd_duplicates_and_constant_map():
    fix = _fix(0, 0, 2, 0, 1)  # pixel 0.5 fixated twice
    _close(sal.auc_judd(RAMP, fix), 11 / 12, rtol=1e-6)  # MIT: the pixel counts once
    # Exact: (2 * 2 + 3) / (3 fixations * 3 negatives).
    _close(sal.auc_judd(RAMP, fix, variant="pysaliency"), 7 / 9, rtol=1e-6)
    # Fixation thresholds: (0, 1/3) at 1.0, (1/3, 1) at 0.5 -> 2/9 + 2/3.
    _close(sal.auc_judd(RAMP, fix, variant="pysaliency", thresholds="fixations"), 8 / 9, rtol=1e-6)
    flat = np.full((1, 5), 0.3, np.float32)
    assert np.isnan(sal.auc_judd(flat, fix))  # MIT without jitter: min-max is 0/0
    _close(sal.auc_judd(flat, fix, variant="pysaliency"), 0.5)
    _close(sal.auc_judd(flat, fix, variant="pysaliency", thresholds="fixations"), 0.5)


def test_auc_judd_key_is_reproducible_and_equals_its_draws():
    s = np.array([[0.5, 0.5, 1.0, 0.0, 0.5]], np.float32)
    fix = _fix(1, 1, 0, 0, 0)
    key = jax.random.key(3)
    a, b = sal.auc_judd(s, fix, key=key), sal.auc_judd(s, fix, key=key)
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    draws = jax.random.uniform(key, (1, 5))
    assert float(sal.auc_judd(s, fix, jitter=draws)) == float(a)


def test_auc_borji_by_hand_with_explicit_samples():
    fix = _fix(0, 0, 1, 0, 1)  # positives 0.5 and 1.0
    # Thresholds 1.0, 0.9, ..., 0.0. tp: 1/2 above 0.5, 1 from 0.5 down.
    # Split 1, negatives pixels 0 and 3 (values 0, 0.75): fp 0 down to 0.8, 1/2 from 0.7 to 0.1,
    # 1 at 0 -> area 0.5 * 0.5 + 0.5 * 1 = 0.75. Split 2, pixel 1 twice (0.25): fp 0 down to
    # 0.3, 1 from 0.2 -> area 1. Mean 0.875.
    samples = np.array([[0, 3], [1, 1]])
    _close(sal.auc_borji(RAMP, fix, samples=samples), 0.875, rtol=1e-6)
    # pysaliency: every pixel a negative, exact: 0.5 -> 2 + 1/2, 1.0 -> 4 + 1/2; 7 / (2 * 5).
    _close(sal.auc_borji(RAMP, fix, variant="pysaliency"), 0.7, rtol=1e-6)
    assert np.isnan(sal.auc_borji(np.full((1, 5), 2.0), fix, samples=samples))


def test_auc_borji_key_is_reproducible_and_equals_its_draws():
    fix = _fix(0, 0, 1, 0, 1)  # same shapes as the hand case: the samples path is compiled
    s = np.array([[0.1, 0.7, 0.35, 0.2, 0.95]], np.float32)
    key = jax.random.key(7)
    a = sal.auc_borji(s, fix, key=key, splits=2)
    assert np.asarray(a).tobytes() == np.asarray(sal.auc_borji(s, fix, key=key, splits=2)).tobytes()
    # Documented derivation: split i draws randint(fold_in(key, i), (h, w), 0, h*w), flattened,
    # and keeps the first Nf.
    draws = np.stack(
        [jax.random.randint(jax.random.fold_in(key, i), (1, 5), 0, 5)[0, :2] for i in range(2)]
    )
    _close(sal.auc_borji(s, fix, samples=draws), float(a), rtol=1e-7)


def test_auc_shuffled_by_hand():
    fix = _fix(0, 0, 1, 0, 1)  # positives 0.5 and 1.0
    other = _fix(1, 1, 0, 3, 0)  # other images fixated values 0, 0.25 and 0.75 (three times)
    # MIT: split 1 (pixels 0 and 3) is split 1 of the Borji case above: 0.75. Split 2 (pixels 1
    # and 3: 0.25, 0.75): fp 0 down to 0.8, 1/2 from 0.7 to 0.3, 1 from 0.2 -> 0.75 as well.
    samples = np.array([[0, 3], [1, 3]])
    _close(sal.auc_shuffled(RAMP, fix, other, samples=samples), 0.75, rtol=1e-6)
    # pysaliency: negatives weigh by count (5 of them): 0.5 beats 2, 1.0 beats 5 -> 7 / 10.
    _close(sal.auc_shuffled(RAMP, fix, other, variant="pysaliency"), 0.7, rtol=1e-6)
    with pytest.raises(ValueError, match=r"`samples` must index pixels where `other_fixations`"):
        sal.auc_shuffled(RAMP, fix, other, samples=np.array([[0, 2]]))


def test_auc_shuffled_key_is_reproducible_and_equals_its_draws():
    fix = _fix(0, 1, 0, 0, 1)
    other = _fix(2, 0, 1, 1, 0)  # Noth = min(2, 3): a random 2 of the 3 other-fixated pixels
    s = np.array([[0.1, 0.7, 0.35, 0.2, 0.95]], np.float32)
    key = jax.random.key(11)
    a = sal.auc_shuffled(s, fix, other, key=key, splits=2)
    b = sal.auc_shuffled(s, fix, other, key=key, splits=2)
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    rows = []
    for i in range(2):
        u = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (1, 5)))[0]
        rows.append(np.argsort(np.where(other[0] > 0, u, 2.0), kind="stable")[:2])
    _close(sal.auc_shuffled(s, fix, other, samples=np.stack(rows)), float(a), rtol=1e-7)


def _brute_force_auc(values, pos_counts, neg_counts):
    """Mann–Whitney over every (positive, negative) pair, ties 1/2, with multiplicities."""
    wins = total = 0.0
    for p, cp in zip(values, pos_counts):
        for n, cn in zip(values, neg_counts):
            wins += cp * cn * (1.0 if p > n else 0.5 if p == n else 0.0)
            total += cp * cn
    return wins / total


def _judd_reference(values, fixated):
    """AUC_Judd.m's loop, verbatim in Python (no normalisation: values already in [0, 1])."""
    thresholds = sorted(values[fixated], reverse=True)
    nf, n = len(thresholds), len(values)
    tp, fp = [0.0], [0.0]
    for i, t in enumerate(thresholds, start=1):
        tp.append(i / nf)
        fp.append((np.sum(values >= t) - i) / (n - nf))
    tp.append(1.0)
    fp.append(1.0)
    return float(np.sum(np.diff(fp) * (np.array(tp[1:]) + np.array(tp[:-1])) / 2))


# Property tests run on the 1 x 5 grid of the hand cases (one compilation per metric and variant).


@SETTINGS
@given(
    st.lists(st.integers(0, 3), min_size=5, max_size=5),
    st.lists(st.integers(0, 2), min_size=5, max_size=5),
    st.lists(st.integers(0, 3), min_size=5, max_size=5),
)
def test_exact_aucs_equal_brute_force_pairs(levels, counts, other):
    values = np.array(levels, np.float32)  # few levels: many ties
    counts, other = np.array(counts, np.int32), np.array(other, np.int32)
    assume(counts.any() and not counts.all() and other.any())
    s, f, o = values[None], counts[None], other[None]
    judd = sal.auc_judd(s, f, variant="pysaliency")
    _close(judd, _brute_force_auc(values, counts, counts == 0), rtol=1e-6)
    borji = sal.auc_borji(s, f, variant="pysaliency")
    _close(borji, _brute_force_auc(values, counts, np.ones(5)), rtol=1e-6)
    shuffled = sal.auc_shuffled(s, f, o, variant="pysaliency")
    _close(shuffled, _brute_force_auc(values, counts, other), rtol=1e-6)


@SETTINGS
@given(st.permutations(range(5)), st.sets(st.integers(0, 4), min_size=1, max_size=4))
def test_mit_judd_matches_its_loop_and_pysaliency_without_ties(order, fixated_at):
    values = np.array(order, np.float32) / 4  # distinct, min 0, max 1: min-max is the identity
    fixated = np.isin(np.arange(5), list(fixated_at))
    s, f = values[None], fixated[None].astype(np.int32)
    _close(sal.auc_judd(s, f), _judd_reference(values, fixated), rtol=1e-6)
    pys = sal.auc_judd(s, f, variant="pysaliency", thresholds="fixations")
    _close(pys, _judd_reference(values, fixated), rtol=1e-6)


@SETTINGS
@given(
    st.lists(st.integers(0, 20), min_size=5, max_size=5),
    st.lists(st.integers(0, 2), min_size=5, max_size=5),
)
def test_aucs_invariant_to_monotone_transforms(levels, counts):
    values = np.array(levels, np.float32)[None]
    fix = np.array(counts, np.int32)[None]
    assume(values.max() > values.min() and fix.any() and not fix.all())
    warped = values**3 + 5  # strictly increasing, exact in float32 for these integers
    for kw in ({}, {"variant": "pysaliency"}, {"variant": "pysaliency", "thresholds": "fixations"}):
        _close(sal.auc_judd(warped, fix, **kw), float(sal.auc_judd(values, fix, **kw)), rtol=1e-6)


def test_constant_map_scores_one_half_in_the_exact_variants():
    flat = np.full((1, 5), 0.7, np.float32)
    fix, other = _fix(1, 0, 2, 0, 1), _fix(0, 1, 0, 2, 1)
    _close(sal.auc_borji(flat, fix, variant="pysaliency"), 0.5)
    _close(sal.auc_shuffled(flat, fix, other, variant="pysaliency"), 0.5)
    assert np.isnan(sal.auc_shuffled(flat, fix, other, samples=np.array([[1, 4], [3, 1]])))


# ------------------------------------------------------------------------------------- NSS


def test_nss_by_hand():
    s = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)  # mean 2
    fix = _fix(0, 0, 0, 1, 2)
    # MIT: std (N-1) = sqrt(10/4); fixated pixels 3 and 4 once: (1 + 2) / 2 / sqrt(2.5).
    _close(sal.nss(s, fix), 1.5 / math.sqrt(2.5), rtol=1e-6)
    # pysaliency: std (N) = sqrt(2); per fixation (1 + 2 + 2) / 3 / sqrt(2).
    _close(sal.nss(s, fix, variant="pysaliency"), 5 / 3 / math.sqrt(2), rtol=1e-6)
    flat = np.full((1, 5), 3.0, np.float32)
    assert np.isnan(sal.nss(flat, fix))
    assert float(sal.nss(flat, fix, variant="pysaliency")) == 0.0


def test_nss_map_of_another_size():
    r = UPSAMPLED_01
    expected = (r[3] - r.mean()) / r.std(ddof=1)
    _close(sal.nss([[0.0, 1.0]], _fix(0, 0, 0, 1)), expected, rtol=1e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_nss_invariant_to_positive_affine_maps_and_ddof_relation(seed, scale, shift):
    rng = np.random.default_rng(seed)
    s = rng.random((1, 5)).astype(np.float32)
    fix = (rng.random((1, 5)) < 0.4).astype(np.int32)
    fix[0, 0] = 1
    for variant in sal.VARIANTS:
        base = float(sal.nss(s, fix, variant=variant))
        _close(sal.nss(s * scale + shift, fix, variant=variant), base, rtol=1e-4, atol=1e-4)
    # Unique fixations: NSS_mit = NSS_pys * sqrt((N - 1) / N).
    _close(
        sal.nss(s, fix),
        float(sal.nss(s, fix, variant="pysaliency")) * math.sqrt(4 / 5),
        rtol=1e-5,
        atol=1e-6,
    )


# ------------------------------------------------------------------------- CC, KL, SIM, IG


def test_cc_by_hand_constant_maps_and_another_size():
    # Deviations (-1, 0, 1) and (-1, 1, 0): 1 / sqrt(2 * 2).
    _close(sal.cc([[1.0, 2.0, 3.0]], [[1.0, 3.0, 2.0]]), 0.5, rtol=1e-6)
    assert np.isnan(sal.cc([[2.0, 2.0, 2.0]], [[1.0, 3.0, 2.0]]))
    assert float(sal.cc([[2.0, 2.0, 2.0]], [[1.0, 3.0, 2.0]], variant="pysaliency")) == 0.0
    assert np.isnan(sal.cc([[1.0, 3.0, 2.0]], [[2.0, 2.0, 2.0]], variant="pysaliency"))
    g = np.array([0.0, 0.0, 1.0, 3.0])
    _close(sal.cc([[0.0, 1.0]], [g]), np.corrcoef(UPSAMPLED_01, g)[0, 1], rtol=1e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 10.0))
def test_cc_of_a_map_with_itself_and_an_affine_copy_is_one(seed, scale):
    s = np.random.default_rng(seed).random((1, 3)).astype(np.float32)  # the hand cases' grid
    for variant in sal.VARIANTS:
        _close(sal.cc(s, s, variant=variant), 1.0, rtol=1e-5)
        _close(sal.cc(s * scale + 1, s, variant=variant), 1.0, rtol=1e-5)


def test_kl_div_by_hand():
    # P = (1/4, 1/4, 1/2), Q = (1/4, 3/4, 0): 1/4 ln 1 + 3/4 ln 3 + 0 (eps negligible).
    _close(sal.kl_div([[1.0, 1.0, 2.0]], [[1.0, 3.0, 0.0]]), 0.75 * math.log(3), rtol=1e-6)
    # P = (0, 1/2, 1/2), Q = (1/2, 1/2, 0): a zero of P under mass of Q, where the regularising
    # constant decides: MATLAB's eps and pysaliency's literal 2.2204e-16 give different values.
    p, q = [[0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0]]
    mit = 0.5 * math.log(EPS + 0.5 / EPS) + 0.5 * math.log(EPS + 0.5 / (0.5 + EPS))
    pys = 0.5 * math.log(2.2204e-16 + 0.5 / 2.2204e-16)
    _close(sal.kl_div(p, q), mit, atol=4e-6)
    _close(sal.kl_div(p, q, variant="pysaliency"), pys, atol=4e-6)
    # pysaliency shifts a negative map up: (-1, 0, 0) -> (0, 1, 1).
    _close(sal.kl_div([[-1.0, 0.0, 0.0]], q, variant="pysaliency"), pys, atol=4e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_kl_is_nonnegative_and_zero_for_equal_maps(seed):
    rng = np.random.default_rng(seed)
    s, g = rng.random((2, 1, 3)).astype(np.float32)
    for variant in sal.VARIANTS:
        assert float(sal.kl_div(s, g, variant=variant)) >= -1e-6
        _close(sal.kl_div(g, g, variant=variant), 0.0, atol=1e-6)
        _close(sal.kl_div(3 * g, g, variant=variant), 0.0, atol=1e-6)


def test_sim_by_hand():
    s, g = [[1.0, 2.0, 3.0]], [[1.0, 1.0, 2.0]]
    # MIT: min-max then /sum: (0, 1/3, 2/3) and (0, 0, 1) -> 2/3.
    _close(sal.sim(s, g), 2 / 3, rtol=1e-6)
    # pysaliency: /sum only: (1/6, 2/6, 3/6) and (1/4, 1/4, 1/2) -> 1/6 + 1/4 + 1/2.
    _close(sal.sim(s, g, variant="pysaliency"), 11 / 12, rtol=1e-6)
    assert float(sal.sim([[0.0, 0.0, 0.0]], g)) == 0.0  # MIT: a zero map stays zero
    # pysaliency: a zero map becomes uniform: min((1/3,) * 3, (1/4, 1/4, 1/2)) sums to 5/6.
    _close(sal.sim([[0.0, 0.0, 0.0]], g, variant="pysaliency"), 5 / 6, rtol=1e-6)
    assert np.isnan(sal.sim([[2.0, 2.0, 2.0]], g))  # MIT: constant nonzero map min-maxes to NaN


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_sim_of_equal_maps_is_one(seed):
    s = np.random.default_rng(seed).random((1, 3)).astype(np.float32)
    for variant in sal.VARIANTS:
        _close(sal.sim(s, s, variant=variant), 1.0, rtol=1e-5)
        _close(sal.sim(5 * s, s, variant=variant), 1.0, rtol=1e-5)


def test_info_gain_by_hand():
    s, base = [[1.0, 2.0, 3.0]], [[1.0, 1.0, 2.0]]
    fix = _fix(0, 2, 1)
    # MIT: P = (0, 1/3, 2/3), B = (0, 0, 1); fixated pixels once:
    # [log2(eps + 1/3) - log2(eps)] and [log2(2/3) - log2(1)], averaged.
    mit = math.log2(EPS + 1 / 3) - math.log2(EPS) + math.log2(EPS + 2 / 3) - math.log2(1 + EPS)
    _close(sal.info_gain(s, fix, base), mit / 2, rtol=1e-6)
    # pysaliency: P = (1/6, 2/6, 3/6), B = (1/4, 1/4, 1/2); per fixation: 2 log2(4/3) + 0 over 3.
    _close(sal.info_gain(s, fix, base, variant="pysaliency"), 2 * math.log2(4 / 3) / 3, rtol=1e-6)
    for variant in sal.VARIANTS:
        _close(sal.info_gain(s, fix, s, variant=variant), 0.0, atol=1e-6)


# -------------------------------------------------------------------------------------- EMD


def test_emd_on_evident_transports():
    _close(sal.emd([[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]], downsize=1), 2.0, rtol=1e-6)
    # Shared mass stays put: (1/2, 1/2, 0) -> (0, 1/2, 1/2) moves 1/2 by 2 bins.
    _close(sal.emd([[0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0]], downsize=1), 1.0, rtol=1e-6)
    # Corner to corner of a 2 x 3 grid: one row and two columns, sqrt(1 + 4).
    corner = np.zeros((2, 3), np.float32)
    corner[0, 0] = 1
    _close(sal.emd(corner[::-1, ::-1], corner, downsize=1), math.sqrt(5), rtol=1e-6)


def _full_transport(p, q):
    """Brute-force reference: the balanced transport LP over ALL bin pairs (no mass removed)."""
    from scipy.optimize import linprog

    rows, cols = p.shape
    coords = np.array([(r, c) for r in range(rows) for c in range(cols)], float)
    cost = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    k = rows * cols
    a_eq = np.zeros((2 * k, k * k))
    for i in range(k):
        a_eq[i, i * k : (i + 1) * k] = 1
        a_eq[k + i, i::k] = 1
    b_eq = np.concatenate([p.ravel(), q.ravel()])
    return linprog(cost.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs").fun


def test_emd_equals_brute_force_transport_and_the_1d_closed_form():
    rng = np.random.default_rng(5)
    s, g = rng.random((2, 2, 3))
    p, q = g / g.sum(), s / s.sum()
    _close(sal.emd(s, g, downsize=1), _full_transport(p, q), rtol=1e-5)
    s1, g1 = rng.random((2, 1, 3))
    cdf = np.cumsum(g1[0] / g1.sum() - s1[0] / s1.sum())
    _close(sal.emd(s1, g1, downsize=1), np.abs(cdf).sum(), rtol=1e-5)
    # downsize resizes the density by 1/downsize (here 4 x 6 -> 2 x 3) and the map to that grid.
    s4, g4 = rng.random((2, 4, 6)).astype(np.float32)
    coarse = sal.emd(sal.resize_map(s4, (2, 3)), sal.resize_map(g4, (2, 3)), downsize=1)
    _close(sal.emd(s4, g4, downsize=2), float(coarse), rtol=1e-5)
    emd2 = lambda m, d: sal.emd(m, d, downsize=2)  # noqa: E731
    batch = jax.vmap(emd2, in_axes=(0, None))(jnp.stack([s4, g4]), g4)
    _close(batch, [float(coarse), 0.0], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- batches, jit, reproducibility


def test_vmap_over_a_batch_equals_the_loop():
    # Shapes of the hand cases, so that the per-map loop reuses their compilations.
    maps = np.random.default_rng(1).random((3, 1, 5)).astype(np.float32)
    fix = _fix(1, 1, 0, 0, 0)
    batched = jax.vmap(sal.nss, in_axes=(0, None))(maps, fix)
    _close(batched, [float(sal.nss(m, fix)) for m in maps], rtol=1e-6)
    # A sampled metric with maps, fixations and keys batched. Traced fixation maps take the
    # full-size negatives buffer where eager calls size it to the other fixations: same draws,
    # same scores. The last fixation map is empty: inside vmap that gives NaN, not an error.
    other = _fix(2, 0, 1, 1, 0)
    fixes = np.stack([_fix(0, 1, 0, 0, 1), _fix(1, 0, 0, 0, 1), _fix(0, 0, 0, 0, 0)])
    keys = jnp.stack([jax.random.fold_in(jax.random.key(5), i) for i in range(3)])
    shuffled = jax.vmap(lambda m, f, k: sal.auc_shuffled(m, f, other, key=k, splits=2))
    scores = shuffled(maps, fixes, keys)
    loop = [
        float(sal.auc_shuffled(m, f, other, key=k, splits=2))
        for m, f, k in zip(maps[:2], fixes, keys)
    ]
    _close(scores[:2], loop, rtol=1e-6)
    assert np.isnan(scores[2])


def test_similarity_matrix_entries_are_the_pairwise_metric():
    maps = np.random.default_rng(2).random((3, 1, 3)).astype(np.float32)
    for metric, fn in (("cc", sal.cc), ("sim", sal.sim)):
        matrix = sal.similarity_matrix(maps, metric)
        expected = [[float(fn(a, b)) for b in maps] for a in maps]
        _close(matrix, expected, rtol=1e-5)
        _close(np.diag(matrix), np.ones(3), rtol=1e-5)


def test_missing_fixations_are_nan_under_jit_and_an_error_eagerly():
    s = np.random.default_rng(3).random((3, 4)).astype(np.float32)
    empty = np.zeros((3, 4), np.int32)
    assert np.isnan(jax.jit(sal.nss)(s, empty))  # and under vmap: see the vmap test
    with pytest.raises(ValueError, match=r"`fixations` must have at least 1 fixated pixel for nss"):
        sal.nss(s, empty)
    one = empty.copy()
    one[1, 1] = 1
    with pytest.raises(ValueError, match=r"at least 2 fixated pixels for MIT auc_borji; got 1"):
        sal.auc_borji(s, one, samples=np.array([[0]]))
    with pytest.raises(ValueError, match=r"`other_fixations` must have at least 1"):
        sal.auc_shuffled(s, one, empty, variant="pysaliency")


def test_non_finite_inputs_are_nan_under_jit_and_an_error_eagerly():
    """Under jit the values cannot be checked: a NaN/inf input gives NaN (the AUCs scored a NaN
    map 0.69 and 0.5 before: finite and plausible; NSS, IG, CC, KL and SIM propagate NaN)."""
    s = np.random.default_rng(5).random((3, 4)).astype(np.float32)
    fix = np.zeros((3, 4), np.int32)
    fix[0, 1] = fix[2, 2] = fix[1, 3] = 1
    other = np.zeros((3, 4), np.int32)
    other[0, 0] = other[2, 3] = 1
    draws = np.array([[0, 5, 11]])  # MIT negatives, given (other-fixated ones for sAUC)
    metrics = {  # one compilation each: the pysaliency AUCs share one core
        "auc_judd": lambda m, f: sal.auc_judd(m, f),
        "auc_borji": lambda m, f: sal.auc_borji(m, f, samples=draws),
        "auc_shuffled pysaliency": lambda m, f: sal.auc_shuffled(m, f, other, variant="pysaliency"),
        "auc_shuffled": lambda m, f: sal.auc_shuffled(m, f, other, samples=draws[:, [0, 2]]),
    }
    bad_map = s.copy()
    bad_map[1, 2] = np.nan
    bad_fix = fix.astype(np.float32)
    bad_fix[0, 0] = np.inf
    for name, metric in metrics.items():
        jitted = jax.jit(metric)
        assert np.isfinite(jitted(s, fix.astype(np.float32))), name
        assert np.isnan(jitted(bad_map, fix.astype(np.float32))), name
        assert np.isnan(jitted(s, bad_fix)), name
    with pytest.raises(ValueError, match=r"`saliency_map` must be finite; got 1 NaN/inf"):
        sal.auc_judd(bad_map, fix)
    density_of_bad = jax.jit(lambda f: sal.fixation_density(f, sigma=1.0))(bad_fix)
    assert np.all(np.isnan(density_of_bad))


# ---------------------------------------------------------------------------------- misuse


def test_bad_input_names_the_argument():
    s = np.random.default_rng(4).random((3, 4)).astype(np.float32)
    fix = np.eye(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match=r"`saliency_map` must be finite; got 3 NaN/inf"):
        sal.nss(np.where(fix > 0, np.nan, s), fix)
    with pytest.raises(ValueError, match=r"`saliency_map` must be ONE map.*leading batch axis"):
        sal.nss(np.stack([s, s]), fix)
    with pytest.raises(ValueError, match=r"`fixations` must be ONE map of shape \(h, w\)"):
        sal.auc_judd(s, fix[0])
    with pytest.raises(ValueError, match=r"`density` must be non-negative; got minimum -0\."):
        sal.kl_div(s, s - 0.5)
    with pytest.raises(ValueError, match=r"`fixations` must be non-negative"):
        sal.nss(s, -fix)
    with pytest.raises(ValueError, match=r"`other_fixations` must be a count map of the fixation"):
        sal.auc_shuffled(s, fix, fix[:2], variant="pysaliency")
    with pytest.raises(ValueError, match=r"`variant` must be one of 'mit', 'pysaliency'"):
        sal.cc(s, s, variant="matlab")
    with pytest.raises(ValueError, match=r"`thresholds` must be 'fixations'.*variant='mit'"):
        sal.auc_judd(s, fix, thresholds="all")
    with pytest.raises(ValueError, match=r"pass `key` \(a PRNG key\) or `samples`"):
        sal.auc_borji(s, fix)
    with pytest.raises(ValueError, match=r"either `key` or `samples`, not both"):
        sal.auc_borji(s, fix, key=jax.random.key(0), samples=np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"is exact and draws nothing"):
        sal.auc_borji(s, fix, key=jax.random.key(0), variant="pysaliency")
    with pytest.raises(ValueError, match=r"`samples` must be row-major flat indices.*\[0, 11\]"):
        sal.auc_borji(s, fix, samples=np.array([[0, 12]]))
    with pytest.raises(ValueError, match=r"`jitter` must have the fixation grid's shape"):
        sal.auc_judd(s, fix, jitter=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"`step` must be a Python number in \(0, 1\]"):
        sal.auc_borji(s, fix, samples=np.array([[0, 1]]), step=0.0)
    with pytest.raises(ValueError, match=r"`density` must have a positive sum for emd"):
        sal.emd(s, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"`maps` must be a stack of maps"):
        sal.similarity_matrix(s)


def test_keyed_shuffled_negatives_are_the_first_of_the_stable_sort():
    """The sort-free choice of the MIT negatives (issue 19) picks the same set as the stable
    argsort it replaced: the ``k`` listed entries of least priority, ties by position."""
    from jaxadv.metrics._saliency_auc import _first_by_priority

    rng = np.random.default_rng(0)
    n, trials = 24, 64
    # Few distinct priorities (ties everywhere), including 0 and values near 1.
    priority = (rng.integers(0, 6, (trials, n)) / 6.0 + rng.integers(0, 2, (trials, 1)) * 0.1)
    priority = priority.astype(np.float32)
    listed = rng.random((trials, n)) < 0.6
    k = np.array([rng.integers(0, max(1, int(m.sum())) + 1) for m in listed])
    got = jax.jit(jax.vmap(_first_by_priority))(priority, listed, k)
    for p, m, kk, g in zip(priority, listed, k, np.asarray(got)):
        order = np.argsort(np.where(m, p, 2.0), kind="stable")
        want = np.zeros(n, bool)
        want[order[: min(kk, int(m.sum()))]] = True
        np.testing.assert_array_equal(g, want)
