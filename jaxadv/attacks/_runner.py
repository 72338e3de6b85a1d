"""The runner: a fixed number of steps on ONE example, as an init/step/finish ``Program``.

Per step: evaluate the objective and its gradient at the current latent through the gradient
oracle, keep the best iterate so far, take an optax step, project onto the constraint. A
per-example ``done`` flag freezes an example once it succeeds (early stopping without dynamic
shapes); the best iterate is kept with ``jnp.where``. Batching, restarts and hyper-parameter grids
all come from ``vmap`` around these functions.

Splitting the loop into ``init``/``step``/``finish`` lets the driver pick the loop form per
backend (``jaxadv/_compile.py``): one ``lax.scan`` inside one ``jit``, or, on CPU where a rolled
loop around a convolution runs several times slower, unrolled chunks of steps driven from the host.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks import _eot
from jaxadv.constraints import Constraint, intersect, pixel_box
from jaxadv.gradients import GradientOracle
from jaxadv.models import Victim
from jaxadv.perturbations import Perturbation
from jaxadv.results import AttackResult, perturbation_norms

SELECTIONS = ("loss", "l2")

LossFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x, logits) -> scalar to minimise
SuccessFn = Callable[[jax.Array], jax.Array]  # logits -> bool


class _Best(NamedTuple):
    x: jax.Array
    delta: jax.Array  # the additive latent itself (exact ball), else x − x0
    logits: jax.Array
    loss: jax.Array
    success: jax.Array
    rank: jax.Array  # what is compared among iterates of equal success: loss, or ℓ2 once successful


class _Carry(NamedTuple):
    theta: jax.Array
    opt_state: optax.OptState
    oracle_state: Any  # what a query-based estimator carries between steps (a bandit's prior)
    key: jax.Array
    done: jax.Array
    steps: jax.Array
    queries: jax.Array
    best: _Best
    moved: jax.Array  # whether any gradient so far had a non-zero entry
    hint: Any = None  # a warm-started perturbation model's guesses (``descent``), else None


def _nonzero(tree) -> jax.Array:
    return jnp.stack([jnp.any(leaf != 0) for leaf in jax.tree.leaves(tree)]).any()


def _finite(logits, loss) -> jax.Array:
    return jnp.all(jnp.isfinite(logits)) & jnp.isfinite(loss)


def _candidate(x, delta, logits, loss, success, select) -> _Best:
    # A victim that returns NaN/inf does not count as fooled (argmax of NaN logits is class 0),
    # and such an iterate never beats a finite one.
    finite = _finite(logits, loss)
    success = success & finite
    if select == "l2":
        rank = jnp.where(success, jnp.sqrt(jnp.sum(jnp.square(delta))), loss)
    else:
        rank = loss
    return _Best(x, delta, logits, loss, success, jnp.where(finite, rank, jnp.inf))


def _keep_better(best: _Best, new: _Best) -> _Best:
    """Success beats failure; among equals, the lower rank wins (ties keep the incumbent)."""
    better = (new.success & ~best.success) | (
        (new.success == best.success) & (new.rank < best.rank)
    )
    return jax.tree.map(lambda n, b: jnp.where(better, n, b), new, best)


class Program(NamedTuple):
    """A fixed-length attack on one example: ``init(key) -> carry``, ``step(carry) -> (carry,
    loss)``, ``finish(carry, trace) -> AttackResult``; ``length`` steps (static).

    Attributes:
      init: ``key -> carry``, the state before the first step (a random start draws from ``key``).
      step: ``carry -> (carry, loss)``, one step and the loss it recorded.
      finish: ``(carry, trace) -> AttackResult``, the result from the last carry and the stacked
        per-step losses ``trace``.
      length: the number of steps (static).
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[Any], tuple[Any, jax.Array]]
    finish: Callable[[Any, jax.Array], AttackResult]
    length: int


