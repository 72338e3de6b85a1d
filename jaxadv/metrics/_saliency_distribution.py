"""The distribution-based saliency metrics: CC, KL divergence, SIM, EMD, and the matrix of one
metric between every pair of maps."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.metrics._saliency_common import (
    MATLAB_EPS,
    PYSALIENCY_KL_EPS,
    _as_map,
    _check_variant,
    _float,
    _is_constant,
    _min_max,
    _nan_where,
    _nonfinite,
    _pysaliency_density,
    _sum_normalized_if_nonzero,
)
from jaxadv.metrics._saliency_emd import transport_cost
from jaxadv.metrics._saliency_resize import resize_by, resize_to


def cc(saliency_map, density, *, variant: str = "mit") -> jax.Array:
    """Pearson's linear correlation coefficient between a map and the ground-truth density
    (``CC.m``: ``corr2`` after resizing the map to the density's grid).

    ``variant="mit"``: NaN when either map is constant. ``variant="pysaliency"`` (``metrics.CC``):
    0 when the saliency map is constant and the density is not; NaN when the density is constant.
    Any real maps are accepted (negative values included).

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      density: ``f[h', w']`` the ground-truth density (non-negative).
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      A 0-d float array (NaN where the definition is undefined, see above).

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    g = _as_map("density", density)
    return _cc(s, g, variant=variant)

def _cc_core(s, g, variant):
    a = s - jnp.mean(s)
    b = g - jnp.mean(g)
    r = jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))
    flat_s, flat_g = _is_constant(s), _is_constant(g)
    if variant == "mit":
        return _nan_where(flat_s | flat_g, r)
    return jnp.where(flat_s & ~flat_g, 0.0, _nan_where(flat_g, r)).astype(r.dtype)

@functools.partial(jax.jit, static_argnames="variant")
def _cc(s, g, *, variant):
    s = _float(s)
    g = _float(g, s.dtype)
    return _nan_where(_nonfinite(s, g), _cc_core(resize_to(s, g.shape), g, variant))

