"""Attack statistics: clean and robust accuracy, success rate, perturbation norms.

Per-example quantities come from :class:`jaxadv.results.AttackResult`; these functions aggregate
a batch of them. Robust accuracy counts an example as robust when the victim classifies it
correctly AND the attack failed; success rate is the fraction of successful attacks (for a
targeted attack, success means reaching the target, not merely leaving the true class).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.results import NORM_NAMES, AttackResult, perturbation_norms


def accuracy(logits: Any, labels: Any) -> float:
    """Fraction of rows of ``logits[b, classes]`` whose argmax equals ``labels[b]``."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"`logits` must be [batch, classes] and `labels` [batch]; got {logits.shape} and "
            f"{labels.shape}."
        )
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def robust_accuracy(result: AttackResult, labels: Any, clean_correct: Any) -> float | np.ndarray:
    """Fraction of examples classified correctly both before and after the attack.

    Uses the adversarial logits, so it is right for targeted attacks too (an example that left its
    class without reaching the target is not robust, though the targeted attack failed). A result
    with leading grid axes (from ``attack.sweep``: ``success[K, b]``) gives one value per grid
    point, averaging over the last (batch) axis only.
    """
    still = np.argmax(np.asarray(result.logits), axis=-1) == np.asarray(labels)
    robust = np.mean(np.asarray(clean_correct, bool) & still, axis=-1)
    return float(robust) if np.ndim(robust) == 0 else robust


def success_rate(result: AttackResult, mask: Any | None = None) -> float:
    """Fraction of successful attacks, over the examples where ``mask`` is True (default: all)."""
    success = np.asarray(result.success, bool)
    if success.ndim != 1:
        raise ValueError(
            f"`result` must hold one batch (success of shape (b,)); got {success.shape}. Index a "
            "sweep's grid point first (jax.tree.map(lambda a: a[k], result))."
        )
    if mask is not None:
        success = success[np.asarray(mask, bool)]
    return float(np.mean(success)) if success.size else float("nan")


def mean_norms(result: AttackResult, mask: Any | None = None) -> dict[str, float]:
    """Mean ℓ0, ℓ1, ℓ2 and ℓ∞ of the perturbations over the examples where ``mask`` is True.

    The usual choice of mask is ``result.success``: distortion is reported over successful
    attacks (as in C&W and the smooth-examples paper's D̄). NaN when the mask selects nothing.
    """
    if np.ndim(result.success) != 1:
        raise ValueError(
            f"`result` must hold one batch (success of shape (b,)); got {np.shape(result.success)}."
        )
    keep = np.ones(np.shape(result.success), bool) if mask is None else np.asarray(mask, bool)
    out = {}
    for name in NORM_NAMES:
        values = np.asarray(getattr(result, name))[keep]
        out[name] = float(np.mean(values)) if values.size else float("nan")
    return out


def summarize(result: AttackResult, labels: Any, clean_correct: Any) -> dict[str, float]:
    """One table row: robust accuracy, success rate, and mean norms over successful examples.

    Success rate and norms are over the examples the victim classified correctly (attacking a
    misclassified example is trivially "successful" for an untargeted attack).
    """
    correct = np.asarray(clean_correct, bool)
    success = np.asarray(result.success, bool)
    return {
        "robust_accuracy": robust_accuracy(result, labels, correct),
        "success_rate": success_rate(result, correct),
        **mean_norms(result, success & correct),
    }


def per_example_norms(delta: Any) -> dict[str, Any]:
    """ℓ0, ℓ1, ℓ2, ℓ∞ of each row of a batch of perturbations ``delta[b, ...]``."""
    return jax.vmap(perturbation_norms)(jnp.asarray(delta))
