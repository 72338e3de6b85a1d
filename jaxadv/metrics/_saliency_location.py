"""The location-based saliency metrics other than the AUCs: NSS and information gain."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxadv.metrics._saliency_common import (
    MATLAB_EPS,
    _as_fixations,
    _as_map,
    _check_variant,
    _float,
    _is_constant,
    _min_max,
    _nan_where,
    _nonfinite,
    _pysaliency_density,
    _require_fixated,
)
from jaxadv.metrics._saliency_resize import resize_to


def nss(saliency_map, fixations, *, variant: str = "mit") -> jax.Array:
    """Normalised scanpath saliency: the mean z-scored map value at fixations (Peters, Iyer, Itti
    & Koch, Vision Research 2005).

    ``variant="mit"`` (``NSS.m``): the map (resized to the fixation grid) is standardised with the
    N-1 standard deviation over all pixels and averaged over the fixated pixels, each once. NaN for
    a constant map (0/0) or no fixation.

    ``variant="pysaliency"``: population (ddof 0) standard deviation, not divided when the map is
    constant (NSS 0 then); averaged over fixations, counts weighing. For unique fixations
    ``NSS_mit = NSS_pysaliency * sqrt((N - 1) / N)``, N the number of pixels.

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      fixations: ``[h', w']`` fixation counts (:func:`fixation_map`).
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      A 0-d float array (NaN where the definition is undefined, see above).

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    f = _as_fixations("fixations", fixations)
    _require_fixated("fixations", f, 1, "nss")
    return _nss(s, f, variant=variant)

@functools.partial(jax.jit, static_argnames="variant")
def _nss(s, f, *, variant):
    bad_input = _nonfinite(s, f)
    s = resize_to(_float(s), f.shape)
    centred = s - jnp.mean(s)
    if variant == "mit":
        z = centred / jnp.std(s, ddof=1)
        weights = (f > 0).astype(s.dtype)
    else:
        z = centred / jnp.where(_is_constant(s), 1, jnp.std(s))
        z = jnp.where(_is_constant(s), 0, z)
        weights = f.astype(s.dtype)
    value = jnp.sum(weights * z) / jnp.sum(weights)
    return _nan_where(~jnp.any(f > 0) | bad_input, value)

def info_gain(saliency_map, fixations, baseline_map, *, variant: str = "mit") -> jax.Array:
    """Information gain over a baseline, in bits per fixation (Kümmerer, Wallis & Bethge, PNAS
    2015); e.g. a centre-bias map, or all other images' fixations as MIT's demo uses.

    ``variant="mit"`` (``InfoGain.m``): the map and baseline (each resized to the fixation grid)
    are min-max normalised, then divided by their sums (``P``, ``B``);
    ``mean(log2(eps + P) - log2(eps + B))`` over the fixated pixels, each once, with MATLAB's
    ``eps``. The min-max sends each map's minimum to probability 0. NaN for a constant map or
    baseline, or no fixation.

    ``variant="pysaliency"`` (``Model.information_gain``): both maps are taken as densities
    (pysaliency's conversion: shifted up if negative, divided by the sum, no min-max, no eps) and
    ``log2 P - log2 B`` is averaged over fixations, counts weighing; a fixation on a zero of ``P``
    gives ``-inf``.

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      fixations: ``[h', w']`` fixation counts.
      baseline_map: the baseline's map, e.g. a centre bias.
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      Bits per fixation, a 0-d float array.

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    f = _as_fixations("fixations", fixations)
    b = _as_map("baseline_map", baseline_map)
    _require_fixated("fixations", f, 1, "info_gain")
    return _info_gain(s, f, b, variant=variant)

@functools.partial(jax.jit, static_argnames="variant")
def _info_gain(s, f, b, *, variant):
    bad_input = _nonfinite(s, f, b)
    s = resize_to(_float(s), f.shape)
    b = resize_to(_float(b, s.dtype), f.shape)
    if variant == "mit":
        p, q = _min_max(s), _min_max(b)
        p, q = p / jnp.sum(p), q / jnp.sum(q)
        gain = jnp.log2(MATLAB_EPS + p) - jnp.log2(MATLAB_EPS + q)
        weights = (f > 0).astype(s.dtype)
    else:
        gain = jnp.log2(_pysaliency_density(s)) - jnp.log2(_pysaliency_density(b))
        weights = f.astype(s.dtype)
    # Only fixated pixels enter; a -inf elsewhere must not turn 0 * -inf into NaN.
    total = jnp.sum(jnp.where(weights > 0, weights * gain, 0))
    return _nan_where(~jnp.any(f > 0) | bad_input, total / jnp.sum(weights))
