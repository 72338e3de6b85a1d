"""Loader for the CAT2000 training set (Borji & Itti, CVPR 2015 workshop, arXiv:1505.03581)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import SaliencyDataset

_NAME = "CAT2000"
_SKIP = "Output"  # a results folder inside some category folders, not stimuli (pysaliency skips it)


def load_cat2000(
    root: str | os.PathLike,
    categories: str | Sequence[str] | None = None,
    *,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
) -> SaliencyDataset:
    """Loads the annotated CAT2000 training set: 20 categories × 100 images of 1920×1080.

    Expected tree under ``root``::

        trainSet/Stimuli/<Category>/NNN.jpg        stimuli (NNN = 001..100)
        trainSet/FIXATIONMAPS/<Category>/NNN.jpg   continuous map, 8-bit grey
        trainSet/FIXATIONLOCS/<Category>/NNN.mat   variable ``fixLocs``: binary, image-sized

    A pixel is fixated where ``fixLocs > 0``; each fixated pixel is returned once, in row-major
    order. Only files directly inside a category folder are stimuli, so the ``Output/``
    subfolders some categories carry are skipped. The test set has no public ground truth and is
    not read. EXIF orientation tags are ignored (maps and stimuli stay aligned as stored).

    Args:
      root: the folder holding ``trainSet``.
      categories: one category name, several, or ``None`` for every category folder (sorted by
        name, ``Output`` excluded).
      size: ``(h, w)`` to resize every item at load time (returned stacked); ``None`` keeps the
        files' sizes (returned as lists). See ``SaliencyDataset.resized``.
      limit: load only the first ``limit`` images (categories in the given order, then files
        sorted by name).

    Returns:
      A ``SaliencyDataset`` named ``"cat2000"``, item names ``"<Category>/NNN"`` and
      ``groups`` = the category of each item.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming the missing folder or file, relative to root,
        including a requested category that does not exist.
      ValueError: for a bad argument, a ``.mat`` without ``fixLocs`` or of the wrong size, or a
        map whose size differs from its image.
    """
    collector = _files.Collector(_NAME, size, limit)
    root = _files.check_root(_NAME, root)
    stimuli_dir = _files.require(_NAME, root, "trainSet/Stimuli", folder=True)
    _files.require(_NAME, root, "trainSet/FIXATIONMAPS", folder=True)
    _files.require(_NAME, root, "trainSet/FIXATIONLOCS", folder=True)
    if categories is None:
        categories = sorted(p.name for p in stimuli_dir.iterdir() if p.is_dir() and p.name != _SKIP)
        if not categories:
            raise _files.DatasetLayoutError(
                _NAME, root, "trainSet/Stimuli/<Category>", "No category folder found."
            )
    elif isinstance(categories, str):
        categories = [categories]
    else:
        categories = list(categories)
        if not all(isinstance(c, str) for c in categories):
            raise ValueError(f"`categories` must be category names (str); got {categories!r}.")

    for category in categories:
        if collector.full:
            break
        folder = _files.require(_NAME, root, f"trainSet/Stimuli/{category}", folder=True)
        for image_path in _files.files(folder, ".jpg"):
            if collector.full:
                break
            stem = image_path.stem
            image = _files.read_rgb(image_path, dataset=_NAME)
            map_path = _files.require(
                _NAME, root, f"trainSet/FIXATIONMAPS/{category}/{stem}.jpg", folder=False
            )
            locs_path = _files.require(
                _NAME, root, f"trainSet/FIXATIONLOCS/{category}/{stem}.mat", folder=False
            )
            locs = np.asarray(_files.read_mat(locs_path, "fixLocs"))
            if locs.shape != image.shape[:2]:
                raise ValueError(
                    f"{str(locs_path)!r}: `fixLocs` must have the image's size {image.shape[:2]} "
                    f"(h, w); got {locs.shape}."
                )
            collector.add(
                f"{category}/{stem}",
                image,
                _files.read_gray(map_path, dataset=_NAME),
                _files.binary_to_fixations(locs > 0),
                image_path=image_path,
                map_path=map_path,
                group=category,
            )
    return collector.build("cat2000")
