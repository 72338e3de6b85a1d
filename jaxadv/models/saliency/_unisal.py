"""UNISAL-style model: MobileNetV2 encoder, learned Gaussian priors, skip decoder, log density.

Droste, Jiao & Noble, "Unified image and video saliency modeling", ECCV 2020; details from
rdroste/unisal (``unisal/model.py``, ``unisal/models/MobileNetV2.py``), for static images (the
Bypass-RNN is skipped for images, as published) and one domain (no domain-specific modules):

* MobileNetV2 (Sandler et al. 2018) with UNISAL's tap points: each stage's first block runs at
  stride 1 and its output is subsampled ``[::2, ::2]`` afterwards, and the decoder's skips are
  taken before that subsampling — the first 64-channel block at 1/8 (``feat_4x``) and the first
  160-channel block at 1/16 (``feat_2x``); the last 1×1 convolution gives ``feat_1x`` at 1/32;
* ``feat_1x`` ⊕ 16 learned Gaussian maps → inverted residual (expansion 1) → bilinear ×2 →
  ⊕ skip 2x (1×1 expand ×2 + ReLU6, 1×1 reduce + BN) → inverted residual (expansion 2) →
  bilinear ×2 → ⊕ skip 4x → inverted residual (expansion 2) → 1×1 "adaptation" conv to one map →
  nearest resize to the image → replicate pad → k×k smoothing convolution (initialised to a
  normalised Gaussian) → log-softmax over the pixels.
"""

from __future__ import annotations

from itertools import product
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models.saliency._layers import (
    check_input_grid,
    resize_bilinear,
    resize_nearest,
    spatial_log_softmax,
)

# MobileNetV2 inverted-residual stages (expansion t, channels c, blocks n, stride s) at width 32.
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_PUBLISHED_WIDTH = 32


def unisal_gaussian_init() -> np.ndarray:
    """UNISAL's manual initialisation of its 16 Gaussians: ``[16, (y, x), (mu, log_std)]``."""
    mus = list(product([0.25, 0.5, 0.75], repeat=2))
    mus += [(0.5, 0.25), (0.5, 0.5), (0.5, 0.75), (0.25, 0.5), (0.5, 0.5), (0.75, 0.5), (0.5, 0.5)]
    log_stds = [(-1.5, -1.5)] * 9 + [(0.0, -1.5)] * 3 + [(-1.5, 0.0)] * 3 + [(0.0, 0.0)]
    return np.stack([np.asarray(mus), np.asarray(log_stds)], axis=-1).astype(np.float32)


