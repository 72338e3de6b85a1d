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

import jax
import jax.numpy as jnp

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


def soft_histogram(values: jax.Array, bins: int = 100) -> jax.Array:
    """A differentiable histogram of ``values`` in ``[0, 1]`` with triangular kernels.

    Bin centres ``b_k = k·Δ``, ``k = 0..bins−1``, ``Δ = 1/(bins−1)``; a value ``l`` adds
    ``max(0, 1 − |l − b_k|/Δ)`` to bin ``k`` (so it splits linearly between its two nearest
    centres and every value adds exactly 1), and the counts are divided by the number of values:
    the histogram ``p_k`` of the GazeGAN paper's ACS loss.

    Args:
      values: any shape; clipped to ``[0, 1]``.
      bins: the number of bins, ≥ 2.

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
    width = 1.0 / (bins - 1)
    centres = jnp.arange(bins, dtype=values.dtype) * width
    flat = jnp.clip(jnp.ravel(values), 0.0, 1.0)
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(flat[:, None] - centres[None, :]) / width)
    return jnp.sum(weights, axis=0) / flat.size


def _min_max(x: jax.Array, eps: float) -> jax.Array:
    return (x - jnp.min(x)) / (jnp.max(x) - jnp.min(x) + eps)


def acs_loss(
    prediction: jax.Array, reference: jax.Array, bins: int = 100, eps: float = EPS
) -> jax.Array:
    """The alternative chi-square histogram loss of GazeGAN (Che et al., "How is gaze influenced
    by image transformations?", TIP 2019): ``2·Σ_k (p̄_k − q̄_k)² / (p̄_k + q̄_k + eps)``.

    Each map is min-max rescaled to ``[0, 1]``, its :func:`soft_histogram` taken, and the
    histogram min-max rescaled (``p̄``). It compares the distributions of map values (how peaked
    the maps are), not where the mass lies, so it complements KL/CC.

    Args:
      prediction: ``[h, w]`` the predicted map.
      reference: ``[h, w]`` the reference map.
      bins: histogram bins, ≥ 2.
      eps: the regulariser.

    Returns:
      A scalar ≥ 0 to minimise.

    References:
      Che, Borji, Zhai, Min, Guo & Le Callet, "How is Gaze Influenced by Image Transformations?
      Dataset and Model", IEEE TIP 2019.
    """
    _check_pair(prediction, reference)
    p = _min_max(soft_histogram(_min_max(prediction, eps), bins), eps)
    q = _min_max(soft_histogram(_min_max(reference, eps), bins), eps)
    return 2.0 * jnp.sum((p - q) ** 2 / (p + q + eps))


SALIENCY_LOSSES = {
    "kl": kl_loss,
    "cc": cc_loss,
    "nss": nss_loss,
    "sim": sim_loss,
    "l1": l1_loss,
    "acs": acs_loss,
}


def saliency_loss(name: str):
    """The loss function called ``name`` (one of :data:`SALIENCY_LOSSES`).

    Args:
      name: ``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"`` or ``"acs"``.

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
