"""Saliency losses for training and attacking saliency models. Every function returns a scalar
that is MINIMISED and is differentiable in its first argument.

Each takes ONE predicted map and ONE reference of the same ``[h, w]`` shape (``jax.vmap`` for a
batch). Maps are non-negative saliency maps; :func:`to_saliency_map` turns a victim's raw output
(a log-density, a ``[0, 1]`` map or a ``[−1, 1]`` map) into one. Similarity metrics enter with a
minus sign (``cc_loss = −CC``), distances as they are, so that training minimises every term and
an attack that pushes a map AWAY from a reference minimises the negated loss.

These are the training losses of the saliency papers (SAM: ``10·KL − 2·CC − NSS``; GazeGAN:
``10·KL − 10·CC − NSS + L1`` plus its histogram loss :func:`acs_loss`), not the benchmark
metrics: :mod:`jaxadv.metrics.saliency` follows the benchmark's exact conventions (min-max
rescaling, MATLAB's eps, N−1 standard deviations); these favour smooth gradients (no min-max
where the notes say so, a float32-sized eps). AUCs are piecewise constant and have no loss here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks

OUTPUT_KINDS = ("log_density", "unit", "signed")
EPS = 1e-7  # float32-sized regulariser (SAM's choice; MATLAB's 2.2e-16 suits float64)


def to_saliency_map(output: jax.Array, kind: str) -> jax.Array:
    """A non-negative map from a saliency model's raw output.

    ``"log_density"`` (DeepGaze, UNISAL): ``exp``; ``"unit"`` (SalGAN, EML-Net, TranSalNet): as it
    is; ``"signed"`` (GazeGAN's tanh head): ``(output + 1) / 2``.

    Args:
      output: the raw output, ``[h, w]`` (any shape).
      kind: ``"log_density"``, ``"unit"`` or ``"signed"``.

    Returns:
      The map, of the shape of ``output``.
    """
    _checks.check_choice("kind", kind, OUTPUT_KINDS)
    if kind == "log_density":
        return jnp.exp(output)
    if kind == "signed":
        return (output + 1.0) / 2.0
    return output


def _density(saliency_map: jax.Array, eps: float) -> jax.Array:
    return saliency_map / (jnp.sum(saliency_map) + eps)


def _check_pair(prediction: jax.Array, reference: jax.Array, name: str = "reference") -> None:
    if jnp.ndim(prediction) != 2 or jnp.shape(prediction) != jnp.shape(reference):
        raise ValueError(
            f"`prediction` and `{name}` must be maps of the same [h, w] shape; got "
            f"{jnp.shape(prediction)} and {jnp.shape(reference)}."
        )


def kl_loss(prediction: jax.Array, reference: jax.Array, eps: float = EPS) -> jax.Array:
    """``KL(Q ‖ P) = Σ Q·log(eps + Q / (P + eps))``, ``Q`` the reference density, ``P`` the
    prediction's (each map divided by its sum): the MIT benchmark's KLdiv form with a float32 eps.
    ≥ 0 up to eps; 0 when the maps are proportional.

    Args:
      prediction: ``[h, w]`` the predicted map (non-negative).
      reference: ``[h, w]`` the reference map.
      eps: the regulariser.

    Returns:
      A scalar to minimise.

    References:
      Cornia, Baraldi, Serra & Cucchiara, "Predicting Human Eye Fixations via an LSTM-based
      Saliency Attentive Model", IEEE TIP 2018.
    """
    _check_pair(prediction, reference)
    p, q = _density(prediction, eps), _density(reference, eps)
    return jnp.sum(q * jnp.log(eps + q / (p + eps)))


def _standardise(x: jax.Array, eps: float) -> jax.Array:
    centred = x - jnp.mean(x)
    # eps² inside the root: sqrt's derivative at 0 is infinite, and a constant map (a fresh or
    # collapsed model) would turn the gradient into NaN.
    return centred / jnp.sqrt(jnp.mean(centred**2) + eps * eps)


def cc_loss(prediction: jax.Array, reference: jax.Array, eps: float = EPS) -> jax.Array:
    """``−CC``: minus Pearson's correlation of the two maps over pixels, in ``[−1, 1]``.

    Args:
      prediction: ``[h, w]`` the predicted map (non-negative).
      reference: ``[h, w]`` the reference map.
      eps: the regulariser.

    Returns:
      A scalar to minimise.

    References:
      Cornia, Baraldi, Serra & Cucchiara, "Predicting Human Eye Fixations via an LSTM-based
      Saliency Attentive Model", IEEE TIP 2018.
    """
    _check_pair(prediction, reference)
    return -jnp.mean(_standardise(prediction, eps) * _standardise(reference, eps))


def nss_loss(prediction: jax.Array, fixations: jax.Array, eps: float = EPS) -> jax.Array:
    """``−NSS``: minus the mean of the standardised prediction (population std) over fixations.

    ``fixations`` is a fixation map of the prediction's shape whose entries weight the pixels
    (a binary map counts fixated pixels once, a count map counts every fixation).

    Args:
      prediction: ``[h, w]`` the predicted map.
      fixations: ``[h, w]`` binary fixation map (at least one fixation).
      eps: the regulariser of the standard deviation.

    Returns:
      A scalar to minimise.

    References:
      Cornia, Baraldi, Serra & Cucchiara, "Predicting Human Eye Fixations via an LSTM-based
      Saliency Attentive Model", IEEE TIP 2018.
    """
    _check_pair(prediction, fixations, "fixations")
    weights = fixations / (jnp.sum(fixations) + eps)
    return -jnp.sum(_standardise(prediction, eps) * weights)


def sim_loss(prediction: jax.Array, reference: jax.Array, eps: float = EPS) -> jax.Array:
    """``−SIM = −Σ min(P, Q)`` of the two sum-normalised maps (histogram intersection, in
    ``[−1, 0]``). Unlike the MIT metric, the maps are not min-max rescaled first: that rescaling
    moves all the gradient to the two extreme pixels.

    Args:
      prediction: ``[h, w]`` the predicted map (non-negative).
      reference: ``[h, w]`` the reference map.
      eps: the regulariser.

    Returns:
      A scalar to minimise.
    """
    _check_pair(prediction, reference)
    return -jnp.sum(jnp.minimum(_density(prediction, eps), _density(reference, eps)))


def l1_loss(prediction: jax.Array, reference: jax.Array) -> jax.Array:
    """The mean absolute difference of the two maps, as they are (GazeGAN's pixel term).

    Args:
      prediction: ``[h, w]`` the predicted map.
      reference: ``[h, w]`` the reference map.

    Returns:
      A scalar to minimise.

    References:
      Che, Borji, Zhai, Min, Guo & Le Callet, "How is Gaze Influenced by Image Transformations?
      Dataset and Model", IEEE TIP 2019.
    """
    _check_pair(prediction, reference)
    return jnp.mean(jnp.abs(prediction - reference))


HISTOGRAM_KERNELS = ("triangular", "gaussian")
ACS_RESCALES = ("min_max", "maps", "none")


def soft_histogram(
    values: jax.Array, bins: int = 100, *, kernel: str = "triangular", bandwidth: float = 1.0
) -> jax.Array:
    """A differentiable histogram of ``values`` in ``[0, 1]``.

    Bin centres ``b_k = k·Δ``, ``k = 0..bins−1``, ``Δ = 1/(bins−1)``. With the defaults (the
    GazeGAN paper's ``p_k``) a value ``l`` adds ``max(0, 1 − |l − b_k|/Δ)`` to bin ``k``: it
    splits linearly between its two nearest centres and adds exactly 1. ``bandwidth`` widens the
    kernel, in bin widths: a triangle of half-width ``bandwidth·Δ``, or with
    ``kernel="gaussian"`` a Gaussian of standard deviation ``bandwidth·Δ``; each value's weights
    are then divided by their sum, so that every value still adds exactly 1 (near the ends of
    ``[0, 1]`` a wide kernel would otherwise lose mass). A Gaussian tends to the hard histogram
    (each value in its nearest bin) as ``bandwidth → 0``. The counts are divided by the number of
    values.

    Args:
      values: any shape; clipped to ``[0, 1]``.
      bins: the number of bins, ≥ 2.
      kernel: ``"triangular"`` (the paper's) or ``"gaussian"``.
      bandwidth: the kernel's half-width (triangular, > 0.5 so that every value reaches a bin)
        or standard deviation (Gaussian, > 0), in bin widths. 1 with the triangle is the paper's.

    Returns:
      ``[bins]`` frequencies summing to 1.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.losses import soft_histogram
      >>> soft_histogram(jnp.array([0.0, 0.25, 0.75, 1.0]), bins=3)  # centres 0, 0.5, 1
      Array([0.375, 0.25 , 0.375], dtype=float32)

    References:
      Che, Borji, Zhai, Min, Guo & Le Callet, "How is Gaze Influenced by Image Transformations?
      Dataset and Model", IEEE TIP 2019.
    """
    _checks.check_positive_int("bins", bins)
    if bins < 2:
        raise ValueError(f"`bins` must be >= 2; got {bins}.")
    _checks.check_choice("kernel", kernel, HISTOGRAM_KERNELS)
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float, np.number)):
        raise ValueError(f"`bandwidth` must be a number of bin widths; got {bandwidth!r}.")
    floor = 0.5 if kernel == "triangular" else 0.0
    if not (math.isfinite(bandwidth) and bandwidth > floor):
        raise ValueError(
            f"`bandwidth` must be finite and > {floor} bin widths for the {kernel} kernel; got "
            f"{bandwidth!r}."
        )
    width = 1.0 / (bins - 1)
    centres = jnp.arange(bins, dtype=values.dtype) * width
    flat = jnp.clip(jnp.ravel(values), 0.0, 1.0)
    distance = jnp.abs(flat[:, None] - centres[None, :]) / (bandwidth * width)
    if kernel == "gaussian":
        # Shift by each value's nearest distance before exp, so that a narrow kernel does not
        # underflow to 0/0; the normalisation below cancels the shift, so no gradient flows
        # through it (the gradient of `min` can also divide by a zero count of ties when XLA
        # computes the squares twice with different rounding). Far bins stop at e^−72.
        squared = distance**2
        nearest = jax.lax.stop_gradient(jnp.min(squared, axis=1, keepdims=True))
        weights = jnp.exp(-0.5 * jnp.minimum(squared - nearest, 144.0))
    else:
        weights = jnp.maximum(0.0, 1.0 - distance)
    if not (kernel == "triangular" and bandwidth == 1.0):  # the paper's weights sum to 1 already
        weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    return jnp.sum(weights, axis=0) / flat.size


def _min_max(x: jax.Array, eps: float) -> jax.Array:
    return (x - jnp.min(x)) / (jnp.max(x) - jnp.min(x) + eps)


def acs_loss(
    prediction: jax.Array,
    reference: jax.Array,
    bins: int = 100,
    eps: float = EPS,
    *,
    kernel: str = "triangular",
    bandwidth: float = 1.0,
    rescale: str = "min_max",
) -> jax.Array:
    """The alternative chi-square histogram loss of GazeGAN (Che et al., "How is gaze influenced
    by image transformations?", TIP 2019): ``2·Σ_k (p̄_k − q̄_k)² / (p̄_k + q̄_k + eps)``.

    With the defaults, the paper's: each map is min-max rescaled to ``[0, 1]``, its
    :func:`soft_histogram` taken, and the histogram min-max rescaled (``p̄``). It compares the
    distributions of map values (how peaked the maps are), not where the mass lies, so it
    complements KL/CC.

    The options give a form that trains (:func:`smooth_acs_loss`; measured in
    ``experiments/README.md``, GazeGAN's CSC and histogram loss). Two things make the paper's form
    hard to train with. The histograms' min-max rescaling divides each by its tallest bin and
    weighs every one of the ``bins`` bins alike, nearly empty ones included: at GazeGAN's
    initialisation its gradient norm is 1.1e4, against 3.8 with the histograms left as
    frequencies (``rescale="maps"``). And kernels one bin wide give each pixel a gradient only
    from the two bins beside its value, so no pixel is drawn towards an empty bin further away:
    Adam on a free map stalls with the paper's kernel, in either rescaling, and reaches ~0 with a
    Gaussian kernel 2–4 bins wide. ``rescale="none"`` also drops the maps' min-max rescaling, which
    makes the loss blind to the map's level and sends part of every pixel's gradient to the two
    extreme pixels; the maps must then be in ``[0, 1]`` (divide a density by its maximum).

    Args:
      prediction: ``[h, w]`` the predicted map.
      reference: ``[h, w]`` the reference map.
      bins: histogram bins, ≥ 2.
      eps: the regulariser.
      kernel: the histogram's kernel, ``"triangular"`` (the paper's) or ``"gaussian"``
        (see :func:`soft_histogram`).
      bandwidth: the kernel's width in bin widths (1 with the triangle is the paper's).
      rescale: ``"min_max"`` (the paper's: maps and histograms min-max rescaled), ``"maps"``
        (maps only; histograms as frequencies) or ``"none"`` (maps clipped to ``[0, 1]`` as they
        are, histograms as frequencies).

    Returns:
      A scalar ≥ 0 to minimise.

    References:
      Che, Borji, Zhai, Min, Guo & Le Callet, "How is Gaze Influenced by Image Transformations?
      Dataset and Model", IEEE TIP 2019.
    """
    _check_pair(prediction, reference)
    _checks.check_choice("rescale", rescale, ACS_RESCALES)

    def histogram(saliency_map):
        values = saliency_map if rescale == "none" else _min_max(saliency_map, eps)
        hist = soft_histogram(values, bins, kernel=kernel, bandwidth=bandwidth)
        return _min_max(hist, eps) if rescale == "min_max" else hist

    p, q = histogram(prediction), histogram(reference)
    return 2.0 * jnp.sum((p - q) ** 2 / (p + q + eps))


def smooth_acs_loss(
    prediction: jax.Array, reference: jax.Array, bins: int = 100, eps: float = EPS
) -> jax.Array:
    """A form of GazeGAN's ACS histogram loss that trains: :func:`acs_loss` with a Gaussian
    kernel of 2 bin widths and no min-max rescaling (``kernel="gaussian", bandwidth=2,
    rescale="none"``), for maps in ``[0, 1]``.

    Ours, not the paper's (the paper's is :func:`acs_loss`'s default). It is the symmetric
    chi-square distance ``2·Σ_k (p_k − q_k)² / (p_k + q_k + eps)`` between the kernel histograms
    of the two maps' values, in ``[0, 4]``. Measured on GazeGAN's initialisation (16 generated
    scenes) its gradient norm is 3.9 against the paper's form's 1.1e4 (KL's 2.7), and Adam on a
    free map drives it to 1e-5 where the paper's form stalls (``experiments/README.md``).

    Args:
      prediction: ``[h, w]`` the predicted map, values in ``[0, 1]`` (clipped).
      reference: ``[h, w]`` the reference map in ``[0, 1]`` (divide a density by its maximum).
      bins: histogram bins, ≥ 2.
      eps: the regulariser.

    Returns:
      A scalar in ``[0, 4]`` to minimise.

    References:
      Che, Borji, Zhai, Min, Guo & Le Callet, "How is Gaze Influenced by Image Transformations?
      Dataset and Model", IEEE TIP 2019 (the loss this modifies).
    """
    return acs_loss(
        prediction, reference, bins, eps, kernel="gaussian", bandwidth=2.0, rescale="none"
    )


SALIENCY_LOSSES = {
    "kl": kl_loss,
    "cc": cc_loss,
    "nss": nss_loss,
    "sim": sim_loss,
    "l1": l1_loss,
    "acs": acs_loss,
    "acs_smooth": smooth_acs_loss,
}


def saliency_loss(name: str):
    """The loss function called ``name`` (one of :data:`SALIENCY_LOSSES`).

    Args:
      name: ``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``, ``"acs"`` or ``"acs_smooth"``.

    Returns:
      The function ``(prediction, reference) -> scalar``.
    """
    _checks.check_choice("name", name, SALIENCY_LOSSES)
    return SALIENCY_LOSSES[name]


def combined_loss(weights: dict[str, float]):
    """``Σ weight·loss`` over named losses, e.g. SAM's ``{"kl": 10, "cc": 2, "nss": 1}``.

    The returned function takes ``(prediction, reference_map, fixations)``: NSS uses the
    fixations, every other loss the reference map.

    Args:
      weights: ``{loss name: weight}``, at least one entry.

    Returns:
      ``(prediction, reference_map, fixations) -> scalar``.

    References:
      Cornia, Baraldi, Serra & Cucchiara, "Predicting Human Eye Fixations via an LSTM-based
      Saliency Attentive Model", IEEE TIP 2018.
    """
    if not weights:
        raise ValueError("`weights` must name at least one loss; got an empty mapping.")
    for name in weights:
        _checks.check_choice("weights", name, SALIENCY_LOSSES)

    def loss(prediction, reference_map, fixations):
        total = 0.0
        for name, weight in weights.items():
            other = fixations if name == "nss" else reference_map
            total = total + weight * SALIENCY_LOSSES[name](prediction, other)
        return total

    return loss


SAM_LOSS = {"kl": 10.0, "cc": 2.0, "nss": 1.0}  # Cornia et al., SAM (TIP 2018)
# Che et al. (TIP 2019) without the GAN term: the published code's content terms and the paper's
# ACS histogram loss; neither the paper nor the code gives the ACS weight (1 is ours).
GAZEGAN_LOSS = {"kl": 10.0, "cc": 10.0, "nss": 1.0, "l1": 1.0, "acs": 1.0}
