"""The AUC metrics of a saliency map against fixations: AUC-Judd, AUC-Borji and shuffled AUC
(sAUC), in the MIT and pysaliency conventions (``jaxadv.metrics.saliency``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.metrics import _saliency_roc as _roc
from jaxadv.metrics._saliency_common import (
    JITTER_SCALE,
    _as_fixations,
    _as_map,
    _as_samples,
    _check_step,
    _check_variant,
    _exactly_one_source,
    _float,
    _is_constant,
    _min_max,
    _nan_where,
    _nonfinite,
    _require_fixated,
)
from jaxadv.metrics._saliency_resize import resize_to


def auc_judd(
    saliency_map,
    fixations,
    *,
    variant: str = "mit",
    key=None,
    jitter=None,
    thresholds: str | None = None,
) -> jax.Array:
    """AUC-Judd: area under the ROC of fixated versus non-fixated pixels (Judd et al., ICCV 2009).

    ``variant="mit"`` (``AUC_Judd.m``): the map (resized to the fixation grid) gets the optional
    jitter, is min-max normalised, and each fixated pixel is one positive (counted once), every
    non-fixated pixel one negative. Thresholds are the fixated values in descending order; at the
    i-th, ``tp = i / Nf`` and ``fp = (#{S >= t} - i) / (N - Nf)``; the points, framed by (0, 0) and
    (1, 1), are integrated with the trapezoid rule. Ties are *not* handled: tied fixated values
    make ``fp`` step back and tied non-fixated pixels count fully — the jitter is MATLAB's only tie
    breaker. NaN for a constant map (without jitter) or no fixation.

    ``variant="pysaliency"``: each *fixation* is a positive (counts weigh), non-fixated pixels are
    the negatives, no normalisation. ``thresholds="all"`` (default) gives the exact tie-aware
    (Mann–Whitney) AUC, ``P(pos > neg) + P(pos == neg) / 2``: pysaliency's
    ``AUC(nonfixations='unfixated')`` per image; a constant map scores exactly 0.5.
    ``thresholds="fixations"`` reproduces pysaliency's own ``AUC_Judd``, which like MIT thresholds
    at the fixated values only (``>=`` counting, so tied fixations are handled) and thereby gives
    half credit to negatives lying strictly between two consecutive fixated values; with unique,
    untied fixations it equals the MIT number.

    Jitter (both variants): ``jitter`` holds the unit draws, ``f[h', w']`` of the fixation grid,
    and ``1e-7 * jitter`` is added — uniform on [0, 1) for MIT (``rand``), standard normal for
    pysaliency (``randn``). A ``key`` draws them as ``jax.random.uniform(key, (h', w'))`` /
    ``jax.random.normal(key, (h', w'))``. With neither the map is not jittered (MIT's
    ``AUC_Judd(S, F, 0)``; MIT's default is jitter on, so pass a key to match it in distribution).
    In float32 a 1e-7 jitter is at the resolution of values near 1 and may leave some ties; enable
    x64 to break ties as MATLAB's double arithmetic does.

    Args:
      saliency_map: ``[h, w]`` finite map (any size; resized to the fixation grid).
      fixations: ``[h', w']`` non-negative fixation counts.
      variant: ``"mit"`` or ``"pysaliency"``.
      key: optional PRNG key for the jitter.
      jitter: optional unit jitter draws ``[h', w']`` (instead of ``key``).
      thresholds: ``"all"`` or ``"fixations"`` for pysaliency (default ``"all"``); MIT is always
        ``"fixations"``.

    Returns:
      A scalar; NaN as described.
    """
    _check_variant(variant)
    if thresholds is None:
        thresholds = "fixations" if variant == "mit" else "all"
    _checks.check_choice("thresholds", thresholds, ("all", "fixations"))
    if variant == "mit" and thresholds != "fixations":
        raise ValueError(
            "`thresholds` must be 'fixations' (or None) with variant='mit': MIT's AUC_Judd "
            f"thresholds at the fixated values; got {thresholds!r}. Use variant='pysaliency' for "
            "the exact AUC."
        )
    s = _as_map("saliency_map", saliency_map)
    f = _as_fixations("fixations", fixations)
    _require_fixated("fixations", f, 1, "auc_judd")
    if _checks.is_concrete(f) and np.all(np.asarray(f) > 0):
        raise ValueError(
            "`fixations` must leave at least one pixel unfixated for auc_judd (the negatives are "
            f"the non-fixated pixels); all {f.size} pixels are fixated."
        )
    _exactly_one_source(key, jitter, "jitter", "the jitter is either drawn from a key or given")
    if key is not None:
        draw = jax.random.uniform if variant == "mit" else jax.random.normal
        jitter = draw(key, tuple(f.shape))
    elif jitter is not None:
        jitter = _as_map("jitter", jitter)
        if tuple(jitter.shape) != tuple(f.shape):
            raise ValueError(
                f"`jitter` must have the fixation grid's shape {tuple(f.shape)}; got "
                f"{tuple(jitter.shape)}."
            )
    else:
        jitter = np.zeros(tuple(f.shape), np.float32)  # adds exactly nothing; one compiled form
    return _auc_judd(s, f, jitter, variant=variant, thresholds=thresholds)

@functools.partial(jax.jit, static_argnames=("variant", "thresholds"))
def _auc_judd(s, f, jitter, *, variant, thresholds):
    bad_input = _nonfinite(s, f, jitter)
    s = resize_to(_float(s), f.shape) + JITTER_SCALE * _float(jitter)
    fixated = (f > 0).ravel()
    no_fixation = ~jnp.any(fixated) | bad_input
    if variant == "mit":
        auc = _roc.judd_auc(_min_max(s).ravel(), fixated, None, None, rank_based=True)
        return _nan_where(no_fixation | _is_constant(s), auc)
    values, counts = s.ravel(), f.ravel().astype(s.dtype)
    unfixated = (~fixated).astype(s.dtype)
    if thresholds == "all":
        auc = _roc.exact_auc(values, counts, unfixated)
    else:
        auc = _roc.judd_auc(values, fixated, counts, unfixated, rank_based=False)
    return _nan_where(no_fixation, auc)

def auc_borji(
    saliency_map,
    fixations,
    *,
    key=None,
    samples=None,
    splits: int = 100,
    step: float = 0.1,
    variant: str = "mit",
) -> jax.Array:
    """AUC-Borji: fixated pixels against negatives drawn uniformly from the whole map.

    ``variant="mit"`` (``AUC_Borji.m``; Borji, Sihite & Itti, IEEE TIP 2013): the map, resized to
    the fixation grid, is min-max normalised; the positives are the Nf fixated pixels (each once).
    Each of ``splits`` splits draws Nf pixels uniformly *with replacement over all pixels*
    (fixated ones included) as negatives, sweeps thresholds ``0 : step : max`` (MATLAB's colon
    operator, high to low), takes ``tp``/``fp`` as the fractions ``>=`` each threshold and
    integrates with the trapezoid rule; the score is the mean over splits. NaN with fewer than 2
    fixated pixels (the MATLAB code's own guard: a single fixation gives NaN) or a constant map.
    The comparisons run in the map's precision (float32 unless x64), MATLAB's in double, so a
    value exactly on a multiple of ``step`` may fall on the other side.

    Draws: ``samples`` is ``int[splits, m]`` of row-major flat pixel indices, one row per split
    (MIT draws ``m = Nf``; ``splits`` is then ``samples.shape[0]``). A ``key`` draws, for split
    ``s``, ``jax.random.randint(jax.random.fold_in(key, s), (h', w'), 0, h' * w')``, flattened
    row-major, and uses its first Nf entries (static shapes under jit; memory O(h' w') per split,
    splits run in sequence).

    ``variant="pysaliency"``: the benchmark's ``AUC`` with uniform nonfixations, the exact limit
    of Borji's sampling: every fixation (counts weigh) against *every* pixel, tie-aware exact
    (Mann–Whitney) with no steps; takes no draws (``key``/``samples`` must be None).

    Args:
      saliency_map: ``[h, w]`` finite map (any size).
      fixations: ``[h', w']`` non-negative counts.
      key: PRNG key (MIT; or ``samples``).
      samples: explicit negatives as above (MIT; or ``key``).
      splits: static number of splits for ``key`` (default 100).
      step: static threshold step in (0, 1] (default 0.1).
      variant: ``"mit"`` or ``"pysaliency"``.

    Returns:
      The AUC in [0, 1], a 0-d float array.

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    f = _as_fixations("fixations", fixations)
    if variant == "pysaliency":
        _no_draws(key, samples, "auc_borji")
        _require_fixated("fixations", f, 1, "auc_borji")
        return _auc_exact(s, f, np.ones(tuple(f.shape), f.dtype))  # every pixel once
    _checks.check_positive_int("splits", splits)
    step = _check_step(step)
    _require_fixated("fixations", f, 2, "MIT auc_borji")
    _exactly_one_source(key, samples, "samples", "the negatives are drawn from a key or given")
    if key is None and samples is None:
        raise ValueError(
            "variant='mit' samples random negatives: pass `key` (a PRNG key) or `samples` "
            "(int[splits, m] flat pixel indices); got neither."
        )
    if samples is not None:
        samples = _as_samples(samples, f.shape)
    capacity = 1 if samples is not None else _buffer_capacity(f, f.size)
    return _auc_borji_mit(s, f, key, samples, splits=splits, step=step, capacity=capacity)

def _buffer_capacity(mask_source, size: int) -> int:
    """Static length of the negatives buffer of a keyed split: the smallest power of two that
    holds the ``> 0`` pixels of a concrete map (few distinct compilations over a data set), or
    every pixel when the map is traced. The draws do not depend on it, so neither does the score.
    """
    if not _checks.is_concrete(mask_source):
        return size
    count = max(1, int(np.count_nonzero(np.asarray(mask_source) > 0)))
    return min(size, 1 << (count - 1).bit_length())

def _compact(mask, capacity: int):
    """Flat indices of the True entries of ``mask`` in increasing order, in a buffer of static
    length ``capacity`` (>= their number; unused slots hold 0)."""
    slot = jnp.cumsum(mask) - 1
    target = jnp.where(mask, slot, capacity)
    index = jnp.arange(mask.shape[0], dtype=jnp.int32)
    return jnp.zeros(capacity, jnp.int32).at[target].set(index, mode="drop")

def _no_draws(key, samples, metric: str) -> None:
    if key is not None or samples is not None:
        raise ValueError(
            f"variant='pysaliency' {metric} is exact and draws nothing: `key` and `samples` must "
            "be None."
        )

@jax.jit
def _auc_exact(s, f, negatives):
    """pysaliency exact AUC: fixations against negatives, both weighted by their counts."""
    bad_input = _nonfinite(s, f, negatives)
    s = resize_to(_float(s), f.shape)
    counts = f.ravel().astype(s.dtype)
    neg = negatives.ravel().astype(s.dtype)
    auc = _roc.exact_auc(s.ravel(), counts, neg)
    return _nan_where(~jnp.any(counts > 0) | ~jnp.any(neg > 0) | bad_input, auc)

def _split_aucs(values, fixated, negatives_of_split, count: int, step: float):
    """Stepped AUC of each split, splits in sequence (memory of one split at a time)."""

    def one(i):
        neg_values, neg_mask = negatives_of_split(i)
        return _roc.stepped_auc(values, fixated, neg_values, neg_mask, step=step)

    return jax.lax.map(one, jnp.arange(count))

@functools.partial(jax.jit, static_argnames=("splits", "step", "capacity"))
def _auc_borji_mit(s, f, key, samples, *, splits, step, capacity):
    bad_input = _nonfinite(s, f)
    s = resize_to(_float(s), f.shape)
    values = _min_max(s).ravel()
    fixated = (f > 0).ravel()
    n, n_fix = values.shape[0], jnp.sum(fixated)
    if samples is None:
        first_nf = jnp.arange(capacity) < n_fix  # capacity >= Nf

        def negatives(i):
            draws = jax.random.randint(jax.random.fold_in(key, i), f.shape, 0, n).ravel()
            return values[draws[:capacity]], first_nf

        aucs = _split_aucs(values, fixated, negatives, splits, step)
    else:
        every = jnp.ones(samples.shape[1], bool)
        aucs = _split_aucs(
            values, fixated, lambda i: (values[samples[i]], every), samples.shape[0], step
        )
    return _nan_where((n_fix <= 1) | _is_constant(s) | bad_input, jnp.mean(aucs))

def auc_shuffled(
    saliency_map,
    fixations,
    other_fixations,
    *,
    key=None,
    samples=None,
    splits: int = 100,
    step: float = 0.1,
    variant: str = "mit",
) -> jax.Array:
    """Shuffled AUC (sAUC): fixations against the fixations of *other* images, which discounts
    centre bias (Zhang et al., "SUN", JoV 2008; Borji, Tavakoli, Sihite & Itti, ICCV 2013).

    ``other_fixations`` is a count map on this image's grid of the fixations of other images
    (rescale their coordinates to this grid first, e.g. with :func:`fixation_map`).

    ``variant="mit"`` (``AUC_shuffled.m``): as :func:`auc_borji` (min-max, positives = fixated
    pixels once, thresholds ``0 : step : max``, mean over splits) with the negatives of each split
    a random subset, without replacement, of ``Noth = min(Nf, #{other > 0})`` pixels of the
    *binary* union ``other_fixations > 0`` (counts ignored; pixels also fixated in this image are
    kept). NaN with no fixation, no other fixation, or a constant map.

    Draws: ``samples`` is ``int[splits, m]`` of row-major flat indices of pixels with
    ``other_fixations > 0`` (MIT: ``m = Noth``; ``splits = samples.shape[0]``). A ``key`` gives
    split ``s`` the priorities ``u = jax.random.uniform(jax.random.fold_in(key, s), (h', w'))``;
    the other-fixated pixels in increasing ``u`` (a uniform random permutation, as MATLAB's
    ``randperm``; equal ``u`` by flat index) and the first ``Noth`` are the negatives. Each split
    selects them without a sort (the AUC depends on the set only: a bisection for the ``Noth``-th
    smallest ``u``), over the other-fixated pixels only, in a buffer sized eagerly to the next
    power of two of their number; under jit/vmap (traced maps) it holds all ``h' w'`` pixels and
    is slower on CPU (pass ``samples``, or call eagerly, when that matters).

    ``variant="pysaliency"`` (pysaliency ``sAUC`` / ``AUC(nonfixations='shuffled')``): every
    fixation (counts weigh) against *every* other fixation (counts weigh: duplicates kept), exact
    tie-aware AUC, no sampling and no steps; takes no draws.

    Args:
      saliency_map: ``[h, w]`` finite map (any size).
      fixations: ``[h', w']`` non-negative counts.
      other_fixations: ``[h', w']`` non-negative counts of other images' fixations.
      key, samples, splits, step: as in :func:`auc_borji` (MIT only).
      variant: ``"mit"`` or ``"pysaliency"``.

    Returns:
      The AUC in [0, 1], a 0-d float array.

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    f = _as_fixations("fixations", fixations)
    other = _as_fixations("other_fixations", other_fixations, shape=f.shape)
    _require_fixated("fixations", f, 1, "auc_shuffled")
    _require_fixated("other_fixations", other, 1, "auc_shuffled")
    if variant == "pysaliency":
        _no_draws(key, samples, "auc_shuffled")
        return _auc_exact(s, f, other)
    _checks.check_positive_int("splits", splits)
    step = _check_step(step)
    _exactly_one_source(key, samples, "samples", "the negatives are drawn from a key or given")
    if key is None and samples is None:
        raise ValueError(
            "variant='mit' samples random negatives: pass `key` (a PRNG key) or `samples` "
            "(int[splits, m] flat indices of other-fixated pixels); got neither."
        )
    if samples is not None:
        samples = _as_samples(samples, f.shape, other, "other_fixations")
    capacity = 1 if samples is not None else _buffer_capacity(other, other.size)
    return _auc_shuffled_mit(s, f, other, key, samples, splits=splits, step=step, capacity=capacity)

@functools.partial(jax.jit, static_argnames=("splits", "step", "capacity"))
def _auc_shuffled_mit(s, f, other, key, samples, *, splits, step, capacity):
    bad_input = _nonfinite(s, f, other)
    s = resize_to(_float(s), f.shape)
    values = _min_max(s).ravel()
    fixated = (f > 0).ravel()
    elsewhere = (other > 0).ravel()
    n_other = jnp.sum(elsewhere)
    n_oth = jnp.minimum(jnp.sum(fixated), n_other)
    if samples is None:
        # The other-fixated pixels in index order, so that each split scans only them.
        others = _compact(elsewhere, capacity)
        listed = jnp.arange(capacity) < n_other  # capacity >= their number

        def negatives(i):
            priority = jax.random.uniform(jax.random.fold_in(key, i), f.shape).ravel()
            return values[others], _first_by_priority(priority[others], listed, n_oth)

        aucs = _split_aucs(values, fixated, negatives, splits, step)
    else:
        every = jnp.ones(samples.shape[1], bool)
        aucs = _split_aucs(
            values, fixated, lambda i: (values[samples[i]], every), samples.shape[0], step
        )
    bad = ~jnp.any(fixated) | (n_oth == 0) | _is_constant(s) | bad_input
    return _nan_where(bad, jnp.mean(aucs))


def _first_by_priority(priority, listed, k):
    """The ``k`` listed entries of least ``priority`` (equal priorities by position), as a mask:
    the first ``k`` of the stable sort by priority, found without sorting (issue 19).

    The AUC of a split depends on the set of negatives only, so their order is not needed. The
    threshold priority (the k-th smallest) is found by bisection on the float32 bit patterns,
    which order non-negative floats as their values: 31 counting passes over the buffer instead
    of a sort of it.
    """
    bits = jax.lax.bitcast_convert_type(priority.astype(jnp.float32), jnp.int32)

    def halve(_, bounds):
        low, high = bounds  # count(bits <= high) >= k; count(bits <= low - 1) < k
        mid = low + (high - low) // 2
        enough = jnp.sum(listed & (bits <= mid)) >= k
        return jnp.where(enough, low, mid + 1), jnp.where(enough, mid, high)

    top = jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32)
    _, threshold = jax.lax.fori_loop(0, 31, halve, (jnp.zeros((), jnp.int32), top))
    below = listed & (bits < threshold)
    tied = listed & (bits == threshold)
    need = k - jnp.sum(below)
    return below | (tied & (jnp.cumsum(tied) <= need))
