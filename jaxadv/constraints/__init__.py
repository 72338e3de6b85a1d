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
