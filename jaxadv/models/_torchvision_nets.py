"""torchvision's ResNet and VGG classifiers, with its layer layout and parameter names.

* ResNet: He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016, as
  torchvision writes it (v1.5: the stride of a bottleneck sits on its 3×3 convolution).
  ``cifar_stem=True`` gives instead RobustBench's CIFAR ResNet (``resnet.py``): a 3×3 stride-1
  stem without max-pool, projection shortcuts named ``shortcut`` and the classifier ``linear``.
* VGG: Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
  recognition", ICLR 2015, configurations D (16) and E (19), with or without batch norm, with
  torchvision's 7×7 adaptive average pool and three-layer classifier (dropout is inactive in
  inference, the only mode a victim is applied in).

Flax layer paths read as PyTorch module paths with every ``_`` turned into ``.``
(``layer1_0.downsample_1`` is ``layer1.0.downsample.1``, ``features_3`` is ``features.3``), so
:func:`from_torch_state_dict` converts their state dicts with no name map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.models._layers import max_pool_2x2
from jaxadv.models._resnet import _batch_norm


def _conv(features, kernel, strides, name, bias=False):
    return nn.Conv(
        features, (kernel, kernel), strides, padding=kernel // 2, use_bias=bias, name=name
    )


class _Block(nn.Module):
    """torchvision's ``BasicBlock`` (``bottleneck=False``) or ``Bottleneck`` (v1.5)."""

    planes: int
    strides: int
    bottleneck: bool
    width: int  # channels inside a bottleneck: planes * width_per_group / 64
    shortcut_name: str

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out_features = self.planes * (4 if self.bottleneck else 1)
        if self.bottleneck:
            y = nn.relu(_batch_norm(train, "bn1")(_conv(self.width, 1, 1, "conv1")(x)))
            y = nn.relu(_batch_norm(train, "bn2")(_conv(self.width, 3, self.strides, "conv2")(y)))
            y = _batch_norm(train, "bn3")(_conv(out_features, 1, 1, "conv3")(y))
        else:
            y = nn.relu(_batch_norm(train, "bn1")(_conv(self.planes, 3, self.strides, "conv1")(x)))
            y = _batch_norm(train, "bn2")(_conv(self.planes, 3, 1, "conv2")(y))
        if self.strides != 1 or x.shape[-1] != out_features:
            x = _conv(out_features, 1, self.strides, f"{self.shortcut_name}_0")(x)
            x = _batch_norm(train, f"{self.shortcut_name}_1")(x)
        return nn.relu(x + y)


class TorchvisionResNet(nn.Module):
    """A ResNet in torchvision's layout (module docstring); build it with :func:`ResNet18` or
    :func:`ResNet50`.

    Attributes:
      stage_sizes: blocks per stage (four stages of ``width * 2**i`` planes).
      bottleneck: bottleneck blocks (ResNet-50 and deeper) instead of basic blocks.
      num_classes: number of output logits.
      width: planes of the first stage (64 in torchvision; smaller for tests).
      width_per_group: 64, or 128 for torchvision's ``wide_resnet50_2``.
      cifar_stem: RobustBench's CIFAR variant (3×3 stem, no max-pool, ``shortcut``/``linear``).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    bottleneck: bool = False
    num_classes: int = 1000
    width: int = 64
    width_per_group: int = 64
    cifar_stem: bool = False

    TORCH_NAMES: ClassVar[str] = "underscore-is-dot"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``."""
        if self.cifar_stem:
            x = nn.relu(_batch_norm(train, "bn1")(_conv(self.width, 3, 1, "conv1")(x)))
        else:
            x = nn.relu(_batch_norm(train, "bn1")(_conv(self.width, 7, 2, "conv1")(x)))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        shortcut = "shortcut" if self.cifar_stem else "downsample"
        for stage, size in enumerate(self.stage_sizes):
            planes = self.width * 2**stage
            inner = planes * self.width_per_group // 64
            for i in range(size):
                strides = 2 if stage > 0 and i == 0 else 1
                name = f"layer{stage + 1}_{i}"
                x = _Block(planes, strides, self.bottleneck, inner, shortcut, name=name)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "features", x)
        return nn.Dense(self.num_classes, name="linear" if self.cifar_stem else "fc")(x)


def ResNet18(num_classes: int = 1000, *, width: int = 64, cifar_stem: bool = False):  # noqa: N802
    """torchvision's ``resnet18`` (or RobustBench's CIFAR ``ResNet18`` with ``cifar_stem``).

    Args:
      num_classes: number of output logits.
      width: planes of the first stage (64 as published; smaller widths for tests).
      cifar_stem: RobustBench's CIFAR layout (see :class:`TorchvisionResNet`).

    Returns:
      A :class:`TorchvisionResNet` with basic blocks ``(2, 2, 2, 2)``.
    """
    _checks.check_positive_int("num_classes", num_classes)
    _checks.check_positive_int("width", width)
    return TorchvisionResNet((2, 2, 2, 2), False, num_classes, width, 64, cifar_stem)


