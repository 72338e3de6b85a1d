"""Loader for UCF-101 extracted as frame folders (Soomro, Zamir & Shah 2012, arXiv:1212.0402).

UCF-101 ships ``.avi`` files; video pipelines extract them into one folder of JPEG frames per
clip. This reads that layout with the official split lists, samples a fixed number of frames per
clip and resizes them, returning the same :class:`VideoDataset` as the generated moving digits
(with ``motion=None``: the motion of real footage is unknown).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._video import MIN_FRAMES, VideoDataset
from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import check_size, resize_item


def check_clip_request(frames: Any, size: Any, limit: Any) -> tuple[int, int]:
    """Checks a frame-folder loader's ``frames`` (≥ 2: motion needs two), ``size`` and ``limit``
    (None or ≥ 1); returns ``size`` as ``(h, w)``."""
    _checks.check_positive_int("frames", frames)
    if frames < MIN_FRAMES:
        raise ValueError(f"`frames` must be at least {MIN_FRAMES}; got {frames}.")
    if limit is not None:
        _checks.check_positive_int("limit", limit)
    return check_size(size)


_NAME = "UCF-101"
_LISTS = "ucfTrainTestlist"
_FRAMES_HINT = (
    "Extract each clip's frames into <root>/<ClassName>/<clip>/frame_00001.jpg, ... (e.g. "
    "ffmpeg -i v_X_g01_c01.avi <root>/X/v_X_g01_c01/frame_%05d.jpg)."
)


def load_ucf101(
    root: str | os.PathLike,
    split: str = "train",
    *,
    fold: int = 1,
    frames: int = 8,
    size: tuple[int, int] = (112, 112),
    classes: Iterable[str] | None = None,
    limit: int | None = None,
) -> VideoDataset:
    """Loads one split of UCF-101 from extracted frame folders.

    Expected tree under ``root`` (the official lists, and one folder of frames per clip)::

        ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup" ... "101 YoYo"
        ucfTrainTestlist/trainlist0F.txt       "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        ucfTrainTestlist/testlist0F.txt        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
        <ClassName>/v_<ClassName>_gXX_cYY/frame_00001.jpg, frame_00002.jpg, ...

    A clip's class is the folder before the ``/`` of its list line (a train line's 1-based label
    must agree with ``classInd.txt``). Its frames are the ``.jpg`` files of its folder in name
    order; of ``N`` frames, frames ``floor((k + 0.5) N / T)`` for ``k = 0 .. T-1`` are kept (the
    centres of ``T`` equal segments, as TSN samples), read as RGB in ``[0, 1]`` and resized with
    Pillow's bilinear filter (antialiased when shrinking).

    Args:
      root: the folder holding ``ucfTrainTestlist`` and the class folders.
      split: ``"train"`` or ``"test"``.
      fold: which of the three official splits, 1, 2 or 3.
      frames: frames ``T`` kept per clip, at least 2.
      size: ``(H, W)`` of the returned frames.
      classes: load only clips of these class names (labels keep their ``classInd`` index);
        ``None`` loads every class.
      limit: load only the first ``limit`` clips of the list (after ``classes``).

    Returns:
      A ``VideoDataset`` named ``"ucf101-{split}{fold}"``: ``float32[n, T, H, W, 3]`` videos,
      0-based ``int32`` labels, ``motion=None``, the 101 (or however many ``classInd.txt`` lists)
      class names, and ids ``"<ClassName>/<clip>"``.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming the missing list file or clip folder.
      ValueError: for a bad argument, a malformed list line, a class not in ``classInd.txt``, a
        clip folder with fewer than ``frames`` frames, or an unreadable frame; each names the path.
    """
    _checks.check_choice("split", split, ("train", "test"))
    _checks.check_choice("fold", fold, (1, 2, 3))
    size = check_clip_request(frames, size, limit)
    root = _files.check_root(_NAME, root)
    class_names = _read_class_index(_files.require(_NAME, root, f"{_LISTS}/classInd.txt",
                                                   folder=False))
    wanted = None
    if classes is not None:
        wanted = [classes] if isinstance(classes, str) else list(classes)
        unknown = sorted(set(wanted) - set(class_names))
        if unknown:
            raise ValueError(
                f"`classes` holds names that {_LISTS}/classInd.txt does not list: {unknown}."
            )
    list_name = f"{_LISTS}/{split}list{fold:02d}.txt"
    clips = _read_split_list(_files.require(_NAME, root, list_name, folder=False), class_names)
    if wanted is not None:
        clips = [c for c in clips if class_names[c[1]] in wanted]
    if limit is not None:
        clips = clips[:limit]

    videos = np.empty((len(clips), frames, *size, 3), np.float32)
    for i, (clip, _) in enumerate(clips):
        folder = _files.require(_NAME, root, clip, folder=True, hint=_FRAMES_HINT)
        videos[i] = read_frame_folder(_NAME, folder, frames, size)
    return VideoDataset(
        videos=videos,
        labels=np.array([label for _, label in clips], np.int32),
        motion=None,
        class_names=class_names,
        name=f"ucf101-{split}{fold}",
        ids=tuple(clip for clip, _ in clips),
    )


def read_frame_folder(dataset: str, folder: Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """``float32[frames, H, W, 3]`` in ``[0, 1]``: of the folder's ``N`` ``.jpg`` frames (name
    order), frames ``floor((k + 0.5) N / T)`` (TSN's segment centres), resized bilinearly."""
    paths = _files.files(folder, ".jpg")
    if len(paths) < frames:
        raise ValueError(
            f"{dataset}: clip folder {str(folder)!r} has {len(paths)} .jpg frames; "
            f"`frames` = {frames} asks for at least that many."
        )
    video = np.empty((frames, *size, 3), np.float32)
    picks = np.floor((np.arange(frames) + 0.5) * len(paths) / frames).astype(int)
    for t, k in enumerate(picks):
        image = _files.read_rgb(paths[k], dataset=dataset)
        if image.shape[:2] != size:
            no_map, no_points = np.zeros(image.shape[:2], np.float32), np.zeros((0, 2))
            image = resize_item(image, no_map, no_points, size)[0]
        video[t] = image
    return video


def _read_class_index(path: Path) -> tuple[str, ...]:
    """The class names of ``classInd.txt``, in index order; its indices must be 1, 2, ..."""
    names = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names) + 1:
            raise ValueError(
                f"{_NAME}: line {number} of {str(path)!r} must be '<index> <ClassName>' with "
                f"index {len(names) + 1}; got {line!r}."
            )
        names.append(parts[1])
    if not names:
        raise ValueError(f"{_NAME}: {str(path)!r} lists no class.")
    return tuple(names)


def _read_split_list(path: Path, class_names: tuple[str, ...]) -> list[tuple[str, int]]:
    """``[(clip folder relative to root, 0-based label)]`` of a train or test list."""
    index = {name: i for i, name in enumerate(class_names)}
    clips = []
    for number, line in _lines(path):
        parts = line.split()
        where = f"line {number} of {str(path)!r}"
        if len(parts) not in (1, 2) or "/" not in parts[0]:
            raise ValueError(
                f"{_NAME}: {where} must be '<ClassName>/<clip>.avi [label]'; got {line!r}."
            )
        class_name, clip = parts[0].split("/", 1)
        if class_name not in index:
            raise ValueError(
                f"{_NAME}: {where} names class {class_name!r}, which classInd.txt does not list."
            )
        label = index[class_name]
        if len(parts) == 2 and parts[1] != str(label + 1):
            raise ValueError(
                f"{_NAME}: {where} gives label {parts[1]} but classInd.txt numbers "
                f"{class_name!r} {label + 1}."
            )
        clips.append((f"{class_name}/{Path(clip).stem}", label))
    return clips


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file, stripped, with their 1-based numbers."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
