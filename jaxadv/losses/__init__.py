"""Objectives, always MINIMISED: the library flips no sign anywhere else (see _classification)."""

from jaxadv.losses._classification import LOSSES as LOSSES
from jaxadv.losses._classification import Objective as Objective
from jaxadv.losses._classification import classification_objective as classification_objective
from jaxadv.losses._classification import cross_entropy as cross_entropy
from jaxadv.losses._classification import cw_margin as cw_margin
from jaxadv.losses._classification import dlr as dlr
