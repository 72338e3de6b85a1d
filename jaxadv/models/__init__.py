"""Flax victims: classifiers, their checkpoints, weight converters, input defences (a victim
behind a transform such as the bilateral filter), and ensembles of victims (SMBEA's
mini-batches). RobustBench's and torchvision's architectures (:class:`WideResNet`,
:func:`PreActResNet18`, :func:`ResNet18`, :func:`ResNet50`, :func:`VGG16`, :func:`VGG19`) convert
from PyTorch state dicts with :func:`from_torch_state_dict`, behind :class:`Normalized`, and
:func:`load_robustbench` reads RobustBench's ``.pt`` files. Saliency models (maps, not classes) are in :mod:`jaxadv.models.saliency`; training
and evaluation are in :mod:`jaxadv.training` (models import nothing above them)."""

from jaxadv.models._c4_net import C4Net
from jaxadv.models._checkpoint import (
    TRAINING_REMEDY,
    CheckpointCorruptedError,
    cache_lock,
    default_cache_dir,
    describe_module,
    restore_step_meta,
    restore_step_tree,
    restore_tree,
    restore_variables,
    save_step,
    save_variables,
    step_item_metadata,
    tree_differences,
)
from jaxadv.models._classifiers import CLASSIFIER_NAMES, classifier
from jaxadv.models._converters import from_torch_state_dict
from jaxadv.models._cw_net import CWNet
from jaxadv.models._ensemble import FEATURE_STRATEGIES, Ensemble, ensemble
from jaxadv.models._defenses import BilateralTransform, bilateral_defense, with_input_transform
from jaxadv.models._layers import max_pool_2x2
# Meta Attack (issue 16): the meta attacker (image -> gradient) carried beside a black-box victim
from jaxadv.models._meta_attacker import (
    MetaAttacker,
    WithMetaAttacker,
    meta_attacker_of,
    with_meta_attacker,
)
from jaxadv.models._randomized import RandomizedVictim, with_input_noise
from jaxadv.models._score_only import GradientAccessError, hard_label, is_black_box, score_only
# Transfer priors: a black-box victim with the attacker's white-box surrogates
from jaxadv.models._surrogates import WithSurrogates, surrogates_of, with_surrogates
from jaxadv.models._relu_mlp import ReluMLP, relu_mlp_layers
from jaxadv.models._resnet import BasicBlock, ResNet
from jaxadv.models._strided_conv import Stride2Conv, conv_stride2
from jaxadv.models._victim import Victim, from_flax
# RobustBench's and torchvision's architectures, their normalisation and loader (issue 23)
from jaxadv.models._normalized import IMAGENET_MEAN, IMAGENET_STD, Normalized
from jaxadv.models._robustbench import ROBUSTBENCH_MODELS, load_robustbench
from jaxadv.models._robustbench_nets import PreActResNet, PreActResNet18, WideResNet
from jaxadv.models._torchvision_nets import (
    VGG,
    VGG16,
    VGG19,
    ResNet18,
    ResNet50,
    TorchvisionResNet,
)
from jaxadv.models import saliency
# Dual-perturbation attack (issue 17): a classifier carrying a saliency model for the λ·S term
from jaxadv.models._with_saliency import WithSaliency, saliency_of, with_saliency
# video victims (issue 16): (2+1)D convolutions and a two-stream frame model
from jaxadv.models._video_nets import (
    VIDEO_CLASSIFIER_NAMES,
    FrameNet,
    R2Plus1DNet,
    TwoStreamNet,
    video_classifier,
    video_from_flax,
)

__all__ = [
    "CLASSIFIER_NAMES",
    "BasicBlock",
    "BilateralTransform",
    "C4Net",
    "CheckpointCorruptedError",
    "CWNet",
    "Ensemble",
    "GradientAccessError",
    "MetaAttacker",
    "WithMetaAttacker",
    "meta_attacker_of",
    "with_meta_attacker",
    "FEATURE_STRATEGIES",
    "RandomizedVictim",
    "ReluMLP",
    "ResNet",
    "Stride2Conv",
    "Victim",
    "WithSaliency",
    "WithSurrogates",
    "bilateral_defense",
    "cache_lock",
    "classifier",
    "conv_stride2",
    "default_cache_dir",
    "describe_module",
    "ensemble",
    "from_flax",
    "from_torch_state_dict",
    "hard_label",
    "is_black_box",
    "max_pool_2x2",
    "relu_mlp_layers",
    "restore_tree",
    "restore_variables",
    "saliency",
    "score_only",
    "save_variables",
    "saliency_of",
    "surrogates_of",
    "tree_differences",
    "with_input_noise",
    "with_input_transform",
    "with_saliency",
    "with_surrogates",
    # video victims (issue 16)
    "VIDEO_CLASSIFIER_NAMES",
    "FrameNet",
    "R2Plus1DNet",
    "TwoStreamNet",
    "video_classifier",
    "video_from_flax",
    # RobustBench's and torchvision's architectures (issue 23)
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalized",
    "PreActResNet",
    "PreActResNet18",
    "ROBUSTBENCH_MODELS",
    "ResNet18",
    "ResNet50",
    "TorchvisionResNet",
    "VGG",
    "VGG16",
    "VGG19",
    "WideResNet",
    "load_robustbench",
]
