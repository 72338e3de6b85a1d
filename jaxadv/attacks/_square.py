"""The Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), ℓ∞ and ℓ2.

A score-based black-box attack: random search over square-shaped updates that keep the
perturbation on the boundary of the budget. It reads the victim's outputs only (never a gradient),
one forward pass per candidate, and keeps a candidate only when it lowers the loss.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _Best, _candidate, make_result
from jaxadv.losses import cross_entropy, cw_margin

NORMS = ("linf", "l2")
SQUARE_LOSSES = ("margin", "ce")

# The published schedule of p for 10,000 iterations: p is halved each time the iteration passes one
# of these points (p_init up to 10, p_init/2 up to 50, ..., p_init/512 after 8,000). Other budgets
# rescale the iteration to 10,000.
HALVING_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)

_RESAMPLE_DRAWS = 16  # sign draws per step for `resample=True` (see Square)
_TINY = 1e-12


def square_schedule(p_init: jax.Array, iteration: jax.Array, queries: int) -> jax.Array:
    """The fraction ``p`` of pixels a square covers at ``iteration`` (0-based; an array of them
    works elementwise) of a run with a budget of ``queries`` (static): ``p_init / 2^k``, ``k``
    the number of halving points ``b`` (:data:`HALVING_POINTS`) with
    ``⌊10000·iteration/queries⌋ > b``.

    The integer thresholds are computed here in exact arithmetic (no float rounding of
    ``iteration/queries``, no int32 overflow): ``⌊10000·i/q⌋ > b  ⟺  i ≥ ⌈(b+1)·q/10000⌉``.

    Args:
      p_init: the initial fraction ``hp.p_init``, in (0, 1].
      iteration: the 0-based iteration index (int; an array of them works elementwise).
      queries: the run's query budget (a positive Python int, static).

    Returns:
      ``p`` as float32, shaped like ``iteration``.
    """
    _checks.check_positive_int("queries", queries)
    iteration = jnp.asarray(iteration, jnp.int32)
    firsts = jnp.asarray([-(-(b + 1) * queries // 10000) for b in HALVING_POINTS], jnp.int32)
    halvings = jnp.sum(iteration[..., None] >= firsts, axis=-1)
    return jnp.asarray(p_init, jnp.float32) * jnp.exp2(-halvings.astype(jnp.float32))


def square_side(p: jax.Array, shape: tuple[int, ...], norm: str) -> jax.Array:
    """The side ``s`` of the square for a fraction ``p`` of an ``[h, w, c]`` image.

    ``s = round(√(p·h·w))`` (round half to even, as Python's ``round``), at least 1 for ℓ∞; for ℓ2
    at least 3 and odd (even sides are incremented), as the authors' code does. Capped at
    ``min(h, w)`` so that the square fits (the authors' ℓ∞ code caps at ``h − 1``, a limit of its
    window sampler; here every position of a fitting square can be drawn).

    Args:
      p: the fraction of pixels the square covers (from :func:`square_schedule`).
      shape: the image's shape ``(h, w, c)`` (static).
      norm: ``"linf"`` or ``"l2"``.

    Returns:
      The side as an int32 array, in ``[1, min(h, w)]`` (ℓ2: at least 3 and odd, unless capped).
    """
    _checks.check_choice("norm", norm, NORMS)
    h, w = shape[0], shape[1]
    side = jnp.round(jnp.sqrt(jnp.asarray(p, jnp.float32) * (h * w))).astype(jnp.int32)
    if norm == "linf":
        side = jnp.maximum(side, 1)
    else:
        side = jnp.maximum(side, 3)
        side = side + (side % 2 == 0)
    return jnp.minimum(side, min(h, w))


# -- the ℓ2 bump η (the paper's Eq. 2): two half-windows of opposite sign ---------------------------


def _inverse_square_sums(n: int) -> jax.Array:
    """``C[k] = Σ_{j=1..k} 1/j²`` for ``k = 0..n``."""
    return jnp.concatenate([jnp.zeros(1), jnp.cumsum(1.0 / jnp.arange(1, n + 1) ** 2)])


def _rect(i, j, m, n, sums):
    """The pseudo-Gaussian bump of an ``m × n`` rectangle at integer coordinates ``(i, j)`` (zero
    outside): ``Σ_{k=d}^{K−1} 1/(k+1)²`` with ``d`` the Chebyshev distance to ``(m//2, n//2)``
    and ``K = max(m, n)//2 + 1`` rings."""
    inside = (i >= 0) & (i < m) & (j >= 0) & (j < n)
    d = jnp.maximum(jnp.abs(i - m // 2), jnp.abs(j - n // 2))
    rings = jnp.maximum(m, n) // 2 + 1
    top = sums.shape[0] - 1
    value = sums[jnp.clip(rings, 0, top)] - sums[jnp.clip(d, 0, top)]
    return jnp.where(inside, value, 0.0)


def _signs(u):
    """Random signs ±1 from uniforms in [0, 1)."""
    return jnp.where(u < 0.5, -1.0, 1.0)


def _unit(v):
    return v / jnp.maximum(jnp.sqrt(jnp.sum(v * v)), _TINY)


def bump(a, b, side, transpose, sums):
    """η of an ``side × side`` window at local coordinates ``(a, b)`` (arrays over a grid that
    holds the whole window once; zero outside it), of unit ℓ2 norm over that grid.

    The upper ``side//2`` rows hold a bump of ``+`` sign, the rest one of ``−`` sign, each of unit
    norm before the whole is normalised; ``transpose`` swaps rows and columns.
    """
    a, b = jnp.where(transpose, b, a), jnp.where(transpose, a, b)
    half = side // 2
    upper = _unit(_rect(a, b, half, side, sums))
    lower = _unit(_rect(a - half, b, side - half, side, sums))
    return _unit(upper - lower)


# -- the attack ------------------------------------------------------------------------------------


class SquareParams(NamedTuple):
    """The numbers of :func:`square`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the radius of the ℓ∞ or ℓ2 ball.
      p_init: the initial fraction of pixels a square covers, in (0, 1]; the schedule halves it.
    """

    eps: jax.Array
    p_init: jax.Array


class _Carry(NamedTuple):
    key: jax.Array  # fixed; each iteration folds its index in
    iteration: jax.Array  # global iteration index (drives the schedule; runs on when done)
    steps: jax.Array  # iterations while not done
    queries: jax.Array  # forward passes while not done, the initial one included
    done: jax.Array  # the best iterate fools the victim
    best: _Best


@dataclasses.dataclass(frozen=True)
class Square(AttackBase):
    """The Square Attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
    query-efficient black-box adversarial attack via random search", ECCV 2020, Algorithms 1-3).

    Score-based: it uses the victim's outputs, never its gradients. From an initial perturbation
    on the boundary of the ball, each iteration draws one candidate that changes a square window
    (side from :func:`square_side` of the schedule :func:`square_schedule`) and keeps it only when
    it lowers the loss (so the best loss never increases), until the best iterate fools the victim
    or the budget of ``queries`` forward passes (the initial one included) is spent.

    * ℓ∞: vertical stripes of width 1, each channel of each column ``±eps`` at random; a candidate
      sets one window, per channel, to ``±eps`` at random (Algorithm 2: ``±2·eps`` then the
      projection onto the ball). Every iterate keeps ``|δ| = eps`` except where the pixel box cuts.
    * ℓ2: a centred grid of bumps η (side ``min(h, w)//5``; two half-bumps of opposite sign, at
      random transposed, a random sign per channel) scaled to ``‖δ‖₂ = eps``; a candidate moves the
      mass of a second window ``W2`` and the unused budget into a first window ``W1`` (both of the
      same side), per channel: ``W1 ← (ρ·η + δ_W1/‖δ_W1‖)`` rescaled to
      ``√(‖δ_{W1∪W2}‖² + (eps² − ‖δ‖²)/c)``, ``W2 ← 0`` (Algorithm 3), which keeps ``‖δ‖₂ = eps``;
      then the projection onto the ball (it only absorbs float rounding) and the pixel box.

    Loss (minimised, jaxadv's convention): the margin ``z_y − max_{j≠y} z_j`` untargeted and the
    cross-entropy of the target targeted, as in the paper (``loss="margin"`` or ``"ce"`` picks one
    for both; AutoAttack runs the margin for both). The margin is not clipped.

    Queries are counted per example in the compiled state: 1 for the initial iterate, +1 per
    iteration until the best iterate fools the victim; later iterations neither count nor change
    the result (``steps`` = iterations used = ``queries − 1``). The ``trace`` is the best loss
    after each iteration (non-increasing). Each program step is one candidate, one forward pass.

    Where the paper and the authors' code differ, the paper is the default: positions are drawn
    uniformly from all ``(h − s + 1)·(w − s + 1)`` fitting windows (the code's sampler skips the
    last row and column), and an ℓ∞ candidate may repeat the current window (a wasted query).
    ``resample=True`` is the code's rejection step: signs are redrawn (up to 16 draws) until the
    window changes, which matters for grayscale images, where a small window often repeats.
    AutoAttack's Square additionally accepts any candidate that fools the victim even when its
    loss is higher; here only improvements are accepted, as in Algorithm 1.

    Defaults: ``p_init = 0.8``, AutoAttack's for both norms and the authors' for the MNIST
    challenge (their README); their code's help gives 0.05 (ℓ∞) and 0.1 (ℓ2) as the standard
    values for ImageNet models and says robust models need higher ones. ``eps`` 8/255 (ℓ∞) and
    0.5 (ℓ2), AutoAttack's CIFAR-10 budgets; 5,000 queries (AutoAttack's).

    Attributes:
      norm: the ball, ``"linf"`` (default) or ``"l2"``.
      queries: forward passes per example, the initial one included (5,000).
      targeted: reach ``target`` instead of leaving ``label``.
      loss: ``"margin"`` or ``"ce"``; None: the paper's (margin untargeted, CE targeted).
      resample: ℓ∞ only: redraw signs that would leave the window unchanged (the authors' code).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    norm: str = "linf"
    queries: int = 5000
    targeted: bool = False
    loss: str | None = None
    resample: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "square"
    params_type: ClassVar[type] = SquareParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "eps": Spec(8 / 255),
        "p_init": Spec(0.8, "open_unit"),
    }

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_positive_int("queries", self.queries)
        if self.loss is not None:
            _checks.check_choice("loss", self.loss, SQUARE_LOSSES)
        if not isinstance(self.resample, bool):
            raise ValueError(f"`resample` must be a bool; got {self.resample!r}.")

    @property
    def length(self) -> int:
        return self.queries - 1  # the initial iterate is the first query

    def check_victim(self, victim, hp) -> None:
        shape = tuple(self.input_shape(victim))
        if len(shape) != 3:
            raise ValueError(
                f"The Square Attack needs images of shape [h, w, c]; the victim's input shape is "
                f"{shape}."
            )

    def objective(self, logits, label, target):
        """The loss to minimise (see the class docstring)."""
        loss = self.loss or ("ce" if self.targeted else "margin")
        goal = target if self.targeted else label
        if loss == "ce":
            ce = cross_entropy(logits, goal)
            return ce if self.targeted else -ce
        return cw_margin(logits, goal, kappa=jnp.inf, targeted=self.targeted)

    def program(self, victim, hp: SquareParams, x0, label, target) -> Program:
        low, high = victim.bounds
        h, w, c = x0.shape
        box_low, box_high = low - x0, high - x0  # the pixel box as bounds on δ
        rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
        sums = _inverse_square_sums(max(h, w) // 2 + 2)
        eps = hp.eps

        def evaluate(delta) -> _Best:
            x = jnp.clip(x0 + delta, low, high)
            logits = victim(x)
            loss = self.objective(logits, label, target)
            return _candidate(x, delta, logits, loss, self.success(logits, label, target), "loss")

        def window(u, side):
            """A uniformly placed ``side × side`` window from two uniforms ``u``: local
            coordinates and its mask."""
            top = jnp.minimum(jnp.floor(u[0] * (h - side + 1)).astype(jnp.int32), h - side)
            left = jnp.minimum(jnp.floor(u[1] * (w - side + 1)).astype(jnp.int32), w - side)
            a, b = rows - top, cols - left
            return a, b, (a >= 0) & (a < side) & (b >= 0) & (b < side)

        def linf_init(key):
            stripes = eps * jax.random.rademacher(key, (1, w, c), jnp.float32)
            return jnp.clip(jnp.broadcast_to(stripes, (h, w, c)), box_low, box_high)

        def linf_candidate(u, delta, side):
            _, _, inside = window(u[:2], side)
            inside = inside[..., None]
            signs = _signs(u[2:]).reshape(-1, c)  # one draw, or `_RESAMPLE_DRAWS` of them
            if self.resample:
                # per channel: does setting the window to -eps / +eps change it?
                changes = [
                    jnp.any(inside & (jnp.clip(v, box_low, box_high) != delta), axis=(0, 1))
                    for v in (-eps, eps)
                ]
                moves = jnp.any(jnp.where(signs > 0, changes[1], changes[0]), axis=1)
                sign = signs[jnp.argmax(moves)]  # the first draw that moves (draw 0 if none)
            else:
                sign = signs[0]
            return jnp.clip(jnp.where(inside, sign * eps, delta), box_low, box_high)

        def l2_init(key):
            side = max(min(h, w) // 5, 1)
            n_h, n_w = h // side, w // side
            u = jax.random.uniform(key, (n_h, n_w, 1 + c))
            flips, signs = u[..., 0] < 0.5, _signs(u[..., 1:])
            local = jnp.arange(side)
            eta = bump(local[:, None], local[None, :], side, False, sums)
            r = jnp.arange(h)[:, None] - (h - n_h * side) // 2  # the grid is centred
            q = jnp.arange(w)[None, :] - (w - n_w * side) // 2
            cell_r, cell_q = r // side, q // side
            on_grid = (r >= 0) & (cell_r < n_h) & (q >= 0) & (cell_q < n_w)
            cell_r, cell_q = jnp.clip(cell_r, 0, n_h - 1), jnp.clip(cell_q, 0, n_w - 1)
            a, b = r % side, q % side
            value = jnp.where(flips[cell_r, cell_q], eta[b, a], eta[a, b])
            delta = jnp.where(on_grid, value, 0.0)[..., None] * signs[cell_r, cell_q]
            return jnp.clip(eps * _unit(delta), box_low, box_high)

        def l2_candidate(u, delta, side):
            a, b, in_1 = window(u[:2], side)
            _, _, in_2 = window(u[2:4], side)
            in_1, in_2 = in_1[..., None], in_2[..., None]
            square = delta * delta
            unused = jnp.maximum(eps * eps - jnp.sum(square), 0.0)
            norm_1 = jnp.sqrt(jnp.sum(jnp.where(in_1, square, 0.0), axis=(0, 1)))  # [c]
            mass = jnp.sum(jnp.where(in_1 | in_2, square, 0.0), axis=(0, 1))  # [c]
            eta = bump(a, b, side, u[4] < 0.5, sums)[..., None]
            rho = _signs(u[5:])
            new = rho * eta + jnp.where(in_1, delta, 0.0) / (norm_1 + _TINY)
            new_norm = jnp.sqrt(jnp.sum(new * new, axis=(0, 1)))
            new = new / (new_norm + _TINY) * jnp.sqrt(mass + unused / c)
            delta = jnp.where(in_1, new, jnp.where(in_2, 0.0, delta))
            norm = jnp.sqrt(jnp.sum(delta * delta))
            delta = delta * jnp.minimum(1.0, eps / jnp.maximum(norm, _TINY))
            return jnp.clip(delta, box_low, box_high)

        if self.norm == "linf":
            start, candidate = linf_init, linf_candidate
            draws = 2 + c * (_RESAMPLE_DRAWS if self.resample else 1)
        else:
            start, candidate, draws = l2_init, l2_candidate, 5 + c

        def init(key):
            key, sub = jax.random.split(key)
            best = evaluate(start(sub))
            zero = jnp.zeros((), jnp.int32)
            return _Carry(key, zero, zero, jnp.ones((), jnp.int32), best.success, best)

        def step(carry: _Carry):
            # One threefry draw per step (split chains compile slowly when unrolled on CPU).
            u = jax.random.uniform(jax.random.fold_in(carry.key, carry.iteration), (draws,))
            p = square_schedule(hp.p_init, carry.iteration, self.queries)
            new = evaluate(candidate(u, carry.best.delta, square_side(p, x0.shape, self.norm)))
            active = ~carry.done
            better = active & (new.rank < carry.best.rank)
            best = jax.tree.map(lambda n, o: jnp.where(better, n, o), new, carry.best)
            counted = active.astype(jnp.int32)
            carry = _Carry(
                key=carry.key,
                iteration=carry.iteration + 1,
                steps=carry.steps + counted,
                queries=carry.queries + counted,
                done=carry.done | best.success,
                best=best,
            )
            return carry, best.loss

        def finish(carry: _Carry, trace):
            return make_result(carry.best, victim.bounds, carry.steps, carry.queries, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def square(
    *,
    norm: str = "linf",
    targeted: bool = False,
    queries: int = 5000,
    loss: str | None = None,
    resample: bool = False,
) -> Square:
    """The Square Attack (see :class:`Square` for the method, paper and defaults).

    Args:
      norm: ``"linf"`` or ``"l2"``.
      targeted: reach ``target`` instead of leaving ``label``.
      queries: the forward passes per example (the initial one included), at least 1.
      loss: ``"margin"`` or ``"ce"``; None: the paper's (margin untargeted, CE targeted).
      resample: ℓ∞ only: redraw signs that would leave the window unchanged (the authors' code).

    Hyper-parameters (``attack.hparams``): ``eps`` (8/255 for ℓ∞, 0.5 for ℓ2) and ``p_init``
    (0.8).

    Returns:
      A :class:`Square` named ``square-<norm>``.
    """
    if resample and norm == "l2":
        raise ValueError("`resample=True` is an ℓ∞ option (`norm='linf'`); got norm='l2'.")
    defaults = (("eps", 0.5),) if norm == "l2" else ()
    return Square(
        norm=norm, queries=queries, targeted=targeted, loss=loss, resample=resample,
        defaults=defaults, name=f"square-{norm}",
    )  # fmt: skip
