"""Moving digits: a generated video classification set whose classes need motion to be told apart.

Why generated: real video sets (UCF-101, Something-Something) cannot be downloaded here, and their
motion is unknown. Here a handwritten digit (a real scan from :func:`jaxadv.data.load_digits`)
glides in a straight line at a sub-pixel speed over a static textured background. The class is
(digit group) × (direction of motion): 2 groups × 4 directions = 8 classes. A single frame shows
which group the digit belongs to but not where it goes, and by construction the clip's first
frame does not depend on the direction at all, so a classifier must compare frames. The exact
displacement field of every clip is returned with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._generated import check_seed, check_size, class_labels
from jaxadv.data._texture import SmoothNoise
from jaxadv.data._video import MIN_FRAMES, VideoDataset

# The generating process; every constant is part of the documented definition.
DIGIT_GROUPS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
DIRECTIONS = ("right", "down", "left", "up")  # angle 0°, 90°, 180°, 270° (y points down)
MOVING_DIGITS_CLASS_NAMES = tuple(
    f"{g[0]}-{g[-1]}/{d}" for g in DIGIT_GROUPS for d in DIRECTIONS
)  # label = group * 4 + direction
_SPRITE = 12  # side of the digit, px (the 8×8 scan upsampled bilinearly)
_SPEED = (0.5, 1.0)  # px per frame
_JITTER = np.pi / 9  # the heading deviates from its direction by at most ±20°
_BACKGROUND_MEAN = (0.05, 0.35)
_COARSE = (4, 0.08)  # knots per side, amplitude of the coarse background texture
_FINE_PERIOD, _FINE_AMPLITUDE = 4, 0.04  # the fine texture has a knot every ~4 px
_INK = (0.75, 1.0)  # brightness of the digit's strokes
_GRAIN = 0.02  # std of per-pixel, per-frame noise
_DIGIT_PIXEL = 0.5  # opacity from which a pixel belongs to the digit (where motion is known)
_SPLITS = {"train": (1, 4000), "test": (2, 800)}  # RNG stream, default size


def make_moving_digits(
    n: int,
    *,
    frames: int = 8,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    labels: Sequence[int] | np.ndarray | None = None,
) -> VideoDataset:
    """Generates ``n`` labelled clips of one moving digit each, with their motion fields.

    The process, per clip (all draws uniform unless said otherwise; ``s`` = 12, the sprite side):

    * **Digit**: class ``label`` is group ``label // 4`` (digits 0–4 or 5–9) and direction
      ``label % 4`` (right, down, left, up). A scan whose digit is in the group is drawn from
      the 1797 scans of scikit-learn's digits, upsampled to 12×12 (``load_digits(size=12)``);
      its pixel values are the stroke's opacity ``α``.
    * **Path**: the sprite's top-left corner starts at ``p0`` anywhere in
      ``[m, W - s - m] × [m, H - s - m]`` with ``m = (frames - 1) * 1.0`` (the largest travel),
      so the start does not depend on the direction and the digit never leaves the frame. The
      speed is 0.5–1.0 px per frame, the heading the direction's angle plus a deviation within
      ±20°; velocity ``v = speed · (cos, sin)(heading)`` in (x, y) pixels, and frame ``t`` shows
      the sprite at ``p0 + t v`` (sub-pixel: bilinear sampling of the sprite, zero outside it).
    * **Background** (static): a grey level in ``[0.05, 0.35]``, plus coarse texture (bilinear
      over 4×4 normal knots, amplitude 0.08) and fine texture (a knot every ~4 px, amplitude
      0.04). Each frame is ``background + α_t · (ink - background)`` with ink 0.75–1.0, plus
      normal grain of std 0.02 per pixel and frame, clipped to ``[0, 1]``.
    * **Motion**: ``motion[t]`` is ``v`` on the digit's pixels of frame ``t`` (``α_t >= 0.5``)
      and 0 on the static background; the last frame repeats the previous field.

    The class of clip ``i`` is ``labels[i]``, by default ``i % 8`` (balanced to within one clip).
    It is not drawn: everything above comes from ``np.random.default_rng([seed, i])`` in the order
    listed (the direction only rotates the heading), so clip ``i`` with another label of the same
    group has the same digit, start, speed, background and grain: its first frame is identical.

    Args:
      n: number of clips.
      frames: frames per clip ``T``, at least 2.
      size: ``(H, W)``; each side at least ``12 + 2 (frames - 1)``.
      seed: a non-negative integer.
      labels: optional class of each clip, ``n`` integers in ``[0, 8)``.

    Returns:
      A ``VideoDataset`` named ``"moving-digits"``: ``float32[n, T, H, W, 1]`` videos,
      ``int32[n]`` labels, ``float32[n, T, H, W, 2]`` motion, ``MOVING_DIGITS_CLASS_NAMES``.

    Raises:
      ValueError: for a bad argument.
    """
    return _generate(n, frames, size, seed, (), labels, None, "moving-digits")


def load_moving_digits(
    split: str = "train",
    n: int | None = None,
    *,
    frames: int = 8,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> VideoDataset:
    """A deterministic train or test split of the moving digits (see ``make_moving_digits``).

    Clip ``i`` of a split is drawn from ``np.random.default_rng([seed, stream, i])`` with stream 1
    for ``"train"`` and 2 for ``"test"``, and its digit from that split's scans of
    ``load_digits(size=12)`` (its default stratified split): the test clips show handwriting the
    training clips never show. Labels cycle ``i % 8``.

    Args:
      split: ``"train"`` or ``"test"``.
      n: number of clips; ``None`` gives 4000 for train and 800 for test (500 and 100 per class).
      frames, size, seed: as in ``make_moving_digits``.

    Returns:
      A :class:`VideoDataset` named ``"moving-digits-<split>"`` with its known ``motion`` field.
    """
    _checks.check_choice("split", split, tuple(_SPLITS))
    stream, default_n = _SPLITS[split]
    return _generate(
        default_n if n is None else n, frames, size, seed, (stream,), None, split,
        f"moving-digits-{split}",
    )


def _digit_pool(split: str | None) -> tuple[np.ndarray, np.ndarray]:
    from jaxadv.data._digits import load_digits

    data = load_digits(size=_SPRITE)
    if split is None:
        images = np.concatenate([data.train_images, data.test_images])
        labels = np.concatenate([data.train_labels, data.test_labels])
    else:
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    return images[..., 0].astype(np.float64), labels


def _generate(
    n: Any, frames: Any, size: Any, seed: Any, stream: tuple[int, ...], labels: Any,
    split: str | None, name: str,
) -> VideoDataset:
    _checks.check_positive_int("n", n)
    _checks.check_positive_int("frames", frames)
    if frames < MIN_FRAMES:
        raise ValueError(f"`frames` must be at least {MIN_FRAMES} (motion); got {frames}.")
    check_seed(seed)
    margin = (frames - 1) * _SPEED[1]
    smallest = int(np.ceil(_SPRITE + 2 * margin))
    h, w = check_size(size, smallest, f" (the digit and its travel over {frames} frames)")
    labels = class_labels(labels, n, len(MOVING_DIGITS_CLASS_NAMES), "clip")
    sprites, digits = _digit_pool(split)
    members = [np.flatnonzero(np.isin(digits, group)) for group in DIGIT_GROUPS]
    coarse = SmoothNoise(h, w, (_COARSE[0], _COARSE[0]))
    fine = SmoothNoise(h, w, (1 + h // _FINE_PERIOD, 1 + w // _FINE_PERIOD))
    videos = np.empty((n, frames, h, w, 1), np.float32)
    motion = np.empty((n, frames, h, w, 2), np.float32)
    for i in range(n):
        rng = np.random.default_rng([int(seed), *stream, i])
        group, direction = divmod(int(labels[i]), len(DIRECTIONS))
        pool = members[group]
        sprite = sprites[pool[int(rng.uniform() * len(pool))]]
        start = np.array([rng.uniform(margin, w - _SPRITE - margin),
                          rng.uniform(margin, h - _SPRITE - margin)])  # (x, y)
        speed = rng.uniform(*_SPEED)
        heading = direction * np.pi / 2 + rng.uniform(-_JITTER, _JITTER)
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])
        background = rng.uniform(*_BACKGROUND_MEAN) + _COARSE[1] * coarse.draw(rng)[..., 0]
        background = background + _FINE_AMPLITUDE * fine.draw(rng)[..., 0]
        ink = rng.uniform(*_INK)
        alpha = _place(sprite, start + np.arange(frames)[:, None] * velocity, h, w)
        clip = background + alpha * (ink - background)
        clip = clip + rng.normal(scale=_GRAIN, size=clip.shape)
        videos[i, ..., 0] = np.clip(clip, 0.0, 1.0)
        on_digit = (alpha >= _DIGIT_PIXEL)[..., None]
        motion[i] = np.where(on_digit, velocity, 0.0)
        motion[i, -1] = motion[i, -2]  # the convention: the last frame repeats the previous field
    return VideoDataset(
        videos=videos,
        labels=labels.astype(np.int32),
        motion=motion,
        class_names=MOVING_DIGITS_CLASS_NAMES,
        name=name,
        ids=tuple(f"{split or 'clip'}/{i:06d}" for i in range(n)),
    )


def _place(sprite: np.ndarray, corners: np.ndarray, h: int, w: int) -> np.ndarray:
    """``f64[T, h, w]``: the sprite with its top-left corner at ``corners[t] = (x, y)``
    (sub-pixel), sampled bilinearly at the canvas's pixel centres, zero outside the sprite.

    Bilinear sampling of a translated image is separable: rows, then columns."""
    padded = np.pad(sprite, 1)  # a zero border: sampling off the sprite fades to 0
    rows = _sampling_matrix(corners[:, 1], h, padded.shape[0])  # [T, h, side]
    cols = _sampling_matrix(corners[:, 0], w, padded.shape[1])  # [T, w, side]
    return rows @ padded @ cols.transpose(0, 2, 1)


def _sampling_matrix(offsets: np.ndarray, n_out: int, side: int) -> np.ndarray:
    """``[T, n_out, side]`` 1-D linear interpolation weights: output pixel ``j`` reads the padded
    sprite at coordinate ``j - offset + 1`` (clamped; the clamped border is zero)."""
    pos = np.clip(np.arange(n_out)[None, :] - offsets[:, None] + 1, 0, side - 1)
    low = np.minimum(np.floor(pos).astype(int), side - 2)
    frac = pos - low
    weights = np.zeros((len(offsets), n_out, side))
    t, j = np.indices(low.shape)
    weights[t, j, low] = 1.0 - frac
    weights[t, j, low + 1] = frac
    return weights
