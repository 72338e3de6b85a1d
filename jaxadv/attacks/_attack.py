"""``Attack``: a gradient attack assembled from parts (objective, step rule, constraint).

Everything structural (steps, norm, loss, restarts) is a field of the attack; every number a user
may sweep is a leaf of ``HParams``, and the step rule and constraint are rebuilt from it inside the
traced function, as ``optax.inject_hyperparams`` does. The entry points come from
:class:`~jaxadv.attacks.AttackBase`.

Expectation over transformation is a field too: :func:`with_eot` sets ``eot_samples``, and every
``Attack`` (the recipes and subclasses that keep ``Attack.single_run``) then takes a
:class:`~jaxadv.models.RandomizedVictim` and averages its loss over that many draws per step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks import _eot
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import SELECTIONS, Program, descent
from jaxadv.constraints import Constraint
from jaxadv.gradients import Exact, GradientOracle
from jaxadv.losses import Objective
from jaxadv.models import RandomizedVictim
from jaxadv.perturbations import Additive, Perturbation
from jaxadv.results import AttackResult


class HParams(NamedTuple):
    """The numbers of the classic attacks; every leaf is a float32 array and may be swept.

    Attributes:
      eps: radius of the perturbation budget (ignored by C&W).
      step_size: step length α of gradient steps; the Adam learning rate of C&W. With a relative
        step it is 0 and the step is derived in the trace: ``step_size + rel_step_size · eps``.
      kappa: confidence κ of the C&W margin loss.
      decay: momentum decay μ of MI-FGSM.
      sparsity: quantile of |g| kept by the ℓ1 steepest step (PGD-ℓ1).
      initial_const: C&W's first trade-off constant c.
      rel_step_size: the step as a multiple of ``eps`` (0: ``step_size`` is absolute).
    """

    eps: jax.Array
    step_size: jax.Array
    kappa: jax.Array
    decay: jax.Array
    sparsity: jax.Array
    initial_const: jax.Array
    rel_step_size: jax.Array = 0.0


HPARAM_SPEC = {
    "eps": Spec(8 / 255),
    "step_size": Spec(None),
    "kappa": Spec(0.0),
    "decay": Spec(1.0),
    "sparsity": Spec(0.99, "unit"),
    "initial_const": Spec(1e-3, "positive"),
    "rel_step_size": Spec(0.0),
}


def best_of(results: AttackResult, select: str) -> AttackResult:
    """Reduces results stacked on a leading (restart) axis to the best one.

    Successful results beat failed ones; among successful ones the lowest loss (``select="loss"``)
    or the smallest ℓ2 (``select="l2"``) wins, among failed ones the lowest loss. ``steps`` and
    ``queries`` are summed: they count the work of all restarts.
    """
    rank = jnp.where(results.success, results.l2 if select == "l2" else results.loss, results.loss)
    key = jnp.where(jnp.any(results.success), jnp.where(results.success, rank, jnp.inf), rank)
    idx = jnp.argmin(key)
    best = jax.tree.map(lambda leaf: leaf[idx], results)
    return best._replace(steps=jnp.sum(results.steps), queries=jnp.sum(results.queries))


@dataclasses.dataclass(frozen=True)
class Attack(AttackBase):
    """A gradient attack assembled from parts (DESIGN.md §2).

    Attributes:
      objective: ``(logits, label, target, hp) -> scalar`` to minimise (``jaxadv.losses``).
      step_rule: ``hp -> optax.GradientTransformation`` whose updates are ADDED to the latent.
      constraint: ``hp -> Constraint`` on an additive perturbation (the victim's pixel box is
        always intersected with it).
      steps: gradient steps per run.
      targeted: whether ``target`` is the class to reach.
      random_start: start from a random point of the constraint set.
      restarts: independent runs from different random starts; the best is kept per example.
      early_stop: stop moving an example at its first success (its result is then that iterate).
      select: which successful iterate is best: lowest ``"loss"`` or smallest ``"l2"``.
      perturbation: the latent model (additive by default).
      oracle: the gradient oracle (exact by default).
      defaults: the attack's default hyper-parameters, as ``((name, value), ...)``.
      rel_step_size: default ``step_size`` as a multiple of ``eps`` (None: use ``defaults``).
      eot_samples: expectation over transformation (:func:`with_eot`): draws of a
        :class:`~jaxadv.models.RandomizedVictim` averaged per step (None: a deterministic victim).
      boosters: transfer boosters (:func:`~jaxadv.attacks.with_transfer`): each step's gradient
        comes from a per-example :class:`~jaxadv.gradients.Transfer` oracle (None: ``oracle``).
      name: a label for tables.
    """

    objective: Objective
    step_rule: Callable[[HParams], optax.GradientTransformation]
    constraint: Callable[[HParams], Constraint]
    steps: int
    targeted: bool = False
    random_start: bool = False
    restarts: int = 1
    early_stop: bool = False
    select: str = "loss"
    perturbation: Perturbation = Additive()
    oracle: GradientOracle = Exact()
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    eot_samples: int | None = None
    boosters: Any = None
    name: str = "attack"
    params_type: ClassVar[type] = HParams
    hparam_spec: ClassVar[dict[str, Spec]] = HPARAM_SPEC

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("select", self.select, SELECTIONS)
        _checks.check_restarts(self.restarts, self.random_start)
        _eot.check_samples(self.eot_samples)

    @property
    def length(self) -> int:
        return self.steps

    @property
    def eot(self) -> bool:
        """Whether the attack averages over a randomized victim (``eot_samples`` is set)."""
        return self.eot_samples is not None

    @property
    def draws(self) -> int:
        """Victim evaluations (queries) per evaluation of the loss: ``eot_samples`` or 1."""
        return 1 if self.eot_samples is None else self.eot_samples

    def clean_correct(self, victim, x0, label) -> jax.Array:
        """A randomized victim's clean verdict is the vote of ``eot_samples`` draws (fixed key)."""
        if not isinstance(victim, RandomizedVictim):
            return super().clean_correct(victim, x0, label)
        keys = jax.random.split(jax.random.key(0), self.draws)
        _, logits = _eot.over_draws(victim, x0, keys, lambda logits: 0.0)
        return jnp.argmax(_eot.vote(logits)) == label

    def feasible_set(self, hp, victim) -> Constraint:
        """The constraint of one run; a subclass whose projection needs the victim's pixel box
        (an exact ℓ0 + box projection) overrides this."""
        return self.constraint(hp)

    def loss_fn(self, victim, hp, x0, label, target) -> Callable:
        """``(x, logits) -> scalar`` minimised on one example (a subclass may add penalties)."""
        return lambda x, logits: self.objective(logits, label, target, hp)

    def oracle_for(self, victim, hp, x0, label, target) -> GradientOracle:
        """The gradient oracle of one run (a query attack builds its estimator from ``hp``)."""
        return self.oracle

    @property
    def query_budget(self) -> int | None:
        """The per-example query budget (None: the attack runs ``steps`` steps)."""
        return None

    def input_success(self, x0) -> Callable | None:
        """A further condition ``x -> bool`` on an iterate's input for it to count as a success
        (None: none; the Meta Attack's optional ℓ2 cap overrides this)."""
        return None

    def single_run(self, victim, hp, x0, label, target) -> Program:
        """One run from one start (restarts are copies of it)."""
        if self.boosters is None:
            oracle = self.oracle_for(victim, hp, x0, label, target)
        else:
            oracle = self.boosters.oracle(self, victim, hp, x0, label, target)
        return descent(
            victim,
            x0,
            loss_fn=self.loss_fn(victim, hp, x0, label, target),
            success_fn=lambda logits: self.success(logits, label, target),
            tx=self.step_rule(hp),
            constraint=self.feasible_set(hp, victim),
            perturbation=self.perturbation,
            oracle=oracle,
            steps=self.length,
            random_start=self.random_start,
            early_stop=self.early_stop,
            select=self.select,
            max_queries=self.query_budget,
            eot_samples=self.eot_samples,
            input_success=self.input_success(x0),
        )

    def program(self, victim, hp, x0, label, target) -> Program:
        single = self.single_run(victim, hp, x0, label, target)
        if self.restarts == 1:
            return single
        return _with_restarts(single, self.restarts, self.select)


