"""Attacks: static structure (a frozen, hashable dataclass) plus swept numbers (``HParams``).

An attack is called on ONE example: ``attack(victim, hp, x0, label, key, target=None)``.
``attack.batch`` validates a batch, then runs ``vmap`` of that call under one ``jit``;
``attack.sweep`` adds a ``vmap`` over hyper-parameter values, so an eps grid compiles once.
Everything structural (steps, norm, loss, restarts) is a field of the attack; every number a user
may sweep is a leaf of ``HParams``, and the step rule and constraint are rebuilt from it inside the
traced function, as ``optax.inject_hyperparams`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks, _compile
from jaxadv.attacks._driver import compile_drive, drive
from jaxadv.attacks._runner import SELECTIONS, Program, descent, run_program
from jaxadv.constraints import Constraint
from jaxadv.gradients import Exact, GradientOracle
from jaxadv.losses import Objective
from jaxadv.models import Victim
from jaxadv.perturbations import Additive, Perturbation
from jaxadv.results import AttackResult


class HParams(NamedTuple):
    """The numbers of the classic attacks; every leaf is a float32 array and may be swept.

    Attributes:
      eps: radius of the perturbation budget (ignored by C&W).
      step_size: step length α of gradient steps; the Adam learning rate of C&W.
      kappa: confidence κ of the C&W margin loss.
      decay: momentum decay μ of MI-FGSM.
      sparsity: quantile of |g| kept by the ℓ1 steepest step (PGD-ℓ1).
      initial_const: C&W's first trade-off constant c.
    """

    eps: jax.Array
    step_size: jax.Array
    kappa: jax.Array
    decay: jax.Array
    sparsity: jax.Array
    initial_const: jax.Array


_HP_DEFAULTS = dict(eps=8 / 255, kappa=0.0, decay=1.0, sparsity=0.99, initial_const=1e-3)


def _check_hparams(hp: HParams) -> None:
    for name in ("eps", "step_size", "kappa", "decay"):
        _checks.check_nonnegative(f"hp.{name}", getattr(hp, name))
    _checks.check_positive("hp.initial_const", hp.initial_const)
    if _checks.is_concrete(hp.sparsity):
        s = np.asarray(hp.sparsity)
        if np.any(~np.isfinite(s)) or np.any((s < 0) | (s > 1)):
            raise ValueError(f"`hp.sparsity` must lie in [0, 1]; got {s}.")


class _AttackBase:
    """Validation and the batch/sweep entry points shared by every attack.

    An attack family with numbers of its own sets ``params_type`` (a NamedTuple of float32
    leaves), ``base_defaults`` and ``check_params``; the batch, sweep and compile entry points
    work with any such type.
    """

    targeted: bool
    defaults: tuple[tuple[str, float], ...]
    rel_step_size: float | None
    params_type: ClassVar[type] = HParams
    base_defaults: ClassVar[dict[str, float]] = _HP_DEFAULTS

    def check_params(self, hp) -> None:
        """Raises a ValueError naming the first invalid hyper-parameter (concrete values only)."""
        if not isinstance(hp, self.params_type):
            raise ValueError(
                f"`hp` must be a {self.params_type.__name__} (from `attack.hparams(...)`) for "
                f"attack {self.name!r}; got {type(hp).__name__}."
            )
        _check_hparams(hp)

    def hparams(self, **values: Any):
        """The attack's hyper-parameters: its defaults, overridden by ``values``, validated.

        A value may be an array of K entries to sweep (see :meth:`sweep`). When ``step_size`` is
        not given and the attack defines a relative step, it is ``rel_step_size × eps``.
        """
        fields = self.params_type._fields
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(
                f"Unknown hyper-parameter(s) {sorted(unknown)}; expected some of {fields}."
            )
        merged = {**self.base_defaults, **dict(self.defaults), **values}
        if "step_size" not in values and self.rel_step_size is not None:
            merged["step_size"] = self.rel_step_size * np.asarray(merged["eps"], np.float32)
        missing = [k for k in fields if k not in merged]
        if missing:
            why = " (it sets neither `rel_step_size` nor a default step)" * ("step_size" in missing)
            raise ValueError(
                f"Hyper-parameter(s) {missing} have no default for attack {self.name!r}{why}; "
                f"pass them, e.g. `attack.hparams({missing[0]}=...)`."
            )
        hp = self.params_type(**{k: jnp.asarray(merged[k], jnp.float32) for k in fields})
        self.check_params(hp)
        return hp

    # -- one example -----------------------------------------------------------------------------

    def __call__(
        self,
        victim: Victim,
        hp: HParams,
        x0: jax.Array,
        label: jax.Array,
        key: jax.Array,
        target: jax.Array | None = None,
    ) -> AttackResult:
        """Attacks ONE example ``x0`` (shape ``victim.input_shape``) with true class ``label``.

        Targeted attacks need ``target`` (a class other than ``label``); success is then measured
        against the target. Never raises because the attack failed: see ``result.success``.
        """
        _checks.check_example_shape("x0", jnp.shape(x0), victim.input_shape)
        _checks.check_in_bounds("x0", x0, victim.bounds)
        _checks.check_labels("label", label, victim.num_classes)
        if self.targeted:
            if target is None:
                raise ValueError("A targeted attack needs `target` (the class to reach); got None.")
            _checks.check_labels("target", target, victim.num_classes)
            if _checks.is_concrete((label, target)) and np.any(
                np.asarray(label) == np.asarray(target)
            ):
                raise ValueError(
                    f"`target` must differ from the true `label` in a targeted attack; got "
                    f"{int(np.asarray(target))} for both."
                )
        else:
            target = label if target is None else target
        self.check_params(hp)
        x0 = jnp.asarray(x0, jnp.float32)
        label = jnp.asarray(label, jnp.int32)
        target = jnp.asarray(target, jnp.int32)
        # Compiled even when called eagerly (a notebook); inside a user's jit/vmap it inlines.
        return _single(self, victim, hp, x0, label, target, key)

    @property
    def length(self) -> int:
        """Total steps of the attack's program (static)."""
        raise NotImplementedError

    def program(self, victim, hp, x0, label, target) -> Program:
        """The attack on one example as an init/step/finish :class:`Program` (traced, unchecked)."""
        raise NotImplementedError

    def run(self, victim, hp, x0, label, target, key) -> AttackResult:
        """The traced attack on one example as one ``lax.scan`` (unvalidated; see ``__call__``)."""
        return run_program(self.program(victim, hp, x0, label, target), key)

    def success(self, logits: jax.Array, label: jax.Array, target: jax.Array) -> jax.Array:
        """Targeted: the target wins; untargeted: the true label loses."""
        predicted = jnp.argmax(logits, axis=-1)
        return predicted == target if self.targeted else predicted != label

    # -- batches and sweeps ----------------------------------------------------------------------

    def _validate_batch(self, victim, images, labels, targets):
        _checks.check_batch_shape("images", jnp.shape(images), victim.input_shape)
        _checks.check_in_bounds("images", images, victim.bounds)
        n = jnp.shape(images)[0]
        if jnp.shape(labels) != (n,):
            raise ValueError(
                f"`labels` must have shape ({n},) to match `images`; got {jnp.shape(labels)}."
            )
        _checks.check_labels("labels", labels, victim.num_classes)
        if self.targeted:
            if targets is None:
                raise ValueError(
                    "A targeted attack needs `targets` (one class per image); got None."
                )
            if jnp.shape(targets) != (n,):
                raise ValueError(
                    f"`targets` must have shape ({n},) to match `images`; got {jnp.shape(targets)}."
                )
            _checks.check_labels("targets", targets, victim.num_classes)
            if _checks.is_concrete((targets, labels)):  # values are unknown under a user's jit
                same = np.flatnonzero(np.asarray(targets) == np.asarray(labels))
                if same.size:
                    raise ValueError(
                        "`targets` must differ from the true `labels` in a targeted attack; they "
                        f"are equal at {same.size} position(s), first at index {same[0]}."
                    )
        else:
            targets = labels
        return (
            jnp.asarray(images, jnp.float32),
            jnp.asarray(labels, jnp.int32),
            jnp.asarray(targets, jnp.int32),
        )

    def batch(
        self,
        victim: Victim,
        hp: HParams,
        images: jax.Array,
        labels: jax.Array,
        key: jax.Array,
        targets: jax.Array | None = None,
    ) -> AttackResult:
        """Attacks a batch ``images[b, ...]`` in one compiled call; fields get a leading batch axis.

        Example ``i`` uses ``jax.random.split(key, b)[i]``: a run is reproducible from its key.
        """
        return drive(
            self, None, victim, hp, *self._prepare(victim, hp, images, labels, key, targets)
        )

    def _prepare(self, victim, hp, images, labels, key, targets):
        """Validates a batch call; returns ``(images, labels, targets, keys)`` for the driver."""
        self.check_params(hp)
        images, labels, targets = self._validate_batch(victim, images, labels, targets)
        return images, labels, targets, jax.random.split(key, images.shape[0])

    def compile_batch(
        self,
        victim: Victim,
        hp: HParams,
        images: jax.Array,
        labels: jax.Array,
        targets: jax.Array | None = None,
    ) -> Callable[..., AttackResult]:
        """Compiles :meth:`batch` ahead of time for these shapes; returns ``run(hp, images, labels,
        key, targets=None)`` that never recompiles. Use it to time compilation apart from running.
        """
        prepared = self._prepare(victim, hp, images, labels, jax.random.key(0), targets)
        executables = compile_drive(self, None, victim, hp, *prepared)

        def run(hp, images, labels, key, targets=None):
            prepared = self._prepare(victim, hp, images, labels, key, targets)
            return drive(self, None, victim, hp, *prepared, executables)

        return run

    def sweep(
        self,
        victim: Victim,
        hp: HParams,
        images: jax.Array,
        labels: jax.Array,
        key: jax.Array,
        targets: jax.Array | None = None,
    ) -> AttackResult:
        """Runs a grid of K hyper-parameter settings over a batch in ONE compiled call.

        Every ``hp`` leaf with a leading axis (shape ``(K,)``) is swept jointly; scalar leaves are
        shared. Result fields have shape ``(K, b, ...)``. All settings see the same keys.
        """
        self.check_params(hp)
        sizes = {np.ndim(leaf) and np.shape(leaf)[0] for leaf in hp}
        sizes.discard(0)
        if len(sizes) != 1 or any(np.ndim(leaf) > 1 for leaf in hp):
            raise ValueError(
                "`hp` must have scalar leaves and at least one leaf of shape (K,) to sweep, all "
                "swept leaves of the same K; got shapes "
                f"{ {k: np.shape(v) for k, v in hp._asdict().items()} }."
            )
        axes = type(hp)(*(0 if np.ndim(leaf) else None for leaf in hp))
        return drive(
            self, axes, victim, hp, *self._prepare(victim, hp, images, labels, key, targets)
        )


