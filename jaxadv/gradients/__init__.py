"""Gradient oracles: exact (white-box) now; query-based estimators plug in the same way."""

from jaxadv.gradients._exact import Exact as Exact
from jaxadv.gradients._exact import GradientOracle as GradientOracle
from jaxadv.gradients._exact import exact as exact
