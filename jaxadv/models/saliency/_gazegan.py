"""GazeGAN's generator: global + local U-Nets with centre-surround connections and a tanh head.

Che, Borji, Zhai, Min, Guo & Le Callet, "How is gaze influenced by image transformations?
Dataset and model", IEEE TIP 2019 (GazeGAN); layer for layer the ``GlobalUNet`` of
CZHQuality/Sal-CFS-GAN (``GazeGAN_using_CSC/models/networks.py``), a pix2pixHD generator:

* the global U-Net sees the image downsampled by a 3×3 stride-2 average pool; its encoder is five
  4×4 stride-2 convolutions (``en_conv1_g``..``en_conv5_g``) with InstanceNorm and LeakyReLU 0.2,
  then one residual block (``res_g``) applied four times, then a transposed-convolution decoder
  (4×4, stride 2, InstanceNorm, ReLU) with skip concatenations;
* the local U-Net sees the full image: ``en_conv1``, ``en_conv2``, whose output is concatenated
  with the global decoder's ``d4_g``, then ``en_conv3``..``en_conv6``, residual blocks ``res_1``
  then ``res_2`` three times (the published forward never uses ``res_3``/``res_4``), and the
  decoder ``de_conv1``..``de_conv6``;
* centre-surround connections (CSC), in both U-Nets: a deep decoder feature → 1×1 convolution →
  bilinear ×4 upsampling (``nn.Upsample``'s default since PyTorch 0.4: ``align_corners=False``)
  → added to the decoder feature two stages shallower → ReLU →
  concatenated into the next decoder stage. The published "spatial attention" after the ReLU
  (1×1 conv → ReLU → ``nn.Softmax()``, whose implicit dim is the single channel) is identically
  1, so it is omitted here and its weights are ignored by the converter;
* head: ``dimr_conv1``, a 3×3 convolution with tanh, on the last decoder output (and, in the
  published code, also on the global U-Net's own half-size output ``d6_g``, exposed here as the
  named layer ``global_map``).

Images in ``[0, 1]`` are mapped to ``[-1, 1]`` first (pix2pixHD's input normalisation).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models._strided_conv import Stride2Conv
from jaxadv.models.saliency._attention import SoftmaxSpatialAttention
from jaxadv.models.saliency._deform import DeformConv
from jaxadv.models.saliency._layers import (
    TorchConvTranspose,
    avg_pool_3x3_stride2,
    instance_norm,
    resize_bilinear,
)


def _encoder_conv(x: jax.Array, features: int, name: str) -> jax.Array:
    """``encoderconv_2``: Conv2d(4, stride 2, padding 1) → InstanceNorm → LeakyReLU(0.2)."""
    y = Stride2Conv(features, (4, 4), padding=((1, 1), (1, 1)), name=name)(x)
    return nn.leaky_relu(instance_norm(y), 0.2)


def _decoder_conv(x: jax.Array, features: int, like: jax.Array, name: str) -> jax.Array:
    """``decoderconv_2/3``: ConvTranspose2d(4, stride 2, padding 1) → InstanceNorm → ReLU.

    The published layers hard-code ``output_padding`` (``(1, 0)`` in ``decoderconv_3``, for
    480-row images); here it is chosen so the output has the height and width of ``like``, the
    skip connection it meets (0 or 1 per axis).
    """
    output_padding = [t - 2 * s for t, s in zip(like.shape[1:3], x.shape[1:3])]
    y = TorchConvTranspose(features, name=name)(x, output_padding)
    return nn.relu(instance_norm(y))


class ResnetBlock(nn.Module):
    """pix2pixHD's residual block: x + [reflect pad, 3×3 conv, IN, ReLU, reflect pad, 3×3 conv,
    IN].

    With ``deformable=True`` both 3×3 convolutions are modulated deformable ones
    (:class:`DeformConv`, DCNv2, Zhu et al. CVPR 2019) on the same reflect-padded input (no
    padding of their own), so with still offsets and unit modulation the block is the plain one.
    Their initial modulation of 0.5 needs no kernel compensation here: the instance norm after
    each convolution removes any scale (and the bias).

    Attributes:
      deformable: DCNv2 convolutions instead of standard ones.
      offset_groups: offset groups of the DCNv2 convolutions (must divide the channels).
    """

    deformable: bool = False
    offset_groups: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def conv(y: jax.Array, name: str) -> jax.Array:
            y = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            if self.deformable:
                layer = DeformConv(
                    x.shape[-1], 3, padding=0, offset_groups=self.offset_groups, name=name
                )
            else:
                layer = nn.Conv(x.shape[-1], (3, 3), padding="VALID", name=name)
            return instance_norm(layer(y))

        return x + conv(nn.relu(conv(x, "conv_a")), "conv_b")


def _center_surround(
    deep: jax.Array, shallow: jax.Array, conv: nn.Conv, on: bool, attention: str | None = None
):
    """CSC: ReLU(bilinear ×4 of a 1×1 convolution of ``deep`` + ``shallow``); None when off.

    With ``attention`` (a layer name), the CSC features then pass through a
    :class:`SoftmaxSpatialAttention` of that name (CSC-Net's softmax spatial attention).
    """
    if not on:
        return None
    y = conv(deep)
    y = resize_bilinear(y, (4 * y.shape[1], 4 * y.shape[2]))
    y = nn.relu(y + shallow)
    return y if attention is None else SoftmaxSpatialAttention(name=attention)(y)


def _cat(*parts: jax.Array | None) -> jax.Array:
    """Channel concatenation of the parts that are there (a CSC output is None when off)."""
    return jnp.concatenate([p for p in parts if p is not None], -1)


def _size_problem(height: int, width: int) -> str | None:
    """Why the two U-Nets cannot run on ``height × width`` images, or None when they can."""
    for n in (height, width):
        local = [n]
        for _ in range(6):
            local.append(local[-1] // 2)  # 4×4 stride-2 convolution with padding 1
        glob = [(n - 1) // 2 + 1]  # 3×3 stride-2 average pool with padding 1
        for _ in range(5):
            glob.append(glob[-1] // 2)
        # CSC ×4 upsampling must land on the decoder sizes; d4_g must match the local en_conv2.
        if (
            min(local[6], glob[5]) < 1
            or glob[1] % 4
            or glob[2] % 4
            or local[2] % 4
            or local[3] % 4
            or local[2] != glob[1]
        ):
            return (
                f"GazeGAN needs image sides whose halvings line up in both U-Nets (e.g. multiples "
                f"of 64, or 480x640); got {height}x{width}."
            )
    return None


class GazeGAN(nn.Module):
    """GazeGAN's generator on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]`` in [−1, 1].

    Named layers (the published forward's variable names): ``e1_g``..``e5_g``, ``res4_g``,
    ``d1_g``..``d4_g``, ``global_map`` (``d6_g``), ``e1``..``e6``, ``res4``, ``d1``..``d6``.

    Attributes:
      width: channels of the local ``en_conv1`` (64 published); every layer scales with it (the
        global encoder starts at ``2 * width``, the bottleneck has ``16 * width``).
      output_channels: channels of the map (``output_nc``; 1 for saliency). The returned map is
        channel 0.
      csc: with the centre-surround connections (the paper's proposal); False gives the plain
        pix2pixHD-style U-Nets of its CSC ablation (the decoders see no CSC features).
      spatial_attention: a softmax spatial attention (:class:`SoftmaxSpatialAttention`) on each
        CSC output (layers ``csc1_g_attention``, ``csc2_g_attention``, ``csc1_attention``,
        ``csc2_attention``): :class:`CSCNet`'s form. Off for GazeGAN (its published attention is
        identically 1, module docstring). Needs ``csc``.
    """

    width: int = 64
    output_channels: int = 1
    csc: bool = True
    spatial_attention: bool = False
    output_kind: ClassVar[str] = "signed"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # instance norm only, no batch statistics
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c] for GazeGAN; got {x.shape}.")
        problem = _size_problem(*x.shape[1:3])
        if problem:
            raise ValueError(problem)
        if self.spatial_attention and not self.csc:
            raise ValueError(
                "`spatial_attention` weighs the CSC features and needs `csc=True`; got csc=False."
            )
        w, out = self.width, self.output_channels

        def att(name: str) -> str | None:
            return f"{name}_attention" if self.spatial_attention else None

        dimr = nn.Conv(out, (3, 3), padding=1, name="dimr_conv1")
        x = 2.0 * x - 1.0

        # Global U-Net on the half-size image.
        x_half = avg_pool_3x3_stride2(x)
        e1_g = _encoder_conv(x_half, 2 * w, "en_conv1_g")
        e2_g = _encoder_conv(e1_g, 4 * w, "en_conv2_g")
        e3_g = _encoder_conv(e2_g, 8 * w, "en_conv3_g")
        e4_g = _encoder_conv(e3_g, 16 * w, "en_conv4_g")
        e5_g = _encoder_conv(e4_g, 16 * w, "en_conv5_g")
        res_g = ResnetBlock(name="res_g")
        r = e5_g
        for _ in range(4):
            r = res_g(r)
        d1_g = _decoder_conv(r, 16 * w, e4_g, "de_conv1_g")
        csc1_g = nn.Conv(4 * w, (1, 1), name="de_conv1_g_csc")
        d2_g = _decoder_conv(jnp.concatenate([d1_g, e4_g], -1), 8 * w, e3_g, "de_conv2_g")
        csc2_g = nn.Conv(2 * w, (1, 1), name="de_conv2_g_csc")
        d3_g = _decoder_conv(jnp.concatenate([d2_g, e3_g], -1), 4 * w, e2_g, "de_conv3_g")
        s1_g = _center_surround(d1_g, d3_g, csc1_g, self.csc, att("csc1_g"))
        d4_g = _decoder_conv(_cat(d3_g, e2_g, s1_g), 2 * w, e1_g, "de_conv4_g")
        s2_g = _center_surround(d2_g, d4_g, csc2_g, self.csc, att("csc2_g"))
        d5_g = _decoder_conv(_cat(d4_g, e1_g, s2_g), out, x_half, "de_conv5_g")
        self._sow_all(e1_g=e1_g, e2_g=e2_g, e3_g=e3_g, e4_g=e4_g, e5_g=e5_g, res4_g=r)
        self._sow_all(d1_g=d1_g, d2_g=d2_g, d3_g=d3_g, d4_g=d4_g)
        self.sow("intermediates", "global_map", jnp.tanh(dimr(d5_g))[..., 0])

        # Local U-Net on the full image, fed the global decoder's d4_g.
        e1 = _encoder_conv(x, w, "en_conv1")
        e2 = jnp.concatenate([_encoder_conv(e1, 2 * w, "en_conv2"), d4_g], -1)
        e3 = _encoder_conv(e2, 4 * w, "en_conv3")
        e4 = _encoder_conv(e3, 8 * w, "en_conv4")
        e5 = _encoder_conv(e4, 16 * w, "en_conv5")
        e6 = _encoder_conv(e5, 16 * w, "en_conv6")
        r = ResnetBlock(name="res_1")(e6)
        res_2 = ResnetBlock(name="res_2")
        for _ in range(3):
            r = res_2(r)
        d1 = _decoder_conv(r, 16 * w, e5, "de_conv1")
        csc1 = nn.Conv(4 * w, (1, 1), name="de_conv1_csc")
        d2 = _decoder_conv(jnp.concatenate([d1, e5], -1), 8 * w, e4, "de_conv2")
        csc2 = nn.Conv(2 * w, (1, 1), name="de_conv2_csc")
        d3 = _decoder_conv(jnp.concatenate([d2, e4], -1), 4 * w, e3, "de_conv3")
        s1 = _center_surround(d1, d3, csc1, self.csc, att("csc1"))
        d4 = _decoder_conv(_cat(d3, e3, s1), 2 * w, e2, "de_conv4")
        s2 = _center_surround(d2, d4, csc2, self.csc, att("csc2"))
        d5 = _decoder_conv(_cat(d4, e2, s2), w, e1, "de_conv5")
        d6 = _decoder_conv(jnp.concatenate([d5, e1], -1), out, x, "de_conv6")
        self._sow_all(e1=e1, e2=e2, e3=e3, e4=e4, e5=e5, e6=e6, res4=r)
        self._sow_all(d1=d1, d2=d2, d3=d3, d4=d4, d5=d5, d6=d6)
        return jnp.tanh(dimr(d6))[..., 0]

    def _sow_all(self, **values: jax.Array) -> None:
        for name, value in values.items():
            self.sow("intermediates", name, value)


class CSCNet(GazeGAN):
    """CSC-Net: GazeGAN's two U-Nets with centre-surround connections and a softmax spatial
    attention on every CSC output; ``[b, h, w, c]`` in ``[0, 1]`` → ``[b, h, w]`` in [−1, 1].

    ``model_10`` of Table 2 of Che et al.'s robustness study (``shared/papers/000``, "Code
    repository of victim models": CSC_Net, U-Net backbone, multi-stream, standard convolution,
    softmax spatial attention, no refinement, no adversarial training). Its code is not
    published, so the layout is ours and follows the table's columns: the multi-stream U-Net is
    GazeGAN's global (half-size image) and local (full image) U-Nets joined as in GazeGAN (Che
    et al., IEEE TIP 2019), with the cross-scale centre-surround connections of :class:`GazeGAN`,
    and the softmax spatial attention is the one GazeGAN's code places after each CSC ReLU,
    taken as a softmax over the positions (:class:`SoftmaxSpatialAttention`; the published
    ``nn.Softmax()`` over a single channel is identically 1). With the attention logits' kernels
    at zero (uniform attention) CSC-Net computes exactly GazeGAN with the same other weights.

    Named layers: GazeGAN's, plus ``csc1_g_attention/attention``, ``csc2_g_attention/attention``,
    ``csc1_attention/attention`` and ``csc2_attention/attention`` (the attention maps ``A``).

    Attributes:
      width, output_channels: as :class:`GazeGAN`'s.
      csc: must stay True (the attention sits on the CSC outputs).
      spatial_attention: True here (False would be GazeGAN itself).
    """

    spatial_attention: bool = True
