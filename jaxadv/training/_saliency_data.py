"""The ground truth of a stacked ``SaliencyDataset`` as saliency training and evaluation read it."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxadv.data.saliency import SaliencyDataset


def check_dataset(name: str, data: Any) -> SaliencyDataset:
    if not isinstance(data, SaliencyDataset):
        raise ValueError(f"`{name}` must be a SaliencyDataset; got {type(data).__name__}.")
    if not data.stacked:
        raise ValueError(
            f"`{name}` must be stacked (one image size); got {data!r}. Load it with "
            "`size=(h, w)` or call `.resized((h, w))`."
        )
    if len(data) == 0:
        raise ValueError(f"`{name}` must hold at least one image; got 0.")
    return data

def fixation_counts(data: SaliencyDataset) -> np.ndarray:
    """``float32[n, h, w]``: how many fixations of each (stacked) item fell on each pixel.

    Args:
      data: a stacked ``SaliencyDataset`` (all items of one size).

    Returns:
      ``float32[n, h, w]`` fixation counts, one map per item.
    """
    return np.stack([data.fixation_map(i, counts=True) for i in range(len(data))]).astype(
        np.float32
    )

def densities(data: SaliencyDataset) -> np.ndarray:
    """The ground-truth maps scaled to sum 1 (all-zero maps stay 0)."""
    maps = np.asarray(data.maps, np.float64)
    sums = maps.sum(axis=(1, 2), keepdims=True)
    return (maps / np.where(sums > 0, sums, 1.0)).astype(np.float32)

def mean_density(data: SaliencyDataset) -> np.ndarray:
    """The mean of the (sum-normalised) ground-truth maps of stacked ``data``: ``float32[h, w]``,
    the data set's own centre bias, a stronger content-blind baseline than a fixed Gaussian.

    Args:
      data: a stacked, non-empty ``SaliencyDataset`` (else ``ValueError``).

    Returns:
      ``float32[h, w]``: the mean of the maps, each scaled to sum 1 (an all-zero map counts as 0).
    """
    data = check_dataset("data", data)
    return densities(data).mean(axis=0, dtype=np.float64).astype(np.float32)
