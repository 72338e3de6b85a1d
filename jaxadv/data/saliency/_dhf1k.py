"""Loader for DHF1K video saliency (Wang, Shen, Guo, Cheng & Borji, CVPR 2018)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from jaxadv import _checks
from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import SaliencyDataset

_NAME = "DHF1K"
_FRAMES_HINT = (
    "DHF1K ships videos, not frames: extract them with the data set's generate_frame.m so that "
    "frame files are named like the maps."
)


def load_dhf1k(
    root: str | os.PathLike,
    videos: int | Iterable[int] | None = None,
    *,
    fixation_source: str = "png",
    frame_step: int = 1,
    size: tuple[int, int] | None = None,
    limit: int | None = None,
) -> SaliencyDataset:
    """Loads annotated DHF1K frames (640×360 videos; train 001–600, val 601–700 annotated).

    Expected tree under ``root`` (4-digit, 1-based video and frame numbers)::

        annotation/NNNN/maps/FFFF.png              continuous map per frame, 8-bit grey
        annotation/NNNN/fixation/FFFF.png          binary fixation map per frame
        annotation/NNNN/fixation/maps/FFFF.mat     variable ``I``, the same binary map (the one
                                                   the official evaluationFunc.m reads)
        annotation/NNNN/images/FFFF.png            frames, extracted by the user

    The frames of a video are its annotated maps, in name order. They are returned as one flat
    list of frames, videos one after another: ``groups[i]`` is the video (``"NNNN"``) of frame
    ``i`` and ``names[i]`` is ``"NNNN/FFFF"``. One video's frame stack is
    ``ds.subset(np.flatnonzero(np.asarray(ds.groups) == "0001"))``, with ``np.stack`` of its
    ``images`` when they share a size. A pixel is fixated where the binary map exceeds 0.5 (after
    /255 for the PNG); each fixated pixel is returned once, in row-major order.

    Args:
      root: the folder holding ``annotation``.
      videos: a 1-based video number, several, or ``None`` for every video folder present.
      fixation_source: ``"png"`` (``fixation/FFFF.png``) or ``"mat"`` (``fixation/maps/FFFF.mat``).
      frame_step: keep every ``frame_step``-th frame of each video (consecutive frames are
        nearly identical), starting with the first.
      size: ``(h, w)`` to resize every frame at load time (returned stacked); ``None`` keeps the
        files' sizes (returned as lists). See ``SaliencyDataset.resized``.
      limit: load only the first ``limit`` frames in total.

    Returns:
      A ``SaliencyDataset`` named ``"dhf1k"`` with ``groups`` = video numbers.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming the missing folder or file, relative to root.
      ValueError: for a bad argument, a ``.mat`` without ``I`` or of the wrong size, or a map
        whose size differs from its frame.
    """
    _checks.check_choice("fixation_source", fixation_source, ("png", "mat"))
    _checks.check_positive_int("frame_step", frame_step)
    collector = _files.Collector(_NAME, size, limit)
    root = _files.check_root(_NAME, root)
    annotation = _files.require(_NAME, root, "annotation", folder=True)
    if videos is None:
        folders = sorted(p.name for p in annotation.iterdir() if p.is_dir() and p.name.isdigit())
        if not folders:
            raise _files.DatasetLayoutError(_NAME, root, "annotation/NNNN", "No video folder.")
    else:
        numbers = [videos] if isinstance(videos, (int, np.integer)) else list(videos)
        for number in numbers:
            _checks.check_positive_int("videos", number)
        folders = [f"{int(number):04d}" for number in numbers]

    for video in folders:
        if collector.full:
            break
        base = f"annotation/{video}"
        _files.require(_NAME, root, base, folder=True)
        maps_dir = _files.require(_NAME, root, f"{base}/maps", folder=True)
        for map_path in _files.files(maps_dir, ".png")[::frame_step]:
            if collector.full:
                break
            frame = map_path.stem
            image_path = _files.require(
                _NAME, root, f"{base}/images/{frame}.png", folder=False, hint=_FRAMES_HINT
            )
            image = _files.read_rgb(image_path, dataset=_NAME)
            if fixation_source == "png":
                fix_path = _files.require(_NAME, root, f"{base}/fixation/{frame}.png", folder=False)
                fixated = _files.read_gray(fix_path, dataset=_NAME) > 0.5
            else:
                fix_path = _files.require(
                    _NAME, root, f"{base}/fixation/maps/{frame}.mat", folder=False
                )
                fixated = np.asarray(_files.read_mat(fix_path, "I")) > 0.5
            if fixated.shape != image.shape[:2]:
                raise ValueError(
                    f"{_NAME}: fixation map {str(fix_path)!r} is {fixated.shape} (h, w) but the "
                    f"frame {str(image_path)!r} is {image.shape[:2]}."
                )
            collector.add(
                f"{video}/{frame}",
                image,
                _files.read_gray(map_path, dataset=_NAME),
                _files.binary_to_fixations(fixated),
                image_path=image_path,
                map_path=map_path,
                group=video,
            )
    return collector.build("dhf1k")
