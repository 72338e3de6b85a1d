"""Meta Attack: black-box C&W whose gradient comes mostly from a fine-tuned meta attacker.

Du, Zhang, Zhou, Yang & Feng, "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020
(thesis chapter 2, Algorithm 2). The attack minimises ZOO's objective (``attacks.zoo``: C&W in
tanh space on log-probabilities), ``c · f(x) + ‖x − x0‖₂²``, with a coordinate-wise step on a
gradient estimate known at ``q`` coordinates. The estimate comes from the meta attacker ``A``
(``models.MetaAttacker``: image → gradient, carried beside the black-box victim by
``models.with_meta_attacker``):

* every ``finetune_interval`` steps (the first included), the ``q`` coordinates where ``|A(x)|``
  is largest are estimated by finite differences of the loss in the latent (the paper's
  symmetric ĝ_i = [F(θ + h e_i) − F(θ − h e_i)] / 2h, ``2q + 1`` queries with the evaluation of θ);
  ``A`` is fine-tuned for ``finetune_steps`` Adam steps (learning rate ``finetune_lr``) on the
  mean squared error between ``A(x)`` and ĝ/σ at those coordinates (σ: the standard deviation
  of the whole estimate, zero off those coordinates, as the published code), and the step uses ĝ
  on those coordinates;
* the other steps use ``A(x)`` itself at its top ``q`` coordinates: one query (the evaluation).

The fine-tuning runs inside the compiled program: each example carries its own copy of ``A``'s
variables and Adam state in the gradient oracle's state (:class:`MetaOracle`). The coordinate
step is the published code's Adam with β1 = β2 = 0, i.e. ``−lr · g / (|g| + 1e-8)`` ≈
``−lr · sign(g)`` on the chosen coordinates (``transforms.coordinate_adam(lr, 0, 0)``).

The program form (for speed under ``vmap``; the results are those of a per-example schedule):
the fine-tuning schedule is the same for every example, so a program step is a block of
``finetune_interval`` attack steps whose phases are fixed in the trace (``batch_uniform``; a
``lax.cond`` on a per-example count would become a select under ``vmap``, every step paying the
fine-tuning), and on CPU the fine-tuning loops over the examples (``finetune_batching``) rather
than convolving each with its own kernels. Stopped examples are frozen either way.

Queries are counted as the paper counts them: every finite-difference probe and every evaluation
of an iterate is a query; the meta attacker's predictions are free. An example stops at its first
success (``early_stop``) or when the next step would pass ``max_queries``.

Differences from the published code (dydjw9/MetaAttack_ICLR2020, ``cw_black.py``), each an
option here: its finite difference is one-sided, [F(θ + h e_i) − F(θ)] / 2h (``symmetric=False``:
``q + 1`` queries per fine-tuning step; the factor 1/2 is immaterial, as the target is
standardised and the step is a sign); it re-creates the fine-tuning Adam at every fine-tuning
(``reset_optimizer=True``, our default too; False carries its moments on); its ``loss2 =
loss1.clone()`` means the ℓ2 distance is never penalised (``penalise_l2=False`` minimises
``c · f(x)`` alone); it counts success only when also ``‖x − x0‖₂ ≤ 20`` (``max_l2=20``); and
its first fine-tuning is at the ``finetune_interval``-th step (``finetune_first=False``). The
binary search over ``c`` is ``search_steps`` (each search step a whole run from the clean image
with the meta attacker as trained, its early stop kept, the queries of all runs summed). Not
offered: on fine-tuning steps it steps at the fine-tuned attacker's new top-q coordinates (the estimate is 0
at those not probed), where we step at the probed ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.custom_batching import custom_vmap

from jaxadv import _checks, _compile
from jaxadv.attacks._runner import Program
from jaxadv.attacks._zoo import LogProbMargin, ZerothOrderCW
from jaxadv.constraints import unconstrained
from jaxadv.gradients import CoordinateEstimate, probe_losses
from jaxadv.models import WithMetaAttacker
from jaxadv.transforms import coordinate_adam


PHASES = ("finetune", "predict")
BATCHINGS = ("auto", "loop", "vmap")


class MetaState(NamedTuple):
    """What one example's oracle carries: the meta attacker's variables, their Adam state, and
    the number of calls so far (a fine-tuning call when ``count % finetune_interval == 0``)."""

    variables: Any
    opt_state: Any
    count: jax.Array


def top_coordinates(prediction: jax.Array, q: int) -> jax.Array:
    """Flat indices of the ``q`` entries of largest ``|prediction|`` (ties: the lower index)."""
    return jax.lax.top_k(jnp.abs(prediction).ravel(), q)[1]


def finite_differences(loss_fn, theta, loss, index, h, symmetric: bool) -> jax.Array:
    """ĝ at the flat coordinates ``index``: symmetric [F(θ+he_i) − F(θ−he_i)]/2h, or the
    published one-sided [F(θ+he_i) − F(θ)]/2h (``loss`` = F(θ)). All probes in one batch."""
    q, n = index.shape[0], theta.size
    steps = jnp.zeros((q, n), theta.dtype).at[jnp.arange(q), index].set(h)
    steps = steps.reshape((q,) + theta.shape)
    if symmetric:
        losses = probe_losses(loss_fn, jnp.concatenate([theta + steps, theta - steps]))
        return (losses[:q] - losses[q:]) / (2 * h)
    return (probe_losses(loss_fn, theta + steps) - loss) / (2 * h)


def standardise(values: jax.Array, size: int) -> jax.Array:
    """The published fine-tuning target: ``values`` over the standard deviation of the whole
    estimate of ``size`` entries (zero off the estimated coordinates); unchanged if that is 0."""
    mean = jnp.sum(values) / size
    var = (jnp.sum(jnp.square(values - mean)) + (size - values.size) * mean**2) / size
    std = jnp.sqrt(var)
    return values / jnp.where(std > 0, std, 1.0)


def finetune(predict, variables, opt_state, x, index, target, steps: int, tx):
    """``steps`` optax steps of ``tx`` on mean((A(x)[index] − target)²); returns both states."""

    def mse(v):
        return jnp.mean(jnp.square(predict(v, x).ravel()[index] - target))

    def body(_, state):
        v, s = state
        updates, s = tx.update(jax.grad(mse)(v), s, v)
        return optax.apply_updates(v, updates), s

    return jax.lax.fori_loop(0, steps, body, (variables, opt_state))


def one_at_a_time(fn: Callable) -> Callable:
    """``fn`` whose ``vmap`` is a loop over the examples (``lax.map``) instead of a batched trace.

    Under ``vmap`` every example fine-tunes its own copy of the meta attacker, so its convolutions
    get per-example kernels: XLA CPU runs those (grouped convolutions) slower than a batch of one
    (measured: 92 against 71 ms of CPU per 20-step fine-tuning, experiments/README). A loop over
    the examples keeps each convolution a plain one. Nested ``vmap``s (a grid) loop over each."""
    looped = custom_vmap(fn)

    @looped.def_vmap
    def rule(axis_size, in_batched, *args):
        leaves, tree = jax.tree.flatten(args)
        batched = jax.tree.leaves(in_batched)  # a leaf shared by the examples: one copy each
        leaves = [
            a if b else jnp.broadcast_to(a, (axis_size,) + a.shape) for a, b in zip(leaves, batched)
        ]
        out = jax.lax.map(lambda each: looped(*jax.tree.unflatten(tree, each)), leaves)
        return out, jax.tree.map(lambda _: True, out)

    return looped


@dataclasses.dataclass(frozen=True)
class MetaOracle:
    """The Meta Attack's gradient oracle (module docstring).

    ``loss_fn(theta)`` must return ``(loss, (x, scores))``: the meta attacker reads the input
    ``x``. ``predict``/``variables`` come from the victim (``with_meta``) inside the trace.

    Attributes:
      top_q: coordinates per step (the published 125).
      finetune_interval: a fine-tuning (finite-difference) call every this many calls (3).
      finetune_steps: Adam steps per fine-tuning (20).
      finetune_lr: their learning rate (1e-2).
      symmetric: the paper's symmetric difference; False: the published one-sided one.
      reset_optimizer: a fresh Adam state at every fine-tuning (the published code).
      finetune_first: fine-tune at calls 0, interval, 2·interval, …; False: at calls interval − 1,
        2·interval − 1, … (the published code's ``(step + 1) % interval == 0``).
      phase: None: each call fine-tunes or predicts by its count (a ``lax.cond``, which ``vmap``
        turns into computing both); ``"finetune"`` / ``"predict"``: every call does that one
        (``MetaAttack`` builds its steps from both, the schedule being the same for every
        example).
      finetune_batching: how the fine-tuning runs under ``vmap``: ``"loop"`` over the examples
        (:func:`one_at_a_time`), ``"vmap"`` (per-example kernels), ``"auto"``: loop on CPU.
      h: the finite-difference step (a query attack sets it from ``hp.fd_step``).
      predict: ``(variables, x) -> gradient estimate`` of the meta attacker.
      variables: its initial variables.
    """

    top_q: int = 125
    finetune_interval: int = 3
    finetune_steps: int = 20
    finetune_lr: float = 1e-2
    symmetric: bool = True
    reset_optimizer: bool = True
    finetune_first: bool = True
    phase: str | None = None
    finetune_batching: str = "auto"
    h: Any = 1e-4
    predict: Callable | None = None
    variables: Any = None
    forward_query = 1

    def __post_init__(self):
        _checks.check_positive_int("top_q", self.top_q)
        _checks.check_positive_int("finetune_interval", self.finetune_interval)
        if not isinstance(self.finetune_steps, int) or self.finetune_steps < 0:
            raise ValueError(
                f"`finetune_steps` must be a non-negative integer; got {self.finetune_steps!r}."
            )
        if not self.finetune_lr >= 0:
            raise ValueError(f"`finetune_lr` must be non-negative; got {self.finetune_lr!r}.")
        if self.phase is not None:
            _checks.check_choice("phase", self.phase, PHASES)
        _checks.check_choice("finetune_batching", self.finetune_batching, BATCHINGS)

    @property
    def probes(self) -> int:
        """Finite-difference queries of one fine-tuning call (the evaluation excluded)."""
        return 2 * self.top_q if self.symmetric else self.top_q

    @property
    def queries_per_call(self) -> int:
        """The most one call spends: a fine-tuning call (the first call is one)."""
        return self.probes + self.forward_query

    @property
    def offset(self) -> int:
        """Calls ``k`` with ``(k + offset) % finetune_interval == 0`` fine-tune."""
        return 0 if self.finetune_first else 1

    def fine_tunes(self, k: int) -> bool:
        """Whether the ``k``-th call (0-based) fine-tunes."""
        return (k + self.offset) % self.finetune_interval == 0

    def call_queries(self, k: int) -> int:
        """Queries of the ``k``-th call (0-based)."""
        return self.forward_query + (self.probes if self.fine_tunes(k) else 0)

    def tuned(self) -> Callable:
        """:func:`finetune`, looped over the examples under ``vmap`` if ``finetune_batching``
        says so (``"auto"``: on CPU)."""
        batching = self.finetune_batching
        if batching == "auto":
            batching = "loop" if jax.default_backend() == "cpu" else "vmap"
        if batching == "vmap":
            return finetune
        tx, steps, predict = self.tx(), self.finetune_steps, self.predict

        def run(variables, opt_state, x, index, target):
            return finetune(predict, variables, opt_state, x, index, target, steps, tx)

        looped = one_at_a_time(run)
        return lambda predict, variables, opt_state, x, index, target, steps, tx: looped(
            variables, opt_state, x, index, target
        )

    def with_params(self, hp) -> MetaOracle:
        return dataclasses.replace(self, h=hp.fd_step)

    def with_meta(self, predict: Callable, variables: Any) -> MetaOracle:
        return dataclasses.replace(self, predict=predict, variables=variables)

    def tx(self) -> optax.GradientTransformation:
        return optax.adam(self.finetune_lr)

    def init(self, theta):
        if self.top_q > theta.size:
            raise ValueError(
                f"`top_q` must be at most the input's dimension {theta.size}; got {self.top_q}."
            )
        if self.predict is None:  # shape checks only (no meta attacker bound yet)
            return ()
        variables = self.variables
        return MetaState(variables, self.tx().init(variables), jnp.zeros((), jnp.int32))

    def __call__(self, loss_fn, theta, key, state):
        del key
        n = theta.size
        loss, aux = loss_fn(theta)
        x = aux[0]
        prediction = self.predict(state.variables, x)
        index = top_coordinates(prediction, self.top_q)
        tx = self.tx()

        def estimate(_):
            g = finite_differences(loss_fn, theta, loss, index, self.h, self.symmetric)
            opt_state = tx.init(state.variables) if self.reset_optimizer else state.opt_state
            variables, opt_state = self.tuned()(
                self.predict,
                state.variables,
                opt_state,
                x,
                index,
                standardise(g, n),
                self.finetune_steps,
                tx,
            )
            return g, variables, opt_state, jnp.asarray(self.probes, jnp.int32)

        def predicted(_):
            g = prediction.ravel()[index].astype(theta.dtype)
            return g, state.variables, state.opt_state, jnp.zeros((), jnp.int32)

        if self.phase is None:
            fd = (state.count + self.offset) % self.finetune_interval == 0
            g, variables, opt_state, probes = jax.lax.cond(fd, estimate, predicted, None)
        else:
            branch = estimate if self.phase == "finetune" else predicted
            g, variables, opt_state, probes = branch(None)

        def scatter(values):
            return jnp.zeros(n, theta.dtype).at[index].set(values).reshape(theta.shape)

        chosen = jnp.zeros(n, bool).at[index].set(True).reshape(theta.shape)
        grad = CoordinateEstimate(scatter(g), jnp.zeros_like(theta), chosen)
        queries = probes + self.forward_query
        return (loss, aux), grad, MetaState(variables, opt_state, state.count + 1), queries


def _sign_adam(hp):
    return coordinate_adam(hp.step_size, 0.0, 0.0)


def _free(hp):
    del hp
    return unconstrained()


@dataclasses.dataclass(frozen=True)
class MetaAttack(ZerothOrderCW):
    """The Meta Attack (module docstring): :class:`ZerothOrderCW` with a :class:`MetaOracle`,
    on a victim that carries a meta attacker (``models.with_meta_attacker``).

    Besides those of :class:`ZerothOrderCW` (``reduced``/``decoder`` stay None):

    Attributes:
      penalise_l2: minimise ``c·f(x) + ‖x − x0‖²`` (the paper); False: ``c·f(x)`` alone (the
        published code's ``loss2 = loss1.clone()``).
      max_l2: an iterate counts as successful only if also ``‖x − x0‖₂ ≤ max_l2`` (the published
        code's 20); None: no cap (the paper).
      batch_uniform: run the fine-tuning schedule as blocks of steps whose phases are fixed in
        the trace (:meth:`single_run`); False: a per-example ``lax.cond`` on the oracle's count
        (the same results, slower under ``vmap``).
    """

    penalise_l2: bool = True
    max_l2: float | None = None
    batch_uniform: bool = True

    def __post_init__(self):
        if not isinstance(self.oracle, MetaOracle):
            raise ValueError(f"`oracle` must be a MetaOracle; got {type(self.oracle).__name__}.")
        super().__post_init__()
        if self.max_l2 is not None and not self.max_l2 > 0:
            raise ValueError(f"`max_l2` must be positive or None; got {self.max_l2!r}.")

    @property
    def budget_steps(self) -> int:
        """The most steps the budget pays for (fine-tuning steps cost more than the others)."""
        budget, spent, k = self.max_queries - self.oracle.forward_query, 0, 0
        while spent + self.oracle.call_queries(k) <= budget:
            spent += self.oracle.call_queries(k)
            k += 1
        return k

    @property
    def run_length(self) -> int:
        """Program steps of one run: blocks of ``finetune_interval`` steps (``batch_uniform``; the last
        ``budget_steps % finetune_interval`` steps run in ``finish``), else ``budget_steps``."""
        if not self.batch_uniform:
            return self.budget_steps
        return self.budget_steps // self.oracle.finetune_interval

    @property
    def cpu_chunk(self) -> int:  # a program step is a block: as many attack steps per chunk
        return max(1, _compile.MAX_CPU_UNROLL // self.oracle.finetune_interval)

    def single_run(self, victim, hp, x0, label, target) -> Program:
        if self.search_steps > 1:  # one run (one search step)
            one = dataclasses.replace(self, search_steps=1)
            return one.single_run(victim, hp, x0, label, target)
        if not self.batch_uniform:
            return super().single_run(victim, hp, x0, label, target)

        # The schedule is the same for every example: step k fine-tunes iff the oracle says so
        # for call k. A block of `finetune_interval` steps with the phases fixed in the trace
        # keeps the fine-tuning out of the other steps (a per-example `lax.cond` is a select
        # under vmap: every step would pay it). Examples that stopped are frozen either way.
        def built(phase):
            oracle = dataclasses.replace(self.oracle, phase=phase)
            attack = dataclasses.replace(self, oracle=oracle, batch_uniform=False, search_steps=1)
            return ZerothOrderCW.single_run(attack, victim, hp, x0, label, target)

        runs = {phase: built(phase) for phase in PHASES}
        interval = self.oracle.finetune_interval
        pattern = [
            runs["finetune" if self.oracle.fine_tunes(k) else "predict"].step
            for k in range(interval)
        ]
        rest = self.budget_steps % interval

        def steps(carry, kinds):
            losses = []
            for step in kinds:
                carry, loss = step(carry)
                losses.append(loss)
            return carry, jnp.stack(losses)

        def finish(carry, trace):  # trace: (blocks, interval)
            trace = trace.reshape(-1)
            if rest:
                carry, last = steps(carry, pattern[:rest])
                trace = jnp.concatenate([trace, last.astype(trace.dtype)])
            return runs["predict"].finish(carry, trace)

        return Program(
            init=runs["predict"].init,
            step=lambda carry: steps(carry, pattern),
            finish=finish,
            length=self.run_length,
        )

    def check_victim(self, victim, hp) -> None:
        if not isinstance(victim, WithMetaAttacker):
            raise ValueError(
                f"`victim` must carry a meta attacker for attack {self.name!r}: pass "
                "`models.with_meta_attacker(victim, module, variables)`; got a "
                f"{type(victim).__name__}."
            )
        self.oracle.init(jnp.zeros(tuple(victim.input_shape)))  # top_q ≤ the dimension

    def loss_fn(self, victim, hp, x0, label, target):
        if self.penalise_l2:
            return super().loss_fn(victim, hp, x0, label, target)
        return lambda x, scores: self.objective(scores, label, target, hp)

    def oracle_for(self, victim, hp, x0, label, target):
        self.check_victim(victim, hp)
        return self.oracle.with_params(hp).with_meta(victim.predict, victim.variables)

    def input_success(self, x0):
        if self.max_l2 is None:
            return None
        return lambda x: jnp.sum(jnp.square(x - x0)) <= self.max_l2**2


def meta_attack(
    *,
    top_q: int = 125,
    finetune_interval: int = 3,
    finetune_steps: int = 20,
    finetune_lr: float = 1e-2,
    max_queries: int = 10_000,
    targeted: bool = False,
    const: float = 0.5,
    symmetric: bool = True,
    reset_optimizer: bool = True,
    finetune_first: bool = True,
    penalise_l2: bool = True,
    max_l2: float | None = None,
    early_stop: bool = True,
    search_steps: int = 1,
) -> MetaAttack:
    """The Meta Attack (Du et al., ICLR 2020; module docstring) on a victim built with
    ``models.with_meta_attacker(black_box, module, variables)``.

    Args:
      top_q: coordinates estimated or predicted per step (the published 125).
      finetune_interval: a finite-difference step with fine-tuning every this many steps (3).
      finetune_steps, finetune_lr: the meta attacker's Adam fine-tuning (20 steps, 1e-2).
      max_queries: the per-example query budget (probes and evaluations).
      targeted: reach ``target`` (else leave ``label``).
      const: C&W's ``c`` (the published 0.5); ``hp.kappa`` is the margin's κ.
      symmetric: the paper's symmetric difference (False: the published one-sided one).
      reset_optimizer: a fresh fine-tuning Adam every time (the published code).
      finetune_first: the first step fine-tunes (False: the ``finetune_interval``-th, as the
        published code; the steps before it use the meta attacker as trained).
      penalise_l2: the paper's ``+ ‖δ‖²`` (False: the published code's unpenalised loss).
      max_l2: count success only within this ℓ2 distance (the published code's 20); None: no cap.
      early_stop: stop each example at its first success (the published code).
      search_steps: C&W's binary search over ``c`` from ``const`` (:class:`ZerothOrderCW`): this
        many runs of ``max_queries`` each, their queries summed; 1: ``c`` fixed (the published
        default; its search starts from 0.01).

    ``hp.step_size`` (0.01) is the coordinate step, ``hp.fd_step`` (1e-4) the difference's h.

    Returns:
      A :class:`MetaAttack` named ``meta-attack`` (``meta-attack-targeted``): unconstrained
      C&W-style ℓ2 minimisation with a :class:`MetaOracle`, objective :class:`LogProbMargin`.
    """
    for name, value in (("max_queries", max_queries), ("top_q", top_q)):
        _checks.check_positive_int(name, value)
    oracle = MetaOracle(
        top_q=top_q,
        finetune_interval=finetune_interval,
        finetune_steps=finetune_steps,
        finetune_lr=finetune_lr,
        symmetric=symmetric,
        reset_optimizer=reset_optimizer,
        finetune_first=finetune_first,
    )
    return MetaAttack(
        objective=LogProbMargin(bool(targeted)),
        step_rule=_sign_adam,
        constraint=_free,
        oracle=oracle,
        max_queries=max_queries,
        targeted=targeted,
        early_stop=early_stop,
        select="l2",
        penalise_l2=penalise_l2,
        max_l2=None if max_l2 is None else float(max_l2),
        search_steps=search_steps,
        defaults=(("step_size", 1e-2), ("initial_const", const), ("fd_step", 1e-4)),
        name="meta-attack" + ("-targeted" if targeted else ""),
    )
