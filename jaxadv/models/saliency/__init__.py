"""Saliency victims: small faithful Flax versions of published fixation-prediction models, the
uniform victim interface (maps that are log-densities, [0, 1] or [-1, 1]) with named hidden
layers, and weight converters from PyTorch-style state dicts."""

from jaxadv.models.saliency._attention import (  # issue 18
    PyramidSpatialAttention,
    SoftmaxSpatialAttention,
    SqueezeExcitation,
)
from jaxadv.models.saliency._convert import (
    GAZEGAN_UNUSED_PREFIXES,
    densesal_from_torch_state_dict,  # issue 18
    gazegan_from_torch_state_dict,
    load_state_dict,
    salgan_from_torch_state_dict,
    torch_conv_to_hwio,
    torch_conv_transpose_to_hwio,
)
from jaxadv.models.saliency._dcnsal import DCNSal  # issue 18
from jaxadv.models.saliency._deepgaze import (
    DeepGazeII,
    gaussian_log_center_bias,
    trainable_mask,
    with_log_center_bias,
)
from jaxadv.models.saliency._deform import DeformConv, deform_conv2d  # issue 18
from jaxadv.models.saliency._densesal import DenseNetFeatures, DenseSal  # issue 18
from jaxadv.models.saliency._gazegan import CSCNet, GazeGAN
from jaxadv.models.saliency._inception import (  # issue 18
    DCNInception,
    DCNTwoStream,
    InceptionResNetBlock,
    InceptionResNetFeatures,
)
from jaxadv.models.saliency._layers import TorchConvTranspose
from jaxadv.models.saliency._pix2pixhd import ConvLSTM as ConvLSTM  # issue 18
from jaxadv.models.saliency._pix2pixhd import Pix2PixHDGlobal as Pix2PixHDGlobal  # issue 18
from jaxadv.models.saliency._pix2pixhd import Pix2PixHDLocal as Pix2PixHDLocal  # issue 18
from jaxadv.models.saliency._salgan import SalGAN, SalGANDiscriminator
from jaxadv.models.saliency._salicon import SALICON
from jaxadv.models.saliency._sam import SAM
from jaxadv.models.saliency._sam import DCNSAMVGG as DCNSAMVGG  # issue 18
from jaxadv.models.saliency._sam import DilatedBottleneck as DilatedBottleneck  # issue 18
from jaxadv.models.saliency._sam import DilatedResNet as DilatedResNet  # issue 18
from jaxadv.models.saliency._sam import SAMResNet as SAMResNet  # issue 18
from jaxadv.models.saliency._unisal import UNISAL
from jaxadv.models.saliency._victim import OUTPUT_KINDS, SaliencyVictim, from_flax_saliency
from jaxadv.models.saliency._zoo import SALIENCY_MODEL_NAMES, saliency_model

__all__ = [
    "GAZEGAN_UNUSED_PREFIXES",
    "OUTPUT_KINDS",
    "CSCNet",
    "ConvLSTM",
    "Pix2PixHDGlobal",
    "Pix2PixHDLocal",
    "SALICON",
    "SALIENCY_MODEL_NAMES",
    "SAM",
    "UNISAL",
    "DCNInception",
    "DCNSAMVGG",
    "DilatedBottleneck",
    "DilatedResNet",
    "SAMResNet",
    "DCNSal",
    "DCNTwoStream",
    "DeepGazeII",
    "DeformConv",
    "DenseNetFeatures",
    "DenseSal",
    "GazeGAN",
    "InceptionResNetBlock",
    "InceptionResNetFeatures",
    "PyramidSpatialAttention",
    "SalGAN",
    "SalGANDiscriminator",
    "SaliencyVictim",
    "SoftmaxSpatialAttention",
    "SqueezeExcitation",
    "TorchConvTranspose",
    "deform_conv2d",
    "densesal_from_torch_state_dict",
    "from_flax_saliency",
    "gaussian_log_center_bias",
    "gazegan_from_torch_state_dict",
    "load_state_dict",
    "salgan_from_torch_state_dict",
    "saliency_model",
    "torch_conv_to_hwio",
    "torch_conv_transpose_to_hwio",
    "trainable_mask",
    "with_log_center_bias",
]
