"""SALICON: fine and coarse VGG-16 streams with a 1×1 readout.

Huang, Shen, Boix & Zhao, "SALICON: Reducing the semantic gap in saliency prediction by adapting
deep neural networks", ICCV 2015; layout of the open re-implementation CLT29/OpenSALICON
(``salicon.prototxt``): two VGG-16 streams with separate weights (the coarse one's layers are
prefixed ``sec_``), the fine stream on the full image and the coarse one on a half-size copy; the
coarse ``pool5`` is bilinearly resized to the fine ``pool5`` grid, concatenated in front of it,
and a 1×1 convolution gives one map.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models.saliency._layers import VGG16, avg_pool_2x2, check_input_grid, resize_bilinear


class SALICON(nn.Module):
    """Two-stream SALICON on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]`` in [0, 1].

    Output head (a choice, documented): OpenSALICON trains the 1×1 readout with a sigmoid
    cross-entropy, so the map is ``sigmoid(readout)`` at the ``pool5`` grid (1/32 of the image),
    then bilinearly resized to the image size as the published post-processing does (the resize of
    values in [0, 1] stays in [0, 1]; the min-max rescale of the post-processing is left to the
    metrics, which are invariant to it or apply it themselves).

    The coarse input is the 2×2 mean of the image (OpenSALICON feeds a separately resized
    half-size image; the box filter is that resize for an exact factor 2). Inputs are used as
    given (no Caffe mean subtraction): the small zoo models are trained here from scratch.

    Named layers: ``fine/relu{b}_{n}``, ``coarse/relu{b}_{n}`` (each VGG block's last
    activation), ``fine_pool5``, ``coarse_pool5`` (after the resize), ``readout`` (logits at the
    ``pool5`` grid).

    Attributes:
      width: channels of VGG block 1 in both streams (64 in the paper).
    """

    width: int = 64
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("SALICON", x.shape, 64, 64)
        fine = VGG16(self.width, num_pools=5, name="fine")(x)
        coarse = VGG16(self.width, num_pools=5, name="coarse")(avg_pool_2x2(x))
        coarse = resize_bilinear(coarse, fine.shape[1:3])
        self.sow("intermediates", "fine_pool5", fine)
        self.sow("intermediates", "coarse_pool5", coarse)
        logits = nn.Conv(1, (1, 1), name="saliency_map")(jnp.concatenate([coarse, fine], -1))
        self.sow("intermediates", "readout", logits[..., 0])
        return resize_bilinear(nn.sigmoid(logits), x.shape[1:3])[..., 0]