def ResNet50(  # noqa: N802
    num_classes: int = 1000, *, width: int = 64, width_per_group: int = 64, cifar_stem: bool = False
):
    """torchvision's ``resnet50`` (``width_per_group=128``: ``wide_resnet50_2``; ``cifar_stem``:
    RobustBench's CIFAR ``ResNet50``).

    Args:
      num_classes: number of output logits.
      width: planes of the first stage (64 as published; smaller widths for tests).
      width_per_group: 64, or 128 for Wide ResNet-50-2.
      cifar_stem: RobustBench's CIFAR layout (see :class:`TorchvisionResNet`).

    Returns:
      A :class:`TorchvisionResNet` with bottleneck blocks ``(3, 4, 6, 3)``.
    """
    _checks.check_positive_int("num_classes", num_classes)
    _checks.check_positive_int("width", width)
    _checks.check_positive_int("width_per_group", width_per_group)
    return TorchvisionResNet((3, 4, 6, 3), True, num_classes, width, width_per_group, cifar_stem)


def _adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
    """``[out, size]`` averaging weights of PyTorch's adaptive average pool along one axis: bin
    ``i`` covers ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool(x: jax.Array, out: int) -> jax.Array:
    """PyTorch's ``AdaptiveAvgPool2d(out)`` on ``[b, h, w, c]`` (the identity when ``h = w = out``;
    it repeats pixels when the map is smaller, as at CIFAR size)."""
    ph = jnp.asarray(_adaptive_pool_matrix(x.shape[1], out))
    pw = jnp.asarray(_adaptive_pool_matrix(x.shape[2], out))
    return jnp.einsum("ih,jw,bhwc->bijc", ph, pw, x)


_VGG_STAGES = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


class VGG(nn.Module):
    """VGG in torchvision's layout (module docstring); build it with :func:`VGG16` or
    :func:`VGG19`.

    Attributes:
      stage_sizes: convolutions per stage (five stages, each ending in a 2×2 max-pool).
      batch_norm: batch norm after each convolution (torchvision's ``vgg16_bn``).
      num_classes: number of output logits.
      width: channels of the first stage (64 as published; the stages have ``w, 2w, 4w, 8w, 8w``).
      hidden: units of the two hidden classifier layers (4096 as published).
    """

    stage_sizes: Sequence[int] = _VGG_STAGES[16]
    batch_norm: bool = False
    num_classes: int = 1000
    width: int = 64
    hidden: int = 4096

    TORCH_NAMES: ClassVar[str] = "underscore-is-dot"
    flatten_dense: ClassVar[str] = "classifier_0"  # reads the (C, H, W)-flattened 7×7 map

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]`` (h, w >= 32)."""
        index = 0  # position in torchvision's ``features`` Sequential
        for stage, size in enumerate(self.stage_sizes):
            features = self.width * 2 ** min(stage, 3)
            for _ in range(size):
                x = _conv(features, 3, 1, f"features_{index}", bias=True)(x)
                if self.batch_norm:
                    x = _batch_norm(train, f"features_{index + 1}")(x)
                x = nn.relu(x)
                index += 3 if self.batch_norm else 2
            x = max_pool_2x2(x)  # torch's MaxPool2d(2, 2), with a cheaper gradient on CPU
            index += 1
        x = adaptive_avg_pool(x, 7)
        self.sow("intermediates", "features", x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden, name="classifier_0")(x))
        x = nn.relu(nn.Dense(self.hidden, name="classifier_3")(x))
        return nn.Dense(self.num_classes, name="classifier_6")(x)


def _vgg(depth, num_classes, batch_norm, width, hidden):
    _checks.check_positive_int("num_classes", num_classes)
    _checks.check_positive_int("width", width)
    _checks.check_positive_int("hidden", hidden)
    return VGG(_VGG_STAGES[depth], bool(batch_norm), num_classes, width, hidden)


def VGG16(  # noqa: N802
    num_classes: int = 1000, *, batch_norm: bool = False, width: int = 64, hidden: int = 4096
) -> VGG:
    """torchvision's ``vgg16`` (``batch_norm=True``: ``vgg16_bn``).

    Args:
      num_classes: number of output logits.
      batch_norm: batch norm after each convolution.
      width: channels of the first stage (64 as published; smaller for tests).
      hidden: units of the hidden classifier layers (4096 as published).

    Returns:
      A :class:`VGG` with configuration D (13 convolutions).
    """
    return _vgg(16, num_classes, batch_norm, width, hidden)


def VGG19(  # noqa: N802
    num_classes: int = 1000, *, batch_norm: bool = False, width: int = 64, hidden: int = 4096
) -> VGG:
    """torchvision's ``vgg19`` (``batch_norm=True``: ``vgg19_bn``); arguments as :func:`VGG16`.

    Args:
      num_classes: number of output logits.
      batch_norm: batch norm after each convolution.
      width: channels of the first stage (64 as published; smaller for tests).
      hidden: units of the hidden classifier layers (4096 as published).

    Returns:
      A :class:`VGG` with configuration E (16 convolutions).
    """
    return _vgg(19, num_classes, batch_norm, width, hidden)
