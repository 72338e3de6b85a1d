"""Loader for MIT1003 (Judd, Ehinger, Durand & Torralba, ICCV 2009)."""

from __future__ import annotations

import os
from pathlib import Path

from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import SaliencyDataset

_NAME = "MIT1003"
_THRESHOLD = 0.5  # of the /255 grey level: JPEG ringing around the fixated dots stays below it


def load_mit1003(
    root: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
) -> SaliencyDataset:
    """Loads MIT1003: 1003 images (longest side 1024 px, sizes vary) and 15 viewers' fixations.

    Expected tree under ``root``::

        ALLSTIMULI/<stem>.jpeg                  stimuli (note: .jpeg)
        ALLFIXATIONMAPS/<stem>_fixMap.jpg       continuous map, 8-bit grey JPEG
        ALLFIXATIONMAPS/<stem>_fixPts.jpg       binary fixation points, saved as JPEG

    Archives often unpack into doubled folders (``ALLSTIMULI/ALLSTIMULI/``,
    ``ALLFIXATIONMAPS/ALLFIXATIONMAPS/``, the layout UNISAL expects); both are accepted.

    ``_fixPts.jpg`` is binary in principle but JPEG-compressed, so it is thresholded: a pixel is
    fixated when its grey level divided by 255 exceeds 0.5 (as UNISAL does). Each fixated pixel is
    returned once, in row-major order — the raw per-subject eye traces in ``DATA/`` are not read,
    so fixations repeated on one pixel are not recoverable here. Maps are divided by 255.

    Args:
      root: the folder holding ``ALLSTIMULI`` and ``ALLFIXATIONMAPS``.
      size: ``(h, w)`` to resize every item at load time (returned stacked); ``None`` keeps each
        image's own size (returned as lists). See ``SaliencyDataset.resized``.
      limit: load only the first ``limit`` stimuli (sorted by name).

    Returns:
      A ``SaliencyDataset`` named ``"mit1003"``, item names = stimulus stems.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming the missing folder or file, relative to root.
      ValueError: for a bad argument or a map whose size differs from its image.
    """
    collector = _files.Collector(_NAME, size, limit)
    root = _files.check_root(_NAME, root)
    stimuli_dir = _tolerant_folder(root, "ALLSTIMULI", ".jpeg")
    maps_dir = _tolerant_folder(root, "ALLFIXATIONMAPS", "_fixmap.jpg")
    stimuli = _files.files(stimuli_dir, ".jpeg")
    if not stimuli:
        missing = stimuli_dir.relative_to(root).as_posix() + "/<stem>.jpeg"
        raise _files.DatasetLayoutError(_NAME, root, missing, "The folder has no .jpeg stimulus.")
    maps_rel = maps_dir.relative_to(root).as_posix()

    for image_path in stimuli[:limit]:
        stem = image_path.stem
        image = _files.read_rgb(image_path, dataset=_NAME)
        map_path = _files.require(_NAME, root, f"{maps_rel}/{stem}_fixMap.jpg", folder=False)
        points_path = _files.require(_NAME, root, f"{maps_rel}/{stem}_fixPts.jpg", folder=False)
        points = _files.read_gray(points_path, dataset=_NAME)
        if points.shape != image.shape[:2]:
            raise ValueError(
                f"{_NAME}: fixation points {str(points_path)!r} are {points.shape} (h, w) but "
                f"the image {str(image_path)!r} is {image.shape[:2]}."
            )
        fixations = _files.binary_to_fixations(points > _THRESHOLD)
        collector.add(
            stem,
            image,
            _files.read_gray(map_path, dataset=_NAME),
            fixations,
            image_path=image_path,
            map_path=map_path,
        )
    return collector.build("mit1003")


def _tolerant_folder(root: Path, name: str, marker_suffix: str) -> Path:
    """``root/name/name`` when that doubled folder holds the files, else ``root/name``."""
    single = _files.require(_NAME, root, name, folder=True)
    doubled = single / name
    if doubled.is_dir() and _files.files(doubled, marker_suffix):
        return doubled
    return single
