"""APGD, APGD-T and ℓ1-APGD (Croce & Hein, ICML 2020 and ICML 2021) as one compiled program.

One run on one example: evaluate the iterate (loss, gradient, logits; averaged over ``eot_iter``
draws of a randomized victim), feed the loss to the step-size schedule (``_apgd_schedule``),
restart from the best point where it says so, take the projected steepest step ``z`` and the
momentum step ``x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))``. Restarts and APGD-T's
target classes are runs side by side (``vmap``) inside the same program; the kept result is the
first successful run in the order (target, restart), else the run of lowest loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks import _apgd_schedule as sched
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._eot import over_draws
from jaxadv.attacks._runner import Program, _Best, _candidate, _keep_better, make_result
from jaxadv.constraints import NORMS, intersect, l1_box_ball, norm_ball, pixel_box
from jaxadv.losses import classification_objective, dlr
from jaxadv.models import RandomizedVictim
from jaxadv.results import AttackResult

LOSSES = ("ce", "cw", "dlr", "dlr-targeted")

# Per norm: eps (AutoAttack's CIFAR-10 budgets), momentum α, initial step as a multiple of eps.
# ℓ1-APGD takes no momentum (α = 1) and starts at η = eps (the 2021 paper's reference code).
_NORM_DEFAULTS = {
    "linf": (("eps", 8 / 255), ("momentum", 0.75), ("initial_step", 2.0)),
    "l2": (("eps", 0.5), ("momentum", 0.75), ("initial_step", 2.0)),
    "l1": (("eps", 12.0), ("momentum", 1.0), ("initial_step", 1.0)),
}


class APGDParams(NamedTuple):
    """The numbers of :func:`apgd`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: radius of the ℓ∞/ℓ2/ℓ1 budget.
      rho: ρ of the ℓ∞/ℓ2 schedule's condition 1 (0.75); unused by ℓ1-APGD.
      momentum: α of the momentum step (0.75; 1 = none, ℓ1-APGD's default).
      initial_step: the first step η₀ as a multiple of eps (2 for ℓ∞/ℓ2, 1 for ℓ1).
    """

    eps: jax.Array
    rho: jax.Array
    momentum: jax.Array
    initial_step: jax.Array


class _Run(NamedTuple):
    delta: jax.Array  # the iterate x_k − x0
    prev: jax.Array  # x_{k−1} − x0 (momentum)
    best_delta: jax.Array  # the schedule's best point (lowest loss), where restarts go
    best_grad: jax.Array  # its gradient (a restart steps from it without a new evaluation)
    schedule: Any  # StepSchedule (ℓ∞/ℓ2) or SparsitySchedule (ℓ1)
    key: jax.Array
    k: jax.Array  # iterate index
    goal: jax.Array  # the class the loss aims at (APGD-T's target; else the target/label)
    best: _Best  # the result: success first, then the lowest loss
    queries: jax.Array
    moved: jax.Array  # whether any gradient had a non-zero entry


@dataclasses.dataclass(frozen=True)
class APGD(AttackBase):
    """Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, Algorithm 1) and ℓ1-APGD (Croce & Hein, "Mind the
    box: ℓ1-APGD for sparse adversarial attacks on image classifiers", ICML 2021).

    ℓ∞/ℓ2: steps along ``sign(∇)`` / ``∇/‖∇‖₂`` from ``η₀ = 2·eps``, momentum α = 0.75, the step
    halved at the paper's checkpoints (``_apgd_schedule``) with a restart from the best point.
    ℓ1: the step moves the top-``k`` coordinates of ``|∇|`` by ``η/k`` each (sign of the
    gradient), ``k`` and ``η`` adapted every 4% of the steps from the sparsity of the best point,
    projected exactly onto the ℓ1 ball ∩ the pixel box (:func:`jaxadv.constraints.project_l1_box`).
    The ℓ2 iterate is projected onto the ball, then the box (the reference code's order: feasible,
    not always the nearest point).

    Losses (all minimised, ``jaxadv.losses``): ``"ce"``, ``"cw"``, ``"dlr"``; ``"dlr-targeted"``
    with ``targeted=False`` is AutoAttack's APGD-T: untargeted success, one run per target class
    among the ``n_target_classes`` largest clean logits other than the label (for a correctly
    classified input: the 2nd..(n+1)th largest), each minimising the targeted DLR toward its
    class. With ``targeted=True`` every loss aims at the user's ``target`` (``"dlr"`` and
    ``"dlr-targeted"`` are then the same targeted DLR).

    Starts (``random_start``, AutoAttack's): ℓ∞ ``eps·t/‖t‖∞`` with ``t ~ U[−1, 1]``, ℓ2
    ``eps·t/‖t‖₂`` with ``t ~ N(0, I)``, ℓ1 a Gaussian projected onto the set; then the box.
    ``eot_iter`` draws of a :class:`~jaxadv.models.RandomizedVictim` per step average the loss and
    gradient (AutoAttack's ``version="rand"``); success and logits are the first draw's.

    Where the paper and AutoAttack's code differ (``schedule="reference"`` takes the code's):
    checkpoints (``⌈p_j·N⌉`` vs. integer windows), condition 1's ``<`` vs. ``≤``, condition 2 at the
    first checkpoint (paper: may halve; code: never), the loss a rise is measured from after a
    restart (paper: the best point's). ℓ1-APGD follows its paper's reference code (no momentum,
    top-k over all coordinates, checks every ``⌊0.04·N⌋`` steps). Runs are not stopped at their
    first success (the result keeps it), and all runs are computed: ``queries`` counts every
    forward+backward pass (``eot_iter`` per step per run); AutoAttack's sequential loops skip
    inputs already fooled. The final iterate's forward pass is not counted.

    Attributes:
      norm: ``"linf"``, ``"l2"`` or ``"l1"`` (ℓ1-APGD).
      loss: ``"ce"``, ``"cw"``, ``"dlr"`` or ``"dlr-targeted"`` (see above).
      targeted: reach the given ``target`` (True) or leave the label (False).
      steps: iterations per run.
      restarts: runs from independent random starts (per target class for APGD-T).
      n_target_classes: APGD-T's number of target classes (``loss="dlr-targeted"``, untargeted).
      eot_iter: draws of a randomized victim averaged per step (1: a deterministic victim).
      random_start: start from a random point of the budget (else from the clean input).
      schedule: ``"paper"`` or ``"reference"`` (AutoAttack's code).
      defaults: the default hyper-parameters, as ``((name, value), ...)`` (per norm in
        :func:`apgd`).
      rel_step_size: unused by APGD (its first step is ``initial_step`` times eps).
      name: a label for tables.
    """

    norm: str = "linf"
    loss: str = "ce"
    targeted: bool = False
    steps: int = 100
    restarts: int = 1
    n_target_classes: int = 9
    eot_iter: int = 1
    random_start: bool = True
    schedule: str = "paper"
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "apgd"
    params_type: ClassVar[type] = APGDParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "eps": Spec(8 / 255, "nonnegative"),
        "rho": Spec(0.75, "unit"),
        "momentum": Spec(0.75, "open_unit"),
        "initial_step": Spec(2.0, "positive"),
    }
    eot: ClassVar[bool] = True

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_choice("loss", self.loss, LOSSES)
        _checks.check_choice("schedule", self.schedule, sched.SCHEDULES)
        for name in ("steps", "n_target_classes", "eot_iter"):
            _checks.check_positive_int(name, getattr(self, name))
        _checks.check_restarts(self.restarts, self.random_start)

    @property
    def length(self) -> int:
        return self.steps

    @property
    def multi_target(self) -> bool:
        """AutoAttack's APGD-T: one run per top clean class, untargeted success."""
        return self.loss == "dlr-targeted" and not self.targeted

    @property
    def runs(self) -> int:
        return self.restarts * (self.n_target_classes if self.multi_target else 1)

    def check_victim(self, victim, hp) -> None:
        classes = victim.num_classes
        needed = 4 if self.loss == "dlr-targeted" or (self.loss == "dlr" and self.targeted) else 3
        if self.loss.startswith("dlr") and classes < needed:
            raise ValueError(
                f"`loss={self.loss!r}` (the {'targeted ' * (needed == 4)}DLR loss) needs a "
                f"victim of at least {needed} classes; got num_classes={classes}. Use "
                "`loss='ce'` for fewer classes."
            )
        if self.multi_target and self.n_target_classes > classes - 1:
            raise ValueError(
                f"`n_target_classes` must be at most num_classes - 1 = {classes - 1} (the classes "
                f"other than the label); got {self.n_target_classes}."
            )
        if self.eot_iter > 1 and not isinstance(victim, RandomizedVictim):
            raise ValueError(
                f"`eot_iter={self.eot_iter}` averages over a randomized victim's draws, but the "
                f"victim is a deterministic {type(victim).__name__} (every draw is the same); use "
                "`eot_iter=1` or a jaxadv.models.RandomizedVictim."
            )

    def clean_correct(self, victim, x0, label) -> jax.Array:
        return jnp.argmax(_one_draw(victim, jax.random.key(0))(x0)) == label

    # -- the program -----------------------------------------------------------------------------

    def program(self, victim, hp: APGDParams, x0, label, target) -> Program:
        single = self._single_run(victim, hp, x0, label, target)
        if self.runs == 1:
            return Program(
                init=lambda key: single.init(key, target),
                step=single.step,
                finish=single.finish,
                length=self.steps,
            )

        def init(key):
            run_keys = jax.random.split(key, self.runs + 1)
            if self.multi_target:
                logits = _one_draw(victim, run_keys[-1])(x0)
                others = jnp.where(jnp.arange(logits.size) == label, -jnp.inf, logits)
                goals = jax.lax.top_k(others, self.n_target_classes)[1].astype(jnp.int32)
                goals = jnp.repeat(goals, self.restarts)  # target-major, as AutoAttack loops
            else:
                goals = jnp.full((self.runs,), target, jnp.int32)
            return jax.vmap(single.init)(run_keys[:-1], goals)

        def finish(carry, trace):  # trace: [steps, runs]
            return _first_success(jax.vmap(single.finish)(carry, jnp.swapaxes(trace, 0, 1)))

        return Program(init=init, step=jax.vmap(single.step), finish=finish, length=self.steps)

    def _single_run(self, victim, hp: APGDParams, x0, label, target) -> Program:
        randomized = isinstance(victim, RandomizedVictim)
        size = x0.size
        l1 = self.norm == "l1"
        if l1:
            feasible = l1_box_ball(hp.eps, victim.bounds)
            points = sched.l1_checkpoints(self.steps)
        else:
            feasible = intersect(norm_ball(self.norm, hp.eps), pixel_box(*victim.bounds))
            points = sched.checkpoints(self.steps, self.schedule)
        is_check_table, window_table = map(jnp.asarray, sched.checkpoint_tables(points, self.steps))
        initial = hp.initial_step * hp.eps
        objective = classification_objective(
            "dlr" if self.loss == "dlr-targeted" else self.loss, targeted=self.targeted
        )

        def loss_of(logits, goal):
            if self.multi_target:
                return dlr(logits, label, goal, targeted=True)
            return objective(logits, label, goal, hp)

        def forward(delta, key, goal):
            """Loss (mean over the draws) and the first draw's logits at ``x0 + delta``."""
            if not randomized:
                logits = victim(x0 + delta)
                return loss_of(logits, goal), logits
            keys = jax.random.split(key, self.eot_iter)
            loss, logits = over_draws(victim, x0 + delta, keys, lambda z: loss_of(z, goal))
            return loss, logits[0]

        def start(key):
            if not self.random_start:
                return jnp.zeros_like(x0)
            if self.norm == "linf":
                t = jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0)
                return feasible.project(hp.eps * t / jnp.maximum(jnp.max(jnp.abs(t)), 1e-12), x0)
            if self.norm == "l2":
                t = jax.random.normal(key, x0.shape, x0.dtype)
                return feasible.project(hp.eps * t / jnp.maximum(jnp.linalg.norm(t), 1e-12), x0)
            return feasible.sample(key, x0)

        def direction(grad, schedule):
            """The steepest descent direction of the loss in the norm (unit length in it)."""
            if self.norm == "linf":
                return -jnp.sign(grad)
            if self.norm == "l2":
                return -grad / (jnp.sqrt(jnp.sum(jnp.square(grad))) + 1e-12)
            magnitude = jnp.ravel(jnp.abs(grad))
            rank = jnp.floor((1.0 - schedule.sparsity) * size).astype(jnp.int32)
            threshold = jnp.sort(magnitude)[jnp.clip(rank, 0, size - 1)]
            signs = jnp.sign(grad) * (jnp.abs(grad) >= threshold)
            return -signs / (jnp.sum(jnp.abs(signs)) + 1e-10)

        def init(key, goal) -> _Run:
            key, start_key = jax.random.split(key)
            delta = start(start_key)
            zeros = jnp.zeros_like(x0)
            inf = jnp.asarray(jnp.inf, jnp.float32)
            logits0 = jnp.zeros((victim.num_classes,), jnp.float32)
            schedule = (
                sched.sparsity_schedule_init(initial, size)
                if l1
                else sched.step_schedule_init(initial, self.schedule)
            )
            return _Run(
                delta=delta,
                prev=delta,
                best_delta=delta,
                best_grad=zeros,
                schedule=schedule,
                key=key,
                k=jnp.zeros((), jnp.int32),
                goal=jnp.asarray(goal, jnp.int32),
                best=_Best(x0, zeros, logits0, inf, jnp.zeros((), bool), inf),
                queries=jnp.zeros((), jnp.int32),
                moved=jnp.zeros((), bool),
            )

        def step(c: _Run):
            # Only a randomized victim draws keys per step (threefry compiles slowly on CPU).
            key, eval_key = jax.random.split(c.key) if randomized else (c.key, c.key)
            (loss, logits), grad = jax.value_and_grad(forward, has_aux=True)(
                c.delta, eval_key, c.goal
            )
            success = self.success(logits, label, target)
            best = _keep_better(
                c.best, _candidate(x0 + c.delta, c.delta, logits, loss, success, "loss")
            )
            moved = c.moved | jnp.any(grad != 0)
            grad = jnp.where(jnp.isfinite(grad), grad, 0.0)  # a NaN victim must not poison x
            is_check, window = is_check_table[c.k], window_table[c.k]
            if l1:
                schedule, improved, restart = sched.sparsity_schedule_update(
                    c.schedule, loss, is_check, jnp.sum(c.delta != 0),
                    jnp.sum(c.best_delta != 0), initial, size,
                )  # fmt: skip
            else:
                schedule, improved, restart = sched.step_schedule_update(
                    c.schedule, loss, c.k, is_check, window, hp.rho, self.schedule
                )
            best_delta = jnp.where(improved, c.delta, c.best_delta)
            best_grad = jnp.where(improved, grad, c.best_grad)
            delta = jnp.where(restart, best_delta, c.delta)
            grad = jnp.where(restart, best_grad, grad)
            z = feasible.project(delta + schedule.step_size * direction(grad, schedule), x0)
            alpha = jnp.where(c.k == 0, 1.0, hp.momentum)  # the first step has no momentum
            nxt = feasible.project(delta + alpha * (z - delta) + (1 - alpha) * (delta - c.prev), x0)
            carry = _Run(
                delta=nxt,
                prev=delta,
                best_delta=best_delta,
                best_grad=best_grad,
                schedule=schedule,
                key=key,
                k=c.k + 1,
                goal=c.goal,
                best=best,
                queries=c.queries + self.eot_iter,
                moved=moved,
            )
            return carry, loss

        def finish(c: _Run, trace) -> AttackResult:
            # The last iterate has not been evaluated: one forward pass (not counted as a query).
            loss, logits = forward(c.delta, c.key, c.goal)
            success = self.success(logits, label, target)
            best = _keep_better(
                c.best, _candidate(x0 + c.delta, c.delta, logits, loss, success, "loss")
            )
            return make_result(best, victim.bounds, c.k, c.queries, trace, zero_gradient=~c.moved)

        return Program(init=init, step=step, finish=finish, length=self.steps)


def _one_draw(victim, key):
    """A deterministic victim: itself, or one draw of a randomized one."""
    return victim.with_key(key) if isinstance(victim, RandomizedVictim) else victim


def _first_success(results: AttackResult) -> AttackResult:
    """Runs stacked on a leading axis → the first successful one, else the one of lowest loss;
    ``steps``/``queries`` add up, ``zero_gradient`` only if every run saw only zero gradients."""
    loss = jnp.where(jnp.isfinite(results.loss), results.loss, jnp.inf)
    idx = jnp.where(jnp.any(results.success), jnp.argmax(results.success), jnp.argmin(loss))
    best = jax.tree.map(lambda leaf: leaf[idx], results)
    return best._replace(
        steps=jnp.sum(results.steps),
        queries=jnp.sum(results.queries),
        zero_gradient=jnp.all(results.zero_gradient),
    )


def apgd(
    *,
    norm: str = "linf",
    loss: str = "ce",
    targeted: bool = False,
    steps: int = 100,
    restarts: int = 1,
    n_target_classes: int = 9,
    eot_iter: int = 1,
    random_start: bool = True,
    schedule: str = "paper",
) -> APGD:
    """Auto-PGD (Croce & Hein 2020) and ℓ1-APGD (Croce & Hein 2021); see :class:`APGD`.

    AutoAttack's members: APGD-CE ``apgd(loss="ce")``, APGD-DLR ``apgd(loss="dlr")``, APGD-T
    ``apgd(loss="dlr-targeted")`` (9 target classes), their ``version="rand"`` forms with
    ``eot_iter=20`` on a :class:`~jaxadv.models.RandomizedVictim`.

    Args:
      norm: ``"linf"``, ``"l2"`` or ``"l1"`` (ℓ1-APGD).
      loss: ``"ce"``, ``"cw"``, ``"dlr"`` (≥ 3 classes) or ``"dlr-targeted"`` (≥ 4 classes).
      targeted: reach the given ``target`` (True) or leave the label (False).
      steps: iterations per run (each one forward+backward pass per EOT draw).
      restarts: runs from independent random starts (per target class for APGD-T).
      n_target_classes: APGD-T's number of target classes (``loss="dlr-targeted"``, untargeted).
      eot_iter: draws of a randomized victim averaged per step.
      random_start: start from a random point of the budget (else from the clean input).
      schedule: ``"paper"`` (default) or ``"reference"`` (AutoAttack's code; see :class:`APGD`).

    Hyper-parameters (``attack.hparams``): ``eps`` (ℓ∞ 8/255, ℓ2 0.5, ℓ1 12), ``rho`` 0.75,
    ``momentum`` 0.75 (ℓ1: 1, none), ``initial_step`` 2 (ℓ1: 1) times eps.

    Returns:
      An :class:`APGD` with the norm's default hyper-parameters, named ``"apgd-{loss}-{norm}"``
      (``"apgd-t-{norm}"`` for APGD-T).
    """
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_choice("loss", loss, LOSSES)
    label = "apgd-t" if loss == "dlr-targeted" and not targeted else f"apgd-{loss}"
    return APGD(
        norm=norm,
        loss=loss,
        targeted=targeted,
        steps=steps,
        restarts=restarts,
        n_target_classes=n_target_classes,
        eot_iter=eot_iter,
        random_start=random_start,
        schedule=schedule,
        defaults=_NORM_DEFAULTS[norm],
        name=f"{label}-{norm}",
    )
