"""The in-memory image classification data set every loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxadv import _checks


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test split of labelled images, held as numpy arrays on the host.

    Images use the library's layout: ``float32[n, h, w, c]``, channel axis last, pixel values in
    the closed interval ``[0, 1]``. Labels are ``int32[n]`` class indices in ``[0, num_classes)``.
    The fields are fixed (the dataclass is frozen), the arrays are ordinary writable numpy arrays;
    move them to a device with ``jnp.asarray`` when needed.

    Attributes:
      train_images: ``float32[n_train, h, w, c]`` in ``[0, 1]``.
      train_labels: ``int32[n_train]``.
      test_images: ``float32[n_test, h, w, c]`` in ``[0, 1]``, same ``(h, w, c)`` as the train set.
      test_labels: ``int32[n_test]``.
      num_classes: number of classes.
      name: short identifier, e.g. ``"digits"``, ``"mnist"``, ``"cifar10"``.
      class_names: optional human-readable name of each class (empty when unknown).

    Raises:
      ValueError: at construction, if a shape, dtype, pixel value or label is out of contract.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    name: str
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _checks.check_positive_int("num_classes", self.num_classes)
        if not isinstance(self.name, str):
            raise ValueError(f"`name` must be a str; got {type(self.name).__name__}.")
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if not isinstance(images, np.ndarray) or images.ndim != 4:
                raise ValueError(
                    f"`{split}_images` must be a numpy array of shape [n, h, w, c]; got "
                    f"{_describe(images)}."
                )
            if images.dtype != np.float32:
                raise ValueError(f"`{split}_images` must be float32; got dtype {images.dtype}.")
            if not isinstance(labels, np.ndarray) or labels.ndim != 1:
                raise ValueError(
                    f"`{split}_labels` must be a numpy array of shape [n]; got {_describe(labels)}."
                )
            if labels.dtype != np.int32:
                raise ValueError(f"`{split}_labels` must be int32; got dtype {labels.dtype}.")
            if len(images) != len(labels):
                raise ValueError(
                    f"`{split}_images` and `{split}_labels` must have the same length; got "
                    f"{len(images)} images and {len(labels)} labels."
                )
            _checks.check_in_bounds(f"{split}_images", images, (0.0, 1.0))
            _checks.check_labels(f"{split}_labels", labels, self.num_classes)
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                "`train_images` and `test_images` must share the example shape (h, w, c); got "
                f"{self.train_images.shape[1:]} and {self.test_images.shape[1:]}."
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"`class_names` must be empty or hold {self.num_classes} names; got "
                f"{len(self.class_names)}."
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(h, w, c)`` of one image."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        return (
            f"Dataset(name={self.name!r}, train={len(self.train_images)}, "
            f"test={len(self.test_images)}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes})"
        )


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape}"
    return f"a {type(x).__name__}"
