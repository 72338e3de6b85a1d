"""Pascal VOC 2012 segmentation as classification data with foreground masks.

The on-disk layout read (the published ``VOCdevkit/VOC2012`` folder, or a copy of its parts)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png        palette PNG: index 0 = background, 1..20 = the classes
                                      (VOC_CLASS_NAMES order), 255 = void (object outlines,
                                      unlabelled regions)
    ImageSets/Segmentation/{train,val,trainval}.txt    one <id> per line

One image becomes one example: its label is the chosen class that covers the most pixels, its
mask that class's pixels (all instances of it). Segmentation masks are what the dual-perturbation
paper uses on its Segment-6 data (COCO classes); this loader gives the same kind of data from the
more compact VOC release.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._masked import MaskedDataset
from jaxadv.data.saliency._files import check_root, read_rgb, require
from jaxadv.data.saliency._record import check_size

VOC_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_VOID = 255
_DATASET = "Pascal VOC"
_SPLITS = ("train", "val", "trainval")
_VOID_CHOICES = ("background", "foreground")


def load_voc_segmentation(
    root: str | os.PathLike,
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    size: tuple[int, int] = (64, 64),
    void: str = "background",
    limit: int | None = None,
) -> MaskedDataset:
    """The images of a VOC 2012 segmentation split, each labelled by its largest chosen class.

    For every id of ``ImageSets/Segmentation/<split>.txt``, in file order:

    * **Label**: among the chosen ``classes``, the one with the most pixels in the image's
      ``SegmentationClass`` PNG (ties go to the class listed first in ``classes``). Labels are
      positions in ``classes`` (``0 .. k-1``); with ``classes=None`` all 20 VOC classes in their
      VOC order (VOC index − 1). Images showing none of the chosen classes are skipped.
    * **Mask**: 1 on the pixels of the label's class, 0 elsewhere. Void pixels (index 255, the
      thin outline VOC draws around every object, and unlabelled regions) are background with
      ``void="background"``; with ``void="foreground"`` every void pixel is foreground (the
      outlines of other objects included), the conservative choice when the foreground budget
      should cover the uncertain pixels too.
    * **Resizing** to ``size = (h, w)``: each image channel by Pillow's bilinear filter on the
      float values (an averaging filter when shrinking), the mask by nearest neighbour, so it
      stays in {0, 1}. Aspect ratios are not kept.

    Args:
      root: the ``VOC2012`` folder, or a folder holding ``VOCdevkit/VOC2012``.
      split: ``"train"``, ``"val"`` or ``"trainval"``.
      classes: names from ``VOC_CLASS_NAMES`` to keep, in the order that defines the labels;
        ``None`` keeps all 20.
      size: ``(h, w)`` of the returned images and masks.
      void: ``"background"`` or ``"foreground"``: what void pixels become in the mask.
      limit: stop after this many kept images; ``None`` reads the whole split.

    Returns:
      A ``MaskedDataset`` named ``"voc-<split>"``: ``float32[n, h, w, 3]`` images in ``[0, 1]``,
      ``int32[n]`` labels, ``float32[n, h, w, 1]`` masks, the chosen class names and the ids.

    Raises:
      ValueError: for a bad argument or an unknown class name; a ``DatasetLayoutError`` (a
        ``ValueError``) naming the missing folder or file; a segmentation PNG that is not a
        palette (indexed) image or holds an index that is neither a class nor 255; an image and
        its mask of different sizes; a split in which no image shows a chosen class.
    """
    chosen = _check_classes(classes)
    _checks.check_choice("split", split, _SPLITS)
    _checks.check_choice("void", void, _VOID_CHOICES)
    h, w = check_size(size)
    if limit is not None:
        _checks.check_positive_int("limit", limit)
    root = _voc_folder(check_root(_DATASET, root))
    require(_DATASET, root, "JPEGImages", folder=True)
    require(_DATASET, root, "SegmentationClass", folder=True)
    listing = require(_DATASET, root, f"ImageSets/Segmentation/{split}.txt", folder=False)
    ids = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines()]
    indices = np.array([VOC_CLASS_NAMES.index(c) + 1 for c in chosen])

    images, labels, masks, kept = [], [], [], []
    for image_id in (i for i in ids if i):
        png = require(_DATASET, root, f"SegmentationClass/{image_id}.png", folder=False)
        jpg = require(_DATASET, root, f"JPEGImages/{image_id}.jpg", folder=False)
        index = _read_indices(png)
        counts = np.bincount(index.ravel(), minlength=256)[indices]
        if counts.max() == 0:
            continue
        label = int(np.argmax(counts))  # the first of the largest, in `classes` order
        image = read_rgb(jpg, dataset=_DATASET)
        if image.shape[:2] != index.shape:
            raise ValueError(
                f"{_DATASET}: mask {str(png)!r} is {index.shape[1]}×{index.shape[0]} (w×h) but "
                f"its image {str(jpg)!r} is {image.shape[1]}×{image.shape[0]}; they must have "
                "the same size."
            )
        mask = index == indices[label]
        if void == "foreground":
            mask |= index == VOC_VOID
        images.append(_resize_image(image, (h, w)))
        masks.append(_resize_mask(mask, (h, w)))
        labels.append(label)
        kept.append(image_id)
        if limit is not None and len(kept) >= limit:
            break
    if not kept:
        raise ValueError(
            f"{_DATASET}: no image of the {split!r} split in {str(root)!r} shows any of the "
            f"classes {list(chosen)}."
        )
    return MaskedDataset(
        images=np.stack(images),
        labels=np.asarray(labels, np.int32),
        masks=np.stack(masks)[..., None],
        class_names=chosen,
        name=f"voc-{split}",
        ids=tuple(kept),
    )


def _check_classes(classes: Any) -> tuple[str, ...]:
    if classes is None:
        return VOC_CLASS_NAMES
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(
            f"`classes` must be a non-empty sequence of VOC class names (or None for all 20); "
            f"got {classes!r}."
        )
    unknown = [c for c in classes if c not in VOC_CLASS_NAMES]
    if unknown:
        raise ValueError(
            f"`classes` has unknown class names {unknown}; VOC's are {', '.join(VOC_CLASS_NAMES)}."
        )
    if len(set(classes)) != len(classes):
        raise ValueError(f"`classes` must not repeat a name; got {list(classes)}.")
    return tuple(classes)


def _voc_folder(root: Path) -> Path:
    """``root`` itself, or ``root/VOCdevkit/VOC2012`` when that is where the data is."""
    nested = root / "VOCdevkit" / "VOC2012"
    return nested if not (root / "JPEGImages").is_dir() and nested.is_dir() else root


def _read_indices(path: Path) -> np.ndarray:
    """``uint8[h, w]`` class indices of a palette PNG, checked against VOC's index set."""
    from PIL import Image  # lazily: only loaders need Pillow

    try:
        with Image.open(path) as picture:
            mode = picture.mode
            index = np.asarray(picture) if mode == "P" else None
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(
            f"{str(path)!r} of the {_DATASET} data set is not a readable image "
            f"({type(err).__name__}: {err})."
        ) from None
    if index is None:
        raise ValueError(
            f"{_DATASET}: {str(path)!r} must be a palette (indexed, mode 'P') PNG whose pixel "
            f"values are class indices; got mode {mode!r}. Use the SegmentationClass folder of "
            "the release, not a rendered colour image."
        )
    bad = np.setdiff1d(np.unique(index), [*range(len(VOC_CLASS_NAMES) + 1), VOC_VOID])
    if bad.size:
        raise ValueError(
            f"{_DATASET}: {str(path)!r} holds indices {bad.tolist()}, which are neither a class "
            f"(0..{len(VOC_CLASS_NAMES)}) nor void ({VOC_VOID})."
        )
    return index


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == size:
        return image
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                size[::-1], Image.Resampling.BILINEAR
            ),
            np.float32,
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    picture = Image.fromarray(mask.astype(np.uint8))
    if mask.shape != size:
        picture = picture.resize(size[::-1], Image.Resampling.NEAREST)
    return np.asarray(picture, np.float32)
