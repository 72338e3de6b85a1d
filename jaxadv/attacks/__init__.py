"""Attacks: the one contract (``AttackBase``), the driver, the runner, and every family."""

from jaxadv.attacks._base import AttackBase as AttackBase
from jaxadv.attacks._base import NonFiniteOutputError as NonFiniteOutputError
from jaxadv.attacks._base import Spec as Spec
from jaxadv.attacks._driver import FINISH as FINISH
from jaxadv.attacks._driver import INIT as INIT
from jaxadv.attacks._driver import WHOLE as WHOLE
from jaxadv.attacks._driver import per_example as per_example
from jaxadv.attacks._driver import plan as plan
from jaxadv.attacks._driver import run_calls as run_calls
from jaxadv.attacks._driver import run_program as run_program
from jaxadv.attacks._attack import Attack as Attack
from jaxadv.attacks._attack import HParams as HParams
from jaxadv.attacks._attack import best_of as best_of
from jaxadv.attacks._cw import CarliniWagnerL2 as CarliniWagnerL2
from jaxadv.attacks._cw import cw_l2 as cw_l2
from jaxadv.attacks._recipes import Ball as Ball
from jaxadv.attacks._recipes import SteepestStep as SteepestStep
from jaxadv.attacks._recipes import bim as bim
from jaxadv.attacks._recipes import fgsm as fgsm
from jaxadv.attacks._recipes import mi_fgsm as mi_fgsm
from jaxadv.attacks._recipes import pgd as pgd
from jaxadv.results import AttackResult as AttackResult
from jaxadv.results import perturbation_norms as perturbation_norms
from jaxadv.attacks._runner import Program as Program
from jaxadv.attacks._runner import descent as descent
from jaxadv.attacks._cw import constant_search as constant_search
from jaxadv.attacks._runner import with_context as with_context
from jaxadv.attacks._smooth import QuickSmoothPGD as QuickSmoothPGD
from jaxadv.attacks._smooth import SmoothCarliniWagner as SmoothCarliniWagner
from jaxadv.attacks._smooth import SmoothHParams as SmoothHParams
from jaxadv.attacks._smooth import SmoothingConfig as SmoothingConfig
from jaxadv.attacks._smooth import qpgd2 as qpgd2
from jaxadv.attacks._smooth import scw as scw
from jaxadv.attacks._cw_l0 import CarliniWagnerL0 as CarliniWagnerL0
from jaxadv.attacks._cw_l0 import CWL0Params as CWL0Params
from jaxadv.attacks._cw_l0 import cw_l0 as cw_l0
from jaxadv.attacks._pgd_l0 import L0LinfParams as L0LinfParams
from jaxadv.attacks._pgd_l0 import SparsePGD as SparsePGD
from jaxadv.attacks._pgd_l0 import pgd_l0_linf as pgd_l0_linf
from jaxadv.attacks._sparsefool import SparseFool as SparseFool
from jaxadv.attacks._sparsefool import SparseFoolParams as SparseFoolParams
from jaxadv.attacks._sparsefool import l1_linear_solve as l1_linear_solve
from jaxadv.attacks._sparsefool import sparsefool as sparsefool
from jaxadv.attacks._sapf import SAPF as SAPF
from jaxadv.attacks._sapf import SAPFParams as SAPFParams
from jaxadv.attacks._sapf import common_positions as common_positions
from jaxadv.attacks._sapf import sapf as sapf
from jaxadv.attacks._sapf import sapf_gs as sapf_gs
from jaxadv.attacks._sapf import sapf_vi as sapf_vi
# issue 20: the sparse baselines of SAPF's Table 1 (JSMA, One-Pixel, CornerSearch, StrAttack)
from jaxadv.attacks._jsma import JSMA as JSMA
from jaxadv.attacks._jsma import JSMAParams as JSMAParams
from jaxadv.attacks._jsma import jsma as jsma
from jaxadv.attacks._jsma import saliency_pair as saliency_pair
from jaxadv.attacks._one_pixel import OnePixel as OnePixel
from jaxadv.attacks._one_pixel import OnePixelParams as OnePixelParams
from jaxadv.attacks._one_pixel import de_generation as de_generation
from jaxadv.attacks._one_pixel import de_indices as de_indices
from jaxadv.attacks._one_pixel import one_pixel as one_pixel
from jaxadv.attacks._corner_search import CornerSearch as CornerSearch
from jaxadv.attacks._corner_search import CornerSearchParams as CornerSearchParams
from jaxadv.attacks._corner_search import corner_ranking as corner_ranking
from jaxadv.attacks._corner_search import corner_search as corner_search
from jaxadv.attacks._corner_search import rank_weights as corner_rank_weights
from jaxadv.attacks._str_attack import StrAttack as StrAttack
from jaxadv.attacks._str_attack import StrAttackParams as StrAttackParams
from jaxadv.attacks._str_attack import group_soft_threshold as group_soft_threshold
from jaxadv.attacks._str_attack import str_attack as str_attack
from jaxadv.attacks._saliency import SALIENCY_ATTACK_LOSSES as SALIENCY_ATTACK_LOSSES
from jaxadv.attacks._saliency import SaliencyAttack as SaliencyAttack
from jaxadv.attacks._saliency import SaliencyObjective as SaliencyObjective
from jaxadv.attacks._saliency import clean_outputs as saliency_clean_outputs
from jaxadv.attacks._saliency import saliency_pgd as saliency_pgd
from jaxadv.attacks._rule_library import BUDGETS as RULE_BUDGETS
from jaxadv.attacks._rule_library import HotColdObjective as HotColdObjective
from jaxadv.attacks._rule_library import PerceptualBudget as PerceptualBudget
from jaxadv.attacks._rule_library import RuleAttack as RuleAttack
from jaxadv.attacks._rule_library import RuleHParams as RuleHParams
from jaxadv.attacks._rule_library import rule_attack as rule_attack
from jaxadv.attacks._smbea import SMBEAHParams as SMBEAHParams
from jaxadv.attacks._smbea import SMBEAttack as SMBEAttack
from jaxadv.attacks._smbea import smbea as smbea
from jaxadv.attacks._subspace import SubspaceAttack as SubspaceAttack
from jaxadv.attacks._subspace import SubspaceHParams as SubspaceHParams
from jaxadv.attacks._subspace import subspace_attack as subspace_attack
# AutoAttack: the ensemble over the evaluation families, with its flags
from jaxadv.attacks._autoattack import ATTACK_NAMES as AUTOATTACK_ATTACKS
from jaxadv.attacks._autoattack import NORMS as AUTOATTACK_NORMS
from jaxadv.attacks._autoattack import VERSIONS as AUTOATTACK_VERSIONS
from jaxadv.attacks._autoattack import AutoAttack as AutoAttack
from jaxadv.attacks._autoattack import AutoAttackReport as AutoAttackReport
from jaxadv.attacks._autoattack import autoattack as autoattack
from jaxadv.attacks._autoattack_flags import Flag as Flag
# Minimum-norm attacks: DeepFool (ℓ2, ℓ∞) and EAD (ℓ1).
from jaxadv.attacks._deepfool import DeepFool as DeepFool
from jaxadv.attacks._deepfool import DeepFoolParams as DeepFoolParams
from jaxadv.attacks._deepfool import deepfool as deepfool
from jaxadv.attacks._ead import EAD as EAD
from jaxadv.attacks._ead import EADParams as EADParams
from jaxadv.attacks._ead import ead as ead
# Minimum-norm attacks: FMN (ℓ0/ℓ1/ℓ2/ℓ∞) and DDN (ℓ2)
from jaxadv.attacks._ddn import DDNParams as DDNParams
from jaxadv.attacks._ddn import DecoupledDirectionNorm as DecoupledDirectionNorm
from jaxadv.attacks._ddn import ddn as ddn
from jaxadv.attacks._fmn import FastMinimumNorm as FastMinimumNorm
from jaxadv.attacks._fmn import FMNParams as FMNParams
from jaxadv.attacks._fmn import fmn as fmn
# APGD family (Croce & Hein 2020, 2021): APGD-CE/-DLR/-T, ℓ1-APGD, EOT
from jaxadv.attacks._apgd import APGD as APGD
from jaxadv.attacks._apgd import APGDParams as APGDParams
from jaxadv.attacks._apgd import apgd as apgd
from jaxadv.attacks._apgd_schedule import checkpoints as apgd_checkpoints
# FAB (Croce & Hein, ICML 2020): minimum-norm boundary attack, and its projection
from jaxadv.attacks._fab import FAB as FAB
from jaxadv.attacks._fab import FABParams as FABParams
from jaxadv.attacks._fab import fab as fab
from jaxadv.attacks._fab_projection import hyperplane_box_projection as hyperplane_box_projection
# Square Attack (score-based, ℓ∞ and ℓ2)
from jaxadv.attacks._square import HALVING_POINTS as SQUARE_HALVING_POINTS
from jaxadv.attacks._square import Square as Square
from jaxadv.attacks._square import SquareParams as SquareParams
from jaxadv.attacks._square import square as square
from jaxadv.attacks._square import square_schedule as square_schedule
from jaxadv.attacks._square import square_side as square_side
# query-based attacks (estimator × step rule × constraint under a query budget)
from jaxadv.attacks._query import QueryAttack as QueryAttack
from jaxadv.attacks._query import QueryHParams as QueryHParams
from jaxadv.attacks._query import SaliencyQueryAttack as SaliencyQueryAttack
# Transfer-prior query attacks: P-RGF, Che et al.'s prior-boosted Alg. 2, Yan et al.'s bandits
from jaxadv.attacks._priors import SubspacePrior as SubspacePrior
from jaxadv.attacks._priors import SurrogateGradient as SurrogateGradient
from jaxadv.attacks._prior_attacks import PlainStep as PlainStep
from jaxadv.attacks._prior_attacks import prgf as prgf
from jaxadv.attacks._prior_attacks import prior_boosted as prior_boosted
from jaxadv.attacks._prior_attacks import subspace_bandits as subspace_bandits
# direct-search attacks (score-based): SignHunter, SimBA / SimBA-DCT
from jaxadv.attacks._signhunter import SignHunter as SignHunter
from jaxadv.attacks._signhunter import SignHunterParams as SignHunterParams
from jaxadv.attacks._signhunter import signhunter as signhunter
from jaxadv.attacks._simba import SimBA as SimBA
from jaxadv.attacks._simba import SimBAParams as SimBAParams
from jaxadv.attacks._simba import simba as simba
# ZOO and AutoZOOM (score-based: C&W's log-probability objective, zeroth-order estimates)
from jaxadv.attacks._zoo import LogProbMargin as LogProbMargin
from jaxadv.attacks._zoo import ReducedTanh as ReducedTanh
from jaxadv.attacks._zoo import ZerothOrderCW as ZerothOrderCW
from jaxadv.attacks._zoo import autozoom as autozoom
from jaxadv.attacks._zoo import zoo as zoo
# Meta Attack (issue 16): black-box C&W stepping on a meta attacker fine-tuned in the program
from jaxadv.attacks._meta_attack import MetaAttack as MetaAttack
from jaxadv.attacks._meta_attack import MetaOracle as MetaOracle
from jaxadv.attacks._meta_attack import meta_attack as meta_attack
# Bandits-TD (query-based, time and data priors; ℓ∞ and ℓ2)
from jaxadv.attacks._bandits import bandits as bandits
# finite-difference query attacks: NES (Ilyas et al. 2018), SPSA (Uesato et al. 2018),
# RGF (Cheng et al. 2019)
from jaxadv.attacks._fd_attacks import nes_attack as nes_attack
from jaxadv.attacks._fd_attacks import rgf_attack as rgf_attack
from jaxadv.attacks._fd_attacks import spsa_attack as spsa_attack
# Dual-perturbation attack (issue 17): foreground and background budgets, saliency term
from jaxadv.attacks._dual import DualAttack as DualAttack
from jaxadv.attacks._dual import DualHParams as DualHParams
from jaxadv.attacks._dual import DualLabels as DualLabels
from jaxadv.attacks._dual import dual_perturbation as dual_perturbation
# EOT (issue 17, helper eot): expectation over a randomized victim's draws for every Attack
from jaxadv.attacks._attack import with_eot as with_eot
# Motion-Excited Sampler (issue 16): a video query attack with motion-sparked noise
from jaxadv.attacks._me_sampler import ME_LOSSES as ME_LOSSES
from jaxadv.attacks._me_sampler import MESampler as MESampler
from jaxadv.attacks._me_sampler import MotionBandits as MotionBandits
from jaxadv.attacks._me_sampler import me_sampler as me_sampler
from jaxadv.attacks._me_sampler import sparked_noise as sparked_noise
# Transfer boosters (issue 22): DI, TI, SI, Admix, NI, variance tuning on any descent attack
from jaxadv.attacks._transfer import Admix as Admix
from jaxadv.attacks._transfer import Boosters as Boosters
from jaxadv.attacks._transfer import Diversity as Diversity
from jaxadv.attacks._transfer import Translation as Translation
from jaxadv.attacks._transfer import Variance as Variance
from jaxadv.attacks._transfer import with_transfer as with_transfer
from jaxadv.attacks._transfer_recipes import admix_fgsm as admix_fgsm
from jaxadv.attacks._transfer_recipes import di_fgsm as di_fgsm
from jaxadv.attacks._transfer_recipes import ni_fgsm as ni_fgsm
from jaxadv.attacks._transfer_recipes import si_ni_fgsm as si_ni_fgsm
from jaxadv.attacks._transfer_recipes import ti_fgsm as ti_fgsm
from jaxadv.attacks._transfer_recipes import vmi_fgsm as vmi_fgsm
from jaxadv.attacks._transfer_recipes import vni_fgsm as vni_fgsm
