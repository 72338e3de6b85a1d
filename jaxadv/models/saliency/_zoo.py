"""The saliency zoo by name: small faithful versions of published models, randomly initialised."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv import _checks, _compile
from jaxadv.models.saliency._dcnsal import DCNSal
from jaxadv.models.saliency._deepgaze import DeepGazeII
from jaxadv.models.saliency._densesal import DenseSal
from jaxadv.models.saliency._gazegan import CSCNet, GazeGAN
from jaxadv.models.saliency._inception import DCNInception, DCNTwoStream
from jaxadv.models.saliency._pix2pixhd import Pix2PixHDGlobal, Pix2PixHDLocal
from jaxadv.models.saliency._salgan import SalGAN
from jaxadv.models.saliency._salicon import SALICON
from jaxadv.models.saliency._sam import SAM, DCNSAMVGG, SAMResNet
from jaxadv.models.saliency._unisal import UNISAL


def _deepgaze(width: int, input_shape: tuple[int, ...]) -> nn.Module:
    # The published blur (8 px on the half-size map of ~768-row images), scaled to these images.
    return DeepGazeII(width=width, initial_sigma=8.0 * min(input_shape[:2]) / 768)


def _downsampling(input_shape: tuple[int, ...], scale: int) -> int:
    """pix2pixHD's 4 stride-2 stages, fewer where the image (after ``scale``) is too small for
    them: the bottleneck keeps at least 4 pixels a side."""
    side = min(input_shape[:2]) // scale
    n = 0
    while n < 4 and side % 2 ** (n + 1) == 0 and side // 2 ** (n + 1) >= 4:
        n += 1
    return max(n, 1)


def _pix2pix_local(lstm_steps: int, dcn: bool = False):
    def build(width: int, input_shape: tuple[int, ...]) -> nn.Module:
        return Pix2PixHDLocal(
            width=width,
            downsampling=_downsampling(input_shape, 2),
            lstm_steps=lstm_steps,
            deformable=dcn,
            attention=dcn,
        )

    return build


_REGISTRY = {
    "salicon": lambda width, shape: SALICON(width=width),
    "salgan": lambda width, shape: SalGAN(width=width),
    "sam": lambda width, shape: SAM(width=width),
    "deepgaze": _deepgaze,
    "gazegan": lambda width, shape: GazeGAN(width=width),
    "unisal": lambda width, shape: UNISAL(width=width),
    # Issue 18: the DCN, attention and DenseNet forms of Table 2 (shared/papers/000).
    "dcnsal": lambda width, shape: DCNSal(width=width),
    "attsal": lambda width, shape: DCNSal(width=width, deformable=False),
    "densesal": lambda width, shape: DenseSal(width=width, block_config=(2, 2, 2)),
    # issue 18: pix2pixHD's generators (single-stream, two-stream, two-stream + ConvLSTM)
    "pix2pix_global": lambda width, shape: Pix2PixHDGlobal(
        width=width, downsampling=_downsampling(shape, 1)
    ),
    "pix2pix_local": _pix2pix_local(0),
    "pix2pix_local_lstm": _pix2pix_local(3),
    # issue 18: Table 2's model 10 (CSC_Net)
    "cscnet": lambda width, shape: CSCNet(width=width),
    # issue 18: Table 2's Inception-ResNet members (models 12, 6 and 5)
    "dcn_inception": lambda width, shape: DCNInception(width=width),
    "dcn_2": lambda width, shape: DCNTwoStream(width=width),
    "dcn_lstm_1": lambda width, shape: DCNTwoStream(width=width, lstm_steps=3),
    # issue 18: Table 2's model 14 (SAM's head on a VGG-19 encoder with a DCNv2 block 5)
    "dcn_sam_vgg": lambda width, shape: DCNSAMVGG(width=width),
    # issue 18: Table 2's model 9 (SAM_ResNet; adversarially trained there: "sam_resnet+at")
    "sam_resnet": lambda width, shape: SAMResNet(
        width=width, stage_sizes=(2, 2, 2, 2), bn_momentum=0.9
    ),
    # issue 18: Table 2's model 7 (SAM_VGG_1: SAM-VGG without attention; "sam" is model 8)
    "sam_vgg_1": lambda width, shape: SAM(width=width, attention=False),
    # issue 18: Table 2's model 15 (Local-pix2pix: DCNv2 residual blocks, SE + pyramid attention)
    "pix2pix_local_dcn": _pix2pix_local(0, dcn=True),
}

SALIENCY_MODEL_NAMES = tuple(_REGISTRY)


def saliency_model(
    name: str, *, key: jax.Array, input_shape: Sequence[int], width: int = 8
) -> tuple[nn.Module, dict[str, Any]]:
    """The named saliency model and its randomly initialised variables.

    Args:
      name: ``"salicon"`` (:class:`SALICON`, Huang et al. 2015), ``"salgan"`` (:class:`SalGAN`,
        Pan et al. 2017), ``"sam"`` (:class:`SAM`, Cornia et al. 2018), ``"deepgaze"``
        (:class:`DeepGazeII`, Kümmerer et al. 2017), ``"gazegan"`` (:class:`GazeGAN`, Che et al.
        2019), ``"unisal"`` (:class:`UNISAL`, Droste et al. 2020), ``"dcnsal"`` (:class:`DCNSal`:
        VGG-16, DCNv2 (Zhu et al. 2019), squeeze-and-excitation and pyramid spatial attention),
        ``"attsal"`` (:class:`DCNSal` with standard convolutions: the attention-only member),
        ``"densesal"`` (:class:`DenseSal`, a three-block DenseNet-BC, Huang et al. 2017),
        ``"pix2pix_global"`` (:class:`Pix2PixHDGlobal`, Wang et al. 2018), ``"pix2pix_local"``
        (its two-stream :class:`Pix2PixHDLocal`), ``"pix2pix_local_lstm"`` (the same with a
        3-step ConvLSTM refinement). pix2pixHD's generators get its 4 stride-2 stages, fewer on
        small images (the bottleneck keeps at least 4 pixels a side); ``"cscnet"``
        (:class:`CSCNet`, Table 2's CSC_Net: GazeGAN's two U-Nets and CSC with a softmax spatial
        attention on each CSC output), ``"dcn_inception"`` (:class:`DCNInception`, Table 2's
        DCN_Inception: an Inception-ResNet encoder, Szegedy et al. 2017), ``"dcn_2"``
        (:class:`DCNTwoStream`, DCN_2: DCNSal's VGG-16/DCNv2/SE/attention stream and the
        Inception-ResNet stream), ``"dcn_lstm_1"`` (the same with a 3-step ConvLSTM on the
        fused streams, DCN_LSTM_1) or ``"dcn_sam_vgg"`` (:class:`DCNSAMVGG`, DCN_SAM_VGG: SAM's
        attentive ConvLSTM and priors on a VGG-19 whose block 5 is DCNv2) or ``"sam_resnet"``
        (:class:`SAMResNet`, SAM-ResNet: SAM's head on a bottleneck ResNet with dilated stages 4
        and 5, output stride 8; two blocks per stage here, (3, 4, 6, 3) published; batch-norm
        momentum 0.9 for short trainings, see :class:`SAMResNet`) or ``"sam_vgg_1"``
        (:class:`SAM` with ``attention=False``, SAM_VGG_1: SAM-VGG whose ConvLSTM reads the
        features without the attention module; ``"sam"`` is SAM_VGG_2) or
        ``"pix2pix_local_dcn"`` (:class:`Pix2PixHDLocal` with ``deformable=True,
        attention=True``, Table 2's Local-pix2pix: DCNv2 in the local residual blocks, then
        squeeze-and-excitation and pyramid spatial attention; the layout is ours).
      key: PRNG key for the initialisation.
      input_shape: shape of ONE image ``(h, w, c)``; each model says which sizes it accepts
        (SALICON, GazeGAN and CSC-Net: multiples of 64; UNISAL 32; SalGAN, DCNSal, DenseSal and the two-stream DCNs 16; DCN_Inception 8;
        DeepGaze, SAM (both forms), SAM-ResNet and DCN-SAM-VGG 8; pix2pix: multiples of 4, of 8 for the two-stream ones).
      width: channels of the model's first layer (the published models use 64; UNISAL 32). All
        other widths scale with it.

    Returns:
      ``(module, variables)``; ``module.output_kind`` says what its maps are (see
      :func:`from_flax_saliency`).
    """
    _checks.check_choice("name", name, SALIENCY_MODEL_NAMES)
    _checks.check_positive_int("width", width)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"`input_shape` must be (height, width, channels); got {tuple(input_shape)}."
        )
    module = _REGISTRY[name](int(width), shape)
    # One jitted init (an eager one compiles every initialiser and layer separately), with the
    # threefry lowering that XLA CPU compiles ~3x faster; it still costs seconds per model, so
    # it is compiled once per module and input shape (the module is a static argument).
    with _compile.fast_threefry():
        variables = _init(module, key, jnp.zeros((1,) + shape, jnp.float32))
    return module, variables


@functools.partial(jax.jit, static_argnums=0)
def _init(module: nn.Module, key: jax.Array, x: jax.Array) -> dict[str, Any]:
    """``module.init`` in inference mode, jitted once per (module, shapes) (issue 19)."""
    return module.init(key, x, train=False)
