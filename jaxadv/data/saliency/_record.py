"""The in-memory record every saliency loader returns, and the resizing shared by all of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxadv import _checks


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SaliencyDataset:
    """Images with their eye-tracking ground truth, held as numpy arrays on the host.

    Two shapes of storage, chosen by the loader's ``size`` argument and never by the data:

    * ``size=None`` (the default of the real-data loaders): every item keeps its size on disk;
      ``images`` and ``maps`` are Python lists of per-item arrays.
    * ``size=(h, w)`` and the generated scenes: ``images`` is one ``float32[n, h, w, 3]`` array and
      ``maps`` one ``float32[n, h, w]`` array (see ``resized`` for how items are rescaled).

    Either way ``images[i]``, ``maps[i]``, ``fixations[i]`` and ``names[i]`` describe item ``i``.

    Attributes:
      images: RGB images, ``float32[h, w, 3]`` in ``[0, 1]`` each (grey-scale files are expanded
        to three equal channels).
      maps: continuous ground-truth maps, ``float32[h, w]`` each, finite and ``>= 0``, on the
        scale the data set distributes them: 8-bit grey files divided by 255 for the real data
        sets, a probability density summing to 1 for the generated scenes. Metrics normalise.
      fixations: per item an ``int32[k, 2]`` array of fixated pixels, columns ``(x, y)`` =
        (column, row), 0-based, every coordinate inside the image. Repeated fixations stay
        repeated (metrics that count fixations differ from those that count fixated pixels);
        data sets distributed as binary fixation maps give each fixated pixel once.
      names: an identifier per item, e.g. the file stem, ``"Action/001"`` or ``"0001/0042"``.
      name: short name of the data set, e.g. ``"salicon"``, ``"scenes"``.
      groups: the category (CAT2000) or video (DHF1K) of each item; empty when there are none.
      object_masks: ``bool[n, h, w]``, True on the objects of a generated scene (the foreground of
        foreground/background attacks); ``None`` for recorded data, whose objects are unknown.

    Raises:
      ValueError: at construction, naming the field and item, if a shape, dtype or value is out
        of contract or the fields disagree in length.
    """

    images: np.ndarray | list[np.ndarray]
    maps: np.ndarray | list[np.ndarray]
    fixations: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    name: str
    groups: tuple[str, ...] = ()
    object_masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"`name` must be a str; got {type(self.name).__name__}.")
        stacked = isinstance(self.images, np.ndarray)
        if stacked != isinstance(self.maps, np.ndarray):
            raise ValueError(
                "`images` and `maps` must both be stacked arrays or both be lists; got "
                f"{type(self.images).__name__} and {type(self.maps).__name__}."
            )
        if not stacked:
            object.__setattr__(self, "images", list(self.images))
            object.__setattr__(self, "maps", list(self.maps))
        object.__setattr__(self, "fixations", tuple(self.fixations))
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "groups", tuple(self.groups))
        n = len(self.images)
        for field in ("maps", "fixations", "names") + (("groups",) if self.groups else ()):
            if len(getattr(self, field)) != n:
                got = len(getattr(self, field))
                raise ValueError(f"`{field}` must have one entry per image ({n}); got {got}.")
        if stacked:
            _check_array("images", self.images, np.float32, 4, channels=3)
            _check_array("maps", self.maps, np.float32, 3)
            if self.maps.shape != self.images.shape[:3]:
                raise ValueError(
                    f"`maps` must have shape {self.images.shape[:3]} to match `images` "
                    f"{self.images.shape}; got {self.maps.shape}."
                )
            _checks.check_in_bounds("images", self.images, (0.0, 1.0))
            _checks.check_nonnegative("maps", self.maps)
        else:
            for i, (image, smap) in enumerate(zip(self.images, self.maps)):
                _check_array(f"images[{i}]", image, np.float32, 3, channels=3)
                _check_array(f"maps[{i}]", smap, np.float32, 2)
                if smap.shape != image.shape[:2]:
                    raise ValueError(
                        f"`maps[{i}]` must have the size {image.shape[:2]} of `images[{i}]`; got "
                        f"{smap.shape}."
                    )
                _checks.check_in_bounds(f"images[{i}]", image, (0.0, 1.0))
                _checks.check_nonnegative(f"maps[{i}]", smap)
        for i, xy in enumerate(self.fixations):
            _check_fixations(f"fixations[{i}]", xy, self.images[i].shape[:2])
        if self.object_masks is not None:
            if not stacked or not isinstance(self.object_masks, np.ndarray):
                raise ValueError("`object_masks` needs stacked `images` and must be a numpy array.")
            if self.object_masks.dtype != bool or self.object_masks.shape != self.maps.shape:
                raise ValueError(
                    f"`object_masks` must be bool{list(self.maps.shape)}; got "
                    f"{self.object_masks.dtype}{list(self.object_masks.shape)}."
                )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def stacked(self) -> bool:
        """True when ``images`` and ``maps`` are single arrays (all items share one size)."""
        return isinstance(self.images, np.ndarray)

    def fixation_map(self, i: int, *, counts: bool = False) -> np.ndarray:
        """Item ``i``'s fixations as a map of its size: ``bool[h, w]``, or ``int32`` counts.

        The binary map counts each fixated pixel once (the MIT benchmark convention); with
        ``counts=True`` a pixel holds how many fixations fell on it (the per-fixation convention).
        """
        h, w = self.images[i].shape[:2]
        xy = self.fixations[i]
        if not counts:
            hits = np.zeros((h, w), bool)
            hits[xy[:, 1], xy[:, 0]] = True
            return hits
        tally = np.zeros((h, w), np.int32)
        np.add.at(tally, (xy[:, 1], xy[:, 0]), 1)
        return tally

    def subset(self, indices: Sequence[int] | np.ndarray) -> SaliencyDataset:
        """The items at ``indices`` (in that order), e.g. one DHF1K video or one CAT2000 category.

        Example: ``ds.subset(np.flatnonzero(np.asarray(ds.groups) == "0001"))``.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(
                f"`indices` must lie in [{-len(self)}, {len(self) - 1}]; got values in "
                f"[{idx.min()}, {idx.max()}]."
            )

        def pick(field):
            if isinstance(field, np.ndarray):
                return field[idx]
            return [field[i] for i in idx]

        return SaliencyDataset(
            images=pick(self.images),
            maps=pick(self.maps),
            fixations=tuple(pick(list(self.fixations))),
            names=tuple(pick(list(self.names))),
            name=self.name,
            groups=tuple(pick(list(self.groups))) if self.groups else (),
            object_masks=None if self.object_masks is None else self.object_masks[idx],
        )

    def resized(self, size: tuple[int, int]) -> SaliencyDataset:
        """Every item rescaled to ``size = (h, w)``, returned stacked (see ``resize_item``).

        Object masks are dropped, since a resized mask is no longer binary.
        """
        size = check_size(size)
        items = [
            resize_item(self.images[i], self.maps[i], self.fixations[i], size)
            for i in range(len(self))
        ]
        h, w = size
        return SaliencyDataset(
            images=np.stack([it[0] for it in items]) if items else np.zeros((0, h, w, 3), "f4"),
            maps=np.stack([it[1] for it in items]) if items else np.zeros((0, h, w), "f4"),
            fixations=tuple(it[2] for it in items),
            names=self.names,
            name=self.name,
            groups=self.groups,
        )

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        if self.stacked:
            shape = f"size={tuple(self.images.shape[1:3])}"
        else:
            sizes = {tuple(image.shape[:2]) for image in self.images}
            shape = f"size={sizes.pop()}" if len(sizes) == 1 else f"{len(sizes)} sizes"
        n_fix = sum(len(xy) for xy in self.fixations)
        return f"SaliencyDataset(name={self.name!r}, n={len(self)}, {shape}, fixations={n_fix})"


