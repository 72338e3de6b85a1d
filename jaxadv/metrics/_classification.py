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

from jaxadv import _checks
from jaxadv.results import NORM_NAMES, AttackResult, perturbation_norms


def _host(name: str, x: Any) -> np.ndarray:
    """A host-side (numpy) metric's argument: a named error for a tracer, not JAX's."""
    if not _checks.is_concrete(x):
        raise ValueError(
            f"`{name}` must be a concrete array: this metric runs on the host (numpy); call it "
            "outside jit/vmap."
        )
    return np.asarray(x)


def _per_example(name: str, x: Any, n: int, *, boolean: bool = False) -> np.ndarray:
    """One value per example of a batch of ``n``: a mask (``boolean``: bool, or 0/1 values)."""
    arr = _host(name, x)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), one per example; got {arr.shape}.")
    if boolean:
        if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(
                f"`{name}` must be a boolean mask (or 0/1); got values {_checks.show(arr)} "
                "(indices? build a mask with np.isin)."
            )
        return arr.astype(bool)
    return arr


def accuracy(logits: Any, labels: Any) -> Any:
    """Fraction of rows of ``logits[b, classes]`` whose argmax equals ``labels[b]``.

    Eagerly, NaN/inf logits and labels that are not class indices in ``[0, classes)`` raise
    ``ValueError``. Under ``jit`` (traced inputs) the values cannot be inspected: the accuracy is
    then NaN whenever a logit is non-finite or a label out of range (never a plausible number).

    Args:
      logits: ``[batch, classes]`` scores.
      labels: ``[batch]`` integer class indices.

    Returns:
      A Python float eagerly (NaN for an empty batch); a 0-d array under ``jit``.

    Example:
      >>> from jaxadv.metrics import accuracy
      >>> accuracy([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], [0, 1, 1])
      0.6666666666666666
    """
    if not isinstance(logits, (jax.Array, jax.core.Tracer, np.ndarray)):
        logits = np.asarray(logits)
    if not isinstance(labels, (jax.Array, jax.core.Tracer, np.ndarray)):
        labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"`logits` must be [batch, classes] and `labels` [batch]; got {logits.shape} and "
            f"{labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"`labels` must hold integer class indices; got dtype {labels.dtype}.")
    classes = logits.shape[1]
    if _checks.is_concrete((logits, labels)):
        _checks.check_finite("logits", logits)
        _checks.check_labels("labels", labels, classes)
        logits, labels = np.asarray(logits), np.asarray(labels)
        hits = np.argmax(logits, axis=-1) == labels
        return float(np.mean(hits)) if hits.size else float("nan")
    bad = ~jnp.all(jnp.isfinite(logits)) | jnp.any((labels < 0) | (labels >= classes))
    value = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return jnp.where(bad, jnp.nan, value)


def robust_accuracy(result: AttackResult, labels: Any, clean_correct: Any) -> float | np.ndarray:
    """Fraction of examples classified correctly both before and after the attack.

    Uses the adversarial logits, so it is right for targeted attacks too (an example that left its
    class without reaching the target is not robust, though the targeted attack failed). A result
    with leading grid axes (from ``attack.sweep``: ``success[K, b]``) gives one value per grid
    point, averaging over the last (batch) axis only.

    Args:
      result: an attack's :class:`~jaxadv.results.AttackResult` for a batch (or a sweep).
      labels: ``[batch]`` true classes.
      clean_correct: ``[batch]`` bool, whether the victim classified each clean example correctly.

    Returns:
      A float for one batch, an array of one value per grid point for a sweep.
    """
    logits = _host("result.logits", result.logits)
    n = logits.shape[-2] if logits.ndim >= 2 else -1
    labels = _per_example("labels", labels, n)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must hold integer class indices; got dtype {labels.dtype}.")
    _checks.check_labels("labels", labels, logits.shape[-1])
    correct = _per_example("clean_correct", clean_correct, n, boolean=True)
    still = np.argmax(logits, axis=-1) == labels
    robust = np.mean(correct & still, axis=-1)
    return float(robust) if np.ndim(robust) == 0 else robust


