"""pix2pixHD's generators as saliency models: the global ResNet generator, the two-stream local
enhancer, the local enhancer with a ConvLSTM refinement, and its DCNv2 + attention form.

Wang, Liu, Zhu, Tao, Kautz & Catanzaro, "High-resolution image synthesis and semantic
manipulation with conditional GANs", CVPR 2018 (pix2pixHD, ``models/networks.py``:
``GlobalGenerator`` and ``LocalEnhancer``), which Che et al. list as victims of their saliency
attacks ("Global-pix2pix" and "Local-pix2pix" in the library of source models, Table 2 of the
SMBEA challenge; AAAI 2020 and TIP 2019 use the same generators, trained on fixation maps):

* **global generator** (a ResNet, single stream): reflect-pad 3, 7×7 convolution, InstanceNorm,
  ReLU; ``downsampling`` 3×3 stride-2 convolutions doubling the channels (IN, ReLU); ``blocks``
  residual blocks (pix2pixHD's, shared with GazeGAN); as many 3×3 stride-2 transposed
  convolutions (``padding=1, output_padding=1``) halving them (IN, ReLU); reflect-pad 3, 7×7
  convolution to the map, tanh;
* **local enhancer** (two streams at two scales): the global generator at twice the width,
  without its head, on the image downsampled by pix2pixHD's 3×3 stride-2 average pool; a local
  stream on the full image (reflect-pad 3, 7×7 conv, IN, ReLU, 3×3 stride-2 conv, IN, ReLU); the
  two streams' features are summed, then ``local_blocks`` residual blocks, one 3×3 stride-2
  transposed convolution, and the 7×7 tanh head;
* **ConvLSTM refinement** (``lstm_steps > 0``, a choice of this library for the library's
  "ConvLSTM refinement" column, after Che et al.'s DCN_LSTM models): the fused two-stream features
  ``X`` are refined by a plain (non-attentive) ConvLSTM run ``lstm_steps`` times on the same ``X``
  (Shi et al., "Convolutional LSTM network", NeurIPS 2015, without peepholes, as SAM's cell);
  its last hidden state replaces ``X``. SAM's attentive ConvLSTM is the same cell with an
  attention map in front (``_sam.py``).

* **DCN + attention form** (``deformable=True, attention=True``: the zoo's
  ``"pix2pix_local_dcn"``), Table 2's Local-pix2pix (model 15: ResNet, multi-stream, modulated
  deformable convolution, squeeze-and-excitation & pyramid spatial attention, no refinement).
  The challenge's code is not published, so the layout is ours, following the zoo's DCN_2
  (:class:`DCNTwoStream`, whose DCNv2 stream is :class:`DCNSal`: DCNv2 convolutions, then SE,
  then pyramid spatial attention, then the readout): the local enhancer's residual blocks after
  the fusion use DCNv2 convolutions (:class:`DeformConv`, Zhu et al. CVPR 2019) in place of
  their 3×3 convolutions, and squeeze-and-excitation (Hu et al. CVPR 2018) and pyramid spatial
  attention (Wang et al. CVPR 2019, :mod:`._attention`) follow them, before the upsampling and
  the head. The stems, the stride-2 stages and the coarse stream stay standard convolutions.

Images in ``[0, 1]`` are mapped to ``[-1, 1]`` first (pix2pixHD's input normalisation); the maps
are in ``[-1, 1]`` (output kind ``"signed"``, as GazeGAN's).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models._strided_conv import Stride2Conv
from jaxadv.models.saliency._attention import PyramidSpatialAttention, SqueezeExcitation
from jaxadv.models.saliency._gazegan import ResnetBlock
from jaxadv.models.saliency._layers import (
    TorchConvTranspose,
    avg_pool_3x3_stride2,
    conv_lstm_step,
    instance_norm,
)


def _reflect(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _stem(x: jax.Array, features: int, name: str) -> jax.Array:
    """ReflectionPad(3) → 7×7 conv → IN → ReLU."""
    y = nn.Conv(features, (7, 7), padding="VALID", name=name)(_reflect(x, 3))
    return nn.relu(instance_norm(y))


def _down(x: jax.Array, features: int, name: str) -> jax.Array:
    """3×3 stride-2 convolution (padding 1) → IN → ReLU."""
    y = Stride2Conv(features, (3, 3), padding=((1, 1), (1, 1)), name=name)(x)
    return nn.relu(instance_norm(y))


def _up(x: jax.Array, features: int, name: str) -> jax.Array:
    """ConvTranspose2d(3, stride 2, padding 1, output_padding 1) → IN → ReLU: doubles the size."""
    y = TorchConvTranspose(features, kernel_size=3, name=name)(x, (1, 1))
    return nn.relu(instance_norm(y))


def _head(x: jax.Array, features: int, name: str) -> jax.Array:
    """ReflectionPad(3) → 7×7 conv → tanh."""
    return jnp.tanh(nn.Conv(features, (7, 7), padding="VALID", name=name)(_reflect(x, 3)))


def _check_input(model: str, shape, factor: int) -> None:
    if len(shape) != 4:
        raise ValueError(f"`x` must be a batch [b, h, w, c] for {model}; got shape {tuple(shape)}.")
    h, w = shape[1:3]
    if h % factor or w % factor or h < 2 * factor or w < 2 * factor:
        raise ValueError(
            f"{model} needs image height and width that are multiples of {factor} and at least "
            f"{2 * factor} (its stride-2 stages must divide evenly and its residual blocks "
            f"reflect-pad feature maps of at least 2x2); got {h}x{w}."
        )


class ConvLSTM(nn.Module):
    """A ConvLSTM (Shi et al. 2015, no peepholes) run ``num_steps`` times on the same input ``X``.

    Each step: ``[i, f, c, o] = W * X + U * H`` (3×3 ``same`` convolutions, gate order i, f, c,
    o, each fused into one convolution with 4× the channels), ``C = σ(f)·C + σ(i)·tanh(c)``,
    ``H = σ(o)·tanh(C)``; H and C start at zero. Returns the last ``H``.

    Attributes:
      features: channels of the hidden state.
      num_steps: recurrence length.
    """

    features: int
    num_steps: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w_gates = nn.Conv(4 * self.features, (3, 3), padding=1, name="W")
        u_gates = nn.Conv(4 * self.features, (3, 3), padding=1, name="U")
        gates_x = w_gates(x)  # X is the same at every step
        hidden = jnp.zeros(x.shape[:3] + (self.features,), x.dtype)
        cell = jnp.zeros_like(hidden)
        for _ in range(self.num_steps):
            hidden, cell = conv_lstm_step(gates_x + u_gates(hidden), cell)
        return hidden


class Pix2PixHDGlobal(nn.Module):
    """pix2pixHD's global generator on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]``
    in [−1, 1] (module docstring).

    Named layers: ``stem``, ``down{k}`` (k = 1..downsampling), ``res`` (after the residual
    blocks), ``up{k}``.

    Attributes:
      width: channels of the stem (``ngf``, 64 published); stage ``k`` has ``2^k · width``.
      downsampling: stride-2 stages (``n_downsample_global``, 4 published); image sides must be
        multiples of ``2^downsampling``.
      blocks: residual blocks at the bottleneck (``n_blocks_global``, 9 published).
    """

    width: int = 64
    downsampling: int = 4
    blocks: int = 9
    output_kind: ClassVar[str] = "signed"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # instance norm only
        _check_input("Pix2PixHDGlobal", x.shape, 2**self.downsampling)
        y = _global_trunk(self, 2.0 * x - 1.0, self.width, self.downsampling, self.blocks)
        return _head(y, 1, "head")[..., 0]


def _global_trunk(module: nn.Module, x, width: int, downsampling: int, blocks: int) -> jax.Array:
    """The global generator without its head, its layers named as the module's own."""
    y = _stem(x, width, "stem_conv")
    module.sow("intermediates", "stem", y)
    for k in range(1, downsampling + 1):
        y = _down(y, width * 2**k, f"down{k}_conv")
        module.sow("intermediates", f"down{k}", y)
    for k in range(blocks):
        y = ResnetBlock(name=f"res{k}")(y)
    module.sow("intermediates", "res", y)
    for k in range(1, downsampling + 1):
        y = _up(y, width * 2 ** (downsampling - k), f"up{k}_conv")
        module.sow("intermediates", f"up{k}", y)
    return y


