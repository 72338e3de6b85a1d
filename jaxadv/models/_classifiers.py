"""Classifier architectures by name."""

from __future__ import annotations

import flax.linen as nn

from jaxadv import _checks
from jaxadv.models._c4_net import C4Net
from jaxadv.models._cw_net import CWNet
from jaxadv.models._resnet import ResNet

_REGISTRY = {
    "cw": lambda num_classes: CWNet(num_classes=num_classes),
    "c4": lambda num_classes: C4Net(num_classes=num_classes),
    "resnet": lambda num_classes: ResNet(stage_sizes=(1, 1, 1), width=16, num_classes=num_classes),
}

CLASSIFIER_NAMES = tuple(_REGISTRY)


def classifier(name: str, num_classes: int = 10) -> nn.Module:
    """The named classifier module (untrained).

    Args:
      name: ``"cw"`` (:class:`CWNet`, Carlini & Wagner 2017), ``"c4"`` (:class:`C4Net`, Zhang et
        al. 2020) or ``"resnet"`` (:class:`ResNet` with one basic block per stage and width 16,
        He et al. 2016).
      num_classes: number of output logits.

    Returns:
      A Flax linen module whose ``__call__(x, train=False)`` maps ``[b, h, w, c]`` to
      ``[b, num_classes]``.
    """
    _checks.check_choice("name", name, CLASSIFIER_NAMES)
    _checks.check_positive_int("num_classes", num_classes)
    return _REGISTRY[name](int(num_classes))
