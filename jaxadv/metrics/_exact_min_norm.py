"""Exact minimum-norm adversarial perturbations of small ReLU networks, by mixed-integer programming.

For a fully connected ReLU network ``f`` the smallest ``‖δ‖`` (ℓ∞ or ℓ1) such that ``x + δ`` stays
in the pixel box and some class ``j ≠ y`` reaches ``z_j − z_y ≥ margin`` is a mixed-integer
linear program (Tjeng, Xiao & Tedrake, "Evaluating robustness of neural networks with mixed
integer programming", ICLR 2019):

* each unstable ReLU ``a = max(z, 0)`` with interval bounds ``l < 0 < u`` is encoded exactly with
  one binary ``s``: ``a ≥ z, a ≥ 0, a ≤ z − l(1 − s), a ≤ u·s`` (big-M); stable ones are linear;
* the bounds ``l, u`` come from interval arithmetic over the pixel box (optionally shrunk by a
  known upper bound on the answer, which only speeds the solve up);
* "some ``j ≠ y``" is one binary selector ``c_j`` per class, ``Σ c_j = 1``, with
  ``z_j − z_y ≥ margin − M_j(1 − c_j)`` and ``M_j`` from the same interval bounds;
* ℓ∞: minimise ``t`` with ``|δ_i| ≤ t``; ℓ1: minimise ``Σ s_i`` with ``|δ_i| ≤ s_i``.

Solved by HiGHS through :func:`scipy.optimize.milp` on the host (not jit-able: it is a reference,
for networks of tens of hidden units). The returned ``δ`` is checked in JAX, float32, against the
network: ``fooled`` says whether ``argmax f(x + δ) ≠ y``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from scipy import optimize, sparse

from jaxadv import _checks
from jaxadv.models import Victim, relu_mlp_layers

MIN_NORMS = ("linf", "l1")
_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "error"}


class MinNormResult(NamedTuple):
    """The exact minimum-norm adversarial perturbation of one example.

    Attributes:
      norm: the minimum ``‖δ‖`` (``inf`` when no input of the box reaches another class, 0 when
        ``x`` is already misclassified with the margin); for ``status="time_limit"`` the best
        found, an upper bound.
      delta: the optimal perturbation, shaped like ``x`` (zeros when none exists).
      lower_bound: the solver's proven lower bound on the minimum (equals ``norm`` up to the
        relative gap when optimal).
      target: the class ``j ≠ y`` the optimal ``x + δ`` reaches (-1 when none).
      fooled: whether the network, evaluated in JAX (float32), misclassifies ``x + δ``.
      status: ``"optimal"``, ``"infeasible"`` (no adversarial input in the box) or
        ``"time_limit"``.
      seconds: wall time of the solve.
    """

    norm: float
    delta: np.ndarray
    lower_bound: float
    target: int
    fooled: bool
    status: str
    seconds: float


def _layers_of(network: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(network, Victim):
        return relu_mlp_layers(network.variables)
    if not isinstance(network, Sequence) or not network:
        raise ValueError(
            "`network` must be a ReluMLP Victim or a non-empty sequence of (W[in, out], b[out]) "
            f"pairs; got {type(network).__name__}."
        )
    layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in network]
    for k, (w, b) in enumerate(layers):
        fan_in = layers[k - 1][0].shape[1] if k else w.shape[0]
        if w.ndim != 2 or b.shape != (w.shape[1],) or w.shape[0] != fan_in:
            raise ValueError(
                f"`network` layer {k} must be W[{fan_in}, out] and b[out]; got W{w.shape} and "
                f"b{b.shape}."
            )
        _checks.check_finite(f"network layer {k}", w)
    return layers


def relu_forward(layers, x):
    """Logits of the ReLU network ``layers`` at the flattened ``x`` (JAX, float32).

    Args:
      layers: ``[(w, b), ...]`` with ``w`` of shape ``[in, out]``; ReLU between layers.
      x: one input, any shape (flattened).

    Returns:
      ``f32[classes]`` logits.
    """
    h = jnp.ravel(jnp.asarray(x, jnp.float32))
    for k, (w, b) in enumerate(layers):
        h = h @ jnp.asarray(w, jnp.float32) + jnp.asarray(b, jnp.float32)
        if k < len(layers) - 1:
            h = jnp.maximum(h, 0.0)
    return h


def _interval(w, b, lo, hi):
    """Bounds of ``h @ w + b`` over the box ``lo ≤ h ≤ hi``."""
    wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
    return lo @ wp + hi @ wn + b, hi @ wp + lo @ wn + b


class _Program:
    """Columns, rows and bounds of the MILP, appended block by block."""

    def __init__(self):
        self.lb, self.ub, self.integer, self.rows, self.row_lo, self.row_hi = [], [], [], [], [], []

    def add_vars(self, lo, hi, integer=False) -> np.ndarray:
        lo, hi = np.broadcast_arrays(np.atleast_1d(lo).astype(float), np.atleast_1d(hi))
        start = len(self.lb)
        self.lb += list(lo)
        self.ub += list(hi)
        self.integer += [int(integer)] * len(lo)
        return np.arange(start, start + len(lo))

    def add_row(self, cols, coefs, lo=-np.inf, hi=np.inf):
        self.rows.append((np.asarray(cols), np.asarray(coefs, float)))
        self.row_lo.append(lo)
        self.row_hi.append(hi)

    def matrix(self):
        data, ri, ci = [], [], []
        for r, (cols, coefs) in enumerate(self.rows):
            ri += [r] * len(cols)
            ci += list(cols)
            data += list(coefs)
        return sparse.csr_array((data, (ri, ci)), shape=(len(self.rows), len(self.lb)))


def exact_min_norm(
    network: Any,
    x: Any,
    label: int,
    *,
    norm: str = "linf",
    bounds: tuple[float, float] | None = None,
    margin: float = 1e-4,
    upper_bound: float | None = None,
    time_limit: float = 60.0,
    mip_rel_gap: float = 1e-6,
) -> MinNormResult:
    """The smallest ℓ∞ or ℓ1 perturbation that makes a ReLU network leave class ``label``.

    Solves ``min ‖δ‖ s.t. lo ≤ x + δ ≤ hi, max_{j≠y} z_j(x + δ) − z_y(x + δ) ≥ margin`` exactly
    (up to ``mip_rel_gap``) as a mixed-integer program (module docstring; Tjeng et al., ICLR 2019).
    ``margin > 0`` makes the optimum a strict misclassification that survives float32 rounding;
    the infimum at ``margin = 0`` lies on the decision boundary and is smaller by about
    ``margin / ‖∇(z_j − z_y)‖_dual``.

    Args:
      network: a :class:`jaxadv.models.ReluMLP` victim (e.g.
        :func:`jaxadv.training.small_relu_victim`) or a sequence of ``(W[in, out], b[out])``
        pairs with ReLU between them (no ReLU after the last).
      x: one clean input; it is flattened row-major (as ``ReluMLP`` does).
      label: its true class ``y``.
      norm: ``"linf"`` or ``"l1"``.
      bounds: the pixel box ``(lo, hi)``; default the victim's, else ``(0, 1)``.
      margin: required ``z_j − z_y``, ``>= 0``.
      upper_bound: a known norm of some adversarial perturbation (e.g. an attack's); it tightens
        the interval bounds and speeds the solve up. A value below the true minimum makes the
        program infeasible.
      time_limit: seconds for the solver; past it the best found is returned (``status``).
      mip_rel_gap: relative optimality gap at which the solver stops.

    Returns:
      A :class:`MinNormResult`.

    Raises:
      ValueError: on an unknown ``norm``, a malformed ``network``, ``x`` of the wrong size or with
        NaN, ``x`` outside the box, or a ``label`` out of range.
    """
    _checks.check_choice("norm", norm, MIN_NORMS)
    layers = _layers_of(network)
    if bounds is None:
        bounds = network.bounds if isinstance(network, Victim) else (0.0, 1.0)
    lo_px, hi_px = float(bounds[0]), float(bounds[1])
    x_flat = np.asarray(x, np.float64).ravel()
    n_in, n_cls = layers[0][0].shape[0], layers[-1][0].shape[1]
    if x_flat.size != n_in:
        raise ValueError(f"`x` must have {n_in} entries (the network's input); got {x_flat.size}.")
    _checks.check_finite("x", x_flat)
    _checks.check_in_bounds("x", x_flat, (lo_px, hi_px))
    if (
        isinstance(label, bool)
        or not isinstance(label, (int, np.integer))
        or not 0 <= label < n_cls
    ):
        raise ValueError(f"`label` must be an integer in [0, {n_cls}); got {label!r}.")
    _checks.check_nonnegative("margin", margin)
    _checks.check_positive("time_limit", time_limit)
    if isinstance(network, Victim):
        _check_same_logits(network, layers, x)

    start = time.perf_counter()
    args = (layers, x_flat, int(label), norm, (lo_px, hi_px), float(margin), float(mip_rel_gap))
    radius = None if upper_bound is None else float(upper_bound)
    if radius is None:
        # A quick first solve finds some adversarial input; its norm shrinks the box the
        # interval bounds start from, which makes the exact second solve far faster.
        res = _solve(*args, None, min(_QUICK_SECONDS, float(time_limit)))
        if res.status == 1 and res.x is not None:  # stopped early with an incumbent
            radius = _norm_of(res.x[: x_flat.size], norm)
    else:
        _checks.check_nonnegative("upper_bound", upper_bound)
    if radius is not None:
        left = max(float(time_limit) - (time.perf_counter() - start), 1e-3)
        res = _solve(*args, radius, left)
    seconds = time.perf_counter() - start
    status = _STATUS.get(res.status, "error")
    dual = getattr(res, "mip_dual_bound", None)
    if res.x is None:  # infeasible (no adversarial input in the box) or no solution in time
        lower = np.inf if status == "infeasible" else float(dual if dual is not None else 0.0)
        zeros = np.zeros(np.shape(x), np.float32)
        return MinNormResult(np.inf, zeros, lower, -1, False, status, seconds)
    x32 = np.asarray(x, np.float32)
    d = res.x[: x_flat.size].reshape(np.shape(x)).astype(np.float32)
    d = np.clip(x32 + d, lo_px, hi_px) - x32
    others = [j for j in range(len(layers[-1][1])) if j != label]
    target = others[int(np.argmax(res.x[-len(others) :]))]
    fooled = bool(jnp.argmax(relu_forward(layers, x32 + d)) != label)
    lower = float(dual) if dual is not None and np.isfinite(dual) else float(res.fun)
    return MinNormResult(_norm_of(d, norm), d, lower, target, fooled, status, seconds)


_QUICK_SECONDS = 1.0


def _norm_of(d, norm: str) -> float:
    flat = np.abs(np.asarray(d, np.float64).ravel())
    return float(flat.max() if norm == "linf" else flat.sum())


def _first_layer_interval(w, b, x, d_lo, d_hi, norm, radius):
    """Bounds of ``(x + δ) @ w + b`` over the box ``d_lo ≤ δ ≤ d_hi`` intersected, for ℓ1, with
    ``‖δ‖₁ ≤ radius``: the exact maximum of a linear function there is greedy (fractional
    knapsack: spend the budget on the largest ``|w_ij|`` first)."""
    z_lo, z_hi = _interval(w, b, x + d_lo, x + d_hi)
    if norm != "l1" or radius is None:
        return z_lo, z_hi
    base = x @ w + b

    def most(direction):  # max of direction·(δ @ w) over box ∩ ℓ1 ball, per column
        signed = direction * w  # [n, m]
        room = np.where(signed > 0, d_hi[:, None], -d_lo[:, None])  # how far δ_i may move
        gain = np.abs(signed)
        order = np.argsort(-gain, axis=0)
        g, r = np.take_along_axis(gain, order, 0), np.take_along_axis(room, order, 0)
        spent = np.cumsum(r, axis=0) - r
        take = np.clip(radius - spent, 0.0, r)
        return np.sum(g * take, axis=0)

    return np.maximum(z_lo, base - most(-1.0)), np.minimum(z_hi, base + most(1.0))


def _solve(layers, x_flat, label, norm, bounds, margin, gap, radius, time_limit):
    """Builds and solves the MILP; variables start with δ and end with the class selectors."""
    lo_px, hi_px = bounds
    n_in, n_cls = x_flat.size, layers[-1][0].shape[1]
    d_lo, d_hi = lo_px - x_flat, hi_px - x_flat
    if radius is not None:
        r = radius * (1 + 1e-3) + 1e-6  # slack: the incumbent stays feasible despite tolerances
        d_lo, d_hi = np.maximum(d_lo, -r), np.minimum(d_hi, r)

    prog = _Program()
    delta = prog.add_vars(d_lo, d_hi)
    # |δ_i| ≤ t (ℓ∞, one shared t) or |δ_i| ≤ s_i (ℓ1); the objective pushes them down.
    size = np.maximum(-d_lo, d_hi)
    abs_vars = prog.add_vars(0.0, size.max()) if norm == "linf" else prog.add_vars(0 * size, size)
    for i in range(n_in):
        a = abs_vars[0] if norm == "linf" else abs_vars[i]
        prog.add_row([delta[i], a], [1.0, -1.0], hi=0.0)
        prog.add_row([delta[i], a], [-1.0, -1.0], hi=0.0)
    if norm == "l1" and radius is not None:
        prog.add_row(abs_vars, np.ones(n_in), hi=r)

    # Layer inputs as affine maps of variables: h = const + Σ coef·var (the input is x + δ).
    h_lo, h_hi = x_flat + d_lo, x_flat + d_hi
    h_const, h_vars = x_flat, delta
    for k, (w, b) in enumerate(layers[:-1]):
        if k == 0:
            z_lo, z_hi = _first_layer_interval(w, b, x_flat, d_lo, d_hi, norm, radius)
        else:
            z_lo, z_hi = _interval(w, b, h_lo, h_hi)
        z = prog.add_vars(z_lo, z_hi)
        for j in range(w.shape[1]):  # z_j = b_j + Σ_i w_ij (const_i + var_i)
            rhs = -(b[j] + h_const @ w[:, j])
            prog.add_row(list(h_vars) + [z[j]], list(w[:, j]) + [-1.0], rhs, rhs)
        a = prog.add_vars(np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0))
        for j in range(w.shape[1]):
            lo_j, hi_j = z_lo[j], z_hi[j]
            if hi_j <= 0:  # always off: a = 0 (its bounds already say so)
                continue
            if lo_j >= 0:  # always on: a = z
                prog.add_row([a[j], z[j]], [1.0, -1.0], 0.0, 0.0)
                continue
            s = prog.add_vars(0.0, 1.0, integer=True)[0]
            prog.add_row([a[j], z[j]], [1.0, -1.0], lo=0.0)  # a ≥ z
            prog.add_row([a[j], z[j], s], [1.0, -1.0, -lo_j], hi=-lo_j)  # a ≤ z − l(1 − s)
            prog.add_row([a[j], s], [1.0, -hi_j], hi=0.0)  # a ≤ u·s
        h_lo, h_hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
        h_const, h_vars = np.zeros(w.shape[1]), a

    # Margin of class j over y through one selector c_j per class (Σ c_j = 1).
    w, b = layers[-1]
    others = [j for j in range(n_cls) if j != label]
    diff_w = w[:, others] - w[:, [label]]
    diff_b = b[others] - b[label]
    m_lo, m_hi = _interval(diff_w, diff_b, h_lo, h_hi)
    select = prog.add_vars(0.0, (m_hi >= margin).astype(float), integer=True)
    for c, col_w, b_j, lo_j in zip(select, diff_w.T, diff_b, m_lo):
        big_m = max(margin - lo_j, 0.0)  # z_j − z_y ≥ margin − M(1 − c)
        rhs = margin - big_m - b_j - h_const @ col_w
        prog.add_row(list(h_vars) + [c], list(col_w) + [-big_m], lo=rhs)
    prog.add_row(select, np.ones(len(select)), 1.0, 1.0)

    cost = np.zeros(len(prog.lb))
    cost[abs_vars] = 1.0
    return optimize.milp(
        cost,
        integrality=np.asarray(prog.integer),
        bounds=optimize.Bounds(prog.lb, prog.ub),
        constraints=optimize.LinearConstraint(prog.matrix(), prog.row_lo, prog.row_hi),
        options={"time_limit": time_limit, "mip_rel_gap": gap},
    )


def _check_same_logits(victim: Victim, layers, x) -> None:
    """Guards against a victim whose variables look like a ReluMLP's but compute otherwise."""
    x32 = jnp.asarray(x, jnp.float32).reshape(victim.input_shape)
    got, expected = np.asarray(relu_forward(layers, x32)), np.asarray(victim(x32))
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise ValueError(
            "`network` must be a plain ReluMLP victim: its logits differ from those of its "
            f"layers (max difference {np.max(np.abs(got - expected)):.3g})."
        )
