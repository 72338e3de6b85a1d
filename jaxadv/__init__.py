"""jaxadv: adversarial attacks as pure, compiled JAX functions.

Attacks are written for ONE example and batched with ``jax.vmap``; step rules are optax
``GradientTransformation`` objects; victims are Flax models passed as pytrees. See README.md.
"""

from jaxadv import attacks as attacks
from jaxadv import constraints as constraints
from jaxadv import data as data
from jaxadv import gradients as gradients
from jaxadv import image as image
from jaxadv import losses as losses
from jaxadv import metrics as metrics
from jaxadv import models as models
from jaxadv import perturbations as perturbations
from jaxadv import results as results
from jaxadv import sweeps as sweeps
from jaxadv import training as training
from jaxadv import transforms as transforms
# Randomized smoothing (issue 17, helper D)
from jaxadv import certify as certify
# The transfer matrix: sources × targets × attacks in one compiled call (issue 22)
from jaxadv import transfer as transfer
from jaxadv._compile_cache import enable_compilation_cache as enable_compilation_cache
from jaxadv.attacks import Attack as Attack
from jaxadv.attacks import HParams as HParams
from jaxadv.models import Victim as Victim
from jaxadv.results import AttackResult as AttackResult

__version__ = "0.1.0"
