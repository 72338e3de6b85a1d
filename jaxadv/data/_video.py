"""The record the video loaders return, and the shape check shared by video code.

A video is ONE example of shape ``(T, H, W, C)``, float32 in ``[0, 1]``; a batch is
``(n, T, H, W, C)``. A motion field is ``(T, H, W, 2)`` float32 displacements in pixels, channel 0
along x (width), channel 1 along y (height); ``motion[t]`` is the displacement from frame ``t`` to
frame ``t + 1`` (the last frame repeats the previous field).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxadv import _checks

MIN_FRAMES = 2  # motion needs at least two frames


def check_video_batch(name: str, videos: Any) -> tuple[int, ...]:
    """Raises a ``ValueError`` naming ``name`` unless ``videos`` has shape ``(n, T, H, W, C)``
    with ``T >= 2``; returns the shape.

    Args:
      name: the argument's name, used in the error message.
      videos: the array (or array-like) to check; only its shape is read.

    Returns:
      The shape ``(n, T, H, W, C)`` as a tuple of ints.

    Raises:
      ValueError: if ``videos`` does not have 5 axes or has fewer than 2 frames (axis 1).
    """
    shape = tuple(np.shape(videos))
    if len(shape) != 5:
        raise ValueError(
            f"`{name}` must be a batch of videos of shape (n, frames, height, width, channels); "
            f"got shape {shape} ({len(shape)} axes)."
        )
    if shape[1] < MIN_FRAMES:
        raise ValueError(
            f"`{name}` must hold at least {MIN_FRAMES} frames per video (axis 1); got {shape[1]}."
        )
    return shape


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class VideoDataset:
    """Labelled videos of one split, held as numpy arrays on the host.

    Attributes:
      videos: ``float32[n, T, H, W, C]`` in ``[0, 1]``, ``T >= 2``.
      labels: ``int32[n]`` in ``[0, len(class_names))``.
      motion: ``float32[n, T, H, W, 2]``, the known displacement field of every video (module
        docstring), or ``None`` where it is unknown (real footage).
      class_names: the name of each class.
      name: short identifier, e.g. ``"moving-digits-train"``.
      ids: one identifier per video (empty allowed), e.g. ``"ApplyEyeMakeup/v_..._g08_c01"``.

    Raises:
      ValueError: at construction, if a shape, dtype, value or label is out of contract.
    """

    videos: np.ndarray
    labels: np.ndarray
    motion: np.ndarray | None
    class_names: tuple[str, ...]
    name: str
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.videos, np.ndarray):
            raise ValueError(f"`videos` must be a numpy array; got {type(self.videos).__name__}.")
        shape = check_video_batch("videos", self.videos)
        if self.videos.dtype != np.float32:
            raise ValueError(f"`videos` must be float32; got dtype {self.videos.dtype}.")
        _checks.check_in_bounds("videos", self.videos, (0.0, 1.0))
        if not isinstance(self.labels, np.ndarray) or self.labels.shape != shape[:1]:
            got = getattr(self.labels, "shape", type(self.labels).__name__)
            raise ValueError(f"`labels` must be a numpy array of shape ({shape[0]},); got {got}.")
        if self.labels.dtype != np.int32:
            raise ValueError(f"`labels` must be int32; got dtype {self.labels.dtype}.")
        if not self.class_names:
            raise ValueError("`class_names` must name at least one class; got none.")
        _checks.check_labels("labels", self.labels, len(self.class_names))
        if self.motion is not None:
            expected = shape[:4] + (2,)
            if not isinstance(self.motion, np.ndarray) or self.motion.shape != expected:
                got = getattr(self.motion, "shape", type(self.motion).__name__)
                raise ValueError(f"`motion` must be None or of shape {expected}; got {got}.")
            if self.motion.dtype != np.float32:
                raise ValueError(f"`motion` must be float32; got dtype {self.motion.dtype}.")
            _checks.check_finite("motion", self.motion)
        if self.ids and len(self.ids) != shape[0]:
            raise ValueError(f"`ids` must be empty or hold {shape[0]} ids; got {len(self.ids)}.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """Shape ``(T, H, W, C)`` of one video: a video victim's ``input_shape``."""
        return tuple(self.videos.shape[1:])  # type: ignore[return-value]

    def subset(self, index: Sequence[int] | np.ndarray) -> VideoDataset:
        """The videos at ``index`` (integer positions), as a new record."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        return VideoDataset(
            videos=self.videos[index],
            labels=self.labels[index],
            motion=None if self.motion is None else self.motion[index],
            class_names=self.class_names,
            name=self.name,
            ids=tuple(self.ids[i] for i in index) if self.ids else (),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"VideoDataset(name={self.name!r}, n={len(self)}, video_shape={self.video_shape}, "
            f"num_classes={self.num_classes}, motion={'known' if self.motion is not None else None})"
        )