def unisal_gaussian_maps(gaussians: jax.Array, height: int, width: int) -> jax.Array:
    """``[h, w, n]`` maps ``6 · Π_axes exp(-((t - mu) / exp(log_std))^2 / 2)`` on [0, 1] grids."""
    grids = (
        np.linspace(0, 1, height, dtype=np.float32),
        np.linspace(0, 1, width, dtype=np.float32),
    )
    mu, std = gaussians[..., 0], jnp.exp(gaussians[..., 1])  # [n, 2]
    gy = jnp.exp(-0.5 * jnp.square((grids[0][:, None] - mu[:, 0]) / std[:, 0]))  # [h, n]
    gx = jnp.exp(-0.5 * jnp.square((grids[1][:, None] - mu[:, 1]) / std[:, 1]))  # [w, n]
    return 6.0 * gy[:, None, :] * gx[None, :, :]


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    # PyTorch's BatchNorm2d defaults (momentum 0.1 == Flax 0.9, eps 1e-5).
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1×1 expand, BN, ReLU6] → 3×3 depthwise, BN, ReLU6 → 1×1 project, BN,
    with an identity shortcut when the stride is 1 and the channels match. (Computed at stride 1;
    callers subsample, as UNISAL does.)"""

    features: int
    expand_ratio: float
    residual: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        hidden = round(x.shape[-1] * self.expand_ratio)
        y = x
        if self.expand_ratio != 1:
            y = nn.Conv(hidden, (1, 1), use_bias=False, name="expand")(y)
            y = _relu6(_batch_norm(train, "expand_bn")(y))
        y = nn.Conv(
            hidden, (3, 3), padding=1, feature_group_count=hidden, use_bias=False, name="depthwise"
        )(y)
        y = _relu6(_batch_norm(train, "depthwise_bn")(y))
        y = nn.Conv(self.features, (1, 1), use_bias=False, name="project")(y)
        y = _batch_norm(train, "project_bn")(y)
        return x + y if self.residual and x.shape[-1] == self.features else y


def _conv_1x1_bn_relu6(x: jax.Array, features: int, train: bool, name: str) -> jax.Array:
    x = nn.Conv(features, (1, 1), use_bias=False, name=name)(x)
    return _relu6(_batch_norm(train, f"{name}_bn")(x))


class UNISAL(nn.Module):
    """UNISAL-style model on ``[b, h, w, 3]`` images in ``[0, 1]`` → log densities ``[b, h, w]``.

    Inference (``train=False``) uses BatchNorm running statistics; dropout (published at the
    skips in training) is left to trainers. Inputs are used as given (no ImageNet
    normalisation: the small models are trained here from scratch).

    Named layers: ``feat_4x``, ``feat_2x``, ``feat_1x`` (encoder), ``post_cnn``, ``decoder_2x``,
    ``decoder_4x``, ``adaptation_map`` (the map before smoothing, at 1/8).

    Attributes:
      width: channels of the stem (32 published); every encoder and decoder width scales by
        ``width / 32`` (the published decoder has 256, 128, 64 channels; last encoder conv 1280).
      num_gaussians: must be 16 (UNISAL's manual initialisation).
      blocks: inverted-residual blocks per MobileNetV2 stage (published ``(1, 2, 3, 4, 3, 3, 1)``);
        fewer blocks keep the stages, strides and skip taps, for smaller models.
      smoothing_size: side of the smoothing kernel; None scales the published 41 (for 288-row
        images) to the image height (odd, >= 3).
    """

    width: int = 32
    blocks: tuple[int, ...] = tuple(stage[2] for stage in MOBILENET_V2_STAGES)
    smoothing_size: int | None = None
    output_kind: ClassVar[str] = "log_density"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_grid("UNISAL", x.shape, 32, 32)
        scale = self.width / _PUBLISHED_WIDTH

        def ch(c: int) -> int:
            return max(1, int(round(c * scale)))

        # Encoder. Stem: 3×3 stride-2 conv, BN, ReLU6.
        y = nn.Conv(ch(32), (3, 3), strides=2, padding=1, use_bias=False, name="stem")(x)
        y = _relu6(_batch_norm(train, "stem_bn")(y))
        if len(self.blocks) != len(MOBILENET_V2_STAGES) or min(self.blocks) < 1:
            raise ValueError(
                f"`blocks` must give {len(MOBILENET_V2_STAGES)} stage lengths >= 1; got "
                f"{self.blocks!r}."
            )
        taps = {}
        for stage, ((t, c, _, s), n) in enumerate(zip(MOBILENET_V2_STAGES, self.blocks)):
            for i in range(n):
                y = InvertedResidual(ch(c), t, residual=i > 0, name=f"block{stage}_{i}")(y, train)
                if i == 0 and c == 64:
                    taps["feat_4x"] = y
                if i == 0 and c == 160:
                    taps["feat_2x"] = y
                if i == 0 and s == 2:
                    y = y[:, ::2, ::2]
        y = _conv_1x1_bn_relu6(y, ch(1280), train, "last_conv")
        taps["feat_1x"] = y
        for name, value in taps.items():
            self.sow("intermediates", name, value)

        # Decoder.
        gaussians = self.param("gaussians", lambda key: jnp.asarray(unisal_gaussian_init()))
        b, h, w, _ = y.shape
        priors = jnp.broadcast_to(unisal_gaussian_maps(gaussians, h, w), (b, h, w, 16))
        y = InvertedResidual(ch(256), 1, name="post_cnn_inv_res")(
            jnp.concatenate([y, priors], -1), train
        )
        self.sow("intermediates", "post_cnn", y)
        for level, (skip, features) in enumerate(((taps["feat_2x"], 128), (taps["feat_4x"], 64))):
            y = resize_bilinear(y, skip.shape[1:3])
            skip = _conv_1x1_bn_relu6(skip, 2 * skip.shape[-1], train, f"skip{level}_expand")
            skip = nn.Conv(ch(features), (1, 1), name=f"skip{level}_reduce")(skip)
            skip = _batch_norm(train, f"skip{level}_reduce_bn")(skip)
            y = InvertedResidual(ch(features), 2, name=f"decoder{level}")(
                jnp.concatenate([y, skip], -1), train
            )
            self.sow("intermediates", ("decoder_2x", "decoder_4x")[level], y)
        y = nn.Conv(1, (1, 1), name="adaptation")(y)
        self.sow("intermediates", "adaptation_map", y[..., 0])

        # Smoothing at the image size, then a log density over the pixels.
        k = self.smoothing_size or max(3, 2 * round(20 * x.shape[1] / 288) + 1)
        y = resize_nearest(y, x.shape[1:3])
        y = jnp.pad(y, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="edge")
        y = nn.Conv(
            1,
            (k, k),
            padding="VALID",
            use_bias=False,
            kernel_init=_smoothing_init,
            name="smoothing",
        )(y)
        return spatial_log_softmax(y[..., 0])


def _smoothing_init(key, shape, dtype=jnp.float32) -> jax.Array:
    """UNISAL's smoothing kernel: its Gaussian map with mu 0.5 and log_std -2 on the kernel's
    [0, 1] grid, normalised to sum 1."""
    del key
    kernel = unisal_gaussian_maps(jnp.asarray([[[0.5, -2.0], [0.5, -2.0]]]), shape[0], shape[1])
    return (kernel / jnp.sum(kernel)).reshape(shape).astype(dtype)