class _GlobalStream(nn.Module):
    """The local enhancer's coarse stream: the global generator's trunk (no head)."""

    width: int
    downsampling: int
    blocks: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _global_trunk(self, x, self.width, self.downsampling, self.blocks)


class Pix2PixHDLocal(nn.Module):
    """pix2pixHD's local enhancer (two streams) on ``[b, h, w, c]`` images in ``[0, 1]`` → maps
    ``[b, h, w]`` in [−1, 1], optionally with a ConvLSTM refinement (module docstring).

    Named layers: ``global/stem``, ``global/down{k}``, ``global/res``, ``global/up{k}`` (the
    coarse stream, at half size), ``local`` (the fine stream's features), ``fused`` (their sum),
    ``lstm`` (the ConvLSTM's last hidden state, when ``lstm_steps > 0``), ``res``, ``se`` and
    ``attention/attention`` (after squeeze-and-excitation and the pyramid attention map, when
    ``attention``) and ``up``.

    ``deformable=True, attention=True`` is Table 2's Local-pix2pix (module docstring; its code
    is unpublished, the layout is ours). With still offsets and unit modulation its DCNv2
    blocks are the plain ones; with an excitation of 1 and uniform pyramid attention (zero
    logits, a constant gain ``1 + L``) the attention only rescales the features.

    Attributes:
      width: channels of the local stem (``ngf``, 32 published for the enhancer's 64 global);
        the coarse stream has twice as many.
      downsampling: stride-2 stages of the coarse stream (4 published); image sides must be
        multiples of ``2^(downsampling + 1)``.
      global_blocks: residual blocks of the coarse stream (9 published).
      local_blocks: residual blocks after the fusion (``n_blocks_local``, 3 published).
      lstm_steps: ConvLSTM refinement steps on the fused features (0: none, the published
        enhancer).
      deformable: DCNv2 convolutions in the local residual blocks (Table 2's model 15).
      attention: squeeze-and-excitation and pyramid spatial attention after the local residual
        blocks (Table 2's model 15).
      offset_groups: offset groups of the DCNv2 convolutions (must divide ``2 · width``).
      se_reduction: the squeeze-and-excitation ratio ``r`` (16 in Hu et al.).
      attention_scales: pooling factors of the pyramid spatial attention (each must divide the
        half-size feature map, i.e. ``2^downsampling``).
    """

    width: int = 32
    downsampling: int = 4
    global_blocks: int = 9
    local_blocks: int = 3
    lstm_steps: int = 0
    deformable: bool = False
    attention: bool = False
    offset_groups: int = 1
    se_reduction: int = 16
    attention_scales: tuple[int, ...] = (1, 2)
    output_kind: ClassVar[str] = "signed"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # instance norm only
        for flag in ("deformable", "attention"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"`{flag}` must be a bool; got {getattr(self, flag)!r}.")
        _check_input("Pix2PixHDLocal", x.shape, 2 ** (self.downsampling + 1))
        w = self.width
        x = 2.0 * x - 1.0
        coarse = _GlobalStream(2 * w, self.downsampling, self.global_blocks, name="global")(
            avg_pool_3x3_stride2(x)
        )
        fine = _down(_stem(x, w, "local_stem"), 2 * w, "local_down")
        self.sow("intermediates", "local", fine)
        y = fine + coarse
        self.sow("intermediates", "fused", y)
        if self.lstm_steps > 0:
            y = ConvLSTM(2 * w, self.lstm_steps, name="conv_lstm")(y)
            self.sow("intermediates", "lstm", y)
        for k in range(self.local_blocks):
            y = ResnetBlock(self.deformable, self.offset_groups, name=f"local_res{k}")(y)
        self.sow("intermediates", "res", y)
        if self.attention:
            y = SqueezeExcitation(self.se_reduction, name="se_block")(y)
            self.sow("intermediates", "se", y)
            y = PyramidSpatialAttention(tuple(self.attention_scales), name="attention")(y)
        y = _up(y, w, "local_up")
        self.sow("intermediates", "up", y)
        return _head(y, 1, "head")[..., 0]
