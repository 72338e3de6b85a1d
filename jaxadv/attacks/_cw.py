"""Carlini–Wagner ℓ2 with its per-example binary search over the trade-off constant, compiled."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks._attack import HPARAM_SPEC, HParams
from jaxadv.attacks._base import AttackBase
from jaxadv.attacks._ensembles import lockstep
from jaxadv.attacks._runner import Program, _keep_better, descent, make_result
from jaxadv.constraints import unconstrained
from jaxadv.gradients import Exact, GradientOracle
from jaxadv.losses import cw_margin
from jaxadv.perturbations import tanh_box
from jaxadv.results import AttackResult

# The upper bound of a constant that has never succeeded (C&W's reference code uses 1e10).
_NO_UPPER = 1e10


@dataclasses.dataclass(frozen=True)
class CarliniWagnerL2(AttackBase):
    """C&W-ℓ2 (Carlini & Wagner, "Towards evaluating the robustness of neural networks", S&P 2017).

    Minimises ``‖x − x0‖₂² + c·f(x)`` over the tanh variable ``w`` (``x`` stays in the pixel box),
    with ``f`` the margin ``max(z_y − max_{j≠y} z_j, −κ)`` (targeted: ``max(max_{j≠t} z_j − z_t,
    −κ)``), by Adam. The constant ``c`` is found per example by a binary search that is part of
    the compiled step program (no host logic, per-example bounds in the carry): after each search
    step, a success lowers the upper bound and bisects; a failure raises the lower bound and
    bisects, or multiplies ``c`` by 10 while no success is known. The whole attack is one
    ``lax.scan`` (under a user's ``jit``, or on accelerators); on CPU the batch driver runs the same
    program in compiled chunks of unrolled steps, which is several times faster there. Each search
    step restarts from the clean input with a fresh Adam state, and the result is the successful
    iterate of smallest ℓ2 over all steps. (The last iterate of each search step is not evaluated,
    so that every step costs exactly one forward+backward pass.)

    Defaults (the paper's): 9 search steps, initial c 1e-3, Adam learning rate (``hp.step_size``)
    1e-2, κ 0. The paper runs 10,000 steps per search step; the default here is 1,000 to keep
    runs affordable (fewer steps may leave larger distortions; ``steps=10_000`` is the paper's).
    Early abort of the paper is not used: the fixed-trip loop keeps all examples in lock-step.

    Attributes:
      steps: Adam steps per search step (1,000; the paper's 10,000).
      search_steps: binary-search steps over the constant ``c`` (9).
      targeted: reach the given ``target`` (True) or leave the label (False).
      oracle: the gradient oracle (exact by default).
      defaults: the default hyper-parameters, as ``((name, value), ...)``: Adam learning rate
        ``step_size`` 1e-2 and ``initial_const`` 1e-3.
      rel_step_size: the learning rate as a multiple of ``eps`` (None: ``step_size`` is absolute;
        C&W ignores ``eps``).
      name: a label for tables.
    """

    steps: int = 1000
    search_steps: int = 9
    targeted: bool = False
    oracle: GradientOracle = Exact()
    defaults: tuple[tuple[str, float], ...] = (("step_size", 1e-2), ("initial_const", 1e-3))
    rel_step_size: float | None = None
    name: str = "cw-l2"
    params_type: ClassVar[type] = HParams
    hparam_spec: ClassVar[dict] = HPARAM_SPEC

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("search_steps", self.search_steps)

    @property
    def length(self) -> int:
        return self.steps * self.search_steps

    def program(self, victim, hp: HParams, x0, label, target) -> Program:
        goal = target if self.targeted else label

        def search_step(const) -> Program:
            def loss_fn(x, logits):
                margin = cw_margin(logits, goal, kappa=hp.kappa, targeted=self.targeted)
                return jnp.sum(jnp.square(x - x0)) + const * margin

            return descent(
                victim,
                x0,
                loss_fn=loss_fn,
                success_fn=lambda logits: self.success(logits, label, target),
                tx=optax.adam(hp.step_size),
                constraint=unconstrained(),
                perturbation=tanh_box(*victim.bounds),
                oracle=self.oracle,
                steps=self.steps,
                select="l2",
            )

        return constant_search(
            search_step,
            initial_const=hp.initial_const,
            steps=self.steps,
            search_steps=self.search_steps,
            bounds=victim.bounds,
        )


class _SearchCarry(NamedTuple):
    inner: Any  # the running search step's descent carry
    const: jax.Array
    lower: jax.Array
    upper: jax.Array
    best: Any  # best iterate over the finished search steps
    t: jax.Array
    steps: jax.Array
    queries: jax.Array
    key: jax.Array


def constant_search(
    search_step: Callable[[jax.Array], Program],
    *,
    initial_const: jax.Array,
    steps: int,
    search_steps: int,
    bounds: tuple[float, float],
    close: str = "carry",
    select: str = "l2",
) -> Program:
    """C&W's per-example binary search over a trade-off constant ``c``, as one ``Program``.

    ``search_step(c)`` is the inner descent (``steps`` steps, ``select="l2"``) for one constant
    (per-example data computed once goes around it with ``with_context``). After each search
    step: a success lowers the upper bound and bisects; a failure raises the lower bound and
    bisects, or multiplies ``c`` by 10 while no success is known. The inner descent restarts
    from its initial latent with a fresh optimiser state. The result is the best iterate over
    all search steps.

    How a search step is closed (``close``):

    * ``"carry"``: the inner carry's ``best``, ``steps`` and ``queries`` are read directly (the
      inner program must be :func:`~jaxadv.attacks.descent`'s); the last iterate of a search
      step is not evaluated, so that every step costs exactly one forward+backward pass.
    * ``"finish"``: the inner program's own ``finish`` closes each search step, so a search step
      is exactly one run of the inner attack at its constant (its final evaluation and any work
      its ``finish`` does included, its early stop kept: a search step that stopped at a success
      idles until the boundary, then the search goes on with a lower ``c``). The result is the
      best of those runs by (success, then ``select``; ties keep the earlier), its ``steps``
      and ``queries`` summed over every search step (the queries of a query attack, as its
      paper counts them). With ``search_steps=1`` it is the inner program's result itself.
      The closing runs in a branch taken at the boundaries only (the step counter is the same
      for every example, so it stays a branch under ``vmap``).

    Args:
      search_step: ``c -> Program``, the inner descent for a constant ``c`` (a 0-d float32 array).
      initial_const: the first constant ``c`` (0-d).
      steps: steps per search step (the inner program's ``length``).
      search_steps: how many constants are tried, one after the other.
      bounds: the victim's ``(low, high)`` pixel bounds, for the result.
      close: ``"carry"`` or ``"finish"`` (above).
      select: with ``close="finish"``, how successful runs are ranked: smallest ``"l2"`` or
        lowest ``"loss"`` (failed runs: lowest loss).

    Returns:
      A :class:`~jaxadv.attacks.Program` of ``steps * search_steps`` steps whose result is the
      best iterate over every search step, its ``steps`` and ``queries`` summed over them.
    """
    _checks.check_positive_int("steps", steps)
    _checks.check_positive_int("search_steps", search_steps)
    _checks.check_choice("close", close, CLOSINGS)
    _checks.check_choice("select", select, ("l2", "loss"))
    if close == "finish":
        return _finished_search(search_step, initial_const, steps, search_steps, select)

    def init(key):
        key, inner_key = jax.random.split(key)
        inner = search_step(initial_const).init(inner_key)
        zero = jnp.zeros((), jnp.int32)
        return _SearchCarry(
            inner=inner,
            const=jnp.asarray(initial_const, jnp.float32),
            lower=jnp.zeros((), jnp.float32),
            upper=jnp.full((), _NO_UPPER, jnp.float32),
            best=inner.best,  # the placeholder that any evaluated iterate beats
            t=zero,
            steps=zero,
            queries=zero,
            key=key,
        )

    def step(carry: _SearchCarry):
        inner, loss = search_step(carry.const).step(carry.inner)
        t = carry.t + 1
        # At the end of a search step: bisect c, keep the best iterate, restart the descent.
        # (The last iterate of a search step is not evaluated, so that every step costs exactly
        # one forward+backward pass.)
        ok = inner.best.success
        const, lower, upper = _bisect(carry, ok)
        key, inner_key = jax.random.split(carry.key)
        closed = _SearchCarry(
            inner=search_step(const).init(inner_key),
            const=const,
            lower=lower,
            upper=upper,
            best=_keep_better(carry.best, inner.best),
            t=t,
            steps=carry.steps + inner.steps,
            queries=carry.queries + inner.queries,
            key=key,
        )
        running = carry._replace(inner=inner, t=t)
        boundary = t % steps == 0
        new = jax.tree.map(lambda c, r: jnp.where(boundary, c, r), closed, running)
        return new, loss

    def finish(carry: _SearchCarry, trace):
        # The program ends on a search-step boundary, so `best` covers every search step.
        return make_result(carry.best, bounds, carry.steps, carry.queries, trace)

    return Program(init=init, step=step, finish=finish, length=steps * search_steps)


CLOSINGS = ("carry", "finish")


def _bisect(carry, ok):
    """C&W's update of ``(c, lower, upper)`` after a search step that succeeded or not."""
    upper = jnp.where(ok, jnp.minimum(carry.upper, carry.const), carry.upper)
    lower = jnp.where(ok, carry.lower, jnp.maximum(carry.lower, carry.const))
    const = jnp.where(upper < _NO_UPPER, 0.5 * (lower + upper), carry.const * 10.0)
    return const, lower, upper


class _FinishedCarry(NamedTuple):
    inner: Any  # the running search step's carry
    const: jax.Array
    lower: jax.Array
    upper: jax.Array
    best: AttackResult  # the best run over the closed search steps (its trace a placeholder)
    t: jax.Array
    key: jax.Array


def _merge(best: AttackResult, new: AttackResult, first, select: str) -> AttackResult:
    """The better of two runs (success first, then ``select``; ties keep ``best``), with the
    work of both: ``steps``/``queries`` summed, ``converged`` and ``zero_gradient`` over both."""

    def rank(r):
        return jnp.where(r.success, r.l2 if select == "l2" else r.loss, r.loss)

    better = (
        first
        | (new.success & ~best.success)
        | ((new.success == best.success) & (rank(new) < rank(best)))
    )
    kept = jax.tree.map(lambda n, b: jnp.where(better, n, b), new, best)
    return kept._replace(
        steps=jnp.where(first, new.steps, best.steps + new.steps),
        queries=jnp.where(first, new.queries, best.queries + new.queries),
        converged=jnp.where(first, new.converged, best.converged & new.converged),
        zero_gradient=jnp.where(first, new.zero_gradient, best.zero_gradient & new.zero_gradient),
    )


def _finished_search(search_step, initial_const, steps, search_steps, select) -> Program:
    """:func:`constant_search` with ``close="finish"``."""
    total = steps * search_steps

    def empty_trace(inner):
        _, loss = jax.eval_shape(search_step(jnp.float32(initial_const)).step, inner)
        return jnp.zeros((0,) + loss.shape, loss.dtype)

    def init(key):
        key, inner_key = jax.random.split(key)
        inner = search_step(initial_const).init(inner_key)
        shapes = jax.eval_shape(
            lambda c: search_step(initial_const).finish(c, empty_trace(c)), inner
        )
        placeholder = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return _FinishedCarry(
            inner=inner,
            const=jnp.asarray(initial_const, jnp.float32),
            lower=jnp.zeros((), jnp.float32),
            upper=jnp.full((), _NO_UPPER, jnp.float32),
            best=placeholder,  # replaced by the first search step's run
            t=jnp.zeros((), jnp.int32),
            key=key,
        )

    def step(carry: _FinishedCarry):
        inner, loss = search_step(carry.const).step(carry.inner)
        t = carry.t + 1

        def close(_):  # a search step ends: its run's result, bisect c, restart the inner run
            run = search_step(carry.const).finish(inner, empty_trace(inner))
            run = run._replace(trace=carry.best.trace)
            const, lower, upper = _bisect(carry, run.success)
            key, inner_key = jax.random.split(carry.key)
            return _FinishedCarry(
                inner=search_step(const).init(inner_key),
                const=const,
                lower=lower,
                upper=upper,
                best=_merge(carry.best, run, carry.t + 1 == steps, select),
                t=t,
                key=key,
            )

        def running(_):
            return carry._replace(inner=inner, t=t)

        # The counter is the same for every example: `lockstep` keeps the branch a branch
        # under vmap (a batched predicate would close, i.e. finish, at every step).
        now = lockstep(t)
        boundary = (now % steps == 0) & (now < total)
        return jax.lax.cond(boundary, close, running, None), loss

    def finish(carry: _FinishedCarry, trace):
        # The last search step is closed here, with its part of the trace.
        last = search_step(carry.const).finish(carry.inner, trace[total - steps :])
        earlier = trace[: total - steps].reshape((-1,) + last.trace.shape[1:])
        first = jnp.asarray(search_steps == 1)
        result = _merge(carry.best, last._replace(trace=carry.best.trace), first, select)
        return result._replace(
            trace=jnp.concatenate([earlier.astype(last.trace.dtype), last.trace])
        )

    return Program(init=init, step=step, finish=finish, length=total)


def cw_l2(*, steps: int = 1000, search_steps: int = 9, targeted: bool = False) -> CarliniWagnerL2:
    """The C&W-ℓ2 attack (see :class:`CarliniWagnerL2` for the method, paper and defaults).

    Args:
      steps: Adam steps per search step (1,000; the paper's 10,000).
      search_steps: binary-search steps over the constant ``c`` (9).
      targeted: reach the given ``target`` (True) or leave the label (False).

    Returns:
      A :class:`CarliniWagnerL2` named ``"cw-l2"``.
    """
    return CarliniWagnerL2(steps=steps, search_steps=search_steps, targeted=targeted)
