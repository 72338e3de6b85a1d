"""Benchmark scores of saliency maps and models on a ``SaliencyDataset``, and their table."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxadv import _checks, _compile
from jaxadv.data.saliency import SaliencyDataset, scene_center_bias
from jaxadv.losses import to_saliency_map
from jaxadv.metrics import saliency as metrics
from jaxadv.models.saliency import SaliencyVictim
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_data import check_dataset, mean_density

SALIENCY_METRIC_NAMES = ("cc", "nss", "sauc", "kl", "sim")


@functools.partial(jax.jit, static_argnames="variant")
def _dense_scores(saliency_map, density, counts, *, variant):
    return {
        "cc": metrics.cc(saliency_map, density, variant=variant),
        "nss": metrics.nss(saliency_map, counts, variant=variant),
        "kl": metrics.kl_div(saliency_map, density, variant=variant),
        "sim": metrics.sim(saliency_map, density, variant=variant),
    }

def _shuffled_auc(saliency_map, counts, other, rng, *, variant, splits):
    """sAUC; MIT's negatives drawn here (``AUC_shuffled.m``: per split a random subset, without
    replacement, of ``min(#fixated, #other-fixated)`` other-fixated pixels), so that the metric
    compiles for a handful of sample counts instead of sorting the whole grid once per split."""
    if variant == "pysaliency":
        return metrics.auc_shuffled(saliency_map, counts, other, variant=variant)
    candidates = np.flatnonzero(other.ravel() > 0)
    m = min(int(np.count_nonzero(counts)), candidates.size)
    if m == 0:
        return float("nan")
    samples = np.stack([rng.permutation(candidates)[:m] for _ in range(splits)]).astype(np.int32)
    return metrics.auc_shuffled(saliency_map, counts, other, samples=samples, variant=variant)

def _other_counts(data: SaliencyDataset, i: int, others: np.ndarray) -> np.ndarray:
    """Counts, on item ``i``'s grid, of the fixations of items ``others`` (coordinates rescaled
    as the loaders do: the pixel each fixation's centre falls into)."""
    h, w = data.images[i].shape[:2]
    tally = np.zeros((h, w), np.float32)
    for j in others:
        hj, wj = data.images[j].shape[:2]
        xy = np.floor((data.fixations[j] + 0.5) * np.array([w / wj, h / hj])).astype(np.int64)
        xy = np.minimum(xy, [w - 1, h - 1])
        np.add.at(tally, (xy[:, 1], xy[:, 0]), 1.0)
    return tally

def evaluate_saliency_maps(
    maps: Any,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    n_other: int = 10,
    splits: int = 100,
    variant: str = "mit",
) -> dict[str, float]:
    """Benchmark metrics of saliency maps against ``data``'s ground truth, averaged over images.

    Per image (``jaxadv.metrics.saliency``, MIT conventions by default): CC and KL and SIM
    against the ground-truth map, NSS and shuffled AUC against the fixations. sAUC's negatives
    are the fixations of ``n_other`` other images of ``data`` drawn at random per image (the MIT
    benchmark's practice; with all other images the union of their fixated pixels would cover
    the grid and the negatives would no longer carry the centre bias). The draws (other images,
    MIT's negatives of each split) come from numpy generators seeded by ``(key, image index)``:
    the same key gives the same scores.

    Args:
      maps: non-negative saliency maps, ``[n, h', w']`` (or a list of per-item maps), or ONE
        ``[h', w']`` map scored on every image (a baseline). Maps of another size than an item
        are resized by the metrics (MATLAB's ``imresize``).
      data: the ground truth; at least 2 items.
      key: PRNG key of the sAUC draws.
      n_other: other images whose fixations are sAUC's negatives.
      splits: MIT sAUC's random splits (100 in ``AUC_shuffled.m``).
      variant: ``"mit"`` or ``"pysaliency"`` (see ``jaxadv.metrics.saliency``).

    Returns:
      ``{"cc", "nss", "sauc", "kl", "sim"}``: means over the images where the metric is defined
      (the MIT code gives NaN e.g. for a constant map), plus ``"n"`` (images) and
      ``"undefined"`` (images where some metric is NaN).
    """
    check_key(key)
    _checks.check_positive_int("n_other", n_other)
    _checks.check_positive_int("splits", splits)
    _checks.check_choice("variant", variant, metrics.VARIANTS)
    if not isinstance(data, SaliencyDataset):
        raise ValueError(f"`data` must be a SaliencyDataset; got {type(data).__name__}.")
    n = len(data)
    if n < 2:
        raise ValueError(f"`data` must hold at least 2 images (sAUC needs other images); got {n}.")
    single = not isinstance(maps, (list, tuple)) and np.ndim(maps) == 2
    if not single and len(maps) != n:
        raise ValueError(
            f"`maps` must be one [h, w] map or one map per image ({n}); got "
            f"{np.shape(maps) if not isinstance(maps, (list, tuple)) else len(maps)} maps."
        )
    key_words = seed_words(key)
    n_other = min(int(n_other), n - 1)
    rows = []
    for i in range(n):
        s = np.asarray(maps if single else maps[i], np.float32)
        _checks.check_nonnegative(f"maps[{i}]" if not single else "maps", s)
        if s.ndim != 2:
            raise ValueError(f"`maps[{i}]` must be one [h, w] map; got shape {s.shape}.")
        rest = np.delete(np.arange(n), i)
        rng = np.random.default_rng([*key_words, i])
        others = rng.choice(rest, n_other, replace=False)
        density = np.asarray(data.maps[i], np.float32)
        counts = data.fixation_map(i, counts=True).astype(np.float32)
        row = _dense_scores(s, density, counts, variant=variant)
        other = _other_counts(data, i, others)
        row["sauc"] = _shuffled_auc(s, counts, other, rng, variant=variant, splits=splits)
        rows.append(row)
    table = {name: np.asarray([float(r[name]) for r in rows]) for name in SALIENCY_METRIC_NAMES}
    undefined = np.zeros(n, bool)
    for values in table.values():
        undefined |= ~np.isfinite(values)
    result = {
        name: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")
        for name, v in table.items()
    }
    return {**result, "n": n, "undefined": int(undefined.sum())}

@functools.cache
def _batch_maps():
    return _compile.jit(lambda victim, x: to_saliency_map(victim.batch(x), victim.output))

def predict_saliency(victim: SaliencyVictim, images: Any, batch_size: int = 32) -> np.ndarray:
    """Non-negative saliency maps ``float32[n, h', w']`` of ``images`` (``to_saliency_map`` of
    the victim's output: a density for log-density models). Batches are zero-padded to
    ``batch_size``, so one program is compiled per victim and batch size.

    Args:
      victim: the saliency model.
      images: ``[n, *victim.input_shape]`` images.
      batch_size: images per forward pass (at most ``n`` are used).

    Returns:
      ``float32[n, h', w']``: one non-negative map per image, at the model's output size.
    """
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_batch_shape("images", np.shape(images), victim.input_shape)
    images = np.asarray(images, np.float32)
    n = images.shape[0]
    batch_size = min(int(batch_size), n)
    out = []
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        m = x.shape[0]
        if m < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - m,) + x.shape[1:], x.dtype)])
        out.append(np.asarray(_batch_maps()(victim, x))[:m])
    return np.concatenate(out)

