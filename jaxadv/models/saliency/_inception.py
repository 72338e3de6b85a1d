"""Inception-ResNet saliency members of Table 2: a small Inception-ResNet encoder, the single-
stream DCN_Inception, and the two-stream DCN_2 / DCN_LSTM_1 (VGG-16 & Inception-ResNet).

Table 2 of Che et al.'s robustness study (``shared/papers/000``, "Code repository of victim
models") lists ``model_12`` DCN_Inception (Inception-ResNet backbone, single stream, standard
convolution, no attention, no refinement), ``model_6`` DCN_2 (VGG16 & Inception-ResNet, multi-
stream, standard & modulated deformable convolution, squeeze-and-excitation & pyramid spatial
attention) and ``model_5`` DCN_LSTM_1 (the same with a ConvLSTM refinement). Their code is not
published, so the layouts are ours, following the table's columns, at sizes a 2-core CPU trains:

* **Inception-ResNet block** (Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet
  and the impact of residual connections on learning", AAAI 2017, §3 and Fig. 16, the
  Inception-ResNet-A form): three branches of ReLU convolutions, a 1×1, a 1×1 then 3×3, and a
  1×1 then two stacked 3×3 (the factorised 5×5); their concatenation is projected back to the
  input's channels by a linear 1×1 convolution, scaled by ``scale`` (the paper's §3.1 residual
  scaling, 0.1–0.3) and added to the input, then a ReLU: ``relu(x + scale · project(...))``.
* **Encoder** (:class:`InceptionResNetFeatures`): a stem (3×3 conv, ReLU, 3×3 stride-2 conv,
  ReLU) to stride 2; three stages of Inception-ResNet blocks separated by two reductions (the
  Reduction-A idea of §3: a 2×2 max-pool branch and a 3×3 stride-2 convolution branch,
  concatenated, doubling the channels) to output stride 8 with ``4 · width`` channels, the grid
  and width of :class:`DCNSal`'s VGG-16 head.
* **DCN_Inception** (:class:`DCNInception`): the encoder, a 1×1 readout, bilinear upsampling to
  the image size and a sigmoid.
* **DCN_2 / DCN_LSTM_1** (:class:`DCNTwoStream`): the VGG-16 stream of :class:`DCNSal` (VGG-16,
  two DCNv2 layers, squeeze-and-excitation, pyramid spatial attention) and the Inception-ResNet
  encoder see the same image; their stride-8 features are concatenated (``fused``), refined by
  a ConvLSTM run ``lstm_steps`` times on the fused map when ``lstm_steps > 0`` (Shi et al. 2015,
  :class:`ConvLSTM`, as the zoo's pix2pix_local_lstm), read out by a 1×1 convolution,
  upsampled and passed through a sigmoid. Without the ConvLSTM the readout is linear in the
  concatenation, so zeroing its Inception-ResNet half leaves exactly :class:`DCNSal`.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models._strided_conv import Stride2Conv
from jaxadv.models.saliency._dcnsal import DCNSal
from jaxadv.models.saliency._layers import check_input_grid, max_pool, resize_bilinear
from jaxadv.models.saliency._pix2pixhd import ConvLSTM


def _check_scale(scale: float) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0:
        raise ValueError(f"`scale` must be a number >= 0; got {scale!r}.")


class InceptionResNetBlock(nn.Module):
    """An Inception-ResNet-A block (Szegedy et al. AAAI 2017, Fig. 16): ``relu(x + scale · P)``.

    ``P`` is a linear 1×1 convolution ``project`` (back to ``x``'s channels) of the
    concatenated branches ``branch0_1x1``; ``branch1_1x1`` → ``branch1_3x3``; ``branch2_1x1`` →
    ``branch2_3x3a`` → ``branch2_3x3b`` (each convolution followed by a ReLU, ``same``
    padding). With ``scale = 0`` the block is its shortcut, ``relu(x)``.

    Attributes:
      branch_features: channels of every branch convolution.
      scale: the residual scaling (§3.1 of the paper: 0.1–0.3 keeps wide blocks stable).
    """

    branch_features: int
    scale: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_scale(self.scale)
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
        b = self.branch_features

        def conv(y: jax.Array, k: int, name: str) -> jax.Array:
            return nn.relu(nn.Conv(b, (k, k), padding=k // 2, name=name)(y))

        b0 = conv(x, 1, "branch0_1x1")
        b1 = conv(conv(x, 1, "branch1_1x1"), 3, "branch1_3x3")
        b2 = conv(conv(conv(x, 1, "branch2_1x1"), 3, "branch2_3x3a"), 3, "branch2_3x3b")
        up = nn.Conv(x.shape[-1], (1, 1), name="project")(jnp.concatenate([b0, b1, b2], -1))
        return nn.relu(x + self.scale * up)


class InceptionResNetFeatures(nn.Module):
    """A small Inception-ResNet encoder to output stride 8 (module docstring).

    stem (``stem_conv1``, ``stem_conv2`` stride 2) → ``blocks[0]`` blocks at ``width`` channels →
    ``reduction1`` → ``blocks[1]`` blocks at ``2 · width`` → ``reduction2`` → ``blocks[2]``
    blocks at ``4 · width``. Each reduction concatenates a 2×2 max-pool of its input and a 3×3
    stride-2 convolution ``reduction{k}_conv`` (ReLU) with as many channels. Sown: ``stem``, ``stage1``,
    ``reduction1``, ``stage2``, ``reduction2``, ``stage3``.

    Attributes:
      width: channels of the stem (the output has ``4 · width``).
      blocks: Inception-ResNet blocks per stage (three stages).
      scale: every block's residual scaling.
    """

    width: int = 64
    blocks: tuple[int, int, int] = (1, 1, 1)
    scale: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks = tuple(self.blocks)
        if len(blocks) != 3 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in blocks
        ):
            raise ValueError(
                f"`blocks` must be three integers >= 0 (blocks per stage); got {self.blocks!r}."
            )
        w = self.width
        y = nn.relu(nn.Conv(w, (3, 3), padding=1, name="stem_conv1")(x))
        y = nn.relu(Stride2Conv(w, (3, 3), padding=((1, 1), (1, 1)), name="stem_conv2")(y))
        self.sow("intermediates", "stem", y)
        for stage, n in enumerate(blocks, start=1):
            if stage > 1:
                conv = Stride2Conv(
                    y.shape[-1], (3, 3), padding=((1, 1), (1, 1)), name=f"reduction{stage - 1}_conv"
                )
                y = jnp.concatenate([max_pool(y, 2), nn.relu(conv(y))], -1)
                self.sow("intermediates", f"reduction{stage - 1}", y)
            for i in range(1, n + 1):
                block = InceptionResNetBlock(
                    max(1, y.shape[-1] // 2), self.scale, name=f"block{stage}_{i}"
                )
                y = block(y)
            self.sow("intermediates", f"stage{stage}", y)
        return y


class DCNInception(nn.Module):
    """DCN_Inception (Table 2's model 12): Inception-ResNet encoder → 1×1 readout → bilinear
    upsampling → sigmoid; ``[b, h, w, c]`` in ``[0, 1]`` → ``[b, h, w]`` in [0, 1].

    Named layers: ``backbone/stem``, ``backbone/stage{1,2,3}``, ``backbone/reduction{1,2}``,
    ``logits`` (the readout before upsampling). Images must be multiples of 8 (at least 16) on
    each side.

    Attributes:
      width: channels of the stem; the encoder ends with ``4 · width``.
      blocks: Inception-ResNet blocks per stage.
      scale: the blocks' residual scaling.
    """

    width: int = 64
    blocks: tuple[int, int, int] = (1, 1, 1)
    scale: float = 0.2
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("DCNInception", x.shape, 8, 16)
        y = InceptionResNetFeatures(self.width, self.blocks, self.scale, name="backbone")(x)
        logits = nn.Conv(1, (1, 1), name="readout")(y)
        self.sow("intermediates", "logits", logits[..., 0])
        return nn.sigmoid(resize_bilinear(logits, x.shape[1:3]))[..., 0]


class DCNTwoStream(nn.Module):
    """DCN_2 (``lstm_steps=0``, Table 2's model 6) and DCN_LSTM_1 (``lstm_steps > 0``, model 5):
    the VGG-16 + DCNv2 + SE + pyramid-attention stream of :class:`DCNSal` and the Inception-ResNet
    stream, fused by concatenation, optionally refined by a ConvLSTM, read out by a 1×1
    convolution; ``[b, h, w, c]`` in ``[0, 1]`` → ``[b, h, w]`` in [0, 1].

    Named layers: ``vgg/encoder/relu{b}_{n}``, ``vgg/head{1,2}_relu``, ``vgg/se``,
    ``vgg/attention/attention`` (the VGG stream, as in :class:`DCNSal`),
    ``inception/stage{1,2,3}`` (the Inception-ResNet stream), ``fused`` (the concatenated
    streams, VGG channels first), ``lstm`` (the ConvLSTM's last hidden state, when there is
    one), ``logits``. Images must be multiples of 16 (the VGG stream's rule).

    Attributes:
      width: channels of VGG block 1 and of the Inception-ResNet stem; each stream ends with
        ``4 · width`` channels.
      lstm_steps: ConvLSTM steps on the fused features (0: none, DCN_2; DCN_LSTM_1 uses 3 here,
        as the zoo's pix2pix_local_lstm); the hidden state has ``4 · width`` channels.
      blocks: Inception-ResNet blocks per stage.
      offset_groups: offset groups of the VGG stream's DCNv2 layers.
      se_reduction: the squeeze-and-excitation ratio.
      attention_scales: pooling factors of the pyramid spatial attention.
    """

    width: int = 64
    lstm_steps: int = 0
    blocks: tuple[int, int, int] = (1, 1, 1)
    offset_groups: int = 1
    se_reduction: int = 16
    attention_scales: tuple[int, ...] = (1, 2)
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        steps = self.lstm_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"`lstm_steps` must be an integer >= 0; got {steps!r}.")
        check_input_grid("DCNTwoStream", x.shape, 16, 16)
        vgg = DCNSal(
            self.width,
            offset_groups=self.offset_groups,
            se_reduction=self.se_reduction,
            attention_scales=self.attention_scales,
            features_only=True,
            name="vgg",
        )(x)
        inception = InceptionResNetFeatures(self.width, self.blocks, name="inception")(x)
        y = jnp.concatenate([vgg, inception], -1)
        self.sow("intermediates", "fused", y)
        if steps:
            y = ConvLSTM(4 * self.width, steps, name="lstm_cell")(y)
            self.sow("intermediates", "lstm", y)
        logits = nn.Conv(1, (1, 1), name="readout")(y)
        self.sow("intermediates", "logits", logits[..., 0])
        return nn.sigmoid(resize_bilinear(logits, x.shape[1:3]))[..., 0]
