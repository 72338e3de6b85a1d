"""Conjugate gradient per channel to a tolerance on the TRUE residual, for the symmetric positive
definite systems of Laplacian smoothing (``_smoothing.py``: ``ℒ_α``; ``_red_black.py``: its
reduced form).

Signals are laid out ``[c, h, w]`` (or any ``[c, ...]`` of two further axes): each channel is its
own system, with its own inner products, step lengths and stopping test. The solver reports how
it ended as a :class:`SolveStatus`. Hestenes & Stiefel's CG (J. Res. NBS 1952) with restarts from
the recomputed residual (iterative refinement) and an optional polynomial preconditioner.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _compile

TINY = 1e-30


class SolveStatus(NamedTuple):
    """How a linear solve ended: ``converged`` (the true relative residual ≤ tol in every
    channel, or ≤ float32's floor ``2u·(1 + α)/(1 − α)·‖s‖/‖z‖`` where that is higher), the largest
    relative residual ``‖z − ℒ_α s‖/‖z‖`` over channels, and the iterations run.

    Attributes:
      converged: bool, every channel within the tolerance.
      residual: the largest relative residual.
      iterations: the iterations run.
    """

    converged: jax.Array
    residual: jax.Array
    iterations: jax.Array


# The largest block of a row's pixels summed first by `channel_dot` on CPU.
_DOT_BLOCK = 32


def _plain_channel_dot(a, b):
    """Per-channel inner products of ``[c, h, w]`` signals, shaped ``[c, 1, 1]``: one reduction."""
    return jnp.sum(a * b, axis=(1, 2), keepdims=True)


def _dot_block(n: int) -> int:
    """The largest divisor of ``n`` up to ``_DOT_BLOCK`` (static)."""
    return max(k for k in range(1, min(n, _DOT_BLOCK) + 1) if n % k == 0)


def _blocked_channel_dot(a, b):
    """:func:`_plain_channel_dot` summed in two stages: blocks of ``_dot_block(w)`` pixels within
    each row, then the block sums, with an optimization barrier between them.

    With jaxadv's CPU compiler option (``jaxadv/_compile.py``) XLA CPU rewrites one reduction
    over ``h·w`` pixels into a windowed tree and cannot fuse the product ``a·b`` into it, so it
    writes the product to memory and reads it back: two extra passes over the signal per inner
    product, two inner products per CG iteration. A reduction over at most 32 elements is fused
    with its product, and the barrier keeps XLA from merging the two stages back into one
    reduction (checked in the optimized HLO, jax 0.10.2 on CPU: without it the two sums become
    one reduce over both axes; with it two reduces remain, and the barrier itself is gone by
    then). Measured under that option (299×299×3, 2-core CPU, issue 19): 0.98 against 1.66
    ms per CG iteration.

    The blocks split rows only: a block that spans rows (a divisor of ``h·w`` that does not
    divide ``w``) made the fused product recompute each element's row and column, and one CG
    solve and its adjoint on the red-black layout at 32×32×3, batch 32 (rows of 18) took 10.8
    against 7.3 ms with blocks of 18 (2-core CPU, issue 19). Whole rows of 152 or 299 as the
    blocks were 1.26–1.43× slower at 299×299. The sum is the same up to float32 rounding
    (another order), the CG iteration counts the same (tests/test_smoothing.py)."""
    c, h, w = a.shape
    k = _dot_block(w)
    blocks = jnp.sum((a * b).reshape(c, h, w // k, k), axis=3)
    blocks = jax.lax.optimization_barrier(blocks)
    return jnp.sum(blocks, axis=(1, 2)).reshape(c, 1, 1)


def channel_dot(a, b):
    """Per-channel inner products of ``[c, h, w]`` signals, shaped ``[c, 1, 1]``: blocked
    (:func:`_blocked_channel_dot`) in programs compiled with jaxadv's CPU options (attacks), where
    XLA would otherwise write the products out; one fused reduction elsewhere (under XLA's default
    options the blocked form is the slower: 1.37× on one smoothing forward and backward at
    299×299×3)."""
    if _compile.traced_with_options():
        return _blocked_channel_dot(a, b)
    return _plain_channel_dot(a, b)


def accepted(alpha, zz, s, tol):
    """The relative residual accepted per channel: ``tol``, or float32's floor when higher
    (``zz``: the squared norm per channel that the residual is relative to, ``‖z‖²``).

    Rounding the exact ``s`` to float32 (unit roundoff u = 2⁻²⁴) moves it by up to u‖s‖, hence
    the residual by up to ``u·‖ℒ_α‖·‖s‖ = u·(1 + α)/(1 − α)·‖s‖``, and the float32 product
    ``ℒ_α s`` that measures the residual errs by as much again (its ``(s − α𝒲s)/(1 − α)``
    cancels): the floor is twice that. At α = 0.997 it is ~8e-5·‖s‖/‖z‖ (measured: the exact
    solution for a 12×12 image, rounded to float32, has residual 1.5e-5 > the default tol).

    For the red-black reduced system (``_red_black.py``) ``s`` is the red part ``s_r``: its
    operator ``M`` has norm ``1/(1 − α)``, below ``ℒ_α``'s by the factor ``1 + α``, so the same
    formula on ``‖s_r‖ ≤ ‖s‖`` bounds the reduced floor as well."""
    floor = 2.0 * 2.0**-24 * (1.0 + alpha) / (1.0 - alpha)
    ratio = jnp.sqrt(channel_dot(s, s) / jnp.maximum(zz, TINY))
    return jnp.maximum(tol, floor * ratio)


def _polynomial_preconditioner(matvec, alpha):
    """``P = 2I − (1 − α)ℒ_α = I + α𝒲``, the degree-1 Neumann polynomial of ``ℒ_α⁻¹`` (up to the
    factor 1 − α), applied with one product with ``ℒ_α``.

    ``P`` is symmetric positive definite (eigenvalues in [1 − α, 1 + α]) and commutes with
    ``ℒ_α``; the eigenvalues of ``Pℒ_α = (I − α²𝒲²)/(1 − α)`` lie in [1, 1/(1 − α)] up to that
    factor, so its condition number is at most 1/(1 − α²) against (1 + α)/(1 − α) for ``ℒ_α``
    (α = 0.95: 10.3 against 39; α = 0.997: 167 against 666): CG needs about half the iterations,
    each with two products with ``ℒ_α`` instead of one, and half the inner products and vector
    updates per product. (A Jacobi preconditioner would be the identity: ``ℒ_α`` of a normalised
    graph has a unit diagonal up to the same factor.) On the red-black reduced operator ``M``
    (``_red_black.py``) the same formula gives ``I + α²BBᵀ``. Polynomial preconditioning for CG:
    Saad, "Iterative methods for sparse linear systems", 2nd ed., §12.3."""

    def precondition(r):
        return 2.0 * r - (1.0 - alpha) * matvec(r)

    return precondition


def _cg_iteration(matvec, state, floor, precondition=None):
    """One CG iteration per channel (preconditioned by ``precondition``, None: none); a channel
    whose squared residual is at or below ``floor`` has converged to float precision and is left
    as it is (no 0/0, also in derivatives). ``state`` is ``(x, r, p, rz, rr)`` with ``rz = ⟨r, Pr⟩``
    (``rr`` without a preconditioner) and ``rr = ‖r‖²``, which the stopping tests read."""
    x, r, p, rz, rr = state
    active = rr > floor
    ap = matvec(p)
    pap = channel_dot(p, ap)  # ≥ ‖p‖² > 0 (ℒ_α ≥ I) wherever active
    step = jnp.where(active, rz / jnp.where(active, pap, 1.0), 0.0)
    x = x + step * p
    r = r - step * ap
    rr_new = channel_dot(r, r)
    if precondition is None:
        pr, rz_new = r, rr_new
    else:
        pr = precondition(r)
        rz_new = channel_dot(r, pr)
    beta = jnp.where(active, rz_new / jnp.where(active, rz, 1.0), 0.0)
    return x, r, pr + beta * p, jnp.where(active, rz_new, rz), jnp.where(active, rr_new, rr)


def _first_direction(r, rr, precondition):
    """``(p, rz)`` of a (re)start at residual ``r``."""
    if precondition is None:
        return r, rr
    pr = precondition(r)
    return pr, channel_dot(r, pr)


def _start(matvec, z, x, zz=None, precondition=None):
    r = z - matvec(x)
    rr = channel_dot(r, r)
    zz = rr if zz is None else zz
    # Float32 cannot reduce the residual below ~1e-7 of ‖z‖; 1e-18 keeps 1/floor² finite.
    floor = jnp.maximum(1e-14 * zz, 1e-18)
    p, rz = _first_direction(r, rr, precondition)
    return (x, r, p, rz, rr), floor


def cg_to_tolerance(matvec, alpha, z, tol, maxiter, x=None, preconditioner="none", reference=None):
    """CG from ``x`` (a warm start; None: 0) until every channel's TRUE residual is accepted
    (``accepted``: ≤ tol·‖z‖, or float32's floor) or ``maxiter`` iterations in all.
    ``preconditioner="polynomial"`` preconditions it with :func:`_polynomial_preconditioner`
    (the stopping tests read the same unpreconditioned residual). ``reference`` is the squared
    norm per channel that residuals are relative to (None: ``‖z‖²``; the red-black reduced
    system's residual is relative to the full right-hand side's norm).

    The inner loop watches the recursively updated residual and aims at tol/2; in float32 that
    estimate drifts from the true residual (at α ≥ 0.99 it stopped with the true one 2–10× above
    tol). So when it stops, the outer loop recomputes the true residual and, if it is not yet
    accepted, restarts CG from the current iterate (iterative refinement). The loop therefore
    always ends holding the true residual of its iterate, which the status reads (no further
    product with ℒ_α)."""
    precondition = _polynomial_preconditioner(matvec, alpha) if preconditioner != "none" else None
    zz = channel_dot(z, z)
    reference = zz if reference is None else reference
    # From 0 the residual is z itself: no product with ℒ_α.
    cold = (jnp.zeros_like(z), z, *_first_direction(z, zz, precondition), zz)
    floor = jnp.maximum(1e-14 * zz, 1e-18)
    if x is None:
        state = cold
    else:  # a channel whose guess is worse than 0 (e.g. z = 0) starts from 0
        warm, _ = _start(matvec, z, x, zz, precondition)
        better = warm[4] < zz
        state = jax.tree.map(lambda w, c: jnp.where(better, w, c), warm, cold)
    target = jnp.maximum(jnp.square(0.5 * tol) * reference, floor)

    def inner_cond(carry):
        i, (*_, rr) = carry
        return (i < maxiter) & jnp.any(rr > target)

    def inner_body(carry):
        # Two iterations per test of the loop's condition: under vmap each test costs a reduction
        # over the batch and a select of every carried vector (sC&W at 32×32, batch 32: 0.93 of
        # the step time against one iteration per test; three per test: 0.94). The second
        # iteration may go one past the target, a more accurate answer; at maxiter it freezes
        # every channel (a threshold of inf), so the count never passes maxiter.
        i, state = carry
        state = _cg_iteration(matvec, state, floor, precondition)
        last = jnp.where(i + 1 < maxiter, floor, jnp.inf)
        state = _cg_iteration(matvec, state, last, precondition)
        return jnp.minimum(i + 2, maxiter), state

    def outer_cond(carry):
        i, (x, *_, rr) = carry
        # Above the inner loop's floor too, so that a restart always takes an iteration.
        enough = jnp.maximum(jnp.square(accepted(alpha, reference, x, tol)) * reference, floor)
        return (i < maxiter) & jnp.any(rr > enough)

    def outer_body(carry):
        i, (x, *_) = jax.lax.while_loop(inner_cond, inner_body, carry)
        # The true residual, and a fresh search direction.
        return i, _start(matvec, z, x, precondition=precondition)[0]

    iterations, (x, *_, rr) = jax.lax.while_loop(outer_cond, outer_body, (0, state))
    residual = jnp.sqrt(rr / jnp.maximum(reference, TINY))
    converged = jnp.all(residual <= accepted(alpha, reference, x, tol))
    return x, SolveStatus(converged, jnp.max(residual), jnp.asarray(iterations, jnp.int32))


def cg_fixed(matvec, z, maxiter):
    """Exactly ``maxiter`` CG iterations from ``x = z`` (the published code's start),
    differentiated through. CG's iterate map has no derivative at ``z = 0``; there the
    iterations are frozen and the derivative is the identity (use ``"cg"`` for exact gradients
    everywhere)."""
    state, floor = _start(matvec, z, z)
    state = jax.lax.fori_loop(0, maxiter, lambda _, s: _cg_iteration(matvec, s, floor), state)
    return state[0]
