"""PREDICT and CERTIFY of randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified
adversarial robustness via randomized smoothing", ICML, section 3.2), and the smoothed classifier
as an object.

The smoothed classifier of a base classifier ``f`` is ``g(x) = argmax_c P(f(x + η) = c)``,
``η ~ N(0, σ²I)``. ``g`` cannot be evaluated exactly; PREDICT estimates it with a binomial test
that may abstain, CERTIFY also returns an ℓ2 radius within which ``g`` provably keeps its class
(both with failure probability at most α over the Monte-Carlo draws). The draws are counted by
one compiled JAX program (:func:`~jaxadv.certify.sample_counts`); the decisions are exact float64
statistics of the counts on the host (``_statistics.py`` says why).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from jaxadv import _checks
from jaxadv.certify._counts import (
    DEFAULT_BATCH_SIZE,
    check_images,
    check_sigma,
    check_victim,
    sample_counts,
)
from jaxadv.certify._statistics import (
    CertifyResult,
    PredictResult,
    certify_from_counts,
    check_alpha,
    predict_from_counts,
)
from jaxadv.models import Victim


def _check_call(victim, images, key, sigma, alpha, batch_size) -> None:
    check_victim(victim)
    check_images(victim, images)
    _checks.check_key("key", key)
    check_sigma(sigma)
    check_alpha(alpha)
    _checks.check_positive_int("batch_size", batch_size)


def predict(
    victim: Victim,
    images: Any,
    key: jax.Array,
    *,
    sigma: float,
    n: int = 100,
    alpha: float = 0.001,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PredictResult:
    """The smoothed classifier's class of each image, or an abstention (Algorithm PREDICT).

    Counts the base classifier's labels on ``n`` noisy copies, then tests whether the top count
    ``n_A`` beats the runner-up ``n_B`` (two-sided binomial test at p = 1/2); abstains when the
    p-value exceeds α. A returned class differs from ``g(x)`` with probability at most α.

    Args:
      victim: the base classifier (a :class:`~jaxadv.models.Victim` with logits), ideally trained
        under Gaussian noise of the same σ (:func:`jaxadv.training.gaussian_noise`).
      images: ``f32[num_images, *victim.input_shape]`` within ``victim.bounds``.
      key: ONE PRNG key.
      sigma: the noise level σ > 0.
      n: draws per image (the paper's Tables 4–6 use 100).
      alpha: the failure probability, in (0, 1).
      batch_size: the most noisy copies per network call (see :func:`sample_counts`).

    Returns:
      A :class:`PredictResult` of numpy arrays: ``prediction, abstain, *_ = predict(...)``.
    """
    _check_call(victim, images, key, sigma, alpha, batch_size)
    _checks.check_positive_int("n", n)
    counts = sample_counts(victim, images, key, sigma=sigma, n=n, batch_size=batch_size)
    return predict_from_counts(jax.device_get(counts), alpha)


def certify(
    victim: Victim,
    images: Any,
    key: jax.Array,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CertifyResult:
    """A certified ℓ2 radius of the smoothed classifier around each image (Algorithm CERTIFY).

    ``n0`` draws select the class ĉ_A; ``n`` fresh draws count it; ``p_lower`` is the one-sided
    (1 − α) Clopper–Pearson lower bound of its probability. Below 1/2 the image abstains
    (prediction -1, radius 0); otherwise its radius is σ·Φ⁻¹(p_lower). With probability at least
    1 − α, ``g`` returns ĉ_A on the whole ℓ2 ball of that radius.

    Args:
      victim: the base classifier (a :class:`~jaxadv.models.Victim` with logits).
      images: ``f32[num_images, *victim.input_shape]`` within ``victim.bounds``.
      key: ONE PRNG key (split into independent selection and estimation keys).
      sigma: the noise level σ > 0.
      n0: selection draws per image, ``1 <= n0 <= n`` (Cohen et al.: 100).
      n: estimation draws per image (Cohen et al.: 100,000).
      alpha: the failure probability, in (0, 1) (Cohen et al.: 0.001).
      batch_size: the most noisy copies per network call (see :func:`sample_counts`).

    Returns:
      A :class:`CertifyResult` of numpy arrays.
    """
    _check_call(victim, images, key, sigma, alpha, batch_size)
    _checks.check_positive_int("n0", n0)
    _checks.check_positive_int("n", n)
    if n0 > n:
        raise ValueError(
            f"`n0` (selection draws) must be <= `n` (estimation draws); got n0={n0}, n={n}."
        )
    select_key, estimate_key = jax.random.split(key)
    selection = sample_counts(victim, images, select_key, sigma=sigma, n=n0, batch_size=batch_size)
    counts = sample_counts(victim, images, estimate_key, sigma=sigma, n=n, batch_size=batch_size)
    selection, counts = jax.device_get((selection, counts))
    return certify_from_counts(selection, counts, float(sigma), alpha)


@dataclasses.dataclass(frozen=True)
class Smoothed:
    """The smoothed classifier ``g`` of a base classifier at noise level σ.

    ``Smoothed(victim, sigma).predict(images, key)`` and ``.certify(images, key)`` are
    :func:`predict` and :func:`certify` with the victim and σ bound; ``.counts(images, key, n=)``
    is :func:`sample_counts`.

    Attributes:
      victim: the base classifier (a :class:`~jaxadv.models.Victim` with logits).
      sigma: the noise level σ > 0.
    """

    victim: Victim
    sigma: float

    def __post_init__(self):
        check_victim(self.victim)
        check_sigma(self.sigma)

    def counts(self, images: Any, key: jax.Array, *, n: int, **kwargs: Any) -> jax.Array:
        return sample_counts(self.victim, images, key, sigma=self.sigma, n=n, **kwargs)

    def predict(self, images: Any, key: jax.Array, **kwargs: Any) -> PredictResult:
        return predict(self.victim, images, key, sigma=self.sigma, **kwargs)

    def certify(self, images: Any, key: jax.Array, **kwargs: Any) -> CertifyResult:
        return certify(self.victim, images, key, sigma=self.sigma, **kwargs)
