"""Perturbation models: latent ``theta`` ↦ adversarial input (one example)."""

from jaxadv.perturbations._models import Additive as Additive
from jaxadv.perturbations._models import Perturbation as Perturbation
from jaxadv.perturbations._models import TanhBox as TanhBox
from jaxadv.perturbations._models import additive as additive
from jaxadv.perturbations._models import tanh_box as tanh_box
from jaxadv.perturbations._smoothed import Smoothed as Smoothed
