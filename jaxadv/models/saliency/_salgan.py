"""SalGAN: a VGG-16 encoder-decoder generator with a sigmoid head, and its discriminator.

Pan, Canton Ferrer, McGuinness, O'Connor, Torres, Sayrol & Giró-i-Nieto, "SalGAN: Visual
saliency prediction with generative adversarial networks", CVPR 2017 workshops; layer names and
sizes from imatge-upc/salgan (``models/generator.py``, ``scripts/models/discriminator.py``,
Lasagne): encoder ``conv1_1``..``conv5_3`` with ``pool1``..``pool4`` (no ``pool5``), a mirrored
decoder ``uconv5_3``..``uconv1_1`` with nearest ×2 upsampling before blocks 4-1, and a 1×1
``output`` convolution with a sigmoid; all other convolutions 3×3 with ReLU.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models.saliency._layers import (
    VGG16,
    WeightNormConv,
    check_input_grid,
    max_pool,
    upsample_repeat,
)

# Decoder blocks, deepest first: (block, convolutions, channel multiple of the width).
SALGAN_DECODER = ((5, 3, 8), (4, 3, 8), (3, 3, 4), (2, 2, 2), (1, 2, 1))

# The ImageNet BGR pixel mean the published model subtracts from 0-255 images.
_BGR_MEAN = (103.939, 116.779, 123.68)


class SalGAN(nn.Module):
    """SalGAN's generator: RGB images ``[b, h, w, 3]`` in [0, 1] → maps ``[b, h, w]`` in [0, 1].

    Named layers: ``encoder/relu{b}_{n}`` (each VGG block's last activation) and
    ``decoder{b}`` (each decoder block's output).

    Attributes:
      width: channels of VGG block 1 (64 in the paper); the decoder mirrors the encoder.
      caffe_preprocess: apply the published input pipeline (scale to 0-255, RGB→BGR, subtract
        the ImageNet mean) before the encoder. Needed for converted published weights; off for
        models trained here on [0, 1] images.
    """

    width: int = 64
    caffe_preprocess: bool = False
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("SalGAN", x.shape, 16, 16)
        if self.caffe_preprocess:
            x = x[..., ::-1] * 255.0 - jnp.asarray(_BGR_MEAN, x.dtype)
        y = VGG16(self.width, num_pools=4, name="encoder")(x)
        for block, convs, mult in SALGAN_DECODER:
            if block < 5:
                y = upsample_repeat(y, 2)
            for i in range(convs, 0, -1):
                y = nn.relu(
                    nn.Conv(self.width * mult, (3, 3), padding=1, name=f"uconv{block}_{i}")(y)
                )
            self.sow("intermediates", f"decoder{block}", y)
        return nn.sigmoid(nn.Conv(1, (1, 1), name="output")(y))[..., 0]


class SalGANDiscriminator(nn.Module):
    """SalGAN's discriminator: P(real) of an (image, saliency map) pair.

    imatge-upc/salgan ``discriminator.py``: the image and the map concatenated to 4 channels,
    ``merge`` 1×1 → 3 (ReLU), ``conv1`` 3×3 → 32, 4×4 max-pool, ``conv2_1``/``conv2_2`` → 64,
    2×2 pool, ``conv3_1``/``conv3_2`` → 64 with weight normalisation, 2×2 pool, ``fc4`` 100 tanh,
    ``fc5`` 2 tanh, ``prob`` 1 sigmoid. Convolutions use ReLU (Lasagne's default).

    Call as ``module.apply(variables, images[b, h, w, 3], maps[b, h, w])`` → ``[b]``; ``h, w``
    must be multiples of 16. Used to train :class:`SalGAN` adversarially; it is not a victim.

    Attributes:
      width: channels of ``conv1`` (32 in the paper); later convolutions have twice as many.
      hidden: units of ``fc4`` (100 in the paper).
    """

    width: int = 32
    hidden: int = 100

    @nn.compact
    def __call__(self, image: jax.Array, saliency_map: jax.Array, train: bool = False):
        del train
        check_input_grid("SalGANDiscriminator", image.shape, 16, 16)
        if saliency_map.shape != image.shape[:3]:
            raise ValueError(
                f"`saliency_map` must have shape {image.shape[:3]} (the images' batch and size); "
                f"got {saliency_map.shape}."
            )
        x = jnp.concatenate([image, saliency_map[..., None].astype(image.dtype)], axis=-1)
        x = nn.relu(nn.Conv(3, (1, 1), name="merge")(x))
        x = max_pool(nn.relu(nn.Conv(self.width, (3, 3), padding=1, name="conv1")(x)), 4)
        for name in ("conv2_1", "conv2_2"):
            x = nn.relu(nn.Conv(2 * self.width, (3, 3), padding=1, name=name)(x))
        x = max_pool(x, 2)
        for name in ("conv3_1", "conv3_2"):
            x = nn.relu(WeightNormConv(2 * self.width, name=name)(x))
        x = max_pool(x, 2).reshape(x.shape[0], -1)
        x = jnp.tanh(nn.Dense(self.hidden, name="fc4")(x))
        x = jnp.tanh(nn.Dense(2, name="fc5")(x))
        return nn.sigmoid(nn.Dense(1, name="prob")(x))[:, 0]
