"""Attack step rules as optax ``GradientTransformation``s (compose with ``optax.chain``): the
classic normalisations and momentum, Laplacian smoothing, and SAPF's ℓp-box ADMM mask update."""

from jaxadv.transforms._momentum import MIMomentumState as MIMomentumState
from jaxadv.transforms._momentum import mi_momentum as mi_momentum
from jaxadv.transforms._normalize import l1_steepest as l1_steepest
from jaxadv.transforms._normalize import normalize_by_l1_norm as normalize_by_l1_norm
from jaxadv.transforms._normalize import normalize_by_l2_norm as normalize_by_l2_norm
from jaxadv.transforms._normalize import sign as sign
from jaxadv.transforms._smoothing import smooth_updates as smooth_updates
from jaxadv.transforms._lp_box_admm import LpBoxADMMState as LpBoxADMMState
from jaxadv.transforms._lp_box_admm import binarize as binarize
from jaxadv.transforms._lp_box_admm import group_soft_threshold as group_soft_threshold
from jaxadv.transforms._lp_box_admm import lp_box_admm as lp_box_admm
from jaxadv.transforms._lp_box_admm import project_box as project_box
from jaxadv.transforms._lp_box_admm import project_sphere as project_sphere
from jaxadv.transforms._lp_box_admm import sapf_step_schedule as sapf_step_schedule