def resize_item(
    image: np.ndarray, smap: np.ndarray, fixations: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rescales one item to ``size = (h, w)``.

    Image channels and the map are resampled in float32 by Pillow's bilinear filter (a triangle
    kernel widened by the scale factor when shrinking, so it averages instead of aliasing; its
    weights are non-negative, so images stay in ``[0, 1]`` and maps ``>= 0``). A fixation keeps
    the pixel its centre falls into: ``x' = floor((x + 0.5) * w' / w)``, likewise for ``y``
    (pysaliency scales coordinates the same way, without the half-pixel centring).
    """
    h, w = image.shape[:2]
    new_h, new_w = size
    channels = [_resample(image[..., c], size) for c in range(image.shape[2])]
    new_image = np.clip(np.stack(channels, axis=-1), 0.0, 1.0)
    new_map = np.maximum(_resample(smap, size), 0.0)
    scale = np.array([new_w / w, new_h / h])
    xy = np.floor((fixations + 0.5) * scale).astype(np.int32)
    xy = np.minimum(xy, np.array([new_w - 1, new_h - 1], np.int32))
    return new_image, new_map, xy


def check_size(size: Any) -> tuple[int, int]:
    """Validates an ``(h, w)`` pair of positive integers."""
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(not isinstance(s, bool) and isinstance(s, (int, np.integer)) for s in size)
        and all(s >= 1 for s in size)
    )
    if not ok:
        raise ValueError(f"`size` must be a pair (height, width) of integers >= 1; got {size!r}.")
    return int(size[0]), int(size[1])


def _resample(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image  # lazily: only loaders need Pillow

    if plane.shape == tuple(size):
        return plane.astype(np.float32, copy=True)
    picture = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"
    return np.asarray(picture.resize(size[::-1], Image.Resampling.BILINEAR), dtype=np.float32)


def _check_array(name: str, x: Any, dtype: type, ndim: int, channels: int | None = None) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
        raise ValueError(f"`{name}` must be a numpy array with {ndim} axes; got {got}.")
    if x.dtype != dtype:
        raise ValueError(f"`{name}` must be {np.dtype(dtype).name}; got dtype {x.dtype}.")
    if channels is not None and x.shape[-1] != channels:
        raise ValueError(f"`{name}` must have {channels} channels (last axis); got {x.shape}.")


def _check_fixations(name: str, xy: Any, hw: tuple[int, int]) -> None:
    if not isinstance(xy, np.ndarray) or xy.dtype != np.int32 or xy.ndim != 2 or xy.shape[1] != 2:
        got = f"{xy.dtype}{list(xy.shape)}" if isinstance(xy, np.ndarray) else type(xy).__name__
        raise ValueError(f"`{name}` must be an int32[k, 2] array of (x, y) pixels; got {got}.")
    h, w = hw
    if xy.size and (xy.min() < 0 or xy[:, 0].max() >= w or xy[:, 1].max() >= h):
        raise ValueError(
            f"`{name}` must hold 0-based pixels with 0 <= x < {w} and 0 <= y < {h}; got x in "
            f"[{xy[:, 0].min()}, {xy[:, 0].max()}], y in [{xy[:, 1].min()}, {xy[:, 1].max()}]."
        )
