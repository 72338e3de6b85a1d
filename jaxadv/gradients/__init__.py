"""Gradient oracles: the exact gradient (white-box) and query-based estimators (black-box)."""

from jaxadv.gradients._exact import Exact as Exact
from jaxadv.gradients._exact import GradientOracle as GradientOracle
from jaxadv.gradients._exact import exact as exact
from jaxadv.gradients._nes import NES as NES
from jaxadv.gradients._nes import nes as nes
from jaxadv.gradients._nes import probe_losses as probe_losses
# Transfer-prior estimators: P-RGF and the prior-guided bandit (Che et al. Alg. 2, Yan et al.)
from jaxadv.gradients._prgf import PRGF as PRGF
from jaxadv.gradients._prgf import prgf as prgf
from jaxadv.gradients._prgf import prgf_lambda as prgf_lambda
from jaxadv.gradients._prior_bandit import PriorBandit as PriorBandit
from jaxadv.gradients._prior_bandit import prior_bandit as prior_bandit
# ZOO (coordinate finite differences) and AutoZOOM (random vectors in a reduced space)
from jaxadv.gradients._autozoom import AutoZOOM as AutoZOOM
from jaxadv.gradients._autozoom import autozoom as autozoom
from jaxadv.gradients._autozoom import sphere_directions as sphere_directions
from jaxadv.gradients._zoo import ZOO as ZOO
from jaxadv.gradients._zoo import CoordinateEstimate as CoordinateEstimate
from jaxadv.gradients._zoo import zoo as zoo
# Bandits-TD: a prior learned online (time prior) at a tiled resolution (data prior)
from jaxadv.gradients._bandits import Bandits as Bandits
from jaxadv.gradients._bandits import bandits as bandits
# finite-difference estimators: SPSA (antithetic ±1 probes) and RGF (one-sided, unit directions)
from jaxadv.gradients._rgf import RGF as RGF
from jaxadv.gradients._rgf import rgf as rgf
from jaxadv.gradients._rgf import rgf_estimate as rgf_estimate
from jaxadv.gradients._rgf import rgf_directions as rgf_directions
from jaxadv.gradients._spsa import SPSA as SPSA
from jaxadv.gradients._nes import antithetic_estimate as antithetic_estimate
from jaxadv.gradients._spsa import spsa as spsa
# Transfer boosters (issue 22): input diversity, scale copies, Admix, look-ahead, variance tuning
from jaxadv.gradients._diversity import diverse_input as diverse_input
from jaxadv.gradients._diversity import resize_and_pad as resize_and_pad
from jaxadv.gradients._transfer import Transfer as Transfer
from jaxadv.gradients._transfer import TransferState as TransferState
