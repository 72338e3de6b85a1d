"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified
adversarial robustness via randomized smoothing", ICML).

:func:`sample_counts` counts a base classifier's labels under Gaussian noise (one compiled,
chunked JAX program); :func:`predict` and :func:`certify` are the paper's PREDICT and CERTIFY on
top of it, :func:`predict_from_counts` and :func:`certify_from_counts` their statistics alone, and
:func:`certified_accuracy` the certified-accuracy curve. Base classifiers are trained under the same
noise with :func:`jaxadv.training.gaussian_noise`. This layer sits beside ``metrics``: it imports
the victims, never the attacks.
"""

from jaxadv.certify._counts import sample_counts
from jaxadv.certify._smoothed import Smoothed, certify, predict
from jaxadv.certify._statistics import (
    ABSTAIN,
    CertifyResult,
    PredictResult,
    binomial_p_value,
    certified_accuracy,
    certify_from_counts,
    clopper_pearson_lower,
    predict_from_counts,
)

__all__ = [
    "ABSTAIN",
    "CertifyResult",
    "PredictResult",
    "Smoothed",
    "binomial_p_value",
    "certified_accuracy",
    "certify",
    "certify_from_counts",
    "clopper_pearson_lower",
    "predict",
    "predict_from_counts",
    "sample_counts",
]
