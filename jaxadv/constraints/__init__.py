"""Feasible sets for the perturbation: projections and random starts (one example each)."""

from jaxadv.constraints._balls import NORMS as NORMS
from jaxadv.constraints._balls import l1_ball as l1_ball
from jaxadv.constraints._balls import l2_ball as l2_ball
from jaxadv.constraints._balls import linf_ball as linf_ball
from jaxadv.constraints._balls import norm_ball as norm_ball
from jaxadv.constraints._constraint import Constraint as Constraint
from jaxadv.constraints._constraint import intersect as intersect
from jaxadv.constraints._constraint import pixel_box as pixel_box
from jaxadv.constraints._constraint import unconstrained as unconstrained
from jaxadv.constraints._l0 import UNITS as L0_UNITS
from jaxadv.constraints._l0 import check_budget as check_l0_budget
from jaxadv.constraints._l0 import check_budget_fits as check_l0_budget_fits
from jaxadv.constraints._l0 import l0_ball as l0_ball
from jaxadv.constraints._l0 import l0_linf_ball as l0_linf_ball
from jaxadv.constraints._l0 import maskable_units as maskable_units
from jaxadv.constraints._l0 import project_l0_box as project_l0_box
from jaxadv.constraints._l0 import top_k_mask as top_k_mask
from jaxadv.constraints._l1_box import l1_box_ball as l1_box_ball
from jaxadv.constraints._l1_box import project_l1_box as project_l1_box
# Dual-perturbation attack (issue 17): one ball on the foreground, another on the background
from jaxadv.constraints._dual import DUAL_NORMS as DUAL_NORMS
from jaxadv.constraints._dual import dual_ball as dual_ball
