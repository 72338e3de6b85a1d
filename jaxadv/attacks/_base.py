"""The one attack contract: :class:`AttackBase`.

An attack family is a frozen dataclass that subclasses :class:`AttackBase` and declares

* ``params_type``: a NamedTuple of float32 leaves, the numbers a user may sweep;
* ``hparam_spec``: per field, its default and its validation rule (:class:`Spec`), in ONE place;
* ``length`` (static steps) and ``program(victim, hp, x0, label, target) -> Program`` for ONE
  example (``jaxadv.attacks.Program``: ``init(key)``, ``step(carry)``, ``finish(carry, trace)``).

Everything else comes from the base: ``hparams(...)`` (defaults, overrides, validation),
``__call__`` (one example), ``batch``, ``sweep`` and ``compile_batch`` (through the one driver,
``attacks/_driver.py``, which alone picks the loop form), ``run`` (the traced, unvalidated call
that ``jax.vmap``/``jaxadv.sweeps`` use). One argument order everywhere:
``(victim, hp, x0, label, key, target=None)``.

Derived numbers are computed inside the trace (:meth:`AttackBase.derive`): with a relative step,
the step is ``step_size + rel_step_size · eps``, so ``hp._replace(eps=...)`` or a swept ``eps``
moves the step with it.

Optional hooks: :meth:`AttackBase.validate` (rules between fields), :meth:`AttackBase.check_victim`
(rules that need the victim), :meth:`AttackBase.check_inputs` (what ``label``/``target`` mean; the
default is a classifier's class indices) and :meth:`AttackBase.success`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks, _compile
from jaxadv.attacks import _driver, _eot
from jaxadv.attacks._runner import Program
from jaxadv.models import RandomizedVictim
from jaxadv.results import AttackResult


class Spec(NamedTuple):
    """One hyper-parameter's default and validation rule.

    Attributes:
      default: its value when the user gives none (None: no default; the user must give it).
      check: ``"nonnegative"`` (finite, ≥ 0), ``"positive"`` (finite, > 0), ``"unit"`` (in
        [0, 1]), ``"open_unit"`` (in (0, 1]), ``"count"`` (a whole number ≥ 1), ``"finite"`` or
        ``"budget"`` (≥ 0, ``inf`` allowed: a minimum-norm attack's success budget).
    """

    default: float | None = None
    check: str = "nonnegative"


def _check_open_unit(name: str, value: Any) -> None:
    if _checks.is_concrete(value):
        arr = np.asarray(value, np.float64)
        if np.any(~np.isfinite(arr)) or np.any((arr <= 0) | (arr > 1)):
            raise ValueError(f"`{name}` must lie in (0, 1]; got {_checks.show(arr)}.")


def _check_budget(name: str, value: Any) -> None:
    if _checks.is_concrete(value):
        arr = np.asarray(value, np.float64)
        if np.any(np.isnan(arr)) or np.any(arr < 0):
            raise ValueError(f"`{name}` must be >= 0 (inf: no budget); got {_checks.show(arr)}.")


def _check_count(name: str, value: Any) -> None:
    if _checks.is_concrete(value):
        arr = np.asarray(value, np.float64)
        if np.any(~np.isfinite(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
            raise ValueError(f"`{name}` must be a whole number >= 1; got {_checks.show(arr)}.")


CHECKS: dict[str, Callable[[str, Any], None]] = {
    "nonnegative": _checks.check_nonnegative,
    "positive": _checks.check_positive,
    "unit": _checks.check_unit_interval,
    "open_unit": _check_open_unit,
    "count": _check_count,
    "finite": _checks.check_finite,
    "budget": _check_budget,
}


class NonFiniteOutputError(ValueError):
    """The victim returned NaN/inf outputs where an attack needed finite ones.

    Raised by :meth:`AttackBase.batch` with ``require_finite=True`` when an example's outputs (or
    objective) were non-finite at every iterate; a ``ValueError``.

    Args:
      message: how many examples were affected and the index of the first.
    """


class AttackBase:
    """The public base of every attack (module docstring).

    Subclasses are frozen dataclasses; the attributes below are read from the instance, so a
    dataclass field may override any of them.

    Attributes:
      params_type: the hyper-parameter NamedTuple (float32 leaves).
      hparam_spec: ``{field: Spec(default, check)}`` for every field of ``params_type``.
      targeted: whether ``target`` is what the attack reaches (then it is required).
      defaults: per-instance overrides of the spec's defaults, ``((name, value), ...)``.
      rel_step_size: the default step as a multiple of ``eps`` (None: ``step_size``'s default).
        Only for a ``params_type`` with ``eps``, ``step_size`` and ``rel_step_size`` fields.
      eot: whether the attack takes a :class:`~jaxadv.models.RandomizedVictim` and averages over
        its randomness (expectation over transformation); others refuse one. (APGD's is always
        True; an :class:`~jaxadv.attacks.Attack`'s is set by ``with_eot``.)
      cpu_chunk: loop-form hint for the driver: steps per compiled chunk on CPU (None: the
        backend's default). An attack whose step compiles slowly asks for shorter chunks.
      name: a label for tables.
    """

    params_type: ClassVar[type]
    hparam_spec: ClassVar[Mapping[str, Spec]]
    targeted: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    eot: ClassVar[bool] = False
    cpu_chunk: ClassVar[int | None] = None
    name: str = "attack"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params_type = cls.__dict__.get("params_type")
        spec = cls.__dict__.get("hparam_spec")
        if params_type is None and spec is None:
            return
        params_type, spec = cls.params_type, cls.hparam_spec
        if tuple(spec) != tuple(params_type._fields):
            raise TypeError(
                f"{cls.__name__}.hparam_spec must list the fields of {params_type.__name__} in "
                f"order, {params_type._fields}; got {tuple(spec)}."
            )
        bad = {k: s.check for k, s in spec.items() if s.check not in CHECKS}
        if bad:
            raise TypeError(f"{cls.__name__}.hparam_spec has unknown checks {bad}; use {CHECKS}.")

    # -- what a family implements ----------------------------------------------------------------

    @property
    def length(self) -> int:
        """Total steps of the attack's program (static)."""
        raise NotImplementedError

    def program(self, victim, hp, x0, label, target) -> Program:
        """The attack on one example as an init/step/finish :class:`Program` (traced; ``hp`` is
        already derived, see :meth:`derive`)."""
        raise NotImplementedError

    # -- numbers ---------------------------------------------------------------------------------

    @property
    def _relative_step(self) -> bool:
        return "rel_step_size" in self.params_type._fields

    def hparams(self, **values: Any):
        """The attack's hyper-parameters: spec defaults < the attack's ``defaults`` < ``values``.

        A value may be an array of K entries to sweep (see :meth:`sweep`). For an attack with a
        relative step (``rel_step_size`` set), a ``step_size`` not given is derived in the trace
        as ``rel_step_size × eps``; a given ``step_size`` is absolute.
        """
        fields = self.params_type._fields
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(
                f"Unknown hyper-parameter(s) {sorted(unknown)} for attack {self.name!r}; "
                f"expected some of {fields}."
            )
        merged = {k: s.default for k, s in self.hparam_spec.items() if s.default is not None}
        merged.update(dict(self.defaults))
        if self._relative_step:
            if "step_size" in values and "rel_step_size" in values:
                raise ValueError(
                    "Give `step_size` (absolute) or `rel_step_size` (a multiple of eps), not both."
                )
            if "step_size" in values:
                merged["rel_step_size"] = 0.0
            elif "rel_step_size" in values or self.rel_step_size is not None:
                merged["step_size"] = 0.0
                merged["rel_step_size"] = values.get("rel_step_size", self.rel_step_size)
            else:
                merged["rel_step_size"] = 0.0
        merged.update(values)
        missing = [k for k in fields if merged.get(k) is None]
        if missing:
            why = " (it sets neither `rel_step_size` nor a default step)" * ("step_size" in missing)
            raise ValueError(
                f"Hyper-parameter(s) {missing} have no default for attack {self.name!r}{why}; "
                f"pass them, e.g. `attack.hparams({missing[0]}=...)`."
            )
        hp = self.params_type(**{k: jnp.asarray(merged[k], jnp.float32) for k in fields})
        self.check_params(hp)
        return hp

    def check_params(self, hp) -> None:
        """Raises a ValueError naming the first invalid hyper-parameter (concrete values only)."""
        if not isinstance(hp, self.params_type):
            raise ValueError(
                f"`hp` must be a {self.params_type.__name__} (from `attack.hparams(...)`) for "
                f"attack {self.name!r}; got {type(hp).__name__}."
            )
        for field, spec in self.hparam_spec.items():
            CHECKS[spec.check](f"hp.{field}", getattr(hp, field))
        self.validate(hp)

    def validate(self, hp) -> None:
        """Rules between fields (override; concrete values only, skip tracers)."""

    def derive(self, hp):
        """Derived numbers, computed inside the trace: the relative step becomes absolute."""
        if not self._relative_step:
            return hp
        step = hp.step_size + hp.rel_step_size * hp.eps
        return hp._replace(step_size=step, rel_step_size=jnp.zeros_like(hp.rel_step_size))

    # -- inputs ----------------------------------------------------------------------------------

    def check_victim(self, victim, hp) -> None:
        """Rules that need the victim (e.g. a budget that must fit its input); override."""

    def input_shape(self, victim) -> tuple[int, ...]:
        return tuple(victim.input_shape)

    def bounds(self, victim) -> tuple[float, float]:
        return tuple(victim.bounds)

    def num_classes(self, victim) -> int:
        """The victim's class count (a sweep's targets and label checks read it)."""
        return victim.num_classes

    def check_inputs(self, victim, images, labels, targets):
        """Validates a batch; returns ``(images, labels, targets)`` as the program takes them.

        The default is a classifier's: ``labels`` the true classes, ``targets`` the classes to
        reach (targeted) or None (then the labels are passed on).
        """
        _checks.check_batch_shape("images", jnp.shape(images), self.input_shape(victim))
        _checks.check_in_bounds("images", images, self.bounds(victim))
        _check_logits(victim, self)
        n = jnp.shape(images)[0]
        if labels is None or jnp.shape(labels) != (n,):
            raise ValueError(
                f"`labels` must have shape ({n},) to match `images`; got "
                f"{None if labels is None else jnp.shape(labels)}."
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
        elif targets is not None:
            raise ValueError(
                f"`targets` must be None for the untargeted attack {self.name!r} (it would be "
                "ignored); build the attack with `targeted=True` to reach given classes."
            )
        else:
            targets = labels
        return (
            jnp.asarray(images, jnp.float32),
            jnp.asarray(labels, jnp.int32),
            jnp.asarray(targets, jnp.int32),
        )

    def check_example(self, victim, x0, label, target):
        """Validates ONE example (default: a classifier's); returns ``(x0, label, target)``."""
        _checks.check_example_shape("x0", jnp.shape(x0), self.input_shape(victim))
        _checks.check_in_bounds("x0", x0, self.bounds(victim))
        _check_logits(victim, self)
        _checks.check_labels("label", label, victim.num_classes)
        if jnp.ndim(label) != 0:
            raise ValueError(f"`label` must be a scalar class index; got shape {jnp.shape(label)}.")
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
        elif target is not None:
            raise ValueError(
                f"`target` must be None for the untargeted attack {self.name!r} (it would be "
                "ignored); build the attack with `targeted=True` to reach a given class."
            )
        else:
            target = label
        return (
            jnp.asarray(x0, jnp.float32),
            jnp.asarray(label, jnp.int32),
            jnp.asarray(target, jnp.int32),
        )

    def success(self, logits: jax.Array, label: jax.Array, target: jax.Array) -> jax.Array:
        """Targeted: the target wins; untargeted: the true label loses."""
        predicted = jnp.argmax(logits, axis=-1)
        return predicted == target if self.targeted else predicted != label

    def clean_correct(self, victim, x0, label) -> jax.Array:
        """Whether the victim gets the clean example right (a sweep table's column)."""
        return jnp.argmax(victim(x0)) == label

    # -- entry points ----------------------------------------------------------------------------

    def run(self, victim, hp, x0, label, target, key) -> AttackResult:
        """The traced attack on one example (unvalidated; see ``__call__``). ``vmap`` it freely."""
        return _driver.run_one(self, victim, hp, x0, label, target, key)

    def __call__(self, victim, hp, x0, label=None, key=None, target=None) -> AttackResult:
        """Attacks ONE example ``x0``; ``label``/``target`` as :meth:`check_example` says.

        Never raises because the attack failed: see ``result.success``.
        """
        _checks.check_key("key", key)
        self.check_params(hp)
        self.check_victim(victim, hp)
        x0, label, target = self.check_example(victim, x0, label, target)
        # Compiled even when called eagerly (a notebook); inside a user's jit/vmap it inlines.
        return _single(self, victim, _strong_float32(hp), x0, label, target, key)

    def _prepare(self, victim, hp, images, labels, key, targets):
        """Validates a batch call; returns ``(images, labels, targets, keys)`` for the driver."""
        _checks.check_key("key", key)
        self.check_params(hp)
        self.check_victim(victim, hp)
        images, labels, targets = self.check_inputs(victim, images, labels, targets)
        return images, labels, targets, jax.random.split(key, jnp.shape(images)[0])

    def batch(
        self,
        victim,
        hp,
        images,
        labels,
        key,
        targets=None,
        *,
        require_finite: bool = False,
        max_batch: int | None = None,
    ) -> AttackResult:
        """Attacks a batch ``images[b, ...]`` with one compiled program; fields get a leading
        batch axis.

        Example ``i`` uses ``jax.random.split(key, b)[i]``: a run is reproducible from its key.
        Examples whose victim outputs were never finite come back with ``finite=False`` and
        ``success=False``; ``require_finite=True`` raises :class:`NonFiniteOutputError` instead
        (it waits for the result). A batch of more than ``max_batch`` examples runs as several
        calls of that program, one after the other, to bound memory; the results are the same.
        ``max_batch=None`` takes the backend's default (CPU: 128; accelerators: no limit).
        """
        _check_no_sweep_axis(hp)
        _driver.check_max_batch(max_batch)
        prepared = self._prepare(victim, hp, images, labels, key, targets)
        result = _driver.drive(
            self, None, victim, _strong_float32(hp), *prepared, max_batch=max_batch
        )
        if require_finite and not _checks.is_concrete(result.finite):
            raise ValueError("`require_finite=True` needs concrete results; call it outside jit.")
        if require_finite:
            bad = np.flatnonzero(~np.asarray(result.finite))
            if bad.size:
                raise NonFiniteOutputError(
                    f"The victim's outputs (or the objective) were NaN/inf at every iterate of "
                    f"{bad.size} of {len(np.asarray(result.finite))} examples, first at index "
                    f"{bad[0]}: check the model and its inputs."
                )
        return result

    def compile_batch(
        self, victim, hp, images, labels, targets=None, *, max_batch: int | None = None
    ) -> Callable[..., Any]:
        """Compiles :meth:`batch` ahead of time for these shapes; returns ``run(hp, images, labels,
        key, targets=None)`` that never recompiles. Use it to time compilation apart from running.
        ``max_batch`` is :meth:`batch`'s.
        """
        _check_no_sweep_axis(hp)
        _driver.check_max_batch(max_batch)
        prepared = self._prepare(victim, hp, images, labels, jax.random.key(0), targets)
        hp = _strong_float32(hp)
        executables = _driver.compile_drive(self, None, victim, hp, *prepared, max_batch=max_batch)
        shapes = jax.tree.map(jnp.shape, prepared[:3])

        def run(hp, images, labels, key, targets=None):
            prepared = self._prepare(victim, hp, images, labels, key, targets)
            hp = _strong_float32(hp)
            given = jax.tree.map(jnp.shape, prepared[:3])
            if given != shapes:
                raise ValueError(
                    "This compiled batch takes (images, labels, targets) of shapes "
                    f"{shapes}; got {given}. Compile again for other shapes."
                )
            return _driver.drive(self, None, victim, hp, *prepared, executables, max_batch)

        return run

    def sweep(
        self, victim, hp, images, labels, key, targets=None, *, max_batch: int | None = None
    ) -> AttackResult:
        """Runs a grid of K hyper-parameter settings over a batch with ONE compiled program.

        Every ``hp`` leaf with a leading axis (shape ``(K,)``) is swept jointly; scalar leaves are
        shared. Result fields have shape ``(K, b, ...)``. All settings see the same keys.
        ``max_batch`` is :meth:`batch`'s, counted along the batch axis (each call runs all K
        settings on its examples).
        """
        _driver.check_max_batch(max_batch)
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
        prepared = self._prepare(victim, hp, images, labels, key, targets)
        return _driver.drive(
            self, axes, victim, _strong_float32(hp), *prepared, max_batch=max_batch
        )


_LOGIT_SHAPES: dict[Any, tuple[int, ...]] = {}


def _check_logits(victim, attack: AttackBase) -> None:
    """A classifier victim's output must be ``num_classes`` logits (shapes only: no compute);
    a randomized victim needs an attack that averages over its randomness."""
    if isinstance(victim, RandomizedVictim):
        if not attack.eot:
            raise ValueError(_eot.refusal(attack.name))
        victim = victim.with_key(jax.random.key(0))
    leaves = jax.tree.leaves(victim.variables)
    key = (
        victim.apply_fn,
        tuple(victim.input_shape),
        jax.tree.structure(victim.variables),
        tuple((jnp.shape(v), jnp.result_type(v)) for v in leaves),
    )
    try:
        hash(key)
    except TypeError:  # an unhashable apply_fn: check without the cache
        key = None
    shape = _LOGIT_SHAPES.get(key) if key is not None else None
    if shape is None:
        example = jax.ShapeDtypeStruct(tuple(victim.input_shape), jnp.float32)
        shape = tuple(jax.eval_shape(victim, example).shape)
        if key is not None:
            _LOGIT_SHAPES[key] = shape
    if shape != (victim.num_classes,):
        raise ValueError(
            f"The victim declares `num_classes={victim.num_classes}` but returns outputs of shape "
            f"{shape} for one example; expected ({victim.num_classes},). Fix `num_classes` (or "
            "the model's head)."
        )


def _strong_float32(hp):
    """``hp`` with float32 leaves that are not weakly typed: ``hp._replace(eps=0.0)`` (a Python
    float) then reuses the compiled program of ``attack.hparams(...)`` instead of compiling again
    (jit keys on weak types)."""
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), hp)


def _check_no_sweep_axis(hp) -> None:
    shapes = {k: np.shape(v) for k, v in hp._asdict().items() if np.ndim(v)}
    if shapes:
        raise ValueError(
            f"`hp` has leaves with a leading axis {shapes}: a grid of settings. Use "
            "`attack.sweep(...)` to run one, or give scalars to `.batch`."
        )


@_compile.jit_static(0)
def _single(attack, victim, hp, x0, label, target, key):
    return attack.run(victim, hp, x0, label, target, key)
