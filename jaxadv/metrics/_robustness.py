"""The evaluation protocol of minimum-norm attacks: robustness curves, optimality, query counts.

One minimum-norm run per attack gives each example's smallest adversarial norm found (``inf``
where the attack failed, 0 where the victim already errs). From those:

* :func:`robust_accuracy_curve` — robust accuracy at every budget ε at once: an example is robust
  at ε when it is classified correctly and the attack found no adversarial of norm ≤ ε;
* :func:`local_optimality` — AttackBench's score (Cinà et al., "AttackBench: evaluating
  gradient-based attacks for adversarial examples", AAAI 2025): how close each attack's robustness
  curve comes to the curve of the per-example best over all attacks compared;
* :func:`query_counts` — the forward/backward passes each attack spent (``AttackResult.queries``).

Everything is jit-friendly array code (one call for a whole batch; the per-example distance is
:func:`adversarial_distance`, written for one example and vmapped).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks


def _as_array(name: str, value: Any, ndim: int, dtype) -> jax.Array:
    arr = jnp.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s); got shape {arr.shape}.")
    if dtype is bool:
        if arr.dtype != jnp.bool_:
            raise ValueError(f"`{name}` must hold booleans; got dtype {arr.dtype}.")
        return arr
    arr = arr.astype(jnp.float32)
    if _checks.is_concrete(arr) and np.any(np.isnan(np.asarray(arr))):
        raise ValueError(f"`{name}` must not hold NaN; got {int(np.isnan(arr).sum())} NaN entries.")
    return arr


def _same_shape(names: tuple[str, ...], *arrays) -> None:
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) != 1:
        got = ", ".join(f"`{n}` {s}" for n, s in zip(names, shapes))
        raise ValueError(
            f"{' and '.join(f'`{n}`' for n in names)} must share one shape; got {got}."
        )


def adversarial_distance(
    norm: jax.Array, success: jax.Array, clean_correct: jax.Array
) -> jax.Array:
    """One example's distance to its nearest adversarial found: 0 when the victim already errs,
    the attack's ``norm`` when it succeeded, ``inf`` when it failed.

    Args:
      norm: the norm of the example's best adversarial perturbation.
      success: whether the attack found one.
      clean_correct: whether the victim classifies the clean example correctly.

    Returns:
      A scalar (``vmap`` it over a batch).
    """
    return jnp.where(clean_correct, jnp.where(success, norm, jnp.inf), 0.0)


def robust_accuracy_curve(norms: Any, success: Any, clean_correct: Any, budgets: Any) -> jax.Array:
    """Robust accuracy at each budget from ONE minimum-norm run.

    Args:
      norms: ``f32[b]``, the norm of each example's best adversarial perturbation (any value
        where ``success`` is False; no NaN).
      success: ``bool[b]``, whether the attack found an adversarial example.
      clean_correct: ``bool[b]``, whether the victim classifies the clean example correctly.
      budgets: ``f32[k]``, the budgets ε (any order, ``>= 0``).

    Returns:
      ``f32[k]``: the fraction of examples that are clean-correct AND have no adversarial of norm
      ``<= ε`` found, for each ε.
    """
    norms = _as_array("norms", norms, 1, float)
    success = _as_array("success", success, 1, bool)
    clean_correct = _as_array("clean_correct", clean_correct, 1, bool)
    budgets = _as_array("budgets", budgets, 1, float)
    _same_shape(("norms", "success", "clean_correct"), norms, success, clean_correct)
    _checks.check_nonnegative("budgets", budgets)
    distance = jax.vmap(adversarial_distance)(norms, success, clean_correct)
    robust = (distance[None, :] > budgets[:, None]) & clean_correct[None, :]
    return jnp.mean(robust.astype(jnp.float32), axis=1)


def local_optimality(
    norms: Any, success: Any, clean_correct: Any, reference: Any | None = None
) -> jax.Array:
    """AttackBench's local optimality of each of ``A`` attacks on one model.

    Cinà et al. (AAAI 2025), "AttackBench": each attack's robust-accuracy curve ``ρ_a(ε)`` is
    compared with the curve ``ρ*(ε)`` of the per-example best distance over all attacks compared
    (``d*_i = min_a d_{a,i}``), up to the largest best distance ``ε* = max_i d*_i``::

        LO_a = 1 − (A(ρ_a) − A(ρ*)) / (A(ρ_∅) − A(ρ*)),   A(ρ) = ∫₀^{ε*} ρ(ε) dε,

    where ``ρ_∅`` is the curve of an attack that finds nothing (clean accuracy at every ε). The
    best attack on every example scores 1, one that never succeeds scores 0. Because
    ``∫₀^{ε*} 1[d > ε] dε = min(d, ε*)``, the areas are exact means of clipped distances; the
    published analysis code integrates the same step curves with the trapezoid rule over their
    jump points, a close approximation of these exact areas.

    Args:
      norms: ``f32[A, b]``, each attack's best adversarial norm per example.
      success: ``bool[A, b]``.
      clean_correct: ``bool[b]``.
      reference: optional ``f32[b]`` known adversarial distances (e.g. exact minima from
        :func:`exact_min_norm`, ``inf`` where none exists) that join the per-example best; with
        exact minima the score measures distance to the true optimum.

    Returns:
      ``f32[A]``, the scores; 1 for every attack when ``A(ρ_∅) = A(ρ*)`` (nothing to improve).
    """
    norms = _as_array("norms", norms, 2, float)
    success = _as_array("success", success, 2, bool)
    clean_correct = _as_array("clean_correct", clean_correct, 1, bool)
    _same_shape(("norms", "success"), norms, success)
    if norms.shape[1:] != clean_correct.shape:
        raise ValueError(
            f"`clean_correct` must have shape ({norms.shape[1]},), one entry per example of "
            f"`norms` {norms.shape}; got {clean_correct.shape}."
        )
    per_attack = jax.vmap(jax.vmap(adversarial_distance), in_axes=(0, 0, None))
    dist = per_attack(norms, success, clean_correct)  # [A, b]
    best = jnp.min(dist, axis=0)
    if reference is not None:
        reference = _as_array("reference", reference, 1, float)
        _same_shape(("reference", "clean_correct"), reference, clean_correct)
        best = jnp.minimum(best, jnp.where(clean_correct, reference, 0.0))
    finite = jnp.isfinite(best)
    eps_max = jnp.max(jnp.where(finite, best, 0.0))
    area = lambda d: jnp.mean(jnp.minimum(d, eps_max), axis=-1)  # noqa: E731
    best_area = area(best)
    none_area = area(jnp.where(clean_correct, jnp.inf, 0.0))
    gap = none_area - best_area
    score = 1.0 - (area(dist) - best_area) / jnp.where(gap > 0, gap, 1.0)
    return jnp.where(gap > 0, score, 1.0)


def query_counts(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Forward/backward passes spent by each attack, from its ``AttackResult.queries``.

    A white-box query is one forward+backward pass of the victim (``jaxadv.gradients.Exact``);
    query-based oracles count their forward passes. ``queries`` already sums restarts.

    Args:
      results: ``{attack name: AttackResult}`` for one batch each.

    Returns:
      ``{attack name: {"total", "mean", "max"}}`` over the batch's examples.
    """
    if not isinstance(results, dict) or not results:
        raise ValueError(
            f"`results` must be a non-empty dict of attack name -> AttackResult; got {results!r}."
        )
    out = {}
    for name, result in results.items():
        if not hasattr(result, "queries"):
            raise ValueError(
                f"`results[{name!r}]` must be an AttackResult; got {type(result).__name__}."
            )
        q = np.asarray(result.queries)
        if q.ndim != 1:
            raise ValueError(
                f"`results[{name!r}].queries` must be one batch (shape (b,)); got {q.shape}."
            )
        out[name] = {"total": float(q.sum()), "mean": float(q.mean()), "max": float(q.max())}
    return out
