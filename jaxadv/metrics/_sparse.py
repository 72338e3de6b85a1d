"""The evaluation protocol of sparse targeted attacks (SAPF, Fan, Wu et al., ECCV 2020, §4.1 and
Table 1; after Carlini & Wagner's best/average/worst cases).

Each image is attacked toward every other class in ONE batched run (:func:`target_pairs` builds
the (image, target) pairs; ``attack.batch`` vmaps over them). Per image and over its targets:

* **average case**: every (image, target) pair counts: ASR is the fraction of successful pairs,
  norms are averaged over the successful pairs;
* **best case**: the easiest target of each image, i.e. the successful one with the smallest
  ``by`` norm (ℓ2 by default); the image counts as a success when any target succeeded; norms are
  averaged over those images;
* **worst case**: the hardest target: a failed target if there is one (the image then counts as a
  failure and is left out of the norms), else the successful one with the largest ``by`` norm.

Failures never enter a norm average; they lower the ASR. For attacks with a fixed budget, "keep
increasing the budget until success" is :func:`smallest_successful_budget` over a budget sweep.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxadv.results import NORM_NAMES, AttackResult
CASES = ("best", "average", "worst")


def target_pairs(images: Any, labels: Any, num_classes: int):
    """All (image, target ≠ label) pairs, image-major: ``(images, labels, targets, image_index)``
    with ``n·(num_classes − 1)`` rows each (targets in increasing order per image).

    Args:
      images: ``[n, ...]`` inputs.
      labels: ``[n]`` integer classes.
      num_classes: the number of classes, ≥ 2.

    Returns:
      ``(images, labels, targets, image_index)``, each with ``n·(num_classes − 1)`` rows.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"`labels` must have shape ({images.shape[0]},) to match `images`; got {labels.shape}."
        )
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
        raise ValueError(f"`num_classes` must be an int >= 2; got {num_classes!r}.")
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must hold integer class indices; got dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`labels` must lie in [0, {num_classes - 1}]; got [{labels.min()}, {labels.max()}]."
        )
    others = np.array([[t for t in range(num_classes) if t != y] for y in labels], np.int32)
    index = np.repeat(np.arange(len(labels)), num_classes - 1)
    return images[index], labels[index].astype(np.int32), others.reshape(-1), index


def _grid(result: AttackResult, per_image: int):
    success = np.asarray(result.success, bool)
    if success.ndim != 1 or success.size % per_image:
        raise ValueError(
            f"`result` must hold one batch of n × {per_image} pairs (from `target_pairs`); got "
            f"success of shape {success.shape}."
        )
    n = success.size // per_image
    norms = {
        name: np.asarray(getattr(result, name), np.float64).reshape(n, per_image)
        for name in NORM_NAMES
    }
    return success.reshape(n, per_image), norms


def _mean(values, mask):
    return float(np.mean(values[mask])) if np.any(mask) else float("nan")


def case_table(result: AttackResult, per_image: int, by: str = "l2") -> dict[str, dict[str, float]]:
    """ASR (in %) and mean ℓ0, ℓ1, ℓ2, ℓ∞ for the best, average and worst case (module doc).

    ``result`` holds the pairs of :func:`target_pairs` (``per_image`` = num_classes − 1 targets per
    image, image-major); ``by`` picks the easiest/hardest target among successful ones.

    Args:
      result: an :class:`~jaxadv.results.AttackResult` over the pairs of :func:`target_pairs`.
      per_image: targets per image (``num_classes − 1``).
      by: the norm that ranks targets: ``"l0"``, ``"l1"``, ``"l2"`` or ``"linf"``.

    Returns:
      ``{"best" | "average" | "worst": {"asr", "l0", "l1", "l2", "linf"}}`` as floats.

    References:
      Fan, Wu, Li, Zhang, Li & Yang, "Sparse Adversarial Attack via Perturbation Factorization",
      ECCV 2020 (SAPF), after Carlini & Wagner, IEEE S&P 2017.
    """
    if by not in NORM_NAMES:
        raise ValueError(f"`by` must be one of {NORM_NAMES}; got {by!r}.")
    success, norms = _grid(result, per_image)
    key = norms[by]
    rows = np.arange(success.shape[0])
    table = {}
    best = np.argmin(np.where(success, key, np.inf), axis=1)
    worst_ok = np.argmax(np.where(success, key, -np.inf), axis=1)
    worst = np.where(success.all(axis=1), worst_ok, np.argmin(success, axis=1))
    for case, pick in (("best", best), ("worst", worst)):
        ok = success[rows, pick]
        table[case] = {"asr": 100.0 * float(np.mean(ok)) if ok.size else float("nan")}
        table[case].update({name: _mean(norms[name][rows, pick], ok) for name in NORM_NAMES})
    table["average"] = {"asr": 100.0 * float(np.mean(success)) if success.size else float("nan")}
    table["average"].update({name: _mean(norms[name], success) for name in NORM_NAMES})
    return {case: table[case] for case in CASES}


