"""Segment scenes: a generated six-class data set whose class is a property of the foreground
object only, with the exact segmentation mask of that object.

Why generated: the dual-perturbation paper's Segment-6 (six COCO classes with semantic
segmentation masks) cannot be downloaded here. These scenes keep what the experiments need: one
object per image carries the class, the rest is cluttered texture and distractor blobs that
belong to no class, so a classifier must look at the foreground, and a large perturbation of the
background is plausible. Because the class is drawn last and only chooses the object's outline,
the same scene with another class differs only inside the two objects' outlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._generated import check_seed, check_size, class_labels
from jaxadv.data._masked import MaskedDataset
from jaxadv.data._texture import SmoothNoise

# The generating process; every constant is part of the documented definition.
SEGMENT_CLASS_NAMES = ("disc", "square", "triangle", "ring", "cross", "diamond")
_BACKGROUND_MEAN = (0.2, 0.8)
_COARSE = (5, 0.10)  # knots per side, amplitude of the coarse background texture
_FINE_PERIOD, _FINE_AMPLITUDE = 4, 0.05  # the fine texture has a knot every ~4 px
_MAX_DISTRACTORS = 3
_DISTRACTOR_STD = (0.05, 0.15)  # of the smaller image side, per axis
_DISTRACTOR_OPACITY = (0.5, 0.9)
_RADIUS = (0.25, 0.4)  # the object's circumradius, as a fraction of the smaller image side
_MAX_TILT = np.pi / 12  # the object is rotated by at most ±15°
_CONTRAST = (0.25, 0.6)  # RMS colour distance of the object from the background mean
_RING_INNER = 0.55  # inner radius of the ring / its outer radius
_CROSS_ARM = (0.95, 0.3)  # half length, half width of a cross arm / the circumradius
_GRAIN = 0.02  # std of per-pixel noise, object included
_SPLITS = {"train": (1, 6000), "test": (2, 1200)}  # RNG stream, default size
_MIN_SIDE = 16


def make_segment_scenes(
    n: int,
    *,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    labels: Sequence[int] | np.ndarray | None = None,
) -> MaskedDataset:
    """Generates ``n`` labelled scenes of one foreground object each, with its mask.

    The process, per scene (all draws uniform unless said otherwise; ``s`` = the smaller side):

    * **Background**: a mean colour in ``[0.2, 0.8]³``; plus coarse texture, bilinear over a 5×5
      grid of normal values, amplitude 0.10 per channel; plus fine texture, the same over a grid
      of ``1 + side // 4`` knots per side (a knot every ~4 px), amplitude 0.05.
    * **Distractors**: 0 to 3 soft blobs that belong to no class: an anisotropic Gaussian with
      centre anywhere in the image, stds 0.05–0.15 × ``s`` along two axes at a random angle, a
      colour in ``[0, 1]³`` and a peak opacity 0.5–0.9, alpha-blended over the background. Their
      edges are soft, every class object's edge is hard.
    * **Object**: circumradius ``R`` in ``[0.25, 0.4] × s``, centre anywhere at least ``R`` from
      every edge (so the object lies wholly inside the image), rotation in ``[-15°, 15°]``; its
      colour lies at RMS distance 0.25–0.6 from the background mean in a random direction of RGB
      space whose every component points to the farther end of ``[0, 1]``, then is clipped to
      ``[0, 1]`` (so it stays at least 0.25 RMS from the background mean). The class picks
      only the outline, in coordinates ``(u, v)`` rotated with the object and scaled by ``R``
      (so every shape fits its circle):
      ``disc`` ``u² + v² ≤ 1``; ``square`` ``max(|u|, |v|) ≤ 1/√2``; ``triangle`` equilateral,
      inscribed, pointing up (each edge at distance 1/2 from the centre); ``ring``
      ``0.55² ≤ u² + v² ≤ 1``; ``cross`` two bars of half length 0.95 and half width 0.3 along
      ``u`` and ``v``; ``diamond`` ``|u| + |v| ≤ 1``. A pixel belongs to the object when its
      centre is inside the outline; the object is painted over everything else, flat, and the
      mask is exactly its pixels.
    * **Grain**: normal noise of std 0.02 on every pixel; the image is clipped to ``[0, 1]``.

    The class of scene ``i`` is ``labels[i]``, by default ``i % 6`` (so the classes are balanced
    to within one image). It is not drawn: everything above comes from
    ``np.random.default_rng([seed, i])`` in the order listed, so scene ``i`` with another label
    has the same background, distractors, object position, size, tilt and colour, and differs
    only inside the two outlines. The first scenes do not depend on ``n``.

    Args:
      n: number of scenes.
      size: ``(h, w)``, each at least 16.
      seed: a non-negative integer.
      labels: optional class of each scene, ``n`` integers in ``[0, 6)``.

    Returns:
      A ``MaskedDataset`` named ``"segment-scenes"``: ``float32[n, h, w, 3]`` images in
      ``[0, 1]``, ``int32[n]`` labels, ``float32[n, h, w, 1]`` masks,
      ``class_names = SEGMENT_CLASS_NAMES`` and ids ``"scene/000000"``, ….

    Raises:
      ValueError: for a bad argument.
    """
    return _generate(n, size, seed, (), labels, "segment-scenes", "scene")


def load_segment_scenes(
    split: str = "train",
    n: int | None = None,
    *,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> MaskedDataset:
    """A deterministic train or test split of the segment scenes (see ``make_segment_scenes``).

    Scene ``i`` of a split is drawn from ``np.random.default_rng([seed, stream, i])`` with
    stream 1 for ``"train"`` and 2 for ``"test"``: disjoint random streams, so a split never
    repeats a scene of the other, and its first scenes do not depend on ``n``. Labels cycle
    ``i % 6`` in both splits.

    Args:
      split: ``"train"`` or ``"test"``.
      n: number of scenes; ``None`` gives 6000 for train and 1200 for test (1000 and 200 per
        class; the paper's Segment-6 has 3000 and 200).
      size: ``(h, w)``, each at least 16.
      seed: a non-negative integer.

    Returns:
      A ``MaskedDataset`` named ``"segment-scenes-train"`` or ``"segment-scenes-test"`` with ids
      ``"train/000000"``, … (fields as in ``make_segment_scenes``).
    """
    _checks.check_choice("split", split, tuple(_SPLITS))
    stream, default_n = _SPLITS[split]
    n = default_n if n is None else n
    return _generate(n, size, seed, (stream,), None, f"segment-scenes-{split}", split)


def _generate(
    n: Any, size: Any, seed: Any, stream: tuple[int, ...], labels: Any, name: str, prefix: str
) -> MaskedDataset:
    _checks.check_positive_int("n", n)
    check_seed(seed)
    h, w = check_size(size, _MIN_SIDE)
    labels = class_labels(labels, n, len(SEGMENT_CLASS_NAMES), "scene")
    painter = _Painter(h, w)
    images = np.empty((n, h, w, 3), np.float32)
    masks = np.empty((n, h, w, 1), np.float32)
    for i in range(n):
        rng = np.random.default_rng([int(seed), *stream, i])
        images[i], masks[i, ..., 0] = painter.scene(rng, int(labels[i]))
    return MaskedDataset(
        images=images,
        labels=labels.astype(np.int32),
        masks=masks,
        class_names=SEGMENT_CLASS_NAMES,
        name=name,
        ids=tuple(f"{prefix}/{i:06d}" for i in range(n)),
    )


class _Painter:
    """What all scenes of one size share: pixel-centre coordinates and the texture weights."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w, self.side = h, w, min(h, w)
        self.y = np.arange(h)[:, None] + 0.5
        self.x = np.arange(w)[None, :] + 0.5
        self.coarse = SmoothNoise(h, w, (_COARSE[0], _COARSE[0]))
        self.fine = SmoothNoise(h, w, (1 + h // _FINE_PERIOD, 1 + w // _FINE_PERIOD))

    def scene(self, rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image f64[h, w, 3], mask bool[h, w])`` of one scene of class ``label``."""
        mean = rng.uniform(*_BACKGROUND_MEAN, size=3)
        image = mean + _COARSE[1] * self.coarse.draw(rng) + _FINE_AMPLITUDE * self.fine.draw(rng)

        for _ in range(rng.integers(0, _MAX_DISTRACTORS + 1)):
            cy, cx = rng.uniform(0, self.h), rng.uniform(0, self.w)
            stds = rng.uniform(*_DISTRACTOR_STD, size=2) * self.side
            u, v = self._rotated(cy, cx, rng.uniform(0.0, np.pi))
            alpha = rng.uniform(*_DISTRACTOR_OPACITY) * np.exp(
                -0.5 * ((u / stds[0]) ** 2 + (v / stds[1]) ** 2)
            )
            colour = rng.uniform(0.0, 1.0, size=3)
            image = image + alpha[..., None] * (colour - image)

        radius = rng.uniform(*_RADIUS) * self.side
        cy = rng.uniform(radius, self.h - radius)
        cx = rng.uniform(radius, self.w - radius)
        u, v = self._rotated(cy, cx, rng.uniform(-_MAX_TILT, _MAX_TILT))
        inside = _outline(label, u / radius, v / radius)
        # Each channel moves towards the farther end of [0, 1] (at least 0.5 away), so clipping
        # never brings the colour closer to the background mean than 0.25 RMS.
        direction = np.abs(rng.normal(size=3)) * np.where(mean < 0.5, 1.0, -1.0)
        direction /= np.linalg.norm(direction)
        colour = np.clip(mean + rng.uniform(*_CONTRAST) * np.sqrt(3.0) * direction, 0.0, 1.0)
        image = np.where(inside[..., None], colour, image)

        image = image + rng.normal(scale=_GRAIN, size=image.shape)
        return np.clip(image, 0.0, 1.0), inside

    def _rotated(self, cy: float, cx: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates relative to ``(cy, cx)``, rotated by ``angle``."""
        dy, dx = self.y - cy, self.x - cx
        c, s = np.cos(angle), np.sin(angle)
        return dx * c + dy * s, dy * c - dx * s


def _outline(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``bool[h, w]``: pixel centres inside class ``label``'s outline (circumradius 1; ``v``
    points down the image)."""
    name = SEGMENT_CLASS_NAMES[label]
    r2 = u**2 + v**2
    if name == "disc":
        return r2 <= 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= np.sqrt(0.5)
    if name == "triangle":  # apex up (v = -1); edges at distance 1/2 along normals 120° apart
        inside = v <= 0.5
        for angle in (np.pi / 6, 5 * np.pi / 6):  # outward normals of the two slanted edges
            inside &= u * np.cos(angle) - v * np.sin(angle) <= 0.5
        return inside
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= _RING_INNER**2)
    if name == "cross":
        long, half = _CROSS_ARM
        au, av = np.abs(u), np.abs(v)
        return ((au <= long) & (av <= half)) | ((av <= long) & (au <= half))
    return np.abs(u) + np.abs(v) <= 1.0  # diamond
