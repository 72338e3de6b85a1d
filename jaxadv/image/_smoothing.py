"""Image-guided Laplacian smoothing ``s_α(z) = ℒ_α⁻¹ z`` and its normalised form ``ŝ_α``.

Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, §3.2–3.4:
with the normalised adjacency ``𝒲`` of the clean image's pixel graph (``_graph.py``), the
regularised Laplacian is ``ℒ_α = (I − α𝒲)/(1 − α)`` for α ∈ [0, 1), symmetric positive definite
with eigenvalues in [1, (1 + α)/(1 − α)]. ``s_α(z)`` minimises the smoothness-plus-fitness
energy of Eq. 6, and Eq. 9 normalises it row-wise, ``ŝ_α(z) = s_α(z) / s_α(1)``, so a constant
signal stays constant.

Four solvers, chosen by a static ``method``:

- ``"chebyshev"`` (default): Chebyshev semi-iteration (``_chebyshev.py``) with the count of
  iterations that ℒ_α's spectral bounds guarantee for the relative tolerance, then one
  refinement from the true residual where float32 drift left it above. No inner products and
  no stopping test: ~0.9 of ``"cg"``'s attack step time (sC&W, 32×32, batch 32).
- ``"cg"``: conjugate gradient to a relative tolerance (or ``maxiter`` iterations), the paper's
  solver (§4.2.3); it adapts to the actual spectrum (at α = 0.997: 62–76 iterations where
  Chebyshev runs 82–83) and takes warm starts.
- ``"unrolled"``: exactly ``maxiter`` CG iterations from ``x = z``, differentiated through the
  iterations — the published code's scheme (50 iterations), for parity.
- ``"dense"``: the explicit inverse of ``ℒ_α`` per graph, for small images (the paper's MNIST
  setting, and the reference of the tests); it costs O(n²) memory per image.

``"chebyshev"`` and ``"cg"`` run under ``lax.custom_linear_solve``: the backward pass solves the
(same, symmetric) adjoint system instead of differentiating through the iterations. On a
4-neighbour graph they solve the red-black reduced system on half the pixels
(``_red_black.py``; ``reduction="none"``: the full system).

Channels are independent systems (one CG per channel, as in the published code). Each solve
reports a :class:`SolveStatus` read from its true residual: a solve that stops short of its
tolerance is visible as data, and ``strict=True`` turns it into an error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxadv import _checks
from jaxadv.image import _cg, _chebyshev
from jaxadv.image._cg import SolveStatus
from jaxadv.image._graph import PixelGraph, neighbour_sum, pixel_graph
from jaxadv.image._red_black import RedBlack, red_black

METHODS = ("cg", "chebyshev", "unrolled", "dense")
# The methods that solve the red-black reduced system where the graph allows it.
_REDUCIBLE = ("cg", "chebyshev")
PRECONDITIONERS = ("none", "polynomial")
REDUCTIONS = ("auto", "red-black", "none")


class SmoothingNotConverged(ValueError):
    """CG stopped at ``maxiter`` above its tolerance while ``strict=True``.

    Attributes:
      args: the message, with the residual reached.
    """


def check_alpha(alpha) -> None:
    """α must lie in [0, 1) (concrete values only; traced values are the caller's to keep).

    Args:
      alpha: the smoothing parameter.

    Raises:
      ValueError: a concrete ``alpha`` outside [0, 1).
    """
    if _checks.is_concrete(alpha):
        a = np.asarray(alpha, np.float64)
        if not np.all(np.isfinite(a)) or np.any((a < 0) | (a >= 1)):
            raise ValueError(f"`alpha` must lie in [0, 1); got {a if a.ndim else float(a)}.")


def dense_laplacian(graph: PixelGraph, alpha: jax.Array) -> jax.Array:
    """``ℒ_α`` as ``f32[g, n, n]`` (one matrix per graph; small images only).

    Args:
      graph: a :class:`PixelGraph`.
      alpha: in [0, 1).

    Returns:
      ``f32[g, n, n]``, ``n = h·w``.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    w = graph.dense()
    return (jnp.eye(w.shape[-1], dtype=w.dtype) - alpha * w) / (1.0 - alpha)


def _channels_first(graph: PixelGraph, alpha: jax.Array):
    """``ℒ_α`` acting on signals laid out ``[c, h, w]``, which the CG loops use: per-channel
    inner products then reduce over the minor axes, several times faster on CPU than over the
    leading axes of ``[h, w, c]``."""
    weights = jnp.moveaxis(graph.weights, -1, 1)  # [k, g, h, w], moved once, outside the loop

    def matvec(v):
        return (v - alpha * neighbour_sum(weights, graph.offsets, v, axes=(1, 2))) / (1.0 - alpha)

    return matvec


def _to_channels_first(z):
    return jnp.moveaxis(z, -1, 0)


def _to_channels_last(z):
    return jnp.moveaxis(z, 0, -1)


def _true_residual(matvec, alpha, z, s, tol, reference=None):
    """``(r, accepted, largest)`` for ``s`` as a solution of ``matvec(s) = z``: the true residual
    ``r = z − matvec(s)``, whether every channel's relative residual is accepted
    (``_cg.accepted``) and the largest, relative to ``reference`` (the squared norm per channel;
    None: ``‖z‖²``)."""
    r = z - matvec(s)
    reference = _cg.channel_dot(z, z) if reference is None else reference
    residual = jnp.sqrt(_cg.channel_dot(r, r) / jnp.maximum(reference, _cg.TINY))
    return r, jnp.all(residual <= _cg.accepted(alpha, reference, s, tol)), jnp.max(residual)


def _status(matvec, alpha, z, s, tol, iterations, reference=None) -> SolveStatus:
    """The status of ``s`` as a solution of ``matvec(s) = z``, read from its true residual
    (:func:`_true_residual`)."""
    _, converged, residual = _true_residual(matvec, alpha, z, s, tol, reference)
    return SolveStatus(converged, residual, jnp.asarray(iterations, jnp.int32))


def _chebyshev_solve(matvec, alpha, b, tol, maxiter, reduced: bool, reference=None):
    """:func:`_chebyshev.chebyshev` on ``matvec`` (``ℒ_α``, or ``M`` when ``reduced``) to the
    relative residual ``tol`` (relative to ``reference``, the squared norm per channel; None:
    ``‖b‖²``), and its status from the true residual.

    The first pass runs the count that brings ``‖b‖`` to tol/2 relative to ``reference``, which
    any right-hand side of that norm meets in exact arithmetic (:func:`_chebyshev.iterations`;
    on the reduced system ``‖y‖`` is up to ``√(1 + α²)‖z‖``, ``_red_black.py``, and measured
    per example: 19.6 iterations per solve against the bound's 21 in sC&W at 32×32). Half the
    tolerance, as CG aims at, since a float32 residual measured near tol errs by float32's
    floor. The pass's recursively updated residual drifts in float32 (at α = 0.99 on the full
    system the first pass ended with the true one 2× above tol), so the true residual is
    recomputed and, where it is not accepted, one more pass solves for the correction from it,
    sized to bring it to tol/2 (iterative refinement, as in ``_cg.cg_to_tolerance``).
    ``maxiter`` caps both passes together."""
    bb = _cg.channel_dot(b, b)
    reference = bb if reference is None else reference
    centre, half_width = _chebyshev.interval(alpha, reduced)
    aim = max(tol / 2, _cg.TINY)
    # ‖b‖/‖z‖ per channel: 1 on the full system, at most √(1 + α²) on the reduced one.
    size = jnp.sqrt(jnp.max(bb / jnp.maximum(reference, _cg.TINY)))
    first = _chebyshev.iterations(alpha, size / aim, maxiter, reduced)
    s = _chebyshev.chebyshev(matvec, b, centre, half_width, first)
    r, accepted, largest = _true_residual(matvec, alpha, b, s, tol, reference)
    factor = jnp.where(accepted, 1.0, largest / aim)
    second = _chebyshev.iterations(alpha, factor, maxiter - first, reduced)
    # The correction is added after its loop, not carried into it: summing each small step into
    # the large s rounds at s's scale every iteration (at α = 0.997 on the full system the
    # refined residual then stalled at 4.8e-5).
    s = s + _chebyshev.chebyshev(matvec, r, centre, half_width, second)
    return s, _status(matvec, alpha, b, s, tol, first + second, reference)


def _solve_reduced(reduced: RedBlack, z, solve, x=None):
    """``solve`` on the red-black reduced system of ``ℒ_α s = z`` (``z``, ``x`` and the result
    ``[c, h, w]``): ``solve(matvec, y, red start or None, reference)`` on the red pixels, the
    black ones solved for after. Its status reads the reduced residual relative to ``‖z‖²``
    (``reference``), which is the full one (``_red_black.py``)."""
    y, z_black = reduced.rhs(z)
    start = None if x is None else reduced.red(x)
    s_red, status = solve(reduced.matvec, y, start, _cg.channel_dot(z, z))
    return reduced.merge(s_red, z_black), status


def _reduction_for(graph: PixelGraph, alpha, method: str, reduction: str) -> RedBlack | None:
    """The red-black reduction that ``"cg"`` or ``"chebyshev"`` solves with, or None (see
    :func:`solve_laplacian`; ``reduction`` already checked)."""
    if reduction == "none" or method not in _REDUCIBLE or len(graph.offsets) != 2:
        return None
    return red_black(graph, alpha)


def check_preconditioner(preconditioner: str, *, method: str) -> None:
    """Raises a ValueError for an unknown ``preconditioner``, or one asked of a method that takes
    none (only ``"cg"`` is preconditioned).

    Args:
      preconditioner: ``"none"`` or ``"polynomial"`` (see :func:`solve_laplacian`).
      method: the solver.

    Raises:
      ValueError: naming ``preconditioner``.
    """
    _checks.check_choice("preconditioner", preconditioner, PRECONDITIONERS)
    if preconditioner != "none" and method != "cg":
        raise ValueError(
            f'`preconditioner`={preconditioner!r} preconditions the "cg" solves only; got '
            f"method={method!r} (pass preconditioner='none')."
        )


def check_warm_start(argument: str, given: bool, *, method: str) -> None:
    """Raises a ValueError when a warm start is ``given`` for a method that takes no first
    iterate (only ``"cg"`` does).

    Args:
      argument: the name of the argument that carried it (``start``, ``warm_start``).
      given: whether a warm start was asked for.
      method: the solver.

    Raises:
      ValueError: naming ``argument`` and ``method``.
    """
    if given and method != "cg":
        raise ValueError(
            f'`{argument}` warm-starts the "cg" solves only (the other solvers take no first '
            f"iterate); got method={method!r}."
        )


def check_reduction(reduction: str, *, method: str, neighbors: int) -> None:
    """Raises a ValueError for an unknown ``reduction``, or ``"red-black"`` asked of a solve it
    cannot reduce: another method than ``"cg"`` or ``"chebyshev"``, or an 8-neighbour graph (not
    bipartite).

    Args:
      reduction: ``"auto"``, ``"red-black"`` or ``"none"`` (see :func:`solve_laplacian`).
      method: the solver, ``"cg"``, ``"unrolled"`` or ``"dense"``.
      neighbors: the pixel graph's neighbourhood, 4 or 8.

    Raises:
      ValueError: naming ``reduction`` and what it cannot be combined with.
    """
    _checks.check_choice("reduction", reduction, REDUCTIONS)
    if reduction != "red-black":
        return
    if method not in _REDUCIBLE:
        raise ValueError(
            '`reduction`=\'red-black\' reduces the "cg" and "chebyshev" solves only; got '
            f"method={method!r} "
            "(pass reduction='auto' or 'none')."
        )
    if neighbors != 4:
        raise ValueError(
            "`reduction`='red-black' needs a 4-neighbour pixel graph (8 neighbours make it "
            f"non-bipartite); got neighbors={neighbors} (pass reduction='auto' or 'none')."
        )


def solve_laplacian(
    graph: PixelGraph,
    alpha: jax.Array,
    z: jax.Array,
    *,
    method: str = "chebyshev",
    maxiter: int = 50,
    tol: float = 1e-5,
    start: tuple[jax.Array, jax.Array] | None = None,
    preconditioner: str = "none",
    reduction: str = "auto",
) -> tuple[jax.Array, SolveStatus]:
    """``s_α(z) = ℒ_α⁻¹ z`` for a signal ``z`` of shape ``[h, w, c]``, and how the solve ended.

    ``method`` is ``"chebyshev"`` (default) or ``"cg"`` (both with implicit differentiation),
    ``"unrolled"`` (``maxiter`` CG iterations, differentiated through) or ``"dense"`` (explicit
    inverse, small images). ``tol`` is the relative residual that counts as converged (for
    ``"unrolled"`` and ``"dense"`` it only decides the reported status). ``"cg"`` stops on the
    true residual (recomputed, CG restarted from the iterate while it is above), never on its
    running estimate alone. ``"chebyshev"`` runs the count that reaches tol/2 for any
    right-hand side of ``z``'s norm (``_chebyshev.iterations``, from α and that norm), then,
    where the true residual is not accepted, a second pass sized from it; under ``vmap`` each
    example still runs its own counts. Below float32's floor (see :class:`SolveStatus`; ~2.5e-5
    at α = 0.99 and ~8e-5 at α = 0.997 for ‖s‖ ≈ ‖z‖) no float32 answer can be checked to meet
    ``tol``, and the floor is accepted instead.

    ``start`` warm-starts ``"cg"`` (the other methods take none: a ValueError): ``(guess,
    adjoint_guess)``, first iterates of the solve and of the backward pass's adjoint solve (e.g.
    the previous iteration's solutions when ``z`` changes little between iterations). Both stop
    on the same true residual as from 0, so the result differs from the cold start's by no more
    than the tolerance allows; the guesses are not differentiated.

    ``preconditioner="polynomial"`` preconditions ``"cg"`` with ``I + α𝒲`` (about half the CG
    iterations, each with two products with ``ℒ_α``; see ``_cg._polynomial_preconditioner``;
    on the reduced system below, ``I + α²BBᵀ``, which saves fewer iterations and measured
    slower); the solve stops on the same true residual. Other methods take none (a
    ValueError).

    ``reduction`` (``"chebyshev"`` and ``"cg"``): ``"red-black"`` solves the system reduced to
    half the pixels (``_red_black.py``: condition number ``1/(1 − α²)`` instead of
    ``(1 + α)/(1 − α)``, about half the iterations, each on half the pixels), ``"none"`` the
    full system, ``"auto"`` (default) the reduced one wherever the graph allows it (4
    neighbours). Either stops on the full system's true residual; ``status.iterations`` counts
    the iterations of the system solved.

    Args:
      graph: a :class:`PixelGraph`.
      alpha: in [0, 1).
      z: ``[h, w, c]`` the signal.
      method: ``"chebyshev"``, ``"cg"``, ``"unrolled"`` or ``"dense"``.
      maxiter: solver iterations at most (Chebyshev: both passes together).
      tol: the relative residual aimed at.
      start: ``(guess, adjoint_guess)``, both ``[h, w, c]``, for ``"cg"`` only (None: from
        0).
      preconditioner: ``"none"`` or ``"polynomial"`` (``"cg"`` only).
      reduction: ``"auto"``, ``"red-black"`` or ``"none"``, for ``"chebyshev"`` and ``"cg"``.

    Returns:
      ``(s, status)``: the smoothed signal ``[h, w, c]`` and a :class:`SolveStatus`.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    _checks.check_choice("method", method, METHODS)
    check_preconditioner(preconditioner, method=method)
    _checks.check_positive_int("maxiter", maxiter)
    _checks.check_nonnegative("tol", tol)
    check_alpha(alpha)
    check_reduction(reduction, method=method, neighbors=2 * len(graph.offsets))
    check_warm_start("start", start is not None, method=method)
    graph.check_signal("z", z)
    alpha = jnp.asarray(alpha, jnp.float32)
    z = jnp.asarray(z, jnp.float32)
    reduced = _reduction_for(graph, alpha, method, reduction)
    return _solve(graph, alpha, z, method, maxiter, tol, start, preconditioner, reduced)


def _solve(graph, alpha, z, method, maxiter, tol, start, preconditioner, reduced):
    """:func:`solve_laplacian` with its arguments checked and the reduction (or None) built."""
    matvec = _channels_first(graph, alpha)
    zt = _to_channels_first(z)
    if method == "dense":
        s = apply_dense(jnp.linalg.inv(dense_laplacian(graph, alpha)), z)
        return s, _status(matvec, alpha, zt, _to_channels_first(s), tol, 0)
    if method == "unrolled":
        st = _cg.cg_fixed(matvec, zt, maxiter)
        return _to_channels_last(st), _status(matvec, alpha, zt, st, tol, maxiter)

    if start is None:
        guesses = (None, None)
    else:
        guesses = tuple(
            _to_channels_first(jax.lax.stop_gradient(jnp.asarray(g, jnp.float32))) for g in start
        )

    def iterate(matvec, b, guess, reference=None):
        if method == "chebyshev":
            is_reduced = reduced is not None
            return _chebyshev_solve(matvec, alpha, b, tol, maxiter, is_reduced, reference)
        return _cg.cg_to_tolerance(matvec, alpha, b, tol, maxiter, guess, preconditioner, reference)

    def any_system(matvec, b, guess):
        if reduced is not None:  # solves the same system as `matvec`, on half the pixels
            return _solve_reduced(reduced, b, iterate, guess)
        return iterate(matvec, b, guess)

    def solve(matvec, b):
        return any_system(matvec, b, guesses[0])

    def transpose_solve(vecmat, b):  # ℒ_α is symmetric: the adjoint system is the same one
        return any_system(vecmat, b, guesses[1])

    st, status = jax.lax.custom_linear_solve(
        matvec, zt, solve, transpose_solve=transpose_solve, has_aux=True
    )
    return _to_channels_last(st), status


def smoothness_penalty(graph: PixelGraph, r: jax.Array) -> jax.Array:
    """``Σ_{i,j} w_ij ‖r̂_i − r̂_j‖²`` with ``r̂ = D^{-1/2} r`` (paper §4.2.1, Eq. 14 without μ).

    The sum runs over ordered pixel pairs (each edge twice) with the unnormalised weights ``W``
    and degrees ``D = diag(W·1)``; it equals ``2·Σ_c (‖r_c‖² − r_cᵀ 𝒲 r_c)`` with the normalised
    ``𝒲 = D^{-1/2} W D^{-1/2}`` that ``graph`` stores (``d_i r̂_i² = r_i²``), which is how it is
    computed: one matrix-free product, no solve. ``r`` has shape ``[h, w, c]``.

    Args:
      graph: the normalised :class:`PixelGraph` of the clean image (:func:`pixel_graph`).
      r: ``[h, w, c]`` signal (e.g. a perturbation) on the graph's pixels; with per-channel
        graphs, ``c`` must be their number. Cast to ``float32``.

    Returns:
      A 0-d ``float32`` array, the penalty (>= 0 up to rounding), differentiable in ``r``.

    Raises:
      ValueError: if ``r``'s shape does not match the graph (:meth:`PixelGraph.check_signal`).
    """
    graph.check_signal("r", r)
    r = jnp.asarray(r, jnp.float32)
    return 2.0 * (jnp.sum(jnp.square(r)) - jnp.sum(r * graph.matvec(r)))


def apply_dense(matrices: jax.Array, z: jax.Array) -> jax.Array:
    """Applies per-graph matrices ``f32[g, n, n]`` to a signal ``[h, w, c]``."""
    h, w, c = z.shape
    flat = z.reshape(h * w, c)
    if matrices.shape[0] == 1:
        out = matrices[0] @ flat
    else:
        out = jnp.einsum("cij,jc->ic", matrices, flat)
    return out.reshape(h, w, c)


@struct.dataclass
class Smoother:
    """The normalised smoothing ``ŝ_α`` guided by one clean image, ready to apply.

    Build it with :func:`smoother` (once per image); calling it applies ``ŝ_α`` (or ``s_α`` when
    ``normalize=False``). It is a pytree: ``vmap`` over images gives one smoother per image.

    Attributes:
      graph: the normalised pixel graph of the clean image.
      alpha: α of ``ℒ_α``.
      scale: ``1/s_α(1)`` per pixel (ones when not normalising).
      inverse: ``ℒ_α⁻¹`` per graph for ``method="dense"``, else None.
      reduced: the red-black reduction that ``"chebyshev"`` and ``"cg"`` solve with
        (:func:`solve_laplacian`'s ``reduction``), built once with the smoother, else None.
      status: how the solve of ``s_α(1)`` ended. Later solves use the same operator (the
        solvers' rate is set by its spectrum) and usually end alike, but only ``strict=True``
        checks each one.
      method, maxiter, tol, strict, preconditioner: the solver settings (static).
    """

    graph: PixelGraph
    alpha: jax.Array
    scale: jax.Array
    inverse: jax.Array | None
    reduced: RedBlack | None
    status: SolveStatus
    method: str = struct.field(pytree_node=False, default="chebyshev")
    maxiter: int = struct.field(pytree_node=False, default=50)
    tol: float = struct.field(pytree_node=False, default=1e-5)
    strict: bool = struct.field(pytree_node=False, default=False)
    preconditioner: str = struct.field(pytree_node=False, default="none")

    def solve(self, z: jax.Array, start=None) -> tuple[jax.Array, SolveStatus]:
        """``(ŝ_α(z), status)``; raises :class:`SmoothingNotConverged` when strict.

        ``start`` warm-starts the CG solves (see :func:`solve_laplacian`): ``(guess,
        adjoint_guess)``, where ``guess`` approximates ``s_α(z)`` (before the normalisation)
        and ``adjoint_guess`` the gradient with respect to ``z`` that the backward pass returns;
        ``method="cg"`` only (a ValueError for the others)."""
        self.graph.check_signal("z", z)
        check_warm_start("start", start is not None, method=self.method)
        z = jnp.asarray(z, jnp.float32)
        if self.inverse is not None:
            s = apply_dense(self.inverse, z)
            matvec = _channels_first(self.graph, self.alpha)
            zt, st = _to_channels_first(z), _to_channels_first(s)
            status = _status(matvec, self.alpha, zt, st, self.tol, 0)
        else:
            s, status = _solve(
                self.graph,
                self.alpha,
                z,
                self.method,
                self.maxiter,
                self.tol,
                start,
                self.preconditioner,
                self.reduced,
            )
        if self.strict:
            _raise_unless_converged(status, self.method, self.maxiter, self.tol)
        return s * self.scale, status

    def __call__(self, z: jax.Array) -> jax.Array:
        """``ŝ_α(z)``: smooth like the clean image, constant signals unchanged."""
        return self.solve(z)[0]


def smoother(
    x0: jax.Array,
    alpha: jax.Array | float = 0.95,
    bandwidth: jax.Array | float = 0.1,
    *,
    neighbors: int = 4,
    kernel: str = "laplacian",
    spatial_bandwidth: jax.Array | float = 1.0,
    per_channel: bool = False,
    normalize: bool = True,
    method: str = "chebyshev",
    maxiter: int = 50,
    tol: float = 1e-5,
    strict: bool = False,
    preconditioner: str = "none",
    reduction: str = "auto",
) -> Smoother:
    """The smoothing ``ŝ_α`` guided by the clean image ``x0`` (``[h, w, c]``), paper Eq. 8–9.

    ``alpha`` ∈ [0, 1) sets the bandwidth of the filter (0: identity; → 1: strongly low-pass; the
    paper uses 0.95 on MNIST, 0.997 on ImageNet). The graph arguments are those of
    :func:`pixel_graph` (defaults: 4 neighbours, Laplacian feature kernel with σ_f = 0.1, i.e. the
    published demo's λ = 10). ``normalize`` divides by ``s_α(1)`` (Eq. 9). ``method``,
    ``maxiter`` and ``tol`` choose the solver (see :func:`solve_laplacian`); ``strict`` raises
    :class:`SmoothingNotConverged` when a solve misses its tolerance (under ``jit`` the error is
    raised by a host callback when the program runs, wrapped in JAX's runtime error).

    Args:
      x0: ``[h, w, c]`` the clean image that guides the graph.
      alpha: in [0, 1).
      bandwidth: the feature kernel's bandwidth σ_f.
      neighbors: 4 or 8.
      kernel: the feature kernel (see :func:`pixel_graph`).
      spatial_bandwidth: the spatial kernel's bandwidth.
      per_channel: one graph per channel.
      normalize: divide by ``s_α(1)``.
      method: the solver (see :func:`solve_laplacian`).
      maxiter: solver iterations at most.
      tol: the relative residual aimed at.
      strict: raise :class:`SmoothingNotConverged` on a missed tolerance.
      preconditioner: ``"none"`` or ``"polynomial"`` (see :func:`solve_laplacian`).
      reduction: ``"auto"``, ``"red-black"`` or ``"none"`` (see :func:`solve_laplacian`).

    Returns:
      A :class:`Smoother`.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    _checks.check_choice("method", method, METHODS)
    check_preconditioner(preconditioner, method=method)
    _checks.check_positive_int("maxiter", maxiter)
    _checks.check_nonnegative("tol", tol)
    check_alpha(alpha)
    check_reduction(reduction, method=method, neighbors=neighbors)
    graph = pixel_graph(
        x0,
        bandwidth,
        neighbors=neighbors,
        kernel=kernel,
        spatial_bandwidth=spatial_bandwidth,
        per_channel=per_channel,
    )
    alpha = jnp.asarray(alpha, jnp.float32)
    inverse = jnp.linalg.inv(dense_laplacian(graph, alpha)) if method == "dense" else None
    partial = Smoother(
        graph=graph,
        alpha=alpha,
        scale=jnp.ones(graph.shape, jnp.float32),
        inverse=inverse,
        reduced=_reduction_for(graph, alpha, method, reduction),
        status=SolveStatus(jnp.ones((), bool), jnp.zeros(()), jnp.zeros((), jnp.int32)),
        method=method,
        maxiter=maxiter,
        tol=tol,
        strict=strict,
        preconditioner=preconditioner,
    )
    ones, status = partial.solve(jnp.ones(graph.shape, jnp.float32))
    scale = 1.0 / ones if normalize else jnp.ones_like(ones)
    return partial.replace(scale=scale, status=status)


def _raise_unless_converged(status: SolveStatus, method: str, maxiter: int, tol: float) -> None:
    def check(converged, residual):
        if not np.all(converged):
            raise SmoothingNotConverged(
                f"The smoothing solve (method={method!r}) did not reach the relative residual "
                f"`tol`={tol} within `maxiter`={maxiter} "
                f"iterations (largest residual {float(np.max(residual)):.3g}). Raise `maxiter`, "
                "lower `alpha` (ℒ_α's condition number is (1 + α)/(1 − α)), or pass "
                "`strict=False` and read the status."
            )

    if _checks.is_concrete(status.converged):
        check(np.asarray(status.converged), np.asarray(status.residual))
    else:
        jax.debug.callback(check, status.converged, status.residual)