def descent(
    victim: Victim,
    x0: jax.Array,
    *,
    loss_fn: LossFn,
    success_fn: SuccessFn,
    tx: optax.GradientTransformation,
    constraint: Constraint,
    perturbation: Perturbation,
    oracle: GradientOracle,
    steps: int,
    random_start: bool = False,
    early_stop: bool = False,
    select: str = "loss",
    max_queries: int | None = None,
    eot_samples: int | None = None,
    input_success: Callable[[jax.Array], jax.Array] | None = None,
) -> Program:
    """The descent loop of ``loss_fn`` on one example as a :class:`Program` of ``steps`` steps.

    Args:
      victim: the model; ``victim(x)`` gives logits of one example (with ``eot_samples``: a
        :class:`~jaxadv.models.RandomizedVictim`, ``victim(x, key)``).
      x0: the clean example, shape ``victim.input_shape``.
      loss_fn: ``(x, logits) -> scalar`` to minimise (objective plus any penalty).
      success_fn: ``logits -> bool``, whether an input fools the victim.
      tx: the step rule; its updates are ADDED to the latent (so it must descend). For an
        additive latent its update also receives the extra argument ``box=(lo − x0, hi − x0)``,
        the latent's pixel box (transforms without extra arguments ignore it).
      constraint: feasible set of an additive latent (intersected here with the victim's pixel
        box); ignored for non-additive perturbation models, which stay in the box by construction.
      perturbation: latent model (additive ``delta`` or C&W's tanh variable).
      oracle: how the gradient is obtained (exact or query-based).
      steps: number of gradient steps (static).
      random_start: start from ``constraint.sample`` (additive models only); uses the init key.
      early_stop: freeze an example at its first successful iterate.
      select: which iterate is best among successful ones: lowest ``"loss"`` or smallest ``"l2"``.
      max_queries: a per-example query budget (None: none). A step whose queries would pass it
        is not taken: the example stops with at most ``max_queries`` spent, the evaluation that
        ``finish`` makes included (``oracle.forward_query`` queries). With ``early_stop``, the
        step of a query-based oracle that finds success is charged its evaluation of the current
        point only (the success test comes before the probes).
      eot_samples: expectation over transformation (``_eot``): each step draws this many fresh
        keys from the program's key stream, evaluates the randomized victim under each (a
        ``vmap``) and minimises the mean of ``loss_fn`` over the draws (its gradient is the
        mean gradient). An iterate's ``loss`` is that mean, its ``logits`` the mean logits, and
        it succeeds when ``success_fn`` holds for the draws' vote counts (per class, how many
        draws predict it): the plurality of the n draws, the Monte-Carlo estimate of the
        smoothed classifier's decision. Each draw is one query: a step costs n times the oracle's
        queries. None: a deterministic victim (a randomized one is refused).
      input_success: ``x -> bool``, a further condition on the input for an iterate to count as
        successful (the Meta Attack's optional ℓ2 cap); None: none.

    The program's result is the best iterate by (success, then ``select``), including the one
    after the last step (``finish`` evaluates it with one forward pass).

    Returns:
      A :class:`Program` of length ``steps`` whose ``finish`` gives the example's
      :class:`~jaxadv.results.AttackResult`.
    """
    _eot.check_samples(eot_samples)
    _eot.check_randomness(victim, eot_samples)
    draws = 1 if eot_samples is None else eot_samples  # queries per evaluation of the loss
    if random_start and not perturbation.additive:
        raise ValueError(
            "`random_start=True` needs an additive perturbation model; got "
            f"{type(perturbation).__name__}."
        )
    if max_queries is not None:
        _checks.check_positive_int("max_queries", max_queries)
        per_step, final = oracle.queries_per_call * draws, oracle.forward_query * draws
        if max_queries < per_step + final:
            raise ValueError(
                f"`max_queries` must cover at least one step ({per_step} queries) and the final "
                f"evaluation ({final}); got {max_queries}."
            )
    budget = None if max_queries is None else max_queries - oracle.forward_query * draws
    if perturbation.additive:
        constraint = intersect(constraint, pixel_box(*victim.bounds))
    # Step rules that need the latent's pixel box (SLIDE's ℓ1 step) read it as the optax extra
    # argument `box=(lower, upper)`; every other transform ignores it.
    step_rule = optax.with_extra_args_support(tx)
    low, high = victim.bounds
    extra_args = {"box": (low - x0, high - x0)} if perturbation.additive else {}

    # A perturbation model whose solves are warm-started (``warm_start`` True: ``Smoothed``)
    # names its guesses ``init_hint(theta, x0)``, evaluates with them via ``with_hint(hint)``
    # and gives the next step's from this step's ``next_hint(hint, x, x0, grad)``; the carry
    # holds them.
    hinted = bool(getattr(perturbation, "warm_start", False))

    def evaluate(theta, keys, model=perturbation):
        """``(loss, (x, logits, scores))``; success is judged on ``scores`` (see eot_samples)."""
        x = model.to_input(theta, x0)
        if eot_samples is None:
            logits = victim(x)
            return loss_fn(x, logits), (x, logits, logits)
        loss, each = _eot.over_draws(victim, x, keys, lambda logits: loss_fn(x, logits))
        return loss, (x, jnp.mean(each, axis=0), _eot.vote(each))

    def next_keys(key):
        """The carry's next key, the oracle's key and the step's draws (None without EOT)."""
        if eot_samples is None:  # threefry compiles slowly on CPU: no draws unless needed
            return (*jax.random.split(key), None)
        keys = jax.random.split(key, eot_samples + 2)  # one split: each compiles to a threefry
        return keys[0], keys[1], keys[2:]

    def candidate(theta, loss, aux):
        x, logits, scores = aux
        delta = theta if perturbation.additive else x - x0
        success = success_fn(scores)
        if input_success is not None:
            success = success & input_success(x)
        return _candidate(x, delta, logits, loss, success, select)

    def init(key):
        key, start_key = jax.random.split(key)
        theta = perturbation.init(x0)
        if random_start:
            theta = constraint.project(theta + constraint.sample(start_key, x0), x0)
        elif perturbation.additive:
            theta = constraint.project(theta, x0)
        # Placeholder "best" that any evaluated iterate beats (shapes only: no forward pass).
        loss_s, (x_s, logits_s, _) = jax.eval_shape(
            lambda theta: evaluate(theta, next_keys(key)[2]), theta
        )
        inf = jnp.full(loss_s.shape, jnp.inf, loss_s.dtype)
        zeros = jnp.zeros(x_s.shape, x_s.dtype)
        # Kept only when no iterate has finite outputs (then `finite=False`): the clean input.
        start = jnp.broadcast_to(x0, x_s.shape).astype(x_s.dtype) if x0.shape == x_s.shape else zeros
        best = _Best(
            start, zeros, jnp.zeros(logits_s.shape, logits_s.dtype), inf, jnp.zeros((), bool), inf
        )
        return _Carry(
            theta=theta,
            opt_state=tx.init(theta),
            oracle_state=oracle.init(theta),
            key=key,
            done=jnp.zeros((), bool),
            steps=jnp.zeros((), jnp.int32),
            queries=jnp.zeros((), jnp.int32),
            best=best,
            moved=jnp.zeros((), bool),
            hint=perturbation.init_hint(theta, x0) if hinted else None,
        )

    def step(carry: _Carry):
        key, oracle_key, keys = next_keys(carry.key)
        model = perturbation.with_hint(carry.hint) if hinted else perturbation
        (loss, aux), grad, oracle_state, queries = oracle(
            lambda theta: evaluate(theta, keys, model), carry.theta, oracle_key, carry.oracle_state
        )
        new = candidate(carry.theta, loss, aux)
        queries = queries * draws
        if early_stop and oracle.forward_query:
            # A query attacker reads success off the current point's own query before sending the
            # probes: a step that finds success costs that one evaluation only. (The probes are
            # computed anyway, as the loop has a fixed shape, but never used.)
            queries = jnp.where(new.success, oracle.forward_query * draws, queries)
        # A step that would overspend the budget is not taken (nor are its queries counted).
        broke = jnp.zeros((), bool) if budget is None else carry.queries + queries > budget
        new = new._replace(success=new.success & ~broke, rank=jnp.where(broke, jnp.inf, new.rank))
        best = _keep_better(carry.best, new)
        updates, opt_state = step_rule.update(grad, carry.opt_state, carry.theta, **extra_args)
        theta = optax.apply_updates(carry.theta, updates)
        if perturbation.additive:
            theta = constraint.project(theta, x0)
        idle = carry.done | broke
        stop = idle | (early_stop & new.success)
        frozen = lambda old, new: jnp.where(stop, old, new)  # noqa: E731
        carry = _Carry(
            theta=frozen(carry.theta, theta),
            opt_state=jax.tree.map(frozen, carry.opt_state, opt_state),
            oracle_state=jax.tree.map(frozen, carry.oracle_state, oracle_state),
            key=key,
            done=stop,
            steps=carry.steps + jnp.where(idle, 0, 1).astype(jnp.int32),
            queries=carry.queries + jnp.where(idle, 0, queries).astype(jnp.int32),
            best=best,
            moved=carry.moved | _nonzero(grad),
            hint=model.next_hint(carry.hint, aux[0], x0, grad) if hinted else None,
        )
        return carry, loss

    def finish(carry: _Carry, trace: jax.Array) -> AttackResult:
        # The iterate after the last step has not been evaluated yet: one more forward pass.
        # A query-based oracle pays for it, unless early stopping froze the example at a success
        # (that iterate was already evaluated and counted).
        model = perturbation.with_hint(carry.hint) if hinted else perturbation
        loss, aux = evaluate(carry.theta, next_keys(carry.key)[2], model)
        best = _keep_better(carry.best, candidate(carry.theta, loss, aux))
        known = early_stop & carry.done & carry.best.success
        queries = carry.queries + jnp.where(known, 0, oracle.forward_query * draws)
        return make_result(
            best, victim.bounds, carry.steps, queries.astype(jnp.int32), trace,
            zero_gradient=~carry.moved,
        )

    return Program(init=init, step=step, finish=finish, length=steps)


