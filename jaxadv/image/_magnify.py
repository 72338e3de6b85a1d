"""Adversarial magnification: a local normalisation that makes a perturbation visible.

Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples" (EURASIP JIS 2020), Appendix 1,
Eq. 22, for ONE image ``x: f[h, w, c]``:

    mag(x) = (x - mu(x)) / (beta * sigma_loc(x) + (1 - beta) * sigma_glob(x)),

  * ``mu = b(x)``, the bilateral filter of ``x`` (Tomasi & Manduchi, ICCV 1998);
  * ``sigma_loc = sqrt(b_x((x - mu)^2))``, with ``b_x`` the bilateral filter guided by ``x``. The
    paper prints the exponent as -1/2; a standard deviation is the square root, as used here;
  * ``sigma_glob``: the global standard deviation of ``x``, one per channel (over ``h, w``), so a
    colour channel with little contrast is not drowned by the others;
  * ``beta`` in [0, 1] sets how much local variation is magnified.

Channels are normalised independently but share the bilateral weights, which come from the
Euclidean distance over all channels (Appendix 1). A natural image, locally smooth, comes out as
low-contrast texture; high-frequency noise such as a typical adversarial perturbation stands out.
Figure 1 of the paper uses beta = 0.8 and both bilateral standard deviations 5, for images in
[0, 255]. jaxadv images are in [0, 1], so the default range deviation is 5/255 (the domain one is
in pixels and stays 5); ``sigma_range`` is in the image's units, so scale it with their range.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.image._bilateral import (
    check_image,
    check_kernel,
    bilateral_filter,
    guided_bilateral_filter,
)


def magnify(
    x: jax.Array,
    *,
    beta=0.8,
    sigma_domain=5.0,
    sigma_range=5.0 / 255.0,
    radius: int | None = None,
    eps: float = 1e-6,
) -> jax.Array:
    """Adversarial magnification (Eq. 22) of ONE image ``x: f[h, w, c]``; same shape.

    Args:
      x: the image, rank 3.
      beta: weight of the local std against the global one, in [0, 1] (may be traced).
      sigma_domain, sigma_range: standard deviations of the bilateral filter's domain (pixels)
        and range (units of ``x``) kernels, used for both ``mu`` and ``sigma_loc``.
      radius: static window half-width; default ``default_radius(sigma_domain)``.
      eps: added to the denominator so that a flat image (zero std) maps to 0, not NaN.

    Meant for figures, not for differentiation: ``sqrt`` has an infinite slope where the local
    variance is 0 (flat regions), so gradients there are not finite.

    Returns:
      The magnified image, the shape of ``x``.
    """
    if _checks.is_concrete(beta):
        b = np.asarray(beta, dtype=np.float64)
        if b.ndim != 0 or not np.isfinite(b) or not 0.0 <= b <= 1.0:
            raise ValueError(f"`beta` must be a scalar in [0, 1]; got {beta!r}.")
    _checks.check_nonnegative("eps", eps)
    check_image("x", x)
    radius = check_kernel(sigma_domain, sigma_range, radius)
    return _magnify_jit(x, beta, sigma_domain, sigma_range, eps, radius=radius)


# One compiled program per shape and radius, also for eager calls (figures).
@functools.partial(jax.jit, static_argnames="radius")
def _magnify_jit(x, beta, sigma_domain, sigma_range, eps, *, radius):
    mu = bilateral_filter(x, sigma_domain, sigma_range, radius=radius)
    centred = x - mu
    local_var = guided_bilateral_filter(
        centred * centred, x, sigma_domain, sigma_range, radius=radius
    )
    # The filter is a convex combination of non-negative values; the clamp only absorbs rounding.
    sigma_loc = jnp.sqrt(jnp.maximum(local_var, 0.0))
    sigma_glob = jnp.std(x, axis=(0, 1), keepdims=True)
    return centred / (beta * sigma_loc + (1.0 - beta) * sigma_glob + eps)


def magnified_to_unit(m: jax.Array, *, clip: float = 3.0) -> jax.Array:
    """Maps a magnified image to [0, 1] for display: clip to ``[-clip, clip]``, then rescale.

    ``magnify`` divides by a standard deviation, so its output is on a unit scale: clipping at
    ``clip`` standard deviations keeps the contrast the same from image to image (no per-image
    min-max stretch), with 0 shown as mid-grey 0.5.

    Args:
      m: an output of :func:`magnify`.
      clip: the standard deviations kept, > 0.

    Returns:
      The image in [0, 1], the shape of ``m``.
    """
    _checks.check_positive("clip", clip)
    return (jnp.clip(m, -clip, clip) + clip) / (2.0 * clip)
