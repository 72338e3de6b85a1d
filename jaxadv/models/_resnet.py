"""A small residual network for 28×28 / 32×32 images.

He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016, §4.2: the CIFAR-10
ResNets (a 3×3 stem, three stages of basic blocks at widths w, 2w, 4w with stride 2 between
stages, global average pooling, one linear layer). ``stage_sizes=(n, n, n)`` is ResNet-(6n+2).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    # PyTorch's defaults (momentum 0.1 == Flax 0.9, eps 1e-5): running statistics settle within a
    # few epochs of a small data set, and converted torch weights give the same logits.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut.

    He et al. (2016), Fig. 2 (the original, post-activation form).

    Attributes:
      features: output channels.
      strides: stride of the first convolution and of the projection shortcut.
    """

    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = nn.Conv(self.features, (3, 3), self.strides, padding=1, use_bias=False, name="conv1")(x)
        y = nn.relu(_batch_norm(train, "bn1")(y))
        y = nn.Conv(self.features, (3, 3), 1, padding=1, use_bias=False, name="conv2")(y)
        y = _batch_norm(train, "bn2")(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = nn.Conv(
                self.features, (1, 1), self.strides, use_bias=False, name="downsample_conv"
            )(x)
            x = _batch_norm(train, "downsample_bn")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """CIFAR-style ResNet with basic blocks and batch norm (He et al. 2016, §4.2).

    In training (``train=True``) batch norm normalises by batch statistics and the caller must
    apply with ``mutable=["batch_stats"]`` to update the running averages; with ``train=False``
    (how every ``Victim`` applies it) it uses the running averages, so each example's logits do
    not depend on the rest of the batch.

    Layers are named ``conv1``/``bn1`` (stem), ``layer{s}_{b}`` (block ``b`` of stage ``s``,
    from 1 and 0 like torchvision's ``layer{s}.{b}``) and ``fc``; the pooled features are sown as
    ``intermediates/features``.

    Attributes:
      stage_sizes: number of basic blocks per stage; stage ``i`` has ``width * 2**i`` channels.
      width: channels of the stem and of the first stage.
      num_classes: number of output logits.
    """

    stage_sizes: Sequence[int] = (1, 1, 1)
    width: int = 16
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``."""
        x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, name="conv1")(x)
        x = nn.relu(_batch_norm(train, "bn1")(x))
        for stage, size in enumerate(self.stage_sizes):
            for block in range(size):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(self.width * 2**stage, strides, name=f"layer{stage + 1}_{block}")(
                    x, train
                )
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "features", x)
        return nn.Dense(self.num_classes, name="fc")(x)