def make_result(
    best: _Best, bounds, steps, queries, trace, converged=True, zero_gradient=False
) -> AttackResult:
    # The clip only absorbs float rounding of x0 + delta: iterates are already inside the box.
    # `delta` is the iterate itself (for additive models), so norm balls hold on it exactly.
    finite = _finite(best.logits, best.loss)
    return AttackResult(
        x_adv=jnp.clip(best.x, *bounds),
        delta=best.delta,
        success=best.success & finite,
        loss=best.loss,
        logits=best.logits,
        steps=steps,
        queries=queries,
        trace=trace,
        converged=jnp.asarray(converged, bool),
        finite=finite,
        zero_gradient=jnp.asarray(zero_gradient, bool),
        **perturbation_norms(best.delta),
    )


def with_context(
    prepare: Callable[[], Any], build: Callable[[Any], Program], length: int
) -> Program:
    """A program whose per-example data is computed once, in ``init``, and kept in the carry.

    ``prepare()`` computes it (e.g. a smoothing operator guided by the clean image, which may
    involve a solve); ``build(context)`` gives the program that uses it. Keeping it in the carry
    means a host-driven run (chunks of steps, each a separate compiled call) does not recompute
    it for every chunk. ``length`` is the built program's (static) length.

    Args:
      prepare: ``() -> context``, the per-example data; called once, in ``init``.
      build: ``context -> Program``, the program that uses it (rebuilt in every ``init``,
        ``step`` and ``finish`` from the carried context).
      length: the built program's number of steps (static).

    Returns:
      A :class:`Program` whose carry is ``(context, inner carry)``, with the built program's
      steps and result.
    """

    def init(key):
        context = prepare()
        return context, build(context).init(key)

    def step(carry):
        context, inner = carry
        inner, loss = build(context).step(inner)
        return (context, inner), loss

    def finish(carry, trace):
        context, inner = carry
        return build(context).finish(inner, trace)

    return Program(init=init, step=step, finish=finish, length=length)