@_compile.jit_static(0)
def _single(attack, victim, hp, x0, label, target, key):
    return attack.run(victim, hp, x0, label, target, key)


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
class Attack(_AttackBase):
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
    name: str = "attack"

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("restarts", self.restarts)
        _checks.check_choice("select", self.select, SELECTIONS)
        if self.restarts > 1 and not self.random_start:
            raise ValueError(
                f"`restarts={self.restarts}` repeats identical runs without `random_start=True`."
            )

    @property
    def length(self) -> int:
        return self.steps

    def feasible_set(self, hp, victim) -> Constraint:
        """The constraint of one run; a subclass whose projection needs the victim's pixel box
        (an exact ℓ0 + box projection) overrides this."""
        return self.constraint(hp)

    def program(self, victim, hp, x0, label, target) -> Program:
        single = descent(
            victim,
            x0,
            loss_fn=lambda x, logits: self.objective(logits, label, target, hp),
            success_fn=lambda logits: self.success(logits, label, target),
            tx=self.step_rule(hp),
            constraint=self.feasible_set(hp, victim),
            perturbation=self.perturbation,
            oracle=self.oracle,
            steps=self.steps,
            random_start=self.random_start,
            early_stop=self.early_stop,
            select=self.select,
        )
        if self.restarts == 1:
            return single
        return _with_restarts(single, self.restarts, self.select)


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
