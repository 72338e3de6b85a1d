"""The content losses of saliency training, on ONE raw model output (vmapped over a batch).

SAM's ``10·KL − 2·CC − NSS`` (Cornia et al., TIP 2018) for maps in [0, 1] or [−1, 1], GazeGAN's
``10·KL − 10·CC − NSS + L1 + ACS`` (Che et al., TIP 2019: the alternative chi-square histogram
loss of the paper, :func:`jaxadv.losses.acs_loss`, weight 1 as neither paper nor code gives one)
on request, and the negative log-likelihood of
the fixations (DeepGaze, Kümmerer et al. 2017) for log densities. The adversarial terms of SalGAN
and GazeGAN are not trained here (content losses only). Maps of another size than the data (a
model with a coarse head) are upsampled bilinearly to the data's grid before the loss; a log
density is renormalised after the resize. The targets stay as they are: the density keeps its
resolution and each fixation its pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.losses import GAZEGAN_LOSS, OUTPUT_KINDS, SALIENCY_LOSSES, SAM_LOSS, to_saliency_map

SALIENCY_LOSS_PRESETS = {
    "sam": dict(SAM_LOSS),  # Cornia et al., TIP 2018
    "gazegan": dict(GAZEGAN_LOSS),  # Che et al., TIP 2019 (with ACS), without the GAN term
    "unisal": {"kl": 1.0, "nss": 0.1, "cc": 0.1},  # Droste et al., ECCV 2020
    "nll": {"nll": 1.0},  # DeepGaze (Kümmerer et al. 2017): NLL of the fixations
}

SALIENCY_LOSS_TERMS = tuple(SALIENCY_LOSSES) + ("nll",)
_UNIT_SCALE_TERMS = ("l1", "acs_smooth")  # compare maps in [0, 1] with the target scaled to max 1
_EPS = 1e-7


def resolve_saliency_loss(loss: str | Mapping[str, float] | None, output_kind: str) -> dict[str, float]:
    """The loss weights for a model whose maps are ``output_kind``.

    Args:
      loss: a preset name (``"sam"``, ``"gazegan"``, ``"unisal"``, ``"nll"``), a mapping from
        term (``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``, ``"acs"``, ``"acs_smooth"``,
        ``"nll"``) to weight,
        or None: ``"nll"`` for log densities, ``"sam"`` for [0, 1] and [−1, 1] maps.
      output_kind: one of ``"log_density"``, ``"unit"``, ``"signed"``.

    Returns:
      ``{term: weight}`` with float weights.

    Raises:
      ValueError: for an unknown preset or term, a non-finite weight, or ``"l1"`` on a log
        density (L1 compares maps in [0, 1], a density is far smaller).
    """
    _checks.check_choice("output_kind", output_kind, OUTPUT_KINDS)
    if loss is None:
        loss = "nll" if output_kind == "log_density" else "sam"
    if isinstance(loss, str):
        _checks.check_choice("loss", loss, SALIENCY_LOSS_PRESETS)
        weights = dict(SALIENCY_LOSS_PRESETS[loss])
    elif isinstance(loss, Mapping) and loss:
        weights = {}
        for term, weight in loss.items():
            _checks.check_choice("loss", term, SALIENCY_LOSS_TERMS)
            if not isinstance(weight, (int, float, np.number)) or not math.isfinite(weight):
                raise ValueError(f"`loss` weights must be finite numbers; got {term}={weight!r}.")
            weights[term] = float(weight)
    else:
        raise ValueError(
            f"`loss` must be None, a preset ({', '.join(map(repr, SALIENCY_LOSS_PRESETS))}) or a non-empty "
            f"mapping from term to weight; got {loss!r}."
        )
    for term in _UNIT_SCALE_TERMS:
        if output_kind == "log_density" and term in weights:
            raise ValueError(
                f"`loss` term {term!r} compares a map in [0, 1] with the target scaled to max 1; "
                "it is meaningless for a 'log_density' model. Use 'kl', 'cc', 'nss', 'sim', "
                "'acs' or 'nll'."
            )
    return weights

def _to_data_grid(output: jax.Array, shape: tuple[int, int], kind: str) -> jax.Array:
    """Bilinear upsampling of one raw map to the data grid; a log density stays normalised."""
    if output.shape == shape:
        return output
    resized = jax.image.resize(output, shape, method="linear")
    if kind == "log_density":
        resized = resized - jax.nn.logsumexp(resized)
    return resized

def _log_density(output: jax.Array, kind: str) -> jax.Array:
    if kind == "log_density":
        return output
    s = to_saliency_map(output, kind)
    return jnp.log(s / (jnp.sum(s) + _EPS) + _EPS)

def saliency_image_loss(
    output: jax.Array,
    density: jax.Array,
    counts: jax.Array,
    *,
    kind: str,
    weights: Mapping[str, float],
) -> jax.Array:
    """The training loss of ONE raw model output against one image's ground truth (minimised).

    Args:
      output: the model's raw map ``[h', w']`` (a log density, a [0, 1] or a [−1, 1] map).
      density: the ground-truth fixation density ``[h, w]`` (any positive scale).
      counts: the fixation counts ``[h, w]`` (NSS and NLL weigh every fixation).
      kind: the model's output kind.
      weights: ``{term: weight}`` (see :func:`resolve_saliency_loss`). KL, CC, SIM and ACS compare
        ``to_saliency_map(output)`` with ``density``; NSS with ``counts``; L1 and ACS-smooth
        (:func:`jaxadv.losses.smooth_acs_loss`) with ``density`` divided by its maximum (the [0, 1] scale of the published ground-truth maps); NLL is
        ``−mean log p`` over the fixations, ``p`` the output as a density over the pixels.

    Returns:
      A scalar of ``output``'s dtype: ``Σ weight · term`` over ``weights``' terms (each term
      oriented so that lower is better), the output first resized to the ground truth's grid.
    """
    output = _to_data_grid(output, density.shape, kind)
    s = to_saliency_map(output, kind)
    total = jnp.zeros((), output.dtype)
    for term, weight in weights.items():
        if term == "nll":
            value = -jnp.sum(counts * _log_density(output, kind)) / jnp.maximum(jnp.sum(counts), 1)
        elif term == "nss":
            value = SALIENCY_LOSSES["nss"](s, counts)
        elif term in _UNIT_SCALE_TERMS:
            value = SALIENCY_LOSSES[term](s, density / (jnp.max(density) + _EPS))
        else:
            value = SALIENCY_LOSSES[term](s, density)
        total = total + weight * value
    return total