def smallest_successful_budget(results: AttackResult) -> tuple[AttackResult, np.ndarray]:
    """Per example, the result at the smallest budget that succeeded ("keep increasing the budget
    until success"); examples that never succeed keep the largest budget's (failed) result.

    ``results`` comes from a budget sweep (``attack.sweep``): fields ``[K, n, ...]`` with budgets
    in increasing order along K. Returns the per-example result ``[n, ...]`` and the chosen index.

    Args:
      results: an :class:`~jaxadv.results.AttackResult` with leading axes ``[K, n]``.

    Returns:
      ``(result[n, ...], chosen[n])``.
    """
    success = np.asarray(results.success, bool)
    if success.ndim != 2:
        raise ValueError(
            f"`results` must come from a sweep over K budgets (success of shape (K, n)); got "
            f"{success.shape}."
        )
    k = success.shape[0]
    chosen = np.where(success.any(axis=0), np.argmax(success, axis=0), k - 1)
    cols = np.arange(success.shape[1])

    def pick(leaf):  # scalar leaves (a field's default) are shared by all entries
        return np.asarray(leaf)[chosen, cols] if np.ndim(leaf) >= 2 else leaf

    picked = jax.tree.map(pick, results)
    return picked, chosen


def k_sweep(results: AttackResult, ks: Any) -> list[dict[str, float]]:
    """One row per cardinality ``k`` (paper Fig. 4): ASR (%) and mean ℓ0, ℓ1, ℓ2, ℓ∞ over the
    successful examples. ``results`` has fields ``[K, n, ...]`` (``attack.sweep`` over ``hp.k``).

    Args:
      results: an :class:`~jaxadv.results.AttackResult` with leading axes ``[K, n]``.
      ks: the K cardinalities, in the order of the sweep.

    Returns:
      A list of K dicts ``{"k", "asr", "l0", "l1", "l2", "linf"}``.

    References:
      Fan, Wu, Li, Zhang, Li & Yang, "Sparse Adversarial Attack via Perturbation Factorization",
      ECCV 2020 (SAPF), after Carlini & Wagner, IEEE S&P 2017.
    """
    success = np.asarray(results.success, bool)
    ks = np.asarray(ks).reshape(-1)
    if success.ndim != 2 or success.shape[0] != ks.size:
        raise ValueError(
            f"`results` must have a leading axis of {ks.size} (one per k); got success of shape "
            f"{success.shape}."
        )
    rows = []
    for i, k in enumerate(ks):
        ok = success[i]
        row = {"k": float(k), "asr": 100.0 * float(np.mean(ok))}
        row.update({n: _mean(np.asarray(getattr(results, n))[i], ok) for n in NORM_NAMES})
        rows.append(row)
    return rows


def format_case_table(tables: dict[str, dict[str, dict[str, float]]]) -> str:
    """Table 1's layout: one row per method, ASR and ℓ0..ℓ∞ for each case.

    Args:
      tables: ``{method: case_table(...)}``.

    Returns:
      The text table, one line per method.
    """
    head = ["method"] + [f"{c[:4]} {m}" for c in CASES for m in ("ASR",) + NORM_NAMES]
    lines = [head]
    for method, table in tables.items():
        row = [method]
        for case in CASES:
            t = table[case]
            row += [f"{t['asr']:.1f}", f"{t['l0']:.1f}", f"{t['l1']:.3f}", f"{t['l2']:.3f}"]
            row += [f"{t['linf']:.3f}"]
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    fmt = lambda line: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
    )
    return "\n".join([fmt(lines[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in lines[1:]])
