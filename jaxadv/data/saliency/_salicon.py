"""Loader for SALICON (Jiang et al., CVPR 2015) in its LSUN-challenge layout."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from jaxadv import _checks
from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import SaliencyDataset

_NAME = "SALICON"


def load_salicon(
    root: str | os.PathLike,
    split: str = "train",
    *,
    fixations_json: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
) -> SaliencyDataset:
    """Loads one annotated split of SALICON (2015 or 2017 edition: both share the layout).

    Expected tree under ``root`` (the LSUN saliency-challenge release; all images 640×480)::

        images/{split}/COCO_{split}2014_<12 digits>.jpg   RGB stimuli
        maps/{split}/<same stem>.png                      8-bit grey continuous map
        fixations/{split}/<same stem>.mat                 MATLAB v5 (not needed with fixations_json)

    Each ``.mat`` holds ``gaze``, an ``n_subjects × 1`` struct array whose field ``fixations`` is
    an ``M × 2`` array of ``[x y]`` = (column, row), 1-based (the fields ``location`` and
    ``timestamp`` hold raw mouse samples and are not read). The fixations of all subjects are
    concatenated in subject order.

    With ``fixations_json``, fixations come instead from the 2015 COCO-style file of
    salicon-api (``fixations_{split}2014.json``): ``images`` entries ``{"id", "file_name", ...}``
    and ``annotations`` entries ``{"image_id", "fixations": [[row, col], ...]}`` — (row, col),
    1-based, the reverse order of the ``.mat`` files. Annotations are concatenated in file order.

    Both sources are converted to 0-based ``(x, y)`` pixels, rounded, and clipped into the image
    (some 2017 mouse samples fall outside it). Repeated fixations are kept. Maps are divided by
    255. Items are sorted by file name.

    Args:
      root: the folder holding ``images/``, ``maps/`` and ``fixations/``.
      split: ``"train"`` or ``"val"`` (the test split has no public ground truth).
      fixations_json: optional path of the 2015 JSON fixation file to read instead of ``.mat``.
      size: ``(h, w)`` to resize every item at load time (returned stacked); ``None`` keeps the
        files' sizes (returned as lists). See ``SaliencyDataset.resized``.
      limit: load only the first ``limit`` images.

    Returns:
      A ``SaliencyDataset`` named ``"salicon"``, item names = file stems.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming the missing folder or file, relative to root.
      ValueError: for a bad argument, a ``.mat`` without ``gaze``/``fixations``, a JSON without
        an entry for an image, or a map whose size differs from its image.
    """
    _checks.check_choice("split", split, ("train", "val"))
    collector = _files.Collector(_NAME, size, limit)
    root = _files.check_root(_NAME, root)
    image_dir = _files.require(_NAME, root, f"images/{split}", folder=True)
    _files.require(_NAME, root, f"maps/{split}", folder=True)
    if fixations_json is None:
        _files.require(_NAME, root, f"fixations/{split}", folder=True)
        from_json = None
    else:
        from_json = _read_json_fixations(Path(fixations_json))

    image_paths = _files.files(image_dir, ".jpg")
    if not image_paths:
        raise _files.DatasetLayoutError(
            _NAME, root, f"images/{split}/COCO_{split}2014_*.jpg", "The folder has no .jpg file."
        )
    for image_path in image_paths[:limit]:
        stem = image_path.stem
        image = _files.read_rgb(image_path, dataset=_NAME)
        map_path = _files.require(_NAME, root, f"maps/{split}/{stem}.png", folder=False)
        smap = _files.read_gray(map_path, dataset=_NAME)
        if from_json is None:
            mat_path = _files.require(_NAME, root, f"fixations/{split}/{stem}.mat", folder=False)
            xy = _read_mat_fixations(mat_path)
        else:
            if stem not in from_json:
                raise ValueError(
                    f"{str(fixations_json)!r} has no entry in `images` whose file_name is "
                    f"{stem + '.jpg'!r}; is it the fixation file of the {split!r} split?"
                )
            rows_cols = from_json[stem]
            xy = rows_cols[:, ::-1]  # (row, col) → (x, y)
        fixations = _files.one_based_to_pixels(xy, image.shape[:2])
        collector.add(stem, image, smap, fixations, image_path=image_path, map_path=map_path)
    return collector.build("salicon")


def _read_mat_fixations(path: Path) -> np.ndarray:
    gaze = _files.read_mat(path, "gaze")
    names = gaze.dtype.names or ()
    if "fixations" not in names:
        raise ValueError(
            f"{str(path)!r}: `gaze` must be a struct array with a field 'fixations'; found "
            f"fields {list(names)}."
        )
    per_subject = [
        np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in gaze["fixations"].ravel()
    ]
    return np.concatenate(per_subject) if per_subject else np.zeros((0, 2))


def _read_json_fixations(path: Path) -> dict[str, np.ndarray]:
    """File stem → ``float64[k, 2]`` (row, col) 1-based fixations of a salicon-api JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"`fixations_json` {str(path)!r} does not exist.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"`fixations_json` {str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(content, dict) or not {"images", "annotations"} <= content.keys():
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(
            f"`fixations_json` {str(path)!r} must be a COCO-style object with keys 'images' and "
            f"'annotations'; found {found}."
        )
    by_id: dict[int, list] = defaultdict(list)
    for annotation in content["annotations"]:
        by_id[annotation["image_id"]].extend(annotation["fixations"])
    return {
        Path(entry["file_name"]).stem: np.asarray(by_id.get(entry["id"], []), np.float64).reshape(
            -1, 2
        )
        for entry in content["images"]
    }
