"""RobustBench's CIFAR architectures, with its layer layout and parameter names.

* :class:`WideResNet`: Zagoruyko & Komodakis, "Wide residual networks", BMVC 2016, as written in
  RobustBench's ``wide_resnet.py`` (from TRADES): pre-activation basic blocks in three groups of
  ``(depth - 4) / 6``, widths ``16k, 32k, 64k``, a final batch norm and ReLU, global average
  pooling, one linear layer.
* :class:`PreActResNet` (:func:`PreActResNet18`): He, Zhang, Ren & Sun, "Identity mappings in
  deep residual networks", ECCV 2016, as RobustBench's ``PreActResNet(block, [2, 2, 2, 2])``. The
  paper's projection shortcut reads the activated input (the default here; RobustBench's
  ``PreActBlockV2``); RobustBench's ``PreActBlock`` feeds it the raw input (an option).

Flax layer paths read as PyTorch module paths with every ``_`` turned into ``.``
(``block1_layer_0.convShortcut`` is ``block1.layer.0.convShortcut``): :func:`from_torch_state_dict`
converts RobustBench state dicts of these modules with no name map. Batch norm uses PyTorch's
``eps = 1e-5``; every module applies in inference mode with ``train=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.models._resnet import _batch_norm


def _conv(features: int, kernel: int, strides: int, name: str) -> nn.Conv:
    return nn.Conv(
        features, (kernel, kernel), strides, padding=kernel // 2, use_bias=False, name=name
    )


class _WideBlock(nn.Module):
    """RobustBench's WRN ``BasicBlock``: when the width changes, the shortcut (a 1×1 convolution)
    reads the *activated* input; otherwise the identity reads the raw input."""

    features: int
    strides: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        act = nn.relu(_batch_norm(train, "bn1")(x))
        y = _conv(self.features, 3, self.strides, "conv1")(act)
        y = nn.relu(_batch_norm(train, "bn2")(y))
        y = _conv(self.features, 3, 1, "conv2")(y)
        if x.shape[-1] == self.features:
            return x + y
        return _conv(self.features, 1, self.strides, "convShortcut")(act) + y


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` in RobustBench's layout (module docstring).

    RobustBench pools with ``avg_pool2d(out, 8)``, which at its 32×32 inputs is the global average
    used here (other input sizes also work here). State dicts of models built with
    ``sub_block1=True`` carry an unused ``sub_block1`` group; the converter skips it.

    Attributes:
      depth: ``6n + 4`` (28, 34, 70, ...); ``n`` blocks per group.
      widen_factor: ``k``; the groups have ``16k``, ``32k`` and ``64k`` channels.
      num_classes: number of output logits.
    """

    depth: int = 28
    widen_factor: int = 10
    num_classes: int = 10

    TORCH_NAMES: ClassVar[str] = "underscore-is-dot"
    TORCH_IGNORED: ClassVar[tuple[str, ...]] = ("sub_block1.",)

    def __post_init__(self):
        _checks.check_positive_int("widen_factor", self.widen_factor)
        _checks.check_positive_int("num_classes", self.num_classes)
        if not (isinstance(self.depth, int) and self.depth >= 10 and (self.depth - 4) % 6 == 0):
            raise ValueError(
                f"`depth` must be 6n + 4 for a whole number n >= 1 (10, 16, 22, 28, 34, 40, "
                f"70, ...); got {self.depth!r}."
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``."""
        n = (self.depth - 4) // 6
        x = _conv(16, 3, 1, "conv1")(x)
        for group, strides in enumerate((1, 2, 2)):
            width = 16 * 2**group * self.widen_factor
            for i in range(n):
                name = f"block{group + 1}_layer_{i}"
                x = _WideBlock(width, strides if i == 0 else 1, name=name)(x, train)
        x = nn.relu(_batch_norm(train, "bn1")(x))
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "features", x)
        return nn.Dense(self.num_classes, name="fc")(x)


class _PreActBlock(nn.Module):
    """He et al.'s pre-activation block and RobustBench's ``PreActBlockV2``
    (``from_activation=True``: the projection shortcut reads the activated input), or
    RobustBench's ``PreActBlock`` (``False``: it reads the raw input)."""

    features: int
    strides: int
    from_activation: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        act = nn.relu(_batch_norm(train, "bn1")(x))
        shortcut = x
        if self.strides != 1 or x.shape[-1] != self.features:
            source = act if self.from_activation else x
            shortcut = _conv(self.features, 1, self.strides, "shortcut_0")(source)
        y = _conv(self.features, 3, self.strides, "conv1")(act)
        y = _conv(self.features, 3, 1, "conv2")(nn.relu(_batch_norm(train, "bn2")(y)))
        return y + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet in RobustBench's layout (module docstring); :func:`PreActResNet18`
    builds the published one.

    RobustBench pools with ``avg_pool2d(out, 4)``: the global average at 32×32 inputs.

    Attributes:
      stage_sizes: blocks per stage (four stages of ``width * 2**i`` channels).
      num_classes: number of output logits.
      width: channels of the stem and the first stage (64 in RobustBench; smaller for tests).
      bn_before_fc: a batch norm and ReLU before pooling (RobustBench's ``bn_before_fc=True``,
        layer ``bn``), as in Rice et al. (2020)'s and Kireev et al. (2021)'s models.
      shortcut_from_activation: the projection shortcut reads the activated input, as in He et
        al.'s pre-activation units and RobustBench's ``PreActBlockV2`` (``out_shortcut=True``).
        ``False``: it reads the raw block input, as RobustBench's ``PreActBlock`` does (the
        layout of ``Wong2020Fast`` and ``Andriushchenko2020Understanding``).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    num_classes: int = 10
    width: int = 64
    bn_before_fc: bool = False
    shortcut_from_activation: bool = True

    TORCH_NAMES: ClassVar[str] = "underscore-is-dot"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``."""
        x = _conv(self.width, 3, 1, "conv1")(x)
        for stage, size in enumerate(self.stage_sizes):
            for i in range(size):
                strides = 2 if stage > 0 and i == 0 else 1
                block = _PreActBlock(
                    self.width * 2**stage,
                    strides,
                    self.shortcut_from_activation,
                    name=f"layer{stage + 1}_{i}",
                )
                x = block(x, train)
        if self.bn_before_fc:
            x = nn.relu(_batch_norm(train, "bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "features", x)
        return nn.Dense(self.num_classes, name="linear")(x)


def PreActResNet18(  # noqa: N802
    num_classes: int = 10,
    *,
    width: int = 64,
    bn_before_fc: bool = False,
    shortcut_from_activation: bool = True,
) -> PreActResNet:
    """Pre-activation ResNet-18 (two blocks per stage); arguments as the attributes of
    :class:`PreActResNet`. RobustBench's ``PreActResNet18()`` is
    ``shortcut_from_activation=False``.

    Args:
      num_classes: number of output logits (10).
      width: channels of the stem and the first stage (64 in RobustBench; smaller for tests).
      bn_before_fc: a batch norm and ReLU before pooling (RobustBench's ``bn_before_fc=True``).
      shortcut_from_activation: the projection shortcut reads the activated input (True, as in
        ``PreActBlockV2``); False: the raw block input (RobustBench's ``PreActBlock``).

    Returns:
      A :class:`PreActResNet` with stages ``(2, 2, 2, 2)``.
    """
    _checks.check_positive_int("num_classes", num_classes)
    _checks.check_positive_int("width", width)
    return PreActResNet(
        (2, 2, 2, 2), num_classes, width, bool(bn_before_fc), bool(shortcut_from_activation)
    )
