"""Classification data with foreground masks: the record the mask loaders return (the mask check
the foreground/background attacks share is ``jaxadv._checks.check_masks``, re-exported by
``jaxadv.data``).

A foreground mask marks the pixels of the object that carries an image's class: ``float32`` of
the image's spatial shape with a trailing channel axis of 1, ``1`` on the foreground F and ``0``
on the background B = 1 − F. One image ``(h, w, c)`` has a mask ``(h, w, 1)``; a batch
``(n, h, w, c)`` has masks ``(n, h, w, 1)``, so ``mask * x`` broadcasts over the channels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxadv import _checks


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
        _checks.check_masks("masks", self.masks, self.images.shape)

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
