"""Loader for Something-Something V2 (Goyal et al., "The 'something something' video database for
learning and evaluating visual common sense", ICCV 2017) extracted as frame folders.

The data set ships one ``<id>.webm`` per clip and JSON annotations: ``labels.json`` maps each of
the 174 templates (``"Putting something on a surface"``) to its class index as a string;
``train.json`` and ``validation.json`` list ``{"id", "label", "template", "placeholders"}`` per
clip, where ``template`` carries the placeholders in brackets (``"Putting [something] on a
surface"``) and ``placeholders`` the objects that fill them. A clip's class is its template with
the brackets removed, looked up in ``labels.json``. Pipelines extract each video into one folder
of JPEG frames named by its id; this reads that layout. A clip found only as ``<id>.webm`` is
decoded with PyAV when it is installed (``pip install av``, optional: ``jaxadv.image.read_video``)
and its frames picked as from a folder; without PyAV it is refused with the command that
extracts it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jaxadv import _checks
from jaxadv.data._ucf101 import check_clip_request, read_frame_folder
from jaxadv.data._video import VideoDataset
from jaxadv.data.saliency import _files
from jaxadv.data.saliency._record import resize_item
from jaxadv.image import have_pyav, read_video

_NAME = "Something-Something V2"
SPLITS = {"train": "train.json", "validation": "validation.json"}


def load_something_something(
    root: str | os.PathLike,
    split: str = "train",
    *,
    frames: int = 8,
    size: tuple[int, int] = (112, 112),
    frames_dir: str = "frames",
    limit: int | None = None,
) -> VideoDataset:
    """Loads one split of Something-Something V2 from extracted frame folders.

    Expected tree under ``root``::

        labels.json        {"Approaching something with your camera": "0", ...}
        train.json         [{"id": "78687", "label": "holding potato next to ...",
                             "template": "Holding [something] next to [something]",
                             "placeholders": ["potato", "..."]}, ...]
        validation.json    the same keys
        <frames_dir>/<id>/*.jpg    one folder of frames per clip (name order is time order)

    Frames are sampled and resized as ``load_ucf101`` does (``T`` segment centres, bilinear).

    Args:
      root: the folder holding the JSON files and ``frames_dir``.
      split: ``"train"`` or ``"validation"`` (the test set has no labels).
      frames: frames ``T`` kept per clip, at least 2.
      size: ``(H, W)`` of the returned frames.
      frames_dir: the folder, under ``root``, of the per-clip frame folders.
      limit: load only the first ``limit`` clips of the split.

    Returns:
      A ``VideoDataset`` named ``"something-something-v2-{split}"``: ``float32[n, T, H, W, 3]``
      videos, 0-based ``int32`` labels, ``motion=None``, the class names in index order
      (templates without brackets) and the clip ids.

    Raises:
      DatasetLayoutError: (a ``ValueError``) naming a missing JSON file or clip folder (with the
        ``ffmpeg`` command when only the clip's ``.webm`` is there).
      ValueError: for a bad argument, malformed annotations (naming the file and the entry), a
        template that ``labels.json`` does not list, or a folder with fewer than ``frames``
        frames.
    """
    _checks.check_choice("split", split, tuple(SPLITS))
    size = check_clip_request(frames, size, limit)
    root = _files.check_root(_NAME, root)
    class_names = _read_labels(_files.require(_NAME, root, "labels.json", folder=False))
    path = _files.require(_NAME, root, SPLITS[split], folder=False)
    clips = _read_split(path, {name: i for i, name in enumerate(class_names)})
    if limit is not None:
        clips = clips[:limit]

    videos = np.empty((len(clips), frames, *size, 3), np.float32)
    for i, clip in enumerate(clips):
        relative = f"{frames_dir}/{clip['id']}"
        hint = ""
        if not (root / relative).is_dir():
            webm = next(root.glob(f"**/{clip['id']}.webm"), None)
            if webm is not None and have_pyav():
                videos[i] = _decoded(webm, frames, size)
                continue
            if webm is not None:
                hint = (
                    f"Only {str(webm)!r} is there and PyAV is not installed (`pip install av` "
                    f"decodes it); or extract it, e.g. mkdir -p {root / relative} && "
                    f"ffmpeg -i {webm} {root / relative}/%06d.jpg."
                )
        folder = _files.require(_NAME, root, relative, folder=True, hint=hint)
        videos[i] = read_frame_folder(_NAME, folder, frames, size)
    return VideoDataset(
        videos=videos,
        labels=np.array([clip["class"] for clip in clips], np.int32),
        motion=None,
        class_names=class_names,
        name=f"something-something-v2-{split}",
        ids=tuple(clip["id"] for clip in clips),
    )


def _decoded(path: Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """``float32[frames, H, W, 3]`` of a video file, picked as :func:`read_frame_folder` picks
    (TSN's segment centres) and resized bilinearly."""
    try:
        video = read_video(str(path))
    except Exception as error:  # PyAV's own errors: name the file
        raise ValueError(f"{_NAME}: could not decode {str(path)!r}: {error}") from error
    if video.shape[0] < frames:
        raise ValueError(
            f"{_NAME}: video {str(path)!r} has {video.shape[0]} frames; `frames` = {frames} asks "
            "for at least that many."
        )
    picks = np.floor((np.arange(frames) + 0.5) * video.shape[0] / frames).astype(int)
    out = np.empty((frames, *size, 3), np.float32)
    no_points = np.zeros((0, 2))
    for t, k in enumerate(picks):
        image = video[k]
        if image.shape[:2] != tuple(size):
            image = resize_item(image, np.zeros(image.shape[:2], np.float32), no_points, size)[0]
        out[t] = image
    return out


def template_class(template: str) -> str:
    """A ``template`` of the annotations as ``labels.json`` spells it: brackets removed."""
    return template.replace("[", "").replace("]", "")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{_NAME}: {str(path)!r} is not valid JSON: {error}") from error


def _read_labels(path: Path) -> tuple[str, ...]:
    """Class names in index order from ``{template: "index"}``; indices must be 0 .. n−1."""
    table = _load_json(path)
    if not isinstance(table, dict) or not table:
        raise ValueError(
            f"{_NAME}: {str(path)!r} must map templates to indices; got {table!r:.80}."
        )
    names: dict[int, str] = {}
    for name, index in table.items():
        if not str(index).isdigit() or int(index) in names:
            raise ValueError(
                f"{_NAME}: {str(path)!r} gives {name!r} the index {index!r}; indices must be "
                "distinct non-negative integers."
            )
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{_NAME}: the indices of {str(path)!r} must be 0 .. {len(names) - 1}.")
    return tuple(names[i] for i in range(len(names)))


def _read_split(path: Path, index: dict[str, int]) -> list[dict]:
    """``[{"id", "class"}]`` of a split file, the class from each entry's template."""
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{_NAME}: {str(path)!r} must hold a list of clips.")
    clips = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise ValueError(
                f"{_NAME}: entry {n} of {str(path)!r} must have 'id' and 'template'; got "
                f"{entry!r:.80}."
            )
        name = template_class(str(entry["template"]))
        if name not in index:
            raise ValueError(
                f"{_NAME}: entry {n} (id {entry['id']}) of {str(path)!r} has template "
                f"{entry['template']!r}, which labels.json does not list."
            )
        clips.append({"id": str(entry["id"]), "class": index[name]})
    return clips
