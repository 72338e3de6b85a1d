"""Chebyshev semi-iteration for the smoothing systems: a count of iterations fixed in advance by
the operator's spectral bounds, with no inner products and no stopping test.

``ℒ_α = (I − α𝒲)/(1 − α)`` of a normalised pixel graph has its eigenvalues in
``[1, (1 + α)/(1 − α)]`` (those of ``𝒲`` lie in [−1, 1]), and its red-black reduced form ``M``
(``_red_black.py``) in ``[1 + α, 1/(1 − α)]``. For any symmetric operator with its spectrum in
``[a, b]``, ``k`` Chebyshev iterations from 0 leave the residual ``r_k = p_k(A)·b`` with
``|p_k| ≤ 1/T_k(σ)`` on ``[a, b]``, ``σ = (b + a)/(b − a)``, ``T_k`` the Chebyshev polynomial of the
first kind. So ``‖r_k‖ ≤ ‖b‖/T_k(σ)`` for every right-hand side, and the count that meets a
relative tolerance follows from α and the norm of ``b`` alone, before the first iteration: CG's
adaptive count, its two inner products per iteration and, under ``vmap``, the batched loop's
per-iteration test and selects all go.

The result is a fixed polynomial of the operator, of a degree set by the example's own α and
``‖b‖``, so an example's answer does not depend on the rest of its batch (see
:func:`chebyshev` for the loop under ``vmap``). Chebyshev semi-iteration: Golub &
Varga, Numer. Math. 3 (1961); the three-term recurrence as in Saad, "Iterative methods for
sparse linear systems", 2nd ed., SIAM 2003, Algorithm 12.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks


def interval(alpha, reduced: bool):
    """``(centre, half_width)`` of the interval that holds the spectrum of ``ℒ_α`` (``reduced``:
    of its red-black reduced form ``M``), for α in [0, 1) (may be traced).

    ``ℒ_α`` has its eigenvalues in ``[1, (1 + α)/(1 − α)]``, ``M`` in ``[1 + α, 1/(1 − α)]``. At
    α = 0 both are the identity and the interval a point; its width is kept above ``1e-6`` of
    its centre, where the first iteration is already exact."""
    maximum = np.maximum if isinstance(alpha, (float, np.ndarray, np.generic)) else jnp.maximum
    low, high = (
        (1.0 + alpha, 1.0 / (1.0 - alpha)) if reduced else (1.0, (1.0 + alpha) / (1.0 - alpha))
    )
    centre = (high + low) / 2.0
    return centre, maximum((high - low) / 2.0, 1e-6 * centre)


def iterations(alpha, factor, maxiter: int, reduced: bool):
    """The fewest Chebyshev iterations that reduce the residual of every right-hand side by
    ``factor``, at most ``maxiter``: the least ``k`` with ``T_k(σ) ≥ factor``, ``σ`` = centre over
    half width of :func:`interval` (0 for ``factor ≤ 1``).

    A Python int when ``alpha`` and ``factor`` are concrete, else a traced int32 (``factor`` may
    differ per example, e.g. a residual left by rounding)."""
    concrete = _checks.is_concrete(alpha) and _checks.is_concrete(factor)
    xp = np if concrete else jnp
    alpha = xp.asarray(alpha, np.float64 if concrete else jnp.float32)
    centre, half_width = interval(alpha, reduced)
    growth = xp.arccosh(centre / half_width)
    needed = xp.ceil(xp.arccosh(xp.maximum(factor, 1.0)) / growth)
    needed = xp.clip(needed, 0, maxiter)
    return int(needed) if concrete else needed.astype(jnp.int32)


@jax.custom_batching.custom_vmap
def _largest_in_batch(count):
    """``count`` itself; under ``vmap``, the largest count of the batch, unbatched (every level of
    nested ``vmap`` s reduced alike)."""
    return count


@_largest_in_batch.def_vmap
def _largest_in_batch_rule(axis_size, in_batched, count):
    del axis_size
    if in_batched[0]:
        count = _largest_in_batch(jnp.max(count, axis=0))
    return count, False


def chebyshev(matvec, b: jax.Array, centre, half_width, count) -> jax.Array:
    """``count`` Chebyshev iterations for ``A x = b`` from ``x = 0``, ``A`` (``matvec``)
    symmetric with its spectrum in ``[centre − half_width, centre + half_width]``, both > 0
    (:func:`interval`).

    A traced ``count`` that differs across a ``vmap`` batch (an α per example) runs the loop to
    the batch's largest count, each example's iterate frozen after its own: the loop's bound stays
    unbatched, so ``vmap`` adds no select of the carried vectors per iteration (sC&W at 32×32,
    batch 32: 1.36 against 1.45 × C&W's step time), and every example ends on the iterate its
    own count gives.

    Args:
      matvec: the operator's product.
      b: the right-hand side (any shape ``matvec`` takes).
      centre, half_width: the interval that holds the spectrum (may be traced).
      count: the iterations (an int, or a traced int).

    Returns:
      The iterate ``x_count``.
    """
    sigma = centre / half_width
    fixed = isinstance(count, int)

    # The carry holds x_{k+1} = x_k + d_k alongside d_k, so that x's update reads the new d.
    # Updating x from the old d, which the new d then overwrites, made XLA copy d every
    # iteration (it may run the two updates concurrently): 2.29 against 1.85 ms for 20
    # iterations at 32×32×3, batch 32, with the same iterates. It also spares the product with
    # the operator of the last iteration, whose residual nothing reads.
    def body(i, carry):
        x, r, d, rho = carry
        r = r - matvec(d)
        rho_next = 1.0 / (2.0 * sigma - rho)
        d = (rho_next * rho) * d + (2.0 * rho_next / half_width) * r
        x = x + d if fixed else jnp.where(i + 1 < count, x + d, x)
        return x, r, d, rho_next

    first = b / centre  # x_1 = d_0
    if fixed:
        if count == 0:
            return jnp.zeros_like(b)
        return jax.lax.fori_loop(0, count - 1, body, (first, b, first, 1.0 / sigma))[0]
    # A count of 0 is settled before the loop, so that the result is the loop's own output: the
    # solvers' next step (the black pixels' stencil) reads it at several offsets, and a select
    # after the loop was recomputed at each, with the count (0.25 ms per solve at 32×32×3,
    # batch 32, 2-core CPU).
    start = (jnp.where(count > 0, first, 0.0), b, first, 1.0 / sigma)
    return jax.lax.fori_loop(0, _largest_in_batch(count) - 1, body, start)[0]
