"""The argument checks the generated data sets share (segment scenes, moving digits)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxadv import _checks


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; got {seed!r}.")
    return int(seed)


def check_size(size: Any, smallest: int, why: str = "") -> tuple[int, int]:
    """``(h, w)`` of a pair of integers each at least ``smallest`` (``why``: the reason)."""
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(not isinstance(s, bool) and isinstance(s, (int, np.integer)) for s in size)
    )
    if not ok or min(size) < smallest:
        raise ValueError(
            f"`size` must be a pair (height, width) of integers >= {smallest}{why}; got {size!r}."
        )
    return int(size[0]), int(size[1])


def class_labels(labels: Any, n: int, num_classes: int, unit: str) -> np.ndarray:
    """The given ``labels`` (``n`` class indices, one per ``unit``), or classes cycled
    ``i % num_classes`` when None (balanced within one)."""
    if labels is None:
        return np.arange(n) % num_classes
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` must be {n} integers (one per {unit}); got {labels.dtype}"
            f"{list(labels.shape)}."
        )
    _checks.check_labels("labels", labels, num_classes)
    return labels
