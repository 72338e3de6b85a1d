"""SignHunter (Al-Dujaili & O'Reilly, ICLR 2020): a score-based black-box attack that searches
the sign vector of an FGSM-like step by flipping chunks of it, one query per flip."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _Best, _candidate, _keep_better, make_result
from jaxadv.losses import cross_entropy, cw_margin

NORMS = ("linf", "l2")
SIGNHUNTER_LOSSES = ("ce", "cw")
STARTS = ("ones", "random")


class SignHunterParams(NamedTuple):
    """The numbers of :func:`signhunter`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the radius of the ℓ∞ or ℓ2 ball (also the step η: ``ε·s`` for ℓ∞, ``ε·s/√n`` for ℓ2).
    """

    eps: jax.Array


class _Carry(NamedTuple):
    key: jax.Array  # fixed; a restart with random signs folds the iteration in
    iteration: jax.Array  # global step index (runs on when done)
    origin: jax.Array  # x_o − x0 (flat): the centre of the current run
    signs: jax.Array  # s (flat, ±1): the current estimate
    current: jax.Array  # Π(x_o + η s) − x0 (flat): the point of the current estimate
    value: jax.Array  # its loss (g_best in the paper, minimised here)
    level: jax.Array  # h
    chunk: jax.Array  # i
    restart: jax.Array  # the next query evaluates a new run's start
    steps: jax.Array
    queries: jax.Array
    done: jax.Array
    best: _Best


@dataclasses.dataclass(frozen=True)
class SignHunter(AttackBase):
    """SignHunter (Al-Dujaili & O'Reilly, "Sign Bits Are All You Need for Black-Box Attacks",
    ICLR 2020, Algorithms 1 and 3).

    Score-based: it reads the victim's outputs, never a gradient. The perturbation is a sign
    vector ``s ∈ {−1, +1}ⁿ`` scaled to the budget; the point of ``s`` is
    ``x(s) = Π(x_o + η·s)``, ``Π`` the projection onto the ball of radius ``eps`` around ``x0``
    and the pixel box, ``η = eps`` (ℓ∞) or ``eps/√n`` (ℓ2: ``‖η·s‖₂ = eps``). Adaptive flipping
    (Algorithm 1): at level ``h`` the vector is cut into chunks of ``⌈n/2^h⌉`` coordinates; each
    trial flips the signs of one chunk (one query) and keeps the flip iff the loss does not get
    worse (``g(s') ≥ g_best``, as in the authors' code: ties keep the flip), then moves to the next chunk; a
    level ends when its chunks reach the end of the vector, and after the level of single
    coordinates (``h = ⌈log₂ n⌉``) the run is over. Algorithm 3 then restarts from the current
    point: ``x_o ← x(s)``, a new start ``s`` (one query, taken whatever its loss), ``h = i = 0``.
    The coordinates are those of the flattened input (row-major ``[h, w, c]``).

    Loss (minimised): the cross-entropy ``−CE(label)`` untargeted (the authors' experiments) or
    ``CE(target)`` targeted; ``loss="cw"`` takes the margin ``z_y − max_{j≠y} z_j`` (targeted:
    ``max_{j≠t} z_j − z_t``), unclipped. Algorithm 3's ``g`` divides the loss difference from
    ``L(x_o)`` by ``η``; comparisons within a run only need the loss of ``x(s)``, so ``L(x_o)``
    is never queried. The victim's outputs are read as logits (log-probabilities give the same
    cross-entropy).

    Queries are counted per example in the compiled state: 1 for the start, +1 per flip
    trial or restart, until some queried point fools the victim (early stop; that point is the
    result even when the paper's rule would not keep it, which can happen with the cross-entropy
    and three or more classes) or ``max_queries`` are spent; later steps neither count nor change
    the result (``steps = queries − 1``). The result is the best queried point (success first,
    then the loss); ``trace`` is its loss after each step (non-increasing up to the fooling query,
    which wins whatever its loss).

    Where the paper and the authors' code differ: the code starts every run from ``s = 1``
    (all ones) and a level ends as soon as its chunks reach the end of the vector (no empty
    chunk is queried); both are followed here (``start="random"`` draws each run's start
    uniformly from ``{−1, +1}ⁿ``). The code queries ``x_o + η·s`` without the projection; here
    every queried point is projected (Algorithm 3's ``g``), so it lies inside the ball and box.

    Defaults: ``eps`` 12/255 (ℓ∞) and 127/255 (ℓ2), the authors' CIFAR-10 budgets (MNIST: 0.3
    and 3; ImageNet: 0.05 and 5); 10,000 queries.

    Attributes:
      norm: the ball, ``"linf"`` (default) or ``"l2"``.
      max_queries: forward passes per example, the start included (10,000).
      targeted: reach ``target`` instead of leaving ``label``.
      loss: ``"ce"`` (default) or ``"cw"`` (the unclipped logit margin).
      start: each run's sign vector: ``"ones"`` (the authors' code; default) or ``"random"``.
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    norm: str = "linf"
    max_queries: int = 10_000
    targeted: bool = False
    loss: str = "ce"
    start: str = "ones"
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "signhunter"
    params_type: ClassVar[type] = SignHunterParams
    hparam_spec: ClassVar[dict[str, Spec]] = {"eps": Spec(12 / 255)}

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_positive_int("max_queries", self.max_queries)
        _checks.check_choice("loss", self.loss, SIGNHUNTER_LOSSES)
        _checks.check_choice("start", self.start, STARTS)
        if not isinstance(self.targeted, bool):
            raise ValueError(f"`targeted` must be a bool; got {self.targeted!r}.")

    @property
    def length(self) -> int:
        return self.max_queries - 1  # the start is the first query

    def objective(self, logits, label, target):
        """The loss to minimise (see the class docstring)."""
        goal = target if self.targeted else label
        if self.loss == "ce":
            ce = cross_entropy(logits, goal)
            return ce if self.targeted else -ce
        return cw_margin(logits, goal, kappa=jnp.inf, targeted=self.targeted)

    def program(self, victim, hp: SignHunterParams, x0, label, target) -> Program:
        low, high = victim.bounds
        shape, n = x0.shape, x0.size
        flat0 = x0.reshape(-1)
        eps = hp.eps
        top = math.ceil(math.log2(n)) if n > 1 else 0  # the last level: single coordinates
        eta = eps if self.norm == "linf" else eps / math.sqrt(n)
        index = jnp.arange(n)

        def project(delta):
            if self.norm == "linf":
                delta = jnp.clip(delta, -eps, eps)
            else:
                norm = jnp.sqrt(jnp.sum(delta * delta))
                delta = delta * jnp.minimum(1.0, eps / jnp.maximum(norm, 1e-12))
            return jnp.clip(delta, low - flat0, high - flat0)

        def evaluate(delta) -> _Best:
            x = jnp.clip(flat0 + delta, low, high).reshape(shape)
            logits = victim(x)
            loss = self.objective(logits, label, target)
            success = self.success(logits, label, target)
            return _candidate(x, delta.reshape(shape), logits, loss, success, "loss")

        def start_signs(key, iteration):
            if self.start == "ones":
                return jnp.ones(n, jnp.float32)
            return jax.random.rademacher(jax.random.fold_in(key, iteration), (n,), jnp.float32)

        def init(key):
            signs = start_signs(key, 0)
            origin = jnp.zeros(n, jnp.float32)
            point = project(origin + eta * signs)
            best = evaluate(point)
            zero = jnp.zeros((), jnp.int32)
            return _Carry(
                key, zero, origin, signs, point, best.loss, zero, zero, jnp.zeros((), bool),
                zero, jnp.ones((), jnp.int32), best.success, best,
            )  # fmt: skip

        def step(carry: _Carry):
            size = (n + (1 << carry.level) - 1) >> carry.level  # ⌈n/2^h⌉ (h ≤ 31)
            first = carry.chunk * size
            end = jnp.minimum(first + size, n)
            flipped = jnp.where((index >= first) & (index < end), -carry.signs, carry.signs)
            fresh = start_signs(carry.key, carry.iteration + 1)
            # a restart's start is queried from the new origin, a flip from the current one
            trial = jnp.where(carry.restart, fresh, flipped)
            point = project(carry.origin + eta * trial)
            new = evaluate(point)
            keep = carry.restart | (new.loss <= carry.value)  # NaN never beats a number
            signs = jnp.where(keep, trial, carry.signs)
            current = jnp.where(keep, point, carry.current)
            value = jnp.where(keep, new.loss, carry.value)
            # the schedule: next chunk, next level, or (after the last level) a restart
            chunk = jnp.where(carry.restart, 0, carry.chunk + 1)
            next_level = ~carry.restart & ((chunk == (1 << carry.level)) | (end >= n))
            level = jnp.where(next_level, carry.level + 1, carry.level)
            chunk = jnp.where(next_level, 0, chunk)
            restart = level > top
            origin = jnp.where(restart, current, carry.origin)
            level = jnp.where(restart, 0, level)

            active = ~carry.done
            frozen = lambda new, old: jnp.where(active, new, old)  # noqa: E731
            best = jax.tree.map(frozen, _keep_better(carry.best, new), carry.best)
            counted = active.astype(jnp.int32)
            carry = _Carry(
                key=carry.key,
                iteration=carry.iteration + 1,
                origin=frozen(origin, carry.origin),
                signs=frozen(signs, carry.signs),
                current=frozen(current, carry.current),
                value=frozen(value, carry.value),
                level=frozen(level, carry.level),
                chunk=frozen(chunk, carry.chunk),
                restart=frozen(restart, carry.restart),
                steps=carry.steps + counted,
                queries=carry.queries + counted,
                done=carry.done | best.success,
                best=best,
            )
            return carry, best.loss

        def finish(carry: _Carry, trace):
            return make_result(carry.best, victim.bounds, carry.steps, carry.queries, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def signhunter(
    *,
    norm: str = "linf",
    max_queries: int = 10_000,
    loss: str = "ce",
    targeted: bool = False,
    start: str = "ones",
) -> SignHunter:
    """SignHunter (see :class:`SignHunter` for the method, paper and defaults).

    Args:
      norm: ``"linf"`` or ``"l2"``.
      max_queries: forward passes per example (the start included), at least 1.
      loss: ``"ce"`` (the paper's) or ``"cw"`` (the logit margin).
      targeted: reach ``target`` instead of leaving ``label`` (the paper is untargeted).
      start: each run's sign vector: ``"ones"`` (the authors' code) or ``"random"``.

    Hyper-parameters (``attack.hparams``): ``eps`` (12/255 for ℓ∞, 127/255 for ℓ2).

    Returns:
      A :class:`SignHunter` named ``signhunter-<norm>``.
    """
    defaults = (("eps", 127 / 255),) if norm == "l2" else ()
    return SignHunter(
        norm=norm, max_queries=max_queries, targeted=targeted, loss=loss, start=start,
        defaults=defaults, name=f"signhunter-{norm}",
    )  # fmt: skip
