"""The embedded default data set: scikit-learn's handwritten digits, ready for a small victim."""

from __future__ import annotations

import numpy as np

from jaxadv.data._dataset import Dataset

_ORIGINAL_SIZE = 8
_GREY_LEVELS = 16  # pixel values in the source are integers 0..16


def load_digits(size: int = 28, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Loads scikit-learn's handwritten digits as a ``size × size`` grey-scale data set.

    The source is ``sklearn.datasets.load_digits``: 1797 real 8×8 scans (UCI optical recognition
    of handwritten digits), 17 grey levels (integers 0..16), ten classes of about 180 images each.
    It ships inside scikit-learn, so nothing is downloaded and nothing is cached on disk; loading
    takes a few tens of milliseconds.

    Pixels are divided by 16 to land in ``[0, 1]``, then upsampled with bilinear interpolation
    (half-pixel centres, edges clamped; the same values as ``jax.image.resize(..., "bilinear")``).
    Interpolation weights are convex, so the result stays in ``[0, 1]``. ``size=8`` returns the
    original pixels unchanged.

    The split is stratified and seeded: within each class, a permutation drawn from
    ``np.random.default_rng(seed)`` sends ``round(test_fraction * n_class)`` images (at least one,
    and at least one left for training) to the test set. Each split keeps scikit-learn's original
    order, so the same ``seed`` always gives the same arrays.

    Args:
      size: side of the output images, an integer >= 8.
      test_fraction: share of each class held out for testing, in ``(0, 1)``.
      seed: seed of the split.

    Returns:
      A ``Dataset`` named ``"digits"`` with ``float32[n, size, size, 1]`` images, ``int32``
      labels, ``num_classes=10`` and class names ``"0"`` .. ``"9"``.

    Raises:
      ValueError: if ``size`` is not an integer >= 8 or ``test_fraction`` is not in ``(0, 1)``.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _ORIGINAL_SIZE:
        raise ValueError(f"`size` must be an integer >= {_ORIGINAL_SIZE}; got {size!r}.")
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float, np.floating))
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(f"`test_fraction` must be a number in (0, 1); got {test_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer; got {seed!r}.")

    # Imported here so that importing jaxadv.data does not pay for scikit-learn.
    from sklearn.datasets import load_digits as _sklearn_digits

    bunch = _sklearn_digits()
    images = bunch.images.astype(np.float32) / np.float32(_GREY_LEVELS)  # [n, 8, 8]
    labels = bunch.target.astype(np.int32)
    size = int(size)
    if size != _ORIGINAL_SIZE:
        weights = _bilinear_matrix(_ORIGINAL_SIZE, size)  # [size, 8]
        images = weights @ images @ weights.T  # separable: rows, then columns
        # Convex weights keep [0, 1]; clip only float rounding of the sums.
        images = np.clip(images, 0.0, 1.0).astype(np.float32)
    images = np.ascontiguousarray(images[..., None])  # channel axis last

    test_mask = _stratified_test_mask(labels, float(test_fraction), int(seed))
    return Dataset(
        train_images=images[~test_mask],
        train_labels=labels[~test_mask],
        test_images=images[test_mask],
        test_labels=labels[test_mask],
        num_classes=10,
        name="digits",
        class_names=tuple(str(d) for d in range(10)),
    )


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``float32[n_out, n_in]`` matrix of 1-D linear interpolation with half-pixel centres.

    Output sample ``i`` sits at input coordinate ``(i + 0.5) * n_in / n_out - 0.5``; coordinates
    past the edge are clamped to the border pixel. Applied along both axes it is bilinear resizing.
    """
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    matrix = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, lo), 1.0 - frac)
    np.add.at(matrix, (rows, hi), frac)
    return matrix.astype(np.float32)


def _stratified_test_mask(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the test examples: a seeded ``test_fraction`` of every class."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape, bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(np.clip(round(test_fraction * len(members)), 1, len(members) - 1))
        mask[rng.permutation(members)[:n_test]] = True
    return mask
