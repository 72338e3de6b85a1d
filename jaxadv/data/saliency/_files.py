"""File access shared by the saliency loaders: layout checks, image and .mat readers, assembly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data.saliency._record import SaliencyDataset, check_size, resize_item


class DatasetLayoutError(ValueError):
    """A data set folder lacks a file or folder of its published on-disk layout.

    Attributes:
      dataset: the data set, e.g. ``"SALICON"``.
      root: the folder given to the loader.
      missing: the expected path relative to ``root`` (``"."`` when ``root`` itself is missing),
        e.g. ``"maps/train/COCO_train2014_000000000009.png"``.
    """

    def __init__(self, dataset: str, root: Path, missing: str, hint: str = "") -> None:
        self.dataset, self.root, self.missing = dataset, root, missing
        if missing == ".":
            text = f"{dataset} root {str(root)!r} does not exist or is not a folder."
        else:
            text = (
                f"{dataset} folder {str(root)!r} does not have the expected layout: missing "
                f"'{missing}'."
            )
        super().__init__(text + (f" {hint}" if hint else ""))


def check_root(dataset: str, root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(dataset, root, ".")
    return root


def require(dataset: str, root: Path, relative: str, *, folder: bool, hint: str = "") -> Path:
    """``root / relative``, which must exist as a folder (or a file); else a layout error."""
    path = root / relative
    if not (path.is_dir() if folder else path.is_file()):
        raise DatasetLayoutError(dataset, root, relative, hint)
    return path


def files(folder: Path, suffix: str) -> list[Path]:
    """Files directly in ``folder`` ending in ``suffix`` (case-insensitive), sorted by name."""
    suffix = suffix.lower()
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffix))


def read_rgb(path: Path, *, dataset: str = "") -> np.ndarray:
    """``float32[h, w, 3]`` in ``[0, 1]``; grey-scale and palette files become RGB."""
    pixels = _read_image(path, "RGB", dataset)
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def read_gray(path: Path, *, dataset: str = "") -> np.ndarray:
    """``float32[h, w]`` in ``[0, 1]``: an 8-bit grey map divided by 255 (colour is converted)."""
    pixels = _read_image(path, "L", dataset)
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def _read_image(path: Path, mode: str, dataset: str) -> np.ndarray:
    """The pixels of an image file; a file that is not a readable image (another format,
    truncated) raises a ``ValueError`` naming the file and the data set."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert(mode))
    except (OSError, ValueError, SyntaxError) as err:  # PIL: UnidentifiedImageError, truncated
        of = f" of the {dataset} data set" if dataset else ""
        raise ValueError(
            f"{str(path)!r}{of} is not a readable image ({type(err).__name__}: {err}); replace "
            "it with the data set's original file, or remove it."
        ) from None


def read_mat(path: Path, variable: str) -> Any:
    """One variable of a MATLAB v5 file, named in the error when absent."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        contents = scipy.io.loadmat(path)
    except (MatReadError, ValueError, OSError, TypeError) as err:
        raise ValueError(f"{str(path)!r} is not a readable MATLAB .mat file ({err}).") from None
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(f"{str(path)!r} must hold a variable named {variable!r}; found {found}.")
    return contents[variable]


def binary_to_fixations(fixated: np.ndarray) -> np.ndarray:
    """``int32[k, 2]`` (x, y) of the True pixels of a binary map, in row-major order."""
    rows, cols = np.nonzero(fixated)
    return np.stack([cols, rows], axis=1).astype(np.int32)


def one_based_to_pixels(xy: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """1-based (x, y) coordinates → 0-based pixels, rounded and clipped into the image.

    Clipping matters for the 2017 SALICON edition, some of whose mouse samples fall outside the
    image (pysaliency clips them too); it leaves in-image coordinates unchanged.
    """
    h, w = hw
    xy = np.rint(np.asarray(xy, dtype=np.float64).reshape(-1, 2)) - 1
    return np.clip(xy, 0, [w - 1, h - 1]).astype(np.int32)


class Collector:
    """Gathers loaded items, resizing each as it arrives when a ``size`` is asked for.

    Resizing item by item keeps memory at the output size: holding a whole real data set at its
    raw size first would need tens of gigabytes.
    """

    def __init__(self, dataset: str, size: Any, limit: int | None) -> None:
        if limit is not None:
            _checks.check_positive_int("limit", limit)
        self.dataset, self.limit = dataset, limit
        self.size = None if size is None else check_size(size)
        self.images, self.maps, self.fixations, self.names, self.groups = [], [], [], [], []

    @property
    def full(self) -> bool:
        """True once ``limit`` items are in."""
        return self.limit is not None and len(self.names) >= self.limit

    def add(self, name, image, smap, fixations, *, image_path, map_path, group=None) -> None:
        if smap.shape != image.shape[:2]:
            raise ValueError(
                f"{self.dataset}: map {str(map_path)!r} is {smap.shape[1]}×{smap.shape[0]} (w×h) "
                f"but its image {str(image_path)!r} is {image.shape[1]}×{image.shape[0]}; they "
                "must have the same size."
            )
        if self.size is not None:
            image, smap, fixations = resize_item(image, smap, fixations, self.size)
        self.images.append(image)
        self.maps.append(smap)
        self.fixations.append(fixations)
        self.names.append(name)
        if group is not None:
            self.groups.append(group)

    def build(self, name: str) -> SaliencyDataset:
        images, maps = self.images, self.maps
        if self.size is not None:
            h, w = self.size
            images = np.stack(images) if images else np.zeros((0, h, w, 3), np.float32)
            maps = np.stack(maps) if maps else np.zeros((0, h, w), np.float32)
        return SaliencyDataset(
            images=images,
            maps=maps,
            fixations=tuple(self.fixations),
            names=tuple(self.names),
            name=name,
            groups=tuple(self.groups),
        )
