"""A single-stream DCN saliency model: VGG-16 features, modulated deformable convolutions, squeeze-
and-excitation and pyramid spatial attention, a sigmoid readout.

The counterpart, at sizes this machine trains, of the DCN members of Table 2 of Che et al.'s
robustness study (``shared/papers/000``, "Code repository of victim models": ``DCN_2``, VGG16
backbone, "Standard Convolution & Modulated Deformable Convolution", "Squeeze-and-Excitation &
Pyramid Spatial Attention", no refinement). Their code is not published, so the layout is ours
and follows the table's columns: a VGG-16 encoder (Simonyan & Zisserman 2015) pooled to stride
8, two 3×3 DCNv2 layers (:class:`DeformConv`, Zhu et al. 2019) with ReLU, squeeze-and-excitation
(Hu et al. 2018) and pyramid spatial attention (Wang et al. 2019, :mod:`._attention`), a 1×1
readout to one channel, bilinear upsampling to the image size and a sigmoid. The table's
second stream (Inception-ResNet) is not part of this single-stream model.

``deformable=False`` replaces the DCNv2 layers by standard 3×3 convolutions of the same width:
the attention-only member of the library (and the ablation that isolates the deformable
sampling).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from jaxadv.models.saliency._attention import PyramidSpatialAttention, SqueezeExcitation
from jaxadv.models.saliency._deform import DeformConv
from jaxadv.models.saliency._layers import VGG16, check_input_grid, resize_bilinear


class DCNSal(nn.Module):
    """VGG-16 → 2 × DCNv2 → SE → pyramid spatial attention → sigmoid map, ``[b, h, w]`` in [0, 1].

    Named layers: ``encoder/relu{b}_{n}`` (VGG blocks), ``head1_relu``, ``head2_relu`` (the deformable or
    standard head convolutions, after ReLU), ``se`` (after squeeze-and-excitation),
    ``attention/attention`` (the pyramid attention map ``L``), ``logits`` (the readout before
    upsampling). Images must be at least 16 pixels and multiples of 16 on each side (stride-8
    features, then a 2× pyramid level).

    Attributes:
      width: channels of VGG block 1 (64 in the paper); the head has ``4 · width`` channels.
      deformable: DCNv2 head convolutions (True) or standard ones (False).
      offset_groups: offset groups of each DCNv2 layer (must divide ``4 · width`` and
        ``8 · width``).
      se_reduction: the squeeze-and-excitation ratio ``r`` (16 in Hu et al.).
      attention_scales: pooling factors of the pyramid spatial attention.
      features_only: return the attention's output ``[b, h/8, w/8, 4·width]`` (no readout):
        the VGG-16 stream of the two-stream :class:`DCNTwoStream`.
    """

    width: int = 64
    deformable: bool = True
    offset_groups: int = 1
    se_reduction: int = 16
    attention_scales: tuple[int, ...] = (1, 2)
    features_only: bool = False
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("DCNSal", x.shape, 16, 16)
        y = VGG16(self.width, num_pools=3, name="encoder")(x)
        for i in (1, 2):
            if self.deformable:
                conv = DeformConv(
                    4 * self.width, 3, offset_groups=self.offset_groups, name=f"head{i}"
                )
            else:
                conv = nn.Conv(4 * self.width, (3, 3), padding=1, name=f"head{i}")
            y = nn.relu(conv(y))
            self.sow("intermediates", f"head{i}_relu", y)
        y = SqueezeExcitation(self.se_reduction, name="se_block")(y)
        self.sow("intermediates", "se", y)
        y = PyramidSpatialAttention(self.attention_scales, name="attention")(y)
        if self.features_only:
            return y
        logits = nn.Conv(1, (1, 1), name="readout")(y)
        self.sow("intermediates", "logits", logits[..., 0])
        return nn.sigmoid(resize_bilinear(logits, x.shape[1:3]))[..., 0]
