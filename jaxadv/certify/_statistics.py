"""The statistics of randomized smoothing's PREDICT and CERTIFY, as functions of the counts.

Cohen, Rosenfeld & Kolter 2019 ("Certified adversarial robustness via randomized smoothing",
ICML), Algorithms PREDICT and CERTIFY (section 3.2). The counts come from
:func:`~jaxadv.certify.sample_counts`; what is left is a handful of numbers per image, computed
here on the host with scipy in float64: exact binomial tails and beta quantiles (the
Clopper–Pearson bound is a beta quantile; JAX has the regularised incomplete beta function but no
inverse of it, and a float32 bisection would round the one number the certificate rests on).
Every function takes arrays of counts, one row per image, and returns numpy arrays.

Abstention is data: an abstaining image has prediction -1, radius 0 and ``abstain=True``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from jaxadv import _checks

ABSTAIN = -1


class PredictResult(NamedTuple):
    """PREDICT's answer per image (numpy arrays; ``prediction, abstain, *_ = result``).

    Attributes:
      prediction: ``int32[num_images]``, the smoothed classifier's class, or -1 (abstain).
      abstain: ``bool[num_images]``, the binomial test could not tell the top two classes apart.
      p_value: ``float64[num_images]``, the two-sided test's p-value of ``n_A`` in ``n_A + n_B``.
      counts: ``int32[num_images, num_classes]``, the counts the decision was made from.
    """

    prediction: np.ndarray
    abstain: np.ndarray
    p_value: np.ndarray
    counts: np.ndarray


class CertifyResult(NamedTuple):
    """CERTIFY's answer per image (numpy arrays).

    Attributes:
      prediction: ``int32[num_images]``, the class ĉ_A picked from the selection draws, or -1.
      radius: ``float64[num_images]``, the certified ℓ2 radius σ·Φ⁻¹(p_lower) (0 on abstain).
      abstain: ``bool[num_images]``, ``p_lower < 1/2``.
      p_lower: ``float64[num_images]``, the one-sided (1 − α) Clopper–Pearson lower bound on the
        probability that the base classifier returns ĉ_A under noise.
      counts: ``int32[num_images, num_classes]``, the estimation counts (``n`` draws).
      selection_counts: ``int32[num_images, num_classes]``, the selection counts (``n0`` draws).
    """

    prediction: np.ndarray
    radius: np.ndarray
    abstain: np.ndarray
    p_lower: np.ndarray
    counts: np.ndarray
    selection_counts: np.ndarray


def check_alpha(alpha: Any) -> None:
    ok = (
        np.ndim(alpha) == 0
        and not isinstance(alpha, bool)
        and np.isfinite(np.float64(alpha))
        and 0.0 < float(alpha) < 1.0
    )
    if not ok:
        raise ValueError(f"`alpha` must be one number in the open interval (0, 1); got {alpha!r}.")


def _counts_matrix(name: str, counts: Any) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be integer counts of shape (num_images, num_classes >= 2); got "
            f"dtype {arr.dtype} and shape {arr.shape}."
        )
    if arr.size and arr.min() < 0:
        raise ValueError(f"`{name}` must be >= 0; got a count of {arr.min()}.")
    if arr.size and arr.sum(axis=1).min() < 1:
        raise ValueError(f"`{name}` must hold at least one draw per image; got a row of zeros.")
    return arr


def binomial_p_value(n_a: Any, n_b: Any) -> np.ndarray:
    """Two-sided p-value of the exact binomial test of ``n_a`` successes in ``n_a + n_b``
    trials against p = 1/2 (``scipy.stats.binomtest(n_a, n_a + n_b).pvalue``, elementwise).

    At p = 1/2 the distribution is symmetric, so the two-sided p-value is twice the smaller tail,
    capped at 1.

    Args:
      n_a: successes (integer array).
      n_b: failures (integer array, broadcast against ``n_a``).

    Returns:
      The p-values as a float64 array.
    """
    n_a, n_b = np.asarray(n_a, np.int64), np.asarray(n_b, np.int64)
    tail = stats.binom.cdf(np.minimum(n_a, n_b), n_a + n_b, 0.5)
    return np.minimum(1.0, 2.0 * tail)


def clopper_pearson_lower(n_a: Any, n: Any, alpha: float) -> np.ndarray:
    """One-sided (1 − α) Clopper–Pearson lower confidence bound on a binomial proportion from
    ``n_a`` successes in ``n`` trials: ``beta.ppf(α, n_a, n − n_a + 1)``, 0 when ``n_a = 0``.

    The same number as Cohen et al.'s ``proportion_confint(n_a, n, alpha=2α, method="beta")[0]``
    (the lower end of a two-sided 1 − 2α interval). It is the p at which
    ``P(Binomial(n, p) >= n_a) = α``.

    Args:
      n_a: successes (integer array).
      n: trials (integer array, broadcast against ``n_a``).
      alpha: the one-sided error probability, in (0, 1).

    Returns:
      The lower bounds in [0, 1] as a float64 array.

    References:
      Clopper & Pearson, "The use of confidence or fiducial limits illustrated in the case of the
      binomial", Biometrika 1934.
    """
    check_alpha(alpha)
    n_a, n = np.asarray(n_a, np.int64), np.asarray(n, np.int64)
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, n_a, n - n_a + 1)
    return np.where(n_a == 0, 0.0, bound)


def predict_from_counts(counts: Any, alpha: float) -> PredictResult:
    """PREDICT's decision (Cohen et al. 2019, Algorithm PREDICT) from its counts.

    With ``n_A >= n_B`` the two largest counts, answer the top class unless the two-sided binomial
    test of ``n_A`` in ``n_A + n_B`` at p = 1/2 has a p-value above α; then abstain. The answer is
    then wrong (a class other than the smoothed classifier's) with probability at most α.

    Args:
      counts: ``int[num_images, num_classes]`` (``n`` draws per image).
      alpha: the failure probability, in (0, 1).

    Returns:
      A :class:`PredictResult` (prediction, or ``ABSTAIN``; abstain flags; p-values; counts).

    References:
      Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
      ICML 2019.
    """
    check_alpha(alpha)
    counts = _counts_matrix("counts", counts)
    order = np.argsort(-counts, axis=1, kind="stable")  # ties: the lower class first
    top = order[:, 0]
    n_a = np.take_along_axis(counts, order[:, :1], axis=1)[:, 0]
    n_b = np.take_along_axis(counts, order[:, 1:2], axis=1)[:, 0]
    p_value = binomial_p_value(n_a, n_b)
    abstain = p_value > alpha
    prediction = np.where(abstain, ABSTAIN, top).astype(np.int32)
    return PredictResult(prediction, abstain, p_value, counts.astype(np.int32))


def certify_from_counts(
    selection_counts: Any, counts: Any, sigma: float, alpha: float
) -> CertifyResult:
    """CERTIFY's certificate (Cohen et al. 2019, Algorithm CERTIFY) from its two sets of counts.

    ĉ_A is the top class of the selection counts (ties: the lowest class); ``n_A`` its count among
    the ``n`` estimation draws; ``p_lower`` the one-sided (1 − α) Clopper–Pearson bound of
    ``n_A / n``. Abstain when ``p_lower < 1/2``; otherwise certify the ℓ2 radius σ·Φ⁻¹(p_lower)
    (Theorem 1 with p_B = 1 − p_A). With probability at least 1 − α over the draws, a certified
    image's smoothed class is ĉ_A everywhere within that radius.

    Args:
      selection_counts: ``int[num_images, num_classes]`` from ``n0`` draws.
      counts: ``int[num_images, num_classes]`` from ``n`` fresh draws.
      sigma: the noise level σ > 0 the counts were drawn with.
      alpha: the failure probability, in (0, 1).

    Returns:
      A :class:`CertifyResult` (class, certified ℓ2 radius, abstain flags, bounds).

    References:
      Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
      ICML 2019.
    """
    check_alpha(alpha)
    _checks.check_positive("sigma", sigma)
    selection = _counts_matrix("selection_counts", selection_counts)
    counts = _counts_matrix("counts", counts)
    if selection.shape != counts.shape:
        raise ValueError(
            f"`selection_counts` and `counts` must have the same shape; got {selection.shape} "
            f"and {counts.shape}."
        )
    c_hat = np.argmax(selection, axis=1)
    n_a = np.take_along_axis(counts, c_hat[:, None], axis=1)[:, 0]
    p_lower = clopper_pearson_lower(n_a, counts.sum(axis=1), alpha)
    abstain = p_lower < 0.5
    radius = np.where(abstain, 0.0, float(sigma) * stats.norm.ppf(np.maximum(p_lower, 0.5)))
    return CertifyResult(
        prediction=np.where(abstain, ABSTAIN, c_hat).astype(np.int32),
        radius=radius,
        abstain=abstain,
        p_lower=p_lower,
        counts=counts.astype(np.int32),
        selection_counts=selection.astype(np.int32),
    )


def certified_accuracy(result: CertifyResult, labels: Any, radii: Any) -> np.ndarray:
    """The certified-accuracy curve: for each radius r, the fraction of images certified correct
    at r (``prediction == label`` and ``radius >= r``), as in Cohen et al.'s figures.

    Args:
      result: a :class:`CertifyResult` of ``num_images`` images.
      labels: ``int[num_images]``, the true classes.
      radii: the radii to evaluate (a number or an array, each >= 0).

    Returns:
      ``float64`` of ``radii``'s shape, each in [0, 1]; non-increasing in r.
    """
    if not isinstance(result, CertifyResult):
        raise ValueError(f"`result` must be a CertifyResult; got {type(result).__name__}.")
    prediction, radius = np.asarray(result.prediction), np.asarray(result.radius)
    labels = np.asarray(labels)
    if labels.shape != prediction.shape:
        raise ValueError(
            f"`labels` must have shape {prediction.shape}, one class per image; got "
            f"{labels.shape}."
        )
    _checks.check_labels("labels", labels, result.counts.shape[1])
    _checks.check_nonnegative("radii", radii)
    radii = np.asarray(radii, np.float64)
    correct = prediction == labels
    certified = correct[:, None] & (radius[:, None] >= radii.reshape(1, -1))
    return certified.mean(axis=0).reshape(radii.shape)