def success_rate(result: AttackResult, mask: Any | None = None) -> float:
    """Fraction of successful attacks, over the examples where ``mask`` is True (default: all).

    Args:
      result: an :class:`~jaxadv.results.AttackResult` of one batch.
      mask: ``[batch]`` bool (or 0/1) selecting the examples counted; None: all.

    Returns:
      The fraction as a float; NaN when the mask selects nothing.
    """
    success = _host("result.success", result.success).astype(bool)
    if success.ndim != 1:
        raise ValueError(
            f"`result` must hold one batch (success of shape (b,)); got {success.shape}. Index a "
            "sweep's grid point first (jax.tree.map(lambda a: a[k], result))."
        )
    if mask is not None:
        success = success[_per_example("mask", mask, success.size, boolean=True)]
    return float(np.mean(success)) if success.size else float("nan")


def mean_norms(result: AttackResult, mask: Any | None = None) -> dict[str, float]:
    """Mean ℓ0, ℓ1, ℓ2 and ℓ∞ of the perturbations over the examples where ``mask`` is True.

    The usual choice of mask is ``result.success``: distortion is reported over successful
    attacks (as in C&W and the smooth-examples paper's D̄). NaN when the mask selects nothing.

    Args:
      result: an :class:`~jaxadv.results.AttackResult` of one batch.
      mask: ``[batch]`` bool (or 0/1) selecting the examples averaged; None: all.

    Returns:
      ``{"l0": ..., "l1": ..., "l2": ..., "linf": ...}`` as floats.
    """
    if np.ndim(result.success) != 1:
        raise ValueError(
            f"`result` must hold one batch (success of shape (b,)); got {np.shape(result.success)}."
        )
    n = np.shape(result.success)[0]
    keep = np.ones(n, bool) if mask is None else _per_example("mask", mask, n, boolean=True)
    out = {}
    for name in NORM_NAMES:
        values = _host(f"result.{name}", getattr(result, name))[keep]
        out[name] = float(np.mean(values)) if values.size else float("nan")
    return out


def summarize(result: AttackResult, labels: Any, clean_correct: Any) -> dict[str, float]:
    """One table row: robust accuracy, success rate, and mean norms over successful examples.

    Success rate and norms are over the examples the victim classified correctly (attacking a
    misclassified example is trivially "successful" for an untargeted attack).

    Args:
      result: an :class:`~jaxadv.results.AttackResult` of one batch.
      labels: ``[batch]`` true classes.
      clean_correct: ``[batch]`` bool, the victim's verdict on the clean examples.

    Returns:
      ``{"robust_accuracy", "success_rate", "l0", "l1", "l2", "linf"}`` as floats.
    """
    success = _host("result.success", result.success).astype(bool)
    correct = _per_example("clean_correct", clean_correct, success.shape[-1], boolean=True)
    return {
        "robust_accuracy": robust_accuracy(result, labels, correct),
        "success_rate": success_rate(result, correct),
        **mean_norms(result, success & correct),
    }


def per_example_norms(delta: Any) -> dict[str, Any]:
    """ℓ0, ℓ1, ℓ2, ℓ∞ of each row of a batch of perturbations ``delta[b, ...]``.

    Eagerly a NaN/inf entry raises ``ValueError``; under ``jit`` its row's four norms are NaN.

    Args:
      delta: ``[batch, ...]`` perturbations.

    Returns:
      ``{"l0", "l1", "l2", "linf"}``, each a ``[batch]`` array.
    """
    delta = jnp.asarray(delta)
    if delta.ndim < 1:
        raise ValueError("`delta` must be a batch [b, ...] of perturbations; got a scalar.")
    _checks.check_finite("delta", delta)
    return jax.vmap(perturbation_norms)(delta)
