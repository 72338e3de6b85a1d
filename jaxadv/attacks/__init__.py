"""Attacks: the runner, the ``Attack`` assembly, and the classic recipes."""

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
from jaxadv.attacks._result import AttackResult as AttackResult
from jaxadv.attacks._result import perturbation_norms as perturbation_norms
from jaxadv.attacks._runner import Program as Program
from jaxadv.attacks._runner import descend as descend
from jaxadv.attacks._runner import descent as descent
from jaxadv.attacks._runner import run_program as run_program
from jaxadv.attacks._cw import constant_search as constant_search
from jaxadv.attacks._runner import with_context as with_context
from jaxadv.attacks._smooth import QuickSmoothPGD as QuickSmoothPGD
from jaxadv.attacks._smooth import SmoothCarliniWagner as SmoothCarliniWagner
from jaxadv.attacks._smooth import SmoothHParams as SmoothHParams
from jaxadv.attacks._smooth import SmoothingConfig as SmoothingConfig
from jaxadv.attacks._smooth import qpgd2 as qpgd2
from jaxadv.attacks._smooth import scw as scw
