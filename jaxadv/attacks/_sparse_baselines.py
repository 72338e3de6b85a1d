"""The sparse (ℓ0) baselines of SAPF's Table 1, one module each; imported from here.

* :func:`pgd_l0_linf`: PGD under an ℓ0 + ℓ∞ budget (Croce & Hein, ICCV 2019), ``_pgd_l0``;
* :func:`cw_l0`: C&W-ℓ0, C&W-ℓ2 on a shrinking set of allowed pixels (S&P 2017), ``_cw_l0``;
* :func:`sparsefool`: SparseFool, DeepFool + an ℓ1 linear solver (CVPR 2019), ``_sparsefool``.

Each returns an attack with ``hparams``, ``batch``, ``sweep`` and a ``targeted`` option.
"""

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
