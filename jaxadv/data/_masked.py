"""Classification data with foreground masks: the record the mask loaders return, and the mask
check the foreground/background attacks share.

A foreground mask marks the pixels of the object that carries an image's class: ``float32`` of
the image's spatial shape with a trailing channel axis of 1, ``1`` on the foreground F and ``0``
on the background B = 1 − F. One image ``(h, w, c)`` has a mask ``(h, w, 1)``; a batch
``(n, h, w, c)`` has masks ``(n, h, w, 1)``, so ``mask * x`` broadcasts over the channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxadv import _checks


def check_masks(name: str, masks: Any, images_shape: Sequence[int]) -> None:
    """Raises a ``ValueError`` naming ``name`` unless ``masks`` are foreground masks of images of
    shape ``images_shape``.

    Checked: the shape is ``images_shape[:-1] + (1,)`` (one image ``(h, w, c)`` → ``(h, w, 1)``,
    a batch ``(n, h, w, c)`` → ``(n, h, w, 1)``); the dtype is real (bool, integer or float);
    and, when the values are concrete (not tracers inside ``jit``/``vmap``), every value is
    finite and either 0 or 1. Returns nothing.

    Example: ``check_masks("masks", masks, images.shape)``.
    """
    images_shape = tuple(int(s) for s in images_shape)
    if len(images_shape) < 3:
        raise ValueError(f"`images_shape` must be (h, w, c) or (n, h, w, c); got {images_shape}.")
    expected = images_shape[:-1] + (1,)
    shape = tuple(np.shape(masks))
    if shape != expected:
        hint = ""
        if shape == images_shape[:-1]:
            hint = " Add the trailing channel axis: `masks[..., None]`."
        elif shape == images_shape:
            hint = " A mask has ONE channel, shared by all colour channels."
        raise ValueError(
            f"`{name}` must have shape {expected} (that of the images {images_shape} with one "
            f"channel); got {shape}.{hint}"
        )
    dtype = np.dtype(masks.dtype) if hasattr(masks, "dtype") else np.asarray(masks).dtype
    if dtype.kind not in "biuf":  # bool, signed, unsigned, float
        raise ValueError(f"`{name}` must hold real numbers 0 and 1; got dtype {dtype}.")
    if not _checks.is_concrete(masks):
        return
    values = np.asarray(masks)
    _checks.check_finite(name, values)
    off = (values != 0) & (values != 1)
    if np.any(off):
        bad = np.unique(values[off])
        raise ValueError(
            f"`{name}` must hold only 0 (background) and 1 (foreground); got {int(off.sum())} "
            f"other entries of {values.size}, e.g. {_checks.show(bad[:8])}. Threshold soft masks "
            "first (e.g. `jaxadv.image.foreground_from_saliency`)."
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MaskedDataset:
    """Labelled images with the foreground mask of each, held as numpy arrays on the host.

    Attributes:
      images: ``float32[n, h, w, c]`` in ``[0, 1]``.
      labels: ``int32[n]`` class indices in ``[0, len(class_names))``.
      masks: ``float32[n, h, w, 1]`` in {0, 1}; 1 on the pixels of the object that carries the
        label (see the module docstring).
      class_names: the name of each class; their number is the number of classes.
      name: short identifier, e.g. ``"segment-scenes-train"``, ``"voc-train"``.
      ids: an identifier per image (a file stem, ``"train/000042"``); empty when none.

    Raises:
      ValueError: at construction, naming the field, if a shape, dtype or value is out of
        contract.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]
    name: str
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "ids", tuple(self.ids))
        if not isinstance(self.name, str):
            raise ValueError(f"`name` must be a str; got {type(self.name).__name__}.")
        if not self.class_names or not all(isinstance(c, str) for c in self.class_names):
            raise ValueError(
                f"`class_names` must be a non-empty tuple of str; got {self.class_names!r}."
            )
        for field, dtype, ndim in (
            ("images", np.float32, 4),
            ("labels", np.int32, 1),
            ("masks", np.float32, 4),
        ):
            value = getattr(self, field)
            if not isinstance(value, np.ndarray) or value.ndim != ndim or value.dtype != dtype:
                got = (
                    f"{value.dtype}{list(value.shape)}"
                    if isinstance(value, np.ndarray)
                    else type(value).__name__
                )
                raise ValueError(
                    f"`{field}` must be a {np.dtype(dtype).name} numpy array with "
                    f"{ndim} axes; got {got}."
                )
        n = len(self.images)
        if len(self.labels) != n or (self.ids and len(self.ids) != n):
            raise ValueError(
                f"`labels` (and `ids` if given) must have one entry per image "
                f"({n}); got {len(self.labels)} labels and {len(self.ids)} ids."
            )
        _checks.check_in_bounds("images", self.images, (0.0, 1.0))
        _checks.check_labels("labels", self.labels, len(self.class_names))
        check_masks("masks", self.masks, self.images.shape)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        return (
            f"MaskedDataset(name={self.name!r}, n={len(self)}, "
            f"shape={tuple(self.images.shape[1:])}, classes={self.num_classes})"
        )
