"""Saliency benchmark metrics for ONE saliency map, in JAX (``jax.vmap`` them over a batch).

Names follow the MIT saliency benchmark: ``auc_judd``, ``auc_borji``, ``auc_shuffled`` (sAUC),
``nss``, ``cc``, ``kl_div``, ``sim``, ``info_gain``, ``emd``. Definitions and the survey of what
each measures: Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics
tell us about saliency models?", TPAMI 2019 (arXiv 1604.03605).

Two conventions, chosen with ``variant=``:

- ``"mit"`` (default): the benchmark's MATLAB code, cvzoya/saliency ``code_forMetrics`` at
  5951cdc. Fixated *pixels* count once (``fixations > 0``), NSS uses the N-1 standard deviation,
  KL is regularised with MATLAB's ``eps = 2.220446049250313e-16``, SIM and IG min-max normalise
  before normalising to sum 1, AUC-Borji and sAUC sample negatives and sweep thresholds in steps
  of 0.1.
- ``"pysaliency"``: matthias-k/pysaliency 0.2.22 as the MIT/Tübingen benchmark runs it (Kümmerer,
  Wallis & Bethge, "Saliency benchmarking made easy", ECCV 2018). Every *fixation* counts (a
  pixel fixated twice weighs twice), NSS uses the population (ddof 0) standard deviation, AUCs
  are exact with ties worth 1/2 and no sampling, maps become densities without min-max.

Representation. A saliency map is ``f[h, w]``. Fixations are a count map ``fixations[h', w']``
of the ground-truth grid: the number of fixations on each pixel (build one with
:func:`fixation_map`). The MIT variant only looks at ``fixations > 0`` (a binary map works as
is); the pysaliency variant weighs each pixel by its count. Continuous ground truths
(``density``) are non-negative maps of the grid, e.g. :func:`fixation_density`.

Maps of another size. A saliency map (and IG's baseline) whose shape differs from the ground
truth's is resized to it before anything else, with a port of MATLAB's default
``imresize(map, size(gt))``: Keys bicubic (a = -0.5), antialiased when shrinking, symmetric
borders (see ``_saliency_resize``; checked against an independent numpy port to 1e-15 in float64).
It differs from MATLAB only in precision (float32 unless ``jax_enable_x64``) and in treating uint8
inputs as numbers (MATLAB rounds a uint8 result). pysaliency itself refuses mismatched shapes; here
both variants resize. ``jax.image.resize(method="cubic", antialias=True)`` is *not* used: its
kernel is the same, but at the borders it drops the taps that fall outside and renormalises
instead of mirroring (``[0, 1]`` to 4 pixels: -0.0882 at the left edge, MATLAB -0.09375).

Bad input. With concrete arrays (an eager call) a map holding NaN/inf, negative counts or
densities, mismatched shapes, a batch axis where one map is expected, or a ground truth without
the fixations a metric needs raise ``ValueError`` naming the argument. Under ``jit``/``vmap`` the
values are tracers and cannot be inspected: a metric then returns NaN, as the benchmark does,
whenever an input holds NaN/inf or lacks the fixations it needs (never a plausible number).
Degenerate maps follow the reference code and are not errors: e.g. a constant saliency map gives
NaN for the MIT AUCs, NSS and CC.

Randomness. AUC-Judd's jitter and the negatives of MIT's AUC-Borji and sAUC take either a PRNG
``key`` or the draws themselves (``jitter=``, ``samples=``), so results are bit-reproducible; how a
key becomes draws is documented per function.

Everything is jit-able (static: ``variant``, ``splits``, ``step``, ``thresholds``, ``downsize``,
``sigma``) except that :func:`emd` solves its transport problem on the host (a callback).

This module is the public face; the metrics live in modules of one kind each: the conventions and
checks (``_saliency_common``), ground truth (``_saliency_truth``), the AUCs (``_saliency_auc``),
NSS and IG (``_saliency_location``), CC, KL, SIM and EMD (``_saliency_distribution``).
"""

from jaxadv.metrics._saliency_auc import auc_borji as auc_borji
from jaxadv.metrics._saliency_auc import auc_judd as auc_judd
from jaxadv.metrics._saliency_auc import auc_shuffled as auc_shuffled
from jaxadv.metrics._saliency_common import JITTER_SCALE as JITTER_SCALE
from jaxadv.metrics._saliency_common import MATLAB_EPS as MATLAB_EPS
from jaxadv.metrics._saliency_common import PYSALIENCY_KL_EPS as PYSALIENCY_KL_EPS
from jaxadv.metrics._saliency_common import VARIANTS as VARIANTS
from jaxadv.metrics._saliency_distribution import cc as cc
from jaxadv.metrics._saliency_distribution import emd as emd
from jaxadv.metrics._saliency_distribution import kl_div as kl_div
from jaxadv.metrics._saliency_distribution import sim as sim
from jaxadv.metrics._saliency_distribution import similarity_matrix as similarity_matrix
from jaxadv.metrics._saliency_location import info_gain as info_gain
from jaxadv.metrics._saliency_location import nss as nss
from jaxadv.metrics._saliency_truth import fixation_density as fixation_density
from jaxadv.metrics._saliency_truth import fixation_map as fixation_map
from jaxadv.metrics._saliency_truth import resize_map as resize_map

__all__ = [
    "VARIANTS",
    "auc_borji",
    "auc_judd",
    "auc_shuffled",
    "cc",
    "emd",
    "fixation_density",
    "fixation_map",
    "info_gain",
    "kl_div",
    "nss",
    "resize_map",
    "sim",
    "similarity_matrix",
]