def kl_div(saliency_map, density, *, variant: str = "mit") -> jax.Array:
    """KL divergence KL(density ‖ prediction) in nats; lower is better.

    ``variant="mit"`` (``KLdiv.m``): the map is resized to the density's grid; each map with a
    nonzero entry is divided by its sum (``P`` the prediction, ``Q`` the density);
    ``sum(Q * log(eps + Q / (P + eps)))`` with MATLAB's ``eps`` and no min-max. Both maps must be
    non-negative (they are used as given). A resized map can dip slightly below 0 next to sharp
    edges (bicubic undershoot); those values are clipped to 0 here, where MATLAB would return a
    complex number.

    ``variant="pysaliency"`` (``MIT_KLDiv``, the MIT/Tübingen benchmark's setting): both maps are
    converted to densities (shifted up if negative, divided by the sum; zero sum → uniform) and
    ``sum(Q * log(c + Q / (P + c)))`` with pysaliency's literal ``c = 2.2204e-16``. The saliency map
    may be negative; the density may not.

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      density: ``f[h', w']`` the ground-truth density (non-negative).
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      A 0-d float array (NaN where the definition is undefined, see above).

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map, nonnegative=variant == "mit")
    g = _as_map("density", density, nonnegative=True)
    return _kl_div(s, g, variant=variant)

@functools.partial(jax.jit, static_argnames="variant")
def _kl_div(s, g, *, variant):
    bad_input = _nonfinite(s, g)
    s = _float(s)
    g = _float(g, s.dtype)
    s = resize_to(s, g.shape)
    if variant == "mit":
        s = jnp.maximum(s, 0)  # bicubic undershoot of a non-negative map (MATLAB: complex KL)
        p, q, eps = _sum_normalized_if_nonzero(s), _sum_normalized_if_nonzero(g), MATLAB_EPS
    else:
        p, q, eps = _pysaliency_density(s), _pysaliency_density(g), PYSALIENCY_KL_EPS
    return _nan_where(bad_input, jnp.sum(q * jnp.log(eps + q / (p + eps))))

def sim(saliency_map, density, *, variant: str = "mit") -> jax.Array:
    """Similarity (histogram intersection, Swain & Ballard 1991): ``sum(min(P, Q))`` of the two
    maps as distributions; 1 for equal distributions, 0 for disjoint ones.

    ``variant="mit"`` (``similarity.m``): the map is resized to the density's grid; each map with
    a nonzero entry is min-max normalised, then divided by its sum (an all-zero map stays zero and
    scores 0). A constant nonzero map min-maxes to NaN, so the score is NaN.

    ``variant="pysaliency"`` (``metrics.SIM``): no min-max; each map shifted up if negative and
    divided by its sum (zero sum → uniform). Differs from MIT whenever a map's minimum is not 0.

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      density: ``f[h', w']`` the ground-truth density (non-negative).
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      A 0-d float array (NaN where the definition is undefined, see above).

    References:
      Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation metrics tell us about
      saliency models?", IEEE TPAMI 2019.
    """
    _check_variant(variant)
    s = _as_map("saliency_map", saliency_map)
    g = _as_map("density", density)
    return _sim(s, g, variant=variant)

def _sim_core(s, g, variant):
    if variant == "mit":

        def normalize(x):
            scaled = _min_max(x)
            return jnp.where(jnp.any(x != 0), scaled / jnp.sum(scaled), x)

        return jnp.sum(jnp.minimum(normalize(s), normalize(g)))
    return jnp.sum(jnp.minimum(_pysaliency_density(s), _pysaliency_density(g)))

@functools.partial(jax.jit, static_argnames="variant")
def _sim(s, g, *, variant):
    s = _float(s)
    g = _float(g, s.dtype)
    return _nan_where(_nonfinite(s, g), _sim_core(resize_to(s, g.shape), g, variant))

def emd(saliency_map, density, *, downsize: int = 32) -> jax.Array:
    """Earth mover's distance between the map and the density at a coarse grid; lower is better
    (Rubner, Tomasi & Guibas, IJCV 2000; ``EMD.m`` with Pele & Werman's FastEMD).

    As ``EMD.m``: the density is shrunk by ``1 / downsize`` (MATLAB ``imresize``, output
    ``ceil(h / downsize) x ceil(w / downsize)``), the map resized to that grid, each divided by its
    sum; the ground distance is the Euclidean distance between bin indices (in coarse pixels). The
    value is FastEMD's ``emd_hat`` with extra-mass penalty 0: each bin's shared mass
    ``min(P_i, Q_i)`` is removed (exact for a metric ground distance) and the cheapest flow of the
    remainder is found. FastEMD rounds masses and costs to integers (~1e-6 relative); this solves
    the transport linear program exactly (scipy HiGHS, float64). MIT's ``EMD.m`` at 5951cdc has an
    unresolved merge conflict in its signature; the intended ``downsize`` argument is used here.

    Host computation: the resizes run in JAX, the transport problem in a ``jax.pure_callback``
    (jit- and vmap-compatible — a vmapped batch is solved one map at a time — but not
    differentiable, and not on the accelerator). Cost grows with the number of coarse bins
    (a few hundred for benchmark images). Requires scipy.

    Args:
      saliency_map: ``[h, w]`` non-negative map (any size).
      density: ``[h', w']`` non-negative ground-truth density with a positive sum.
      downsize: static integer shrink factor (default 32; 1 compares at full resolution).

    Args:
      saliency_map: ``f[h, w]`` the predicted map (resized to the ground truth's grid if needed).
      density: ``f[h', w']`` the ground-truth density.
      downsize: the factor the density is shrunk by before the transport.

    Returns:
      A 0-d float array (NaN where the definition is undefined, see above).

    References:
      Rubner, Tomasi & Guibas, "The Earth Mover's Distance as a Metric for Image Retrieval",
      IJCV 2000.
    """
    _checks.check_positive_int("downsize", downsize)
    s = _as_map("saliency_map", saliency_map, nonnegative=True)
    g = _as_map("density", density, nonnegative=True)
    for name, x in (("saliency_map", s), ("density", g)):
        if _checks.is_concrete(x) and not np.sum(np.asarray(x)) > 0:
            raise ValueError(f"`{name}` must have a positive sum for emd; got an all-zero map.")
    return _emd(s, g, downsize=int(downsize))

@functools.partial(jax.jit, static_argnames="downsize")
def _emd(s, g, *, downsize):
    s = _float(s)
    g = _float(g, s.dtype)
    coarse_g = resize_by(g, 1.0 / downsize)
    coarse_s = resize_to(s, coarse_g.shape)
    p = coarse_g / jnp.sum(coarse_g)
    q = coarse_s / jnp.sum(coarse_s)
    dtype = s.dtype

    def host(p, q):
        return np.asarray(transport_cost(p, q), dtype)

    return jax.pure_callback(host, jax.ShapeDtypeStruct((), dtype), p, q, vmap_method="sequential")

def similarity_matrix(maps, metric: str = "cc", *, variant: str = "mit") -> jax.Array:
    """Pairwise ``metric(maps[i], maps[j])`` between ``n`` maps of one size: ``f32[n, n]``.

    ``metric`` is ``"cc"`` or ``"sim"`` with the given ``variant``; entry ``[i, j]`` treats
    ``maps[j]`` as the reference (only pysaliency's CC of a constant map is asymmetric). Useful to
    compare models, or human maps between observers. Maps may be negative.

    Args:
      maps: ``f[n, h, w]``.
      metric: ``"cc"`` or ``"sim"``.
      variant: ``"mit"`` (the benchmark's MATLAB code) or ``"pysaliency"``.

    Returns:
      ``f32[n, n]``.
    """
    _check_variant(variant)
    _checks.check_choice("metric", metric, ("cc", "sim"))
    if not isinstance(maps, (jax.Array, jax.core.Tracer, np.ndarray)):
        maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(
            f"`maps` must be a stack of maps of shape (n, h, w); got shape {tuple(maps.shape)}."
        )
    _checks.check_finite("maps", maps)
    return _similarity_matrix(maps, metric=metric, variant=variant)

@functools.partial(jax.jit, static_argnames=("metric", "variant"))
def _similarity_matrix(maps, *, metric, variant):
    maps = _float(maps)
    core = functools.partial(_cc_core if metric == "cc" else _sim_core, variant=variant)
    row = jax.vmap(core, in_axes=(None, 0))
    return jax.vmap(row, in_axes=(0, None))(maps, maps)
