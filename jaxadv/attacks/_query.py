"""Query-based attacks: any gradient estimator × any step rule × any constraint, under a budget.

A query-based attack is the descent loop of :class:`~jaxadv.attacks.Attack` with a query-based
gradient oracle (``jaxadv.gradients``: NES, SPSA, bandits, RGF/P-RGF, ZOO, …) in place of the
exact gradient, and a per-example query budget in place of a step count: the number of steps is
the most the budget pays for, an example stops at its first success (``early_stop``), and one
that runs out of queries returns its best point with ``success=False``. Queries are counted in
the compiled state and reported per example in ``AttackResult.queries`` (restarts add up).

The estimator's numbers (finite-difference step, prior learning rate, exploration) are leaves of
the hyper-parameters like the step size and the budget, so a sweep over them compiles once: an
estimator is a frozen dataclass whose ``with_params(hp)`` returns a copy holding the traced
numbers it reads. White-box and black-box attacks then differ only in the oracle: with
:class:`~jaxadv.gradients.Exact` plugged in, a query attack takes the white-box attack's steps.

Transfer priors: an estimator that uses a prior (P-RGF, the prior-guided bandits) gets it from
white-box surrogate models the attacker owns, which travel with the victim
(``models.with_surrogates(victim, *surrogates)``). The attack's ``prior`` field says how the prior
is computed (``attacks.SurrogateGradient()``, ``attacks.SubspacePrior(...)``); each run builds a
per-example ``prior_fn(theta, key)`` from it and hands it to the oracle (``with_prior``).
Surrogate gradients are not queries.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax

from jaxadv import _checks
from jaxadv.attacks import _eot
from jaxadv.attacks._attack import HPARAM_SPEC, Attack
from jaxadv.attacks._base import Spec
from jaxadv.attacks._priors import check_prior_shape
from jaxadv.attacks._runner import SELECTIONS
from jaxadv.attacks._recipes import Ball, SteepestStep
from jaxadv.attacks._saliency import SaliencyAttack
from jaxadv.losses import classification_objective
from jaxadv.models import surrogates_of


class QueryHParams(NamedTuple):
    """:class:`~jaxadv.attacks.HParams` plus the estimator's numbers (all may be swept).

    Attributes:
      eps, step_size, kappa, decay, sparsity, initial_const, rel_step_size: as in ``HParams``.
      fd_step: the finite-difference radius of the estimate (NES/RGF σ, SPSA δ, bandits' η for
        the probes, ZOO's h).
      prior_lr: the online learning rate of a learned prior (bandits' prior step, Algorithm 2's
        η_g of Che et al.).
      exploration: the exploration scale of a prior's probes (bandits' δ, Algorithm 2's τ).
    """

    eps: jax.Array
    step_size: jax.Array
    kappa: jax.Array
    decay: jax.Array
    sparsity: jax.Array
    initial_const: jax.Array
    rel_step_size: jax.Array = 0.0
    fd_step: jax.Array = 1e-3
    prior_lr: jax.Array = 0.1
    exploration: jax.Array = 1.0


QUERY_HPARAM_SPEC = {
    **HPARAM_SPEC,
    "fd_step": Spec(1e-3, "positive"),
    "prior_lr": Spec(0.1, "nonnegative"),
    "exploration": Spec(1.0, "positive"),
}


@dataclasses.dataclass(frozen=True)
class _QueryBudget:
    """What makes a descent attack query-based (mixed into :class:`Attack` and its subclasses).

    Attributes:
      max_queries: the per-example query budget (the evaluation of the returned point included).
      steps: derived from the budget; leave at 0.
      early_stop: stop an example at its first success (query counts are reported at success).
      prior: how the oracle's transfer prior is computed on the victim's surrogates (a static
        description such as ``SurrogateGradient()``; None: no prior).
    """

    max_queries: int = 10_000
    steps: int = 0
    early_stop: bool = True
    prior: Any = None
    params_type: ClassVar[type] = QueryHParams
    hparam_spec: ClassVar[dict[str, Spec]] = QUERY_HPARAM_SPEC

    def __post_init__(self):
        _checks.check_positive_int("max_queries", self.max_queries)
        if self.steps != 0:
            raise ValueError(
                "`steps` of a query attack is derived from `max_queries`; leave it at 0, got "
                f"{self.steps}."
            )
        if not hasattr(self.oracle, "with_params"):
            raise ValueError(
                "`oracle` must be a query-based estimator with `with_params(hp)` (see "
                f"`jaxadv.gradients`); got {type(self.oracle).__name__}."
            )
        _eot.check_samples(self.eot_samples)
        # With EOT every evaluation of the loss is `draws` queries (Attack.draws).
        per_call = self.oracle.queries_per_call * self.draws
        final = self.oracle.forward_query * self.draws
        if self.max_queries < per_call + final:
            eot = f", {self.draws} EOT draws each" if self.draws > 1 else ""
            raise ValueError(
                f"`max_queries` must pay for at least one step of {type(self.oracle).__name__} "
                f"({per_call} queries) and the final evaluation ({final}){eot}; got "
                f"{self.max_queries}."
            )
        _checks.check_choice("select", self.select, SELECTIONS)
        _checks.check_restarts(self.restarts, self.random_start)
        name = type(self.oracle).__name__
        if getattr(self.oracle, "needs_prior", False) and self.prior is None:
            raise ValueError(
                f"`oracle` {name} needs a transfer prior; give the attack `prior=` (e.g. "
                "`attacks.SurrogateGradient()`) and attack `models.with_surrogates(victim, ...)`."
            )
        if self.prior is not None and not hasattr(self.oracle, "with_prior"):
            raise ValueError(
                f"`prior` is given but `oracle` {name} takes no prior (it has no `with_prior`); "
                "use a prior-based estimator (`gradients.prgf`, `gradients.prior_bandit`)."
            )
        if self.prior is not None and not hasattr(self.prior, "build"):
            raise ValueError(
                "`prior` must describe how to compute the prior (e.g. `SurrogateGradient()`, "
                f"with a `build` method); got {type(self.prior).__name__}."
            )

    @property
    def length(self) -> int:
        final = self.oracle.forward_query * self.draws
        return (self.max_queries - final) // (self.oracle.queries_per_call * self.draws)

    def check_victim(self, victim, hp) -> None:
        if self.prior is not None and not surrogates_of(victim):
            raise ValueError(
                f"`victim` must carry surrogate models for the prior of attack {self.name!r}: "
                "pass `models.with_surrogates(victim, *surrogates)`; got a "
                f"{type(victim).__name__} without surrogates."
            )

    def oracle_for(self, victim, hp, x0, label, target):
        """The oracle of one run: its numbers from ``hp``, its prior from the surrogates."""
        oracle = self.oracle.with_params(hp)
        if self.prior is None:
            return oracle
        self.check_victim(victim, hp)  # also on the traced path (``attack.run``)
        surrogates = surrogates_of(victim)
        if hasattr(self, "view"):  # a saliency attack's feature space: the surrogates' layer too
            surrogates = tuple(self.view(s) for s in surrogates)
        prior_fn = self.prior.build(self, surrogates, hp, x0, label, target)
        check_prior_shape(prior_fn, self.perturbation.init(x0), jax.random.key(0))
        return oracle.with_prior(prior_fn)

    @property
    def query_budget(self) -> int:
        return self.max_queries


@dataclasses.dataclass(frozen=True)
class QueryAttack(_QueryBudget, Attack):
    """A classifier attack whose gradient comes from queries (module docstring).

    Attributes: those of :class:`~jaxadv.attacks.Attack`, with ``oracle`` a query-based estimator
    (required in practice: the default exact oracle is refused), plus ``max_queries``.
    """

    def __post_init__(self):  # Attack's own check wants `steps` > 0; here it is derived
        _QueryBudget.__post_init__(self)


@dataclasses.dataclass(frozen=True)
class SaliencyQueryAttack(_QueryBudget, SaliencyAttack):
    """A saliency-model attack (untargeted, or towards a guide map) whose gradient comes from
    queries: :class:`~jaxadv.attacks.SaliencyAttack` under a query budget.

    Attributes:
      max_queries: the per-example query budget (the evaluation of the returned point included).
      steps: derived from the budget; leave at 0.
      early_stop: stop an example at its first success (query counts are reported at success).
      prior: how the oracle's transfer prior is computed on the victim's surrogates (None: no
        prior). The other fields are those of :class:`~jaxadv.attacks.SaliencyAttack`, with
        ``oracle`` a query-based estimator.
    """

    def __post_init__(self):
        _QueryBudget.__post_init__(self)


def projected_query_attack(
    *, norm: str, loss: str, targeted: bool, oracle, max_queries: int, **fields
) -> QueryAttack:
    """The shape of most named query attacks: the classification ``loss``, steepest steps of the
    ``norm`` ball (sign for ℓ∞) on the estimate, projection onto the ball; ``fields`` are the
    remaining :class:`QueryAttack` fields (defaults, name, prior, …)."""
    return QueryAttack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=SteepestStep(norm),
        constraint=Ball(norm),
        oracle=oracle,
        max_queries=max_queries,
        targeted=targeted,
        **fields,
    )