def with_eot(attack: Attack, samples: int) -> Attack:
    """``attack`` with expectation over transformation: ``samples`` draws per step.

    Athalye, Engstrom, Ilyas & Kwok, ICML 2018; the dual-perturbation paper's Eqs. 5–6 (Tong et
    al., appendix J) against randomized smoothing. The attack then takes a
    :class:`~jaxadv.models.RandomizedVictim` (e.g. ``models.with_input_noise(victim, sigma)``)
    and refuses a deterministic one. Each step draws ``samples`` fresh keys from the run's key
    stream (the same key, the same result; other steps, other draws), evaluates the victim under
    each draw (a ``vmap`` inside the compiled step) and descends the mean of the objective plus
    any penalty over the draws, i.e. along the mean gradient.

    What the result means on a randomized victim: an iterate succeeds when the plurality of its
    step's ``samples`` draws is fooled (the Monte-Carlo estimate of the smoothed classifier
    ``argmax_c P(h(x + η) = c)``, Cohen et al. 2019; ties go to the lowest class index). The
    attack's success rule is applied to the per-class vote counts in place of logits, so rules
    that read only the argmax (every classification attack's) keep their meaning. ``loss`` is
    the mean over the draws, ``logits`` the mean logits (whose argmax may differ from the vote),
    ``queries`` counts ``samples`` forward+backward passes per step. A success judged on few
    draws is itself random: to report robust accuracy, re-evaluate ``x_adv`` with many fresh
    draws (``jaxadv.certify``).

    Args:
      attack: a descent attack (:class:`Attack`: ``fgsm``, ``bim``, ``pgd``, ``mi_fgsm``, … and
        subclasses). APGD has its own ``eot_iter``.
      samples: draws per step, ≥ 1 (1: the attack on one fresh draw per step).
    """
    if not isinstance(attack, Attack):
        raise ValueError(
            "`attack` must be a jaxadv.attacks.Attack (a descent attack: fgsm, bim, pgd, "
            f"mi_fgsm, ...); got {type(attack).__name__}. APGD averages with `apgd(eot_iter=n)`."
        )
    _eot.check_samples(samples, "samples")
    return dataclasses.replace(attack, eot_samples=samples)


def _with_restarts(single: Program, restarts: int, select: str) -> Program:
    """Runs ``restarts`` copies of a program side by side (``vmap`` over keys); keeps the best."""

    def finish(carry, trace):  # trace: [steps, restarts]
        return best_of(jax.vmap(single.finish)(carry, jnp.swapaxes(trace, 0, 1)), select)

    return Program(
        init=lambda key: jax.vmap(single.init)(jax.random.split(key, restarts)),
        step=jax.vmap(single.step),
        finish=finish,
        length=single.length,
    )
