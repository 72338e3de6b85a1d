"""ROC areas of the saliency benchmarks, on flattened maps with static shapes.

Three constructions, each following its reference code:

- ``exact_auc``: the Mann–Whitney statistic with ties worth 1/2, what pysaliency's ``general_roc``
  (thresholds at every distinct value, ``>=`` counting, trapezoid rule) evaluates;
- ``judd_auc``: thresholds at the fixated values only, as MIT's ``AUC_Judd.m`` (rank-based true
  positive rate ``i / Nf``) and pysaliency's ``thresholds='fixations'`` (``>=`` counting) build it;
- ``stepped_auc``: thresholds ``0 : step : max`` as MIT's ``AUC_Borji.m`` / ``AUC_shuffled.m`` build
  them, with MATLAB's colon operator.

Positives and negatives are given as weights over the same pixels (counts, masks), so duplicate
fixations and count-weighted negatives need no variable-length arrays.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax


def trapezoid(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """MATLAB ``trapz(x, y)``: sum of ``(x[i+1] - x[i]) * (y[i+1] + y[i]) / 2``."""
    return jnp.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1])) / 2


def _curve_area(fp: jnp.ndarray, tp: jnp.ndarray) -> jnp.ndarray:
    """Area under the points ``(fp, tp)`` framed by (0, 0) before and (1, 1) after."""
    zero, one = jnp.zeros(1, fp.dtype), jnp.ones(1, fp.dtype)
    return trapezoid(jnp.concatenate([zero, fp, one]), jnp.concatenate([zero, tp, one]))


def _tie_bounds(ascending):
    """First and last index of the run of equal values each position of a sorted array is in."""
    n = ascending.shape[0]
    index = jnp.arange(n)
    change = ascending[1:] != ascending[:-1]
    starts = jnp.concatenate([jnp.ones(1, bool), change])
    ends = jnp.concatenate([change, jnp.ones(1, bool)])
    first = lax.cummax(jnp.where(starts, index, 0))
    last = lax.cummin(jnp.where(ends, index, n - 1), reverse=True)
    return first, last


def _before(cumulative, index):
    """Exclusive prefix sum at ``index`` from an inclusive one (0 before the first element)."""
    return jnp.where(index > 0, cumulative[index - 1], 0)


def exact_auc(values, pos_weight, neg_weight):
    """``P(pos > neg) + P(pos == neg) / 2`` with positives and negatives weighted per pixel.

    One sort: in ascending order, a pixel's tie group (run of equal values) gives the negative
    weight strictly below it and at or below it. NaN when either side has no weight.
    """
    order = jnp.argsort(values)
    first, last = _tie_bounds(values[order])
    neg_cum = jnp.cumsum(neg_weight[order])
    below = _before(neg_cum, first)
    credit = below + 0.5 * (neg_cum[last] - below)
    return jnp.sum(pos_weight[order] * credit) / (jnp.sum(pos_weight) * jnp.sum(neg_weight))


def judd_auc(values, fixated, pos_weight, neg_weight, *, rank_based: bool):
    """ROC area with one threshold per fixated pixel value (sorted descending).

    ``rank_based=True`` is MIT's ``AUC_Judd.m``: at the i-th threshold ``tp = i / Nf`` and
    ``fp = (#{S >= t} - i) / (N - Nf)``; ``pos_weight``/``neg_weight`` are unused (each fixated
    pixel is one positive, every other pixel one negative). With tied fixated values this rule is
    not monotone, exactly as in MATLAB. ``rank_based=False`` is pysaliency's
    ``thresholds='fixations'``: ``tp``/``fp`` are the weights at or above the threshold over the
    totals.
    """
    n = values.shape[0]
    dtype = values.dtype
    order = jnp.argsort(values)
    first, _ = _tie_bounds(values[order])
    # Sorted positions of the fixated pixels, largest value first, then the others.
    position = jnp.arange(n)
    fixated_sorted = fixated[order]
    picks = jnp.argsort(jnp.where(fixated_sorted, n - 1 - position, n + position))
    start = first[picks]  # first index of each threshold's tie group: #{S >= t} = n - start
    n_fix = jnp.sum(fixated)
    if rank_based:
        rank = jnp.arange(1, n + 1, dtype=dtype)
        tp = rank / n_fix
        fp = (n - start - rank) / (n - n_fix)
    else:
        pos_cum = jnp.cumsum(pos_weight[order])
        neg_cum = jnp.cumsum(neg_weight[order])
        tp = (pos_cum[-1] - _before(pos_cum, start)) / pos_cum[-1]
        fp = (neg_cum[-1] - _before(neg_cum, start)) / neg_cum[-1]
    # Slots past the Nf thresholds repeat the final (1, 1) point: zero area.
    valid = position < n_fix
    return _curve_area(jnp.where(valid, fp, 1), jnp.where(valid, tp, 1))


def colon_capacity(step: float) -> int:
    """Static length that holds ``0 : step : top`` for every ``top`` in [0, 1]."""
    return math.floor(1.0 / step + 0.5) + 2


def matlab_colon(top, step: float, capacity: int):
    """MATLAB's ``0 : step : top`` (``top >= 0``), ascending, padded with ``+inf`` to ``capacity``.

    MATLAB does not add ``step`` repeatedly: it takes ``n = round(top / step)`` intervals (one
    fewer if ``n * step`` overshoots ``top`` by more than ``2 eps top``), snaps the last point to
    ``top`` when within that tolerance, and fills the first half as ``k * step`` and the second half
    as ``last - k * step`` (the midpoint of an even ``n`` as ``last / 2``), so the sequence is
    symmetric about its midpoint.
    """
    dtype = top.dtype
    tol = 2 * jnp.finfo(dtype).eps * top
    n = jnp.floor(top / step + 0.5)  # MATLAB rounds halves away from zero
    n = jnp.where(n * step - top > tol, n - 1, n)
    last = n * step
    last = jnp.where(last - top > -tol, top, last)
    k = jnp.arange(capacity, dtype=dtype)
    values = jnp.where(2 * k < n, k * step, jnp.where(2 * k > n, last - (n - k) * step, last / 2))
    return jnp.where(k <= n, values, jnp.inf)


def _count_at_or_above(values, weight, thresholds):
    """Weight of ``values >= t`` per threshold ``t`` (a dozen thresholds: compare them all)."""
    return jnp.sum(jnp.where(values[None, :] >= thresholds[:, None], weight[None, :], 0), axis=1)


def stepped_auc(pos_values, pos_mask, neg_values, neg_mask, *, step: float):
    """One split of MIT's ``AUC_Borji.m`` / ``AUC_shuffled.m``.

    Thresholds ``fliplr(0 : step : max(positives ∪ negatives))``; ``tp``/``fp`` are the fractions
    of positives/negatives ``>=`` each threshold (each mask gives one unit per selected entry).
    Values must lie in [0, 1] (min-max normalised maps).
    """
    dtype = pos_values.dtype
    pos_w = pos_mask.astype(dtype)
    neg_w = neg_mask.astype(dtype)
    top = jnp.maximum(
        jnp.max(jnp.where(pos_mask, pos_values, -jnp.inf)),
        jnp.max(jnp.where(neg_mask, neg_values, -jnp.inf)),
    )
    thresholds = matlab_colon(top, step, colon_capacity(step))
    # +inf padding gives (0, 0) points that sit next to the leading (0, 0): zero area.
    tp = _count_at_or_above(pos_values, pos_w, thresholds) / jnp.sum(pos_w)
    fp = _count_at_or_above(neg_values, neg_w, thresholds) / jnp.sum(neg_w)
    return _curve_area(fp[::-1], tp[::-1])
