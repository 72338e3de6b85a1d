"""Small video classifiers: a (2+1)D convolutional net and a two-stream frame model.

Both map a batch of videos ``[b, T, H, W, C]`` to logits ``[b, num_classes]`` and become ordinary
victims with ``input_shape=(T, H, W, C)`` through :func:`video_from_flax`, so every attack applies
to them unchanged. They are sized for the generated moving digits (32×32 grey, 8 frames) on a CPU.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.models._layers import max_pool_2x2
from jaxadv.models._victim import Victim, from_flax

MIN_FRAMES = 2


def _check_videos(x: jax.Array) -> tuple[int, ...]:
    if x.ndim != 5:
        raise ValueError(
            f"`x` must be a batch of videos [b, frames, height, width, channels]; got shape "
            f"{x.shape}."
        )
    if x.shape[1] < MIN_FRAMES:
        raise ValueError(f"`x` must hold at least {MIN_FRAMES} frames (axis 1); got {x.shape[1]}.")
    return x.shape


class R2Plus1DNet(nn.Module):
    """(2+1)D convolutions: each block factorises a 3×3×3 convolution into a spatial 1×3×3
    convolution (per frame) and a temporal 3×1×1 convolution (per pixel), ReLU after each.

    Tran, Wang, Torresani, Ray, LeCun & Paluri, "A closer look at spatiotemporal convolutions
    for action recognition", CVPR 2018. Small and without batch norm: block ``i`` has
    ``widths[i]`` channels and halves the frame size with a 2×2 max-pool after its spatial
    convolution; time is never downsampled. The temporal convolution is residual,
    ``relu(y + conv_t(y))`` (the paper's R(2+1)D-18 has residual connections around pairs of
    (2+1)D blocks): without it this small net learns the motion quickly but the digit's
    appearance hardly at all (measured: 59% vs 100% on the moving digits' group and direction).
    Pixels in ``[0, 1]`` are shifted by -0.5 first. Logits come from a dense layer on the
    features' maximum over space (the object is small and anywhere), averaged over time. Each
    temporal convolution sees 3 frames ('SAME' zero padding), so the blocks together see
    ``1 + 2 len(widths)`` frames.

    Attributes:
      num_classes: number of output logits.
      widths: channels of the blocks.
    """

    num_classes: int = 8
    widths: tuple[int, ...] = (8, 16, 32)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch of videos ``x: [b, T, H, W, C]``."""
        b, t, h, w, c = _check_videos(x)
        x = x - 0.5  # centred pixels: training leaves its initial plateau sooner
        for i, width in enumerate(self.widths):
            frames = x.reshape(b * t, h, w, c)
            frames = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"spatial{i + 1}")(frames))
            frames = max_pool_2x2(frames)
            h, w, c = frames.shape[1], frames.shape[2], width
            # [b*t, h, w, c] -> one time series per pixel: [b*h*w, t, c]
            series = frames.reshape(b, t, h, w, c).transpose(0, 2, 3, 1, 4).reshape(-1, t, c)
            temporal = nn.Conv(width, (3,), padding="SAME", name=f"temporal{i + 1}")
            series = nn.relu(series + temporal(series))  # residual: appearance flows past
            x = series.reshape(b, h, w, t, c).transpose(0, 3, 1, 2, 4)
        # Max over space finds the small object wherever it is; mean over time.
        return nn.Dense(self.num_classes, name="head")(jnp.mean(jnp.max(x, axis=(2, 3)), axis=1))