def evaluate_saliency(
    victim: SaliencyVictim,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    batch_size: int = 32,
    **kwargs: Any,
) -> dict[str, float]:
    """Benchmark metrics of ``victim``'s maps on stacked ``data``: :func:`predict_saliency`'s
    maps scored by :func:`evaluate_saliency_maps` (``kwargs``: ``n_other``, ``splits``,
    ``variant``).

    Args:
      victim: the saliency model.
      data: a stacked ``SaliencyDataset`` with at least 2 items.
      key: PRNG key of the sAUC draws.
      batch_size: images per forward pass of :func:`predict_saliency`.
      **kwargs: ``n_other``, ``splits``, ``variant`` of :func:`evaluate_saliency_maps`.

    Returns:
      :func:`evaluate_saliency_maps`' dict: the metric means, ``"n"`` and ``"undefined"``.
    """
    data = check_dataset("data", data)
    maps = predict_saliency(victim, data.images, batch_size)
    return evaluate_saliency_maps(maps, data, key=key, **kwargs)

def center_bias_baselines(
    train: SaliencyDataset, test: SaliencyDataset, *, key: jax.Array, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """The content-blind baselines scored on ``test``: the scenes' Gaussian centre bias
    (``scene_center_bias``) and the mean training density (:func:`mean_density`).

    Args:
      train: a stacked ``SaliencyDataset`` whose mean density is the second baseline.
      test: a stacked ``SaliencyDataset`` the baselines are scored on (at least 2 items).
      key: PRNG key of the sAUC draws (the same for both baselines).
      **kwargs: ``n_other``, ``splits``, ``variant`` of :func:`evaluate_saliency_maps`.

    Returns:
      ``{"centre bias": scores, "mean train density": scores}``, each scores dict as
      :func:`evaluate_saliency_maps` returns it.
    """
    test = check_dataset("test", test)
    size = tuple(test.images.shape[1:3])
    return {
        "centre bias": evaluate_saliency_maps(scene_center_bias(size), test, key=key, **kwargs),
        "mean train density": evaluate_saliency_maps(mean_density(train), test, key=key, **kwargs),
    }

def format_saliency_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table ``model | CC ↑ | NSS ↑ | sAUC ↑ | KL ↓ | SIM ↑`` of metric rows.

    Args:
      rows: model name -> its scores (as :func:`evaluate_saliency_maps` returns them; at least
        ``"cc"``, ``"nss"``, ``"sauc"``, ``"kl"``, ``"sim"``), one table row each, in order.

    Returns:
      The table as lines joined by newlines (values to 3 decimals; no trailing newline).
    """
    header = "| model | CC ↑ | NSS ↑ | sAUC ↑ | KL ↓ | SIM ↑ |"
    lines = [header, "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        cells = " | ".join(f"{row[m]:.3f}" for m in SALIENCY_METRIC_NAMES)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
