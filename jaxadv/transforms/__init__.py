"""Attack step rules as optax ``GradientTransformation``s (compose with ``optax.chain``): the
classic normalizations; Laplacian smoothing; SAPF's ℓp-box ADMM mask update; the saliency paper's
update-rule library (shared first/second-momentum pieces, of which MI-FGSM's momentum is a special
case; the rules); SMBEA's long-term gradient memory."""

from jaxadv.transforms._normalize import l1_steepest as l1_steepest
from jaxadv.transforms._normalize import normalize_by_l1_norm as normalize_by_l1_norm
from jaxadv.transforms._normalize import normalize_by_l2_norm as normalize_by_l2_norm
from jaxadv.transforms._normalize import sign as sign
from jaxadv.transforms._smoothing import smooth_updates as smooth_updates
from jaxadv.transforms._lp_box_admm import RHO_GROWTH as ADMM_RHO_GROWTH
from jaxadv.transforms._lp_box_admm import RHO_MAX as ADMM_RHO_MAX
from jaxadv.transforms._lp_box_admm import LpBoxADMMState as LpBoxADMMState
from jaxadv.transforms._lp_box_admm import binarize as binarize
from jaxadv.transforms._lp_box_admm import check_groups as check_groups
from jaxadv.transforms._lp_box_admm import group_soft_threshold as group_soft_threshold
from jaxadv.transforms._lp_box_admm import lp_box_admm as lp_box_admm
from jaxadv.transforms._lp_box_admm import project_box as project_box
from jaxadv.transforms._lp_box_admm import project_sphere as project_sphere
from jaxadv.transforms._lp_box_admm import sapf_step_schedule as sapf_step_schedule
from jaxadv.transforms._momenta import NORMALIZERS as NORMALIZERS
from jaxadv.transforms._momenta import SECOND_MOMENTA as SECOND_MOMENTA
from jaxadv.transforms._momenta import FirstMomentumState as FirstMomentumState
from jaxadv.transforms._momenta import ScaleByMomentaState as ScaleByMomentaState
from jaxadv.transforms._momenta import SecondMomentumState as SecondMomentumState
from jaxadv.transforms._momenta import adaeq2m_published as adaeq2m_published
from jaxadv.transforms._momenta import check_unit_interval as check_unit_interval
from jaxadv.transforms._momenta import first_momentum as first_momentum
from jaxadv.transforms._momenta import mi_momentum as mi_momentum
from jaxadv.transforms._momenta import normalize_gradient as normalize_gradient
from jaxadv.transforms._momenta import scale_by_momenta as scale_by_momenta
from jaxadv.transforms._momenta import second_momentum as second_momentum
from jaxadv.transforms._update_rules import PAPER_NAMES as PAPER_NAMES
from jaxadv.transforms._update_rules import RULES as RULES
from jaxadv.transforms._update_rules import UPDATE_RULES as UPDATE_RULES
from jaxadv.transforms._update_rules import RuleStep as RuleStep
from jaxadv.transforms._update_rules import adaeq2m as adaeq2m
from jaxadv.transforms._update_rules import adaeq2m_v2 as adaeq2m_v2
from jaxadv.transforms._update_rules import adagrad_decay_im as adagrad_decay_im
from jaxadv.transforms._update_rules import adagrad_plus_im as adagrad_plus_im
from jaxadv.transforms._update_rules import adam_decay_im as adam_decay_im
from jaxadv.transforms._update_rules import adam_vanilla_im as adam_vanilla_im
from jaxadv.transforms._update_rules import msgd_mim as msgd_mim
from jaxadv.transforms._update_rules import sgd_ifgsm as sgd_ifgsm
from jaxadv.transforms._update_rules import sgd_ifgv as sgd_ifgv
from jaxadv.transforms._smbea import LongTermMemoryState as LongTermMemoryState
from jaxadv.transforms._smbea import MemoryHParams as MemoryHParams
from jaxadv.transforms._smbea import constraint_schedule as constraint_schedule
from jaxadv.transforms._smbea import next_minibatch as next_minibatch
from jaxadv.transforms._smbea import scale_by_long_term_memory as scale_by_long_term_memory
from jaxadv.transforms._smbea import smbea_step as smbea_step
# ZOO's coordinate step rules (per-coordinate Adam and Newton, only the chosen coordinates move)
from jaxadv.transforms._coordinate import CoordinateAdamState as CoordinateAdamState
from jaxadv.transforms._coordinate import coordinate_adam as coordinate_adam
from jaxadv.transforms._coordinate import coordinate_newton as coordinate_newton
# Dual-perturbation attack (issue 17): per-region normalised steepest steps and step sizes
from jaxadv.transforms._region import REGION_NORMS as REGION_NORMS
from jaxadv.transforms._region import region_scale as region_scale
from jaxadv.transforms._region import region_steepest as region_steepest
# Translation invariance (TI, issue 22): the gradient smoothed by a Gaussian kernel
from jaxadv.transforms._translation import gaussian_kernel as gaussian_kernel
from jaxadv.transforms._translation import smooth_image as smooth_image
from jaxadv.transforms._translation import translation_invariant as translation_invariant
