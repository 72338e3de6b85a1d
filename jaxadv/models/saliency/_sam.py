"""SAM: a dilated VGG-16 or ResNet, attentive ConvLSTM and learned Gaussian priors.

Cornia, Baraldi, Serra & Cucchiara, "Predicting human eye fixations via an LSTM-based saliency
attentive model", IEEE TIP 2018 (SAM-VGG, also without its attention module, and SAM-ResNet);
details from marcellacornia/sam
(Keras/Theano):
``dcn_vgg.py``, ``dcn_resnet.py``, ``attentive_convlstm.py``, ``gaussian_prior.py`` and ``models.py``.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models.saliency._deform import DeformConv
from jaxadv.models.saliency._densesal import max_pool_3x3_stride2_pad1
from jaxadv.models.saliency._layers import (
    VGG16,
    VGG19_BLOCKS,
    check_input_grid,
    conv_lstm_step,
    resize_bilinear,
)

_KERAS_EPSILON = 1e-7
# A plain convolution's lecun-normal kernel at 4x the variance: 2x the scale, which the DCNv2
# modulation of 0.5 at initialisation halves back (DCNSAMVGG).
_MASK_COMPENSATED_INIT = nn.initializers.variance_scaling(4.0, "fan_in", "truncated_normal")


class AttentiveConvLSTM(nn.Module):
    """SAM's attentive ConvLSTM run for ``num_steps`` steps on the same feature map ``X``.

    Each step: ``e = V_a * tanh(W_a * H + U_a * X)``, ``A = softmax`` of ``e`` over the pixels,
    ``X~ = A ⊙ X``, then a ConvLSTM step on ``X~`` (sigmoid gates, tanh cell). All convolutions
    are 3×3 ``same``; ``V_a`` has no bias and starts at zero (uniform attention), as published.
    The four input convolutions (``W_i, W_f, W_c, W_o``) and the four recurrent ones (``U_*``)
    are each fused into one convolution with 4× the channels (gate order i, f, c, o). H and C
    start at zero. Returns the last hidden state; the last attention map is sown as
    ``attention``.

    With ``attention=False`` (SAM-VGG's refinement without its attention module: Table 2's
    SAM_VGG_1 in ``shared/papers/000``; Cornia et al. 2018 ablate the attention in the same
    way, a reading not checked here, their paper not being among the project's stored ones)
    every step reads ``X`` itself: a plain ConvLSTM (Shi et al. 2015, no peepholes) with the
    same ``W``/``U`` convolutions; ``W_a``, ``U_a`` and ``V_a`` are not created and nothing
    is sown.

    Attributes:
      features: channels of the hidden state (512 published).
      attention_features: channels of ``W_a``/``U_a`` (512 published; unused without
        attention).
      num_steps: recurrence length T (4 published).
      attention: the softmax spatial attention in front of each step (True, published SAM).
    """

    features: int
    attention_features: int
    num_steps: int = 4
    attention: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not isinstance(self.attention, bool):
            raise ValueError(f"`attention` must be a bool; got {self.attention!r}.")
        b, h, w, _ = x.shape

        def conv(features: int, name: str, **kwargs) -> nn.Conv:
            return nn.Conv(features, (3, 3), padding=1, name=name, **kwargs)

        w_gates, u_gates = conv(4 * self.features, "W"), conv(4 * self.features, "U")
        hidden = jnp.zeros((b, h, w, self.features), x.dtype)
        cell = jnp.zeros_like(hidden)
        if not self.attention:
            gates_x = w_gates(x)  # X itself at every step
            for _ in range(self.num_steps):
                hidden, cell = conv_lstm_step(gates_x + u_gates(hidden), cell)
            return hidden
        w_a = conv(self.attention_features, "W_a")
        v_a = conv(1, "V_a", use_bias=False, kernel_init=nn.initializers.zeros)
        u_a_x = conv(self.attention_features, "U_a")(x)  # X is the same at every step
        attention = None
        for _ in range(self.num_steps):
            e = v_a(jnp.tanh(w_a(hidden) + u_a_x)).reshape(b, h * w)
            attention = jax.nn.softmax(e, axis=-1).reshape(b, h, w, 1)
            hidden, cell = conv_lstm_step(w_gates(x * attention) + u_gates(hidden), cell)
        self.sow("intermediates", "attention", attention[..., 0])
        return hidden


class SAMGaussianPriors(nn.Module):
    """``num_gaussians`` learned 2-D Gaussian maps ``[h, w, n]``, each divided by its maximum.

    SAM's ``LearningPrior``: centres and standard deviations are clipped to the published ranges
    (μx ∈ [0.25, 0.75], μy ∈ [0.35, 0.65], σx ∈ [0.1, 0.9], σy ∈ [0.2, 0.8]) on a grid where x
    runs over [0, 1] across the width and y over an interval of length h/w centred on 0.5 (the
    aspect ratio is kept). Initialised as published: centres uniform in [0.3, 0.7], standard
    deviations uniform in [0.05, 0.3] (those below a clip bound start clipped).
    """

    num_gaussians: int = 16

    @nn.compact
    def __call__(self, height: int, width: int) -> jax.Array:
        n = self.num_gaussians

        def uniform(lo, hi):
            return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, lo, hi)

        mu = self.param("mu", uniform(0.3, 0.7), (2, n))  # rows: x, y
        sigma = self.param("sigma", uniform(0.05, 0.3), (2, n))
        mu_x, mu_y = jnp.clip(mu[0], 0.25, 0.75), jnp.clip(mu[1], 0.35, 0.65)
        sigma_x, sigma_y = jnp.clip(sigma[0], 0.1, 0.9), jnp.clip(sigma[1], 0.2, 0.8)
        ratio = height / width
        ys = np.linspace((1 - ratio) / 2, (1 + ratio) / 2, height, dtype=np.float32)
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
        exponent = (xs[None, :, None] - mu_x) ** 2 / (2 * sigma_x**2 + _KERAS_EPSILON) + (
            ys[:, None, None] - mu_y
        ) ** 2 / (2 * sigma_y**2 + _KERAS_EPSILON)
        gauss = jnp.exp(-exponent) / (2 * np.pi * sigma_x * sigma_y + _KERAS_EPSILON)
        return gauss / jnp.max(gauss, axis=(0, 1))


class SAM(nn.Module):
    """SAM-VGG on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]`` in [0, 1].

    Dilated VGG-16 (output stride 8) → attentive ConvLSTM → [features ⊕ 16 Gaussian priors] →
    5×5 convolution with dilation 4 and ReLU, twice (each with its own priors) → 1×1 convolution
    with ReLU → bilinear upsampling to the image size.

    Output normalisation (documented choice): the published model's post-processing divides the
    map by its maximum (its losses do too), so the map is ``m / (max(m) + 1e-7)`` per image, in
    [0, 1] and differentiable almost everywhere (the max passes its gradient to the arg-max pixel).
    A map that the ReLU head zeroes everywhere stays 0.

    Named layers: ``backbone/relu{b}_{n}``, ``attentive_lstm/attention`` (last attention map;
    not with ``attention=False``), ``lstm`` (last hidden state), ``learned_priors1``,
    ``learned_priors2`` (the dilated convolutions after each prior block), ``readout`` (before
    upsampling).

    ``attention=False`` is SAM-VGG without its attention module: the ConvLSTM refines the
    dilated VGG features themselves (:class:`AttentiveConvLSTM` without ``W_a``/``U_a``/``V_a``),
    the attention ablation of Cornia et al. 2018 (IEEE TIP) and Table 2's SAM_VGG_1
    (model 7 of Che et al.'s library, ``shared/papers/000``: VGG16, standard & dilated
    convolution, no attention module, ConvLSTM refinement; the zoo's ``"sam_vgg_1"``). The
    default is SAM_VGG_2 (model 8, softmax spatial attention; the zoo's ``"sam"``). The LSTM
    keeps its layer name ``attentive_lstm`` so that its parameters are SAM's less the three
    attention convolutions.

    Attributes:
      width: channels of VGG block 1 (64 published); the LSTM, attention and prior convolutions
        have ``8 * width`` (512 published).
      num_steps: ConvLSTM steps (4 published).
      num_gaussians: Gaussian priors per prior block (16 published).
      attention: the attentive ConvLSTM's softmax spatial attention (True, published SAM).
    """

    width: int = 64
    num_steps: int = 4
    num_gaussians: int = 16
    attention: bool = True
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("SAM", x.shape, 8, 8)
        feats = VGG16(self.width, dilated=True, name="backbone")(x)
        return _sam_head(
            self, feats, x.shape[1:3], self.num_steps, self.num_gaussians, self.attention
        )


def _sam_head(
    module: nn.Module,
    feats: jax.Array,
    size,
    num_steps: int,
    num_gaussians: int,
    attention: bool = True,
):
    """SAM's head on stride-8 features (called inside ``module``'s compact ``__call__``, whose
    layers it creates and sows): attentive ConvLSTM (plain with ``attention=False``), two
    Gaussian-prior blocks, the 1×1 ReLU readout, bilinear upsampling to ``size`` and division
    by the maximum."""
    wide = feats.shape[-1]
    y = AttentiveConvLSTM(wide, wide, num_steps, attention, name="attentive_lstm")(feats)
    module.sow("intermediates", "lstm", y)
    b, h, w, _ = y.shape
    for k in (1, 2):
        priors = SAMGaussianPriors(num_gaussians, name=f"priors{k}")(h, w)
        y = jnp.concatenate([y, jnp.broadcast_to(priors, (b, h, w, priors.shape[-1]))], -1)
        y = nn.Conv(wide, (5, 5), padding=8, kernel_dilation=4, name=f"prior_conv{k}")(y)
        y = nn.relu(y)
        module.sow("intermediates", f"learned_priors{k}", y)
    m = nn.relu(nn.Conv(1, (1, 1), name="output_conv")(y))
    module.sow("intermediates", "readout", m[..., 0])
    m = resize_bilinear(m, size)[..., 0]
    return m / (jnp.max(m, axis=(1, 2), keepdims=True) + _KERAS_EPSILON)


class DCNSAMVGG(nn.Module):
    """DCN-SAM-VGG: a VGG-19 encoder whose last block is modulated deformable convolutions, then
    SAM's attentive ConvLSTM and Gaussian-prior head; ``[b, h, w, c]`` in ``[0, 1]`` → ``[b, h,
    w]`` in [0, 1].

    ``model_14`` of Table 2 of Che et al.'s robustness study (``shared/papers/000``, "Code
    repository of victim models": DCN_SAM_VGG, VGG19 backbone, single stream, standard
    convolution & modulated deformable convolution, softmax spatial attention, ConvLSTM). Its
    code is not published, so the layout is ours, following the table's columns on SAM's
    design (Cornia et al., IEEE TIP 2018, :class:`SAM`): VGG-19 (Simonyan & Zisserman 2015,
    configuration E) with SAM's output-stride-8 arrangement (2×2 pools after blocks 1-3, the
    stride-1 ``same`` pool after block 4), but block 5's four convolutions are 3×3 DCNv2 layers
    (:class:`DeformConv`, Zhu et al. 2019) in place of SAM's dilation-2 convolutions: the
    deformable offsets learn where to sample instead of a fixed dilation. The head is SAM's
    unchanged: the attentive ConvLSTM whose attention is a softmax over the positions (SAM's
    "softmax spatial attention"), two blocks of learned Gaussian priors, a 1×1 ReLU readout,
    bilinear upsampling and division by the maximum (``SAM``'s output normalisation).

    Initialisation (ours, documented): the DCNv2 offset/mask convolutions start at zero as in Zhu
    et al. §3 (offsets 0, modulation sigmoid(0) = 0.5), but each block-5 kernel is drawn with 4×
    the variance of a plain convolution (``variance_scaling(4, "fan_in")``), so that at
    initialisation each layer equals a standard convolution of the usual scale
    (``0.5 · 2w``). Without it the four modulations damp block 5's output by 0.5⁴ = 1/16 (with
    ReLU and random VGG weights the ``relu5_4`` features started ~40× smaller than SAM's
    ``relu5_3`` and the backbone's gradient ~90× smaller), and the model barely left the
    content-blind prior maps in training (experiments/README.md). The published DCNv2 sits on
    pretrained, batch-normalised backbones, where the halving is absorbed; here nothing is.

    Named layers: ``backbone/relu{b}_{n}`` (VGG-19 blocks 1-4), ``relu5_4`` (after the
    deformable block), ``attentive_lstm/attention``, ``lstm``, ``learned_priors1``,
    ``learned_priors2``, ``readout``. Images must be multiples of 8 on each side.

    Attributes:
      width: channels of VGG block 1 (64 published); block 5, the LSTM and the prior
        convolutions have ``8 * width``.
      num_steps: ConvLSTM steps (4 in SAM).
      num_gaussians: Gaussian priors per prior block (16 in SAM).
      offset_groups: offset groups of each DCNv2 layer (must divide ``8 · width``).
    """

    width: int = 64
    num_steps: int = 4
    num_gaussians: int = 16
    offset_groups: int = 1
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("DCNSAMVGG", x.shape, 8, 8)
        y = VGG16(self.width, dilated=True, blocks=VGG19_BLOCKS[:4], name="backbone")(x)
        convs, mult = VGG19_BLOCKS[4]
        for i in range(1, convs + 1):
            conv = DeformConv(
                mult * self.width,
                3,
                offset_groups=self.offset_groups,
                kernel_init=_MASK_COMPENSATED_INIT,
                name=f"conv5_{i}",
            )
            y = nn.relu(conv(y))
        self.sow("intermediates", f"relu5_{convs}", y)
        return _sam_head(self, y, x.shape[1:3], self.num_steps, self.num_gaussians)


def _sam_batch_norm(train: bool, momentum: float, name: str) -> nn.BatchNorm:
    # Keras BatchNormalization's epsilon 1e-3, as in SAM's ResNet-50 (momentum: the caller's).
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-3, name=name)


class DilatedBottleneck(nn.Module):
    """A ResNet-50 bottleneck block as Keras writes it (He et al., CVPR 2016, v1: the stride sits
    on the first 1×1 convolution), with an optional dilation of its 3×3 convolution.

    ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`` where ``conv2`` is
    3×3 with dilation ``dilation`` (padding = dilation: the same size at stride 1) and the
    shortcut is ``x`` (an identity block) or ``bn(1×1 conv, stride)`` (``project=True``: a conv
    block, the first of each stage). The residual branch is ``bn3``'s output.

    Attributes:
      planes: channels inside the block; it outputs ``4 · planes``.
      stride: stride of ``conv1`` and of the projection.
      dilation: dilation of ``conv2``.
      project: a 1×1 projection shortcut instead of the identity.
      bn_momentum: running-average momentum of the batch norms (Keras's 0.99 by default).
    """

    planes: int
    stride: int = 1
    dilation: int = 1
    project: bool = False
    bn_momentum: float = 0.99

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        s, d = self.stride, self.dilation
        y = nn.Conv(self.planes, (1, 1), strides=s, name="conv1")(x)
        y = nn.relu(_sam_batch_norm(train, self.bn_momentum, "bn1")(y))
        y = nn.Conv(self.planes, (3, 3), padding=d, kernel_dilation=d, name="conv2")(y)
        y = nn.relu(_sam_batch_norm(train, self.bn_momentum, "bn2")(y))
        y = _sam_batch_norm(train, self.bn_momentum, "bn3")(nn.Conv(4 * self.planes, (1, 1), name="conv3")(y))
        shortcut = x
        if self.project:
            shortcut = nn.Conv(4 * self.planes, (1, 1), strides=s, name="proj")(x)
            shortcut = _sam_batch_norm(train, self.bn_momentum, "proj_bn")(shortcut)
        return nn.relu(y + shortcut)


class DilatedResNet(nn.Module):
    """SAM-ResNet's backbone: a bottleneck ResNet (ResNet-50 at ``stage_sizes = (3, 4, 6, 3)``,
    ``width = 64``) with output stride 8 (Cornia et al., IEEE TIP 2018, §III-A; published
    ``dcn_resnet.py``).

    7×7 stride-2 convolution, batch norm, ReLU, 3×3 stride-2 max-pool (stride 4); stage 2 at
    stride 1 and stage 3 at stride 2 (output stride 8); stages 4 and 5 keep stride 1 and dilate
    their 3×3 convolutions by 2 and 4 instead of striding (the receptive field of a stride-32
    ResNet at stride 8). Stage ``n`` has ``width · 2^(n-2)`` inner channels and 4× that out; its
    first block projects the shortcut. Sows ``stage2`` … ``stage5``.

    Attributes:
      width: channels of the stem and of stage 2's blocks (64 published).
      stage_sizes: blocks per stage 2-5 ((3, 4, 6, 3) published).
      bn_momentum: running-average momentum of the batch norms (Keras's 0.99 by default).
    """

    width: int = 64
    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
    bn_momentum: float = 0.99

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        sizes = self.stage_sizes
        if len(sizes) != 4 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                  for n in sizes):  # fmt: skip
            raise ValueError(
                f"`stage_sizes` must be 4 integers >= 1 (blocks of stages 2-5); got {sizes!r}."
            )
        y = nn.Conv(self.width, (7, 7), strides=2, padding=3, name="conv1")(x)
        y = max_pool_3x3_stride2_pad1(nn.relu(_sam_batch_norm(train, self.bn_momentum, "bn_conv1")(y)))
        for stage, (blocks, stride, dilation) in enumerate(
            zip(sizes, (1, 2, 1, 1), (1, 1, 2, 4), strict=True), start=2
        ):
            planes = self.width * 2 ** (stage - 2)
            for i in range(blocks):
                y = DilatedBottleneck(
                    planes,
                    stride if i == 0 else 1,
                    dilation,
                    project=i == 0,
                    bn_momentum=self.bn_momentum,
                    name=f"stage{stage}_block{i + 1}",
                )(y, train)
            self.sow("intermediates", f"stage{stage}", y)
        return y


class SAMResNet(nn.Module):
    """SAM-ResNet on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]`` in [0, 1].

    Cornia, Baraldi, Serra & Cucchiara, IEEE TIP 2018 (SAM-ResNet; Table 2's SAM_ResNet of Che
    et al.'s study, ``shared/papers/000``, model 9, adversarially trained there: the zoo's
    ``sam_resnet+at``). The dilated ResNet (:class:`DilatedResNet`, output stride 8) → a 3×3
    convolution to ``8 · width`` channels with ReLU (512 published; the published ``models.py``
    reduces ResNet's 2048 channels so) → SAM's head exactly as in :class:`SAM` (attentive
    ConvLSTM, two Gaussian-prior blocks, 1×1 ReLU readout, bilinear upsampling, division by the
    maximum).

    Named layers: ``backbone/stage{2..5}``, ``features`` (after the 3×3 reduction),
    ``attentive_lstm/attention``, ``lstm``, ``learned_priors1``, ``learned_priors2``,
    ``readout``. Images must be multiples of 8 on each side.

    Attributes:
      width: channels of the ResNet stem (64 published); the head has ``8 · width``.
      stage_sizes: bottleneck blocks per ResNet stage 2-5 ((3, 4, 6, 3): ResNet-50).
      num_steps: ConvLSTM steps (4 published).
      num_gaussians: Gaussian priors per prior block (16 published).
      bn_momentum: running-average momentum of the backbone's batch norms: 0.99, the Keras
        default of the published code; the zoo uses PyTorch's 0.9, since in its ~190-step
        trainings 0.99's running statistics keep ~15% of their initial values (held-out CC
        0.468 against 0.801 after 3 epochs, experiments/README.md).
    """

    width: int = 64
    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
    num_steps: int = 4
    num_gaussians: int = 16
    bn_momentum: float = 0.99
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_grid("SAMResNet", x.shape, 8, 8)
        y = DilatedResNet(
            self.width, tuple(self.stage_sizes), self.bn_momentum, name="backbone"
        )(x, train)
        y = nn.relu(nn.Conv(8 * self.width, (3, 3), padding=1, name="reduce")(y))
        self.sow("intermediates", "features", y)
        return _sam_head(self, y, x.shape[1:3], self.num_steps, self.num_gaussians)
