"""Metrics of attacks: accuracy, robust accuracy, success rate, norms, and the smooth-examples
protocol (P_suc, conditional distortion D̄, operating characteristic), the sparse-attack tables,
transfer success (source attacked, target evaluated), and exact minimum-norm perturbations of
small ReLU networks (MIP), the minimum-norm evaluation protocol (robustness curves, AttackBench
local optimality, query counts), and the saliency benchmark metrics
(:mod:`jaxadv.metrics.saliency`)."""

from jaxadv.metrics._classification import NORM_NAMES as NORM_NAMES
from jaxadv.metrics._classification import accuracy as accuracy
from jaxadv.metrics._classification import mean_norms as mean_norms
from jaxadv.metrics._classification import per_example_norms as per_example_norms
from jaxadv.metrics._classification import robust_accuracy as robust_accuracy
from jaxadv.metrics._classification import success_rate as success_rate
from jaxadv.metrics._classification import summarize as summarize
from jaxadv.metrics._exact_min_norm import MIN_NORMS as MIN_NORMS
from jaxadv.metrics._exact_min_norm import MinNormResult as MinNormResult
from jaxadv.metrics._exact_min_norm import exact_min_norm as exact_min_norm
from jaxadv.metrics._exact_min_norm import relu_forward as relu_forward
from jaxadv.metrics._operating import conditional_distortion as conditional_distortion
from jaxadv.metrics._operating import min_successful_distortion as min_successful_distortion
from jaxadv.metrics._operating import operating_characteristic as operating_characteristic
from jaxadv.metrics._operating import (
    plot_operating_characteristics as plot_operating_characteristics,
)
from jaxadv.metrics._operating import protocol_row as protocol_row
from jaxadv.metrics._operating import success_probability as success_probability
from jaxadv.metrics._robustness import adversarial_distance as adversarial_distance
from jaxadv.metrics._robustness import local_optimality as local_optimality
from jaxadv.metrics._robustness import query_counts as query_counts
from jaxadv.metrics._robustness import robust_accuracy_curve as robust_accuracy_curve
from jaxadv.metrics._sparse import case_table as case_table
from jaxadv.metrics._sparse import format_case_table as format_case_table
from jaxadv.metrics._sparse import k_sweep as k_sweep
from jaxadv.metrics._sparse import smallest_successful_budget as smallest_successful_budget
from jaxadv.metrics._sparse import target_pairs as target_pairs
# transfer of adversarial examples from a source (e.g. a Papernot substitute) to a target model
from jaxadv.metrics._transfer import TransferResult as TransferResult
from jaxadv.metrics._transfer import transfer_success as transfer_success
from jaxadv.metrics import saliency as saliency
# Meta Attack (issue 16): cosine of estimated and white-box gradients
from jaxadv.metrics._gradient import gradient_cosine as gradient_cosine
# ... and of any gradient oracle's estimate (issue 20: Table 2.6 for every estimator)
from jaxadv.metrics._gradient import estimator_cosine as estimator_cosine
# smooth adversarial examples (issue 20): imperceptibility metrics
from jaxadv.metrics._imperceptibility import psnr as psnr
from jaxadv.metrics._mad import mad as mad
# universal perturbations and adversarial patches (issue 22): fooling rate, targeted patch success
from jaxadv.metrics._universal import apply_universal as apply_universal
from jaxadv.metrics._universal import check_universal_inputs as check_universal_inputs
from jaxadv.metrics._universal import fooled as universal_fooled
from jaxadv.metrics._universal import fooling_rate as fooling_rate
from jaxadv.metrics._universal import is_saliency as is_saliency
from jaxadv.metrics._universal import map_similarity as map_similarity
from jaxadv.metrics._universal import patch_success as patch_success
