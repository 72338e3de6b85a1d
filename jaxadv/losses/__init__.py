"""Objectives, always MINIMISED: the library flips no sign anywhere else (see _classification).
Classification objectives, and the saliency losses for training and attacking saliency models."""

from jaxadv.losses._classification import LOSSES as LOSSES
from jaxadv.losses._classification import Objective as Objective
from jaxadv.losses._classification import classification_objective as classification_objective
from jaxadv.losses._classification import cross_entropy as cross_entropy
from jaxadv.losses._classification import cw_margin as cw_margin
from jaxadv.losses._classification import dlr as dlr
from jaxadv.losses._saliency import GAZEGAN_LOSS as GAZEGAN_LOSS
from jaxadv.losses._saliency import OUTPUT_KINDS as OUTPUT_KINDS
from jaxadv.losses._saliency import SALIENCY_LOSSES as SALIENCY_LOSSES
from jaxadv.losses._saliency import SAM_LOSS as SAM_LOSS
from jaxadv.losses._saliency import acs_loss as acs_loss
from jaxadv.losses._saliency import cc_loss as cc_loss
from jaxadv.losses._saliency import combined_loss as combined_loss
from jaxadv.losses._saliency import kl_loss as kl_loss
from jaxadv.losses._saliency import l1_loss as l1_loss
from jaxadv.losses._saliency import nss_loss as nss_loss
from jaxadv.losses._saliency import saliency_loss as saliency_loss
from jaxadv.losses._saliency import sim_loss as sim_loss
from jaxadv.losses._saliency import smooth_acs_loss as smooth_acs_loss
from jaxadv.losses._saliency import soft_histogram as soft_histogram
from jaxadv.losses._saliency import to_saliency_map as to_saliency_map
# Dual-perturbation attack (issue 17): the foreground score S of a saliency map
from jaxadv.losses._foreground import foreground_score as foreground_score
