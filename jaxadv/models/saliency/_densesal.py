"""DenseSal: a DenseNet backbone with a 1×1 saliency readout.

Huang, Liu, van der Maaten & Weinberger, "Densely connected convolutional networks", CVPR 2017
(DenseNet-BC), layer for layer torchvision's ``densenet121/161/169/201`` ``features``: a 7×7
stride-2 ``conv0`` → ``norm0`` → ReLU → 3×3 stride-2 max-pool (padding 1), then dense blocks
``denseblock{i}`` of ``denselayer{j}`` (BN → ReLU → 1×1 conv to ``bn_size · growth`` → BN → ReLU →
3×3 conv to ``growth``, the output concatenated to the input) with ``transition{i}`` between
blocks (BN → ReLU → 1×1 conv halving the channels → 2×2 average pool), and ``norm5``. Layer
paths equal torchvision's module paths, so a torchvision state dict converts with
:func:`densesal_from_torch_state_dict` (no name map).

The saliency model follows Table 2 of Che et al. (``shared/papers/000``, ``model16``
"DenseSal": DenseNet backbone, single stream, standard convolution, no attention or
refinement; Oyama & Yamanaka, "Influence of image classification accuracy on saliency map
estimation", CAAI TRIT 2018): ReLU of the backbone's ``norm5`` features → 1×1 ``readout1``
(ReLU) → 1×1 ``readout2`` to one channel → bilinear upsampling to the image size → sigmoid.
The readout's widths are ours (the published readout is not reproduced).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models._strided_conv import Stride2Conv
from jaxadv.models.saliency._layers import avg_pool_2x2, check_input_grid, resize_bilinear


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    # PyTorch's BatchNorm2d defaults (momentum 0.1 == Flax 0.9, eps 1e-5).
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def max_pool_3x3_stride2_pad1(x: jax.Array) -> jax.Array:
    """PyTorch ``MaxPool2d(3, stride=2, padding=1)``: the max of nine strided slices of the
    ``-inf``-padded input (its gradient is a select, not XLA CPU's slow select-and-scatter)."""
    b, h, w, c = x.shape
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    p = jnp.pad(x, ((0, 0), (1, 2), (1, 2), (0, 0)), constant_values=-jnp.inf)
    out = None
    for i in range(3):
        for j in range(3):
            s = p[:, i : i + 2 * ho : 2, j : j + 2 * wo : 2, :]
            out = s if out is None else jnp.maximum(out, s)
    return out


class _DenseLayer(nn.Module):
    growth: int
    bn_size: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = nn.relu(_batch_norm(train, "norm1")(x))
        y = nn.Conv(self.bn_size * self.growth, (1, 1), use_bias=False, name="conv1")(y)
        y = nn.relu(_batch_norm(train, "norm2")(y))
        y = nn.Conv(self.growth, (3, 3), padding=1, use_bias=False, name="conv2")(y)
        return jnp.concatenate([x, y], axis=-1)


class _DenseBlock(nn.Module):
    layers: int
    growth: int
    bn_size: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for j in range(1, self.layers + 1):
            x = _DenseLayer(self.growth, self.bn_size, name=f"denselayer{j}")(x, train)
        return x


class _Transition(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = nn.relu(_batch_norm(train, "norm")(x))
        return avg_pool_2x2(nn.Conv(self.features, (1, 1), use_bias=False, name="conv")(y))


class DenseNetFeatures(nn.Module):
    """torchvision's DenseNet ``features`` (DenseNet-BC, Huang et al. CVPR 2017), NHWC.

    Returns the ``norm5`` output (before the ReLU the classifier applies); each block's output
    is sown as ``intermediates/block{i}``. DenseNet-121 is ``growth_rate=32,
    block_config=(6, 12, 24, 16), num_init_features=64``; 161 is ``48, (6, 12, 36, 24), 96``.

    Attributes:
      growth_rate: channels each dense layer adds.
      block_config: dense layers per block.
      num_init_features: channels of ``conv0``.
      bn_size: bottleneck width multiple of the 1×1 convolutions (4 in DenseNet-BC).
    """

    growth_rate: int = 32
    block_config: Sequence[int] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Stride2Conv(
            self.num_init_features, (7, 7), padding=((3, 3), (3, 3)), use_bias=False, name="conv0"
        )(x)
        x = max_pool_3x3_stride2_pad1(nn.relu(_batch_norm(train, "norm0")(x)))
        channels = self.num_init_features
        for i, layers in enumerate(self.block_config, start=1):
            x = _DenseBlock(layers, self.growth_rate, self.bn_size, name=f"denseblock{i}")(x, train)
            self.sow("intermediates", f"block{i}", x)
            channels += layers * self.growth_rate
            if i < len(self.block_config):
                channels //= 2
                x = _Transition(channels, name=f"transition{i}")(x, train)
        return _batch_norm(train, "norm5")(x)


class DenseSal(nn.Module):
    """DenseSal: RGB images ``[b, h, w, 3]`` in [0, 1] → maps ``[b, h, w]`` in [0, 1].

    Named layers: ``features/block{i}`` (each dense block's output), ``backbone`` (ReLU of
    ``norm5``), ``readout`` (the logits before upsampling). Images must have sides that are
    multiples of the backbone's stride ``4 · 2^(len(block_config) - 1)``.

    Attributes:
      width: channels of ``conv0``; the growth rate is ``max(1, width // 2)`` (DenseNet-121:
        64 and 32).
      block_config: dense layers per block (DenseNet-121: ``(6, 12, 24, 16)``).
      bn_size: bottleneck multiple of the dense layers (4).
      readout_width: channels of ``readout1``; None for ``width``.
    """

    width: int = 64
    block_config: tuple[int, ...] = (6, 12, 24, 16)
    bn_size: int = 4
    readout_width: int | None = None
    output_kind: ClassVar[str] = "unit"
    TORCH_IGNORED: ClassVar[tuple[str, ...]] = ("classifier.",)

    @property
    def stride(self) -> int:
        """The backbone's output stride, ``4 · 2^(len(block_config) - 1)``."""
        return 4 * 2 ** (len(self.block_config) - 1)

    def backbone(self) -> DenseNetFeatures:
        """The backbone module (the ``features`` submodule, unbound).

        Returns:
          A :class:`DenseNetFeatures` with this model's sizes.
        """
        return DenseNetFeatures(**self._backbone_sizes(), parent=None)

    def _backbone_sizes(self) -> dict:
        return {
            "growth_rate": max(1, self.width // 2),
            "block_config": tuple(self.block_config),
            "num_init_features": self.width,
            "bn_size": self.bn_size,
        }

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_grid("DenseSal", x.shape, self.stride, self.stride)
        y = DenseNetFeatures(**self._backbone_sizes(), name="features")(x, train)
        y = nn.relu(y)
        self.sow("intermediates", "backbone", y)
        y = nn.relu(nn.Conv(self.readout_width or self.width, (1, 1), name="readout1")(y))
        logits = nn.Conv(1, (1, 1), name="readout2")(y)
        self.sow("intermediates", "readout", logits[..., 0])
        return nn.sigmoid(resize_bilinear(logits, x.shape[1:3]))[..., 0]