class FrameNet(nn.Module):
    """A small 2-D classifier of one image ``[b, H, W, C]``: blocks of 3×3 conv, ReLU and 2×2
    max-pool of ``widths[i]`` channels, then a dense layer on the features' maximum over space.
    With ``centre``, pixels in ``[0, 1]`` are shifted by -0.5 first.

    The stream of :class:`TwoStreamNet`, and on its own the single-frame baseline.

    Attributes:
      num_classes: number of output logits (8).
      widths: channels of each block (``(8, 16, 32)``).
      centre: shift the pixels by -0.5 before the first block (True; False for inputs already
        centred on 0, such as frame differences).
    """

    num_classes: int = 8
    widths: tuple[int, ...] = (8, 16, 32)
    centre: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch of images ``x: [b, H, W, C]``."""
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch of images [b, h, w, c]; got shape {x.shape}.")
        if self.centre:
            x = x - 0.5  # centred pixels: training leaves its initial plateau sooner
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"conv{i + 1}")(x))
            x = max_pool_2x2(x)
        return nn.Dense(self.num_classes, name="head")(jnp.max(x, axis=(1, 2)))


class TwoStreamNet(nn.Module):
    """Two streams, fused: appearance from single frames, motion from stacked frame differences.

    In the spirit of Simonyan & Zisserman, "Two-stream convolutional networks for action
    recognition in videos", NeurIPS 2014. The appearance stream is a :class:`FrameNet` applied
    to every frame, its logits averaged over frames (the paper averages scores over sampled
    frames). The motion stream is a :class:`FrameNet` whose input stacks the ``T - 1`` frame
    differences ``x[t+1] - x[t]`` along the channel axis, as the paper stacks optical flow
    fields: here the differences STAND IN for optical flow (which would need a flow estimator
    inside the victim). The fused logits are the sum of the two streams' logits, and the two
    streams are trained jointly (the paper trains them apart and averages softmax scores).

    Attributes:
      num_classes: number of output logits.
      widths: channels of each stream's blocks.
    """

    num_classes: int = 8
    widths: tuple[int, ...] = (8, 16, 32)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch of videos ``x: [b, T, H, W, C]``."""
        b, t, h, w, c = _check_videos(x)
        appearance = FrameNet(self.num_classes, self.widths, name="appearance")
        per_frame = appearance(x.reshape(b * t, h, w, c)).reshape(b, t, -1)
        differences = x[:, 1:] - x[:, :-1]  # [b, t-1, h, w, c]
        stacked = differences.transpose(0, 2, 3, 1, 4).reshape(b, h, w, (t - 1) * c)
        # Differences are already centred on 0.
        motion = FrameNet(self.num_classes, self.widths, centre=False, name="motion")(stacked)
        return jnp.mean(per_frame, axis=1) + motion


_REGISTRY = {
    "r21d": lambda num_classes: R2Plus1DNet(num_classes=num_classes),
    "two_stream": lambda num_classes: TwoStreamNet(num_classes=num_classes),
}
VIDEO_CLASSIFIER_NAMES = tuple(_REGISTRY)


def video_classifier(name: str, num_classes: int = 8) -> nn.Module:
    """The named video classifier module (untrained): ``"r21d"`` (:class:`R2Plus1DNet`) or
    ``"two_stream"`` (:class:`TwoStreamNet`), ``[b, T, H, W, C]`` to ``[b, num_classes]``.

    Args:
      name: one of :data:`VIDEO_CLASSIFIER_NAMES`.
      num_classes: a positive number of output logits (8).

    Returns:
      The Flax module, with its default widths; initialise it with ``module.init``.

    Raises:
      ValueError: if ``name`` is unknown or ``num_classes`` is not a positive integer.
    """
    _checks.check_choice("name", name, VIDEO_CLASSIFIER_NAMES)
    _checks.check_positive_int("num_classes", num_classes)
    return _REGISTRY[name](int(num_classes))


def video_from_flax(
    module: nn.Module,
    variables: Any,
    *,
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Victim:
    """:func:`from_flax` for a video classifier: a ``Victim`` of ONE video ``(T, H, W, C)``.

    Args:
      module: the Flax video classifier, ``[b, T, H, W, C]`` to ``[b, num_classes]`` (e.g.
        :func:`video_classifier`).
      variables: its Flax variables dict, with a ``"params"`` collection.
      input_shape: ``(T, H, W, C)`` of ONE video, a tuple or list of positive ints, ``T >= 2``.
      num_classes: the number of logits the module returns per video.
      bounds: ``(low, high)``, the pixel interval inputs live in (default ``(0, 1)``).

    Returns:
      A :class:`Victim` whose ``input_shape`` is ``input_shape`` as a tuple.

    Raises:
      ValueError: if ``input_shape`` is not ``(T, H, W, C)`` of positive sizes with ``T >= 2``,
        or as :func:`from_flax` does.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    ok = shape is not None and len(shape) == 4 and all(
        not isinstance(s, bool) and isinstance(s, int) and s >= 1 for s in shape
    )
    if not ok:
        raise ValueError(
            "`input_shape` must be the shape (frames, height, width, channels) of one video; "
            f"got {input_shape!r}."
        )
    if shape[0] < MIN_FRAMES:
        raise ValueError(
            f"`input_shape` must have at least {MIN_FRAMES} frames (its first entry); got "
            f"{input_shape!r}."
        )
    return from_flax(
        module, variables, input_shape=shape, num_classes=num_classes, bounds=bounds
    )
