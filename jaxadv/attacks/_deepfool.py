"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), ℓ2 and ℓ∞, as a compiled program."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._boundary import MIN_STEP, NORMS, boundary_step, nearest_boundary
from jaxadv.attacks._minnorm import within_budget
from jaxadv.attacks._runner import Program, _Best, _finite, _keep_better, make_result
from jaxadv.losses import cw_margin
from jaxadv.results import perturbation_norms


class DeepFoolParams(NamedTuple):
    """The numbers of :func:`deepfool`; every leaf is a float32 array and may be swept.

    Attributes:
      overshoot: η, the total perturbation is ``(1 + η)·Σ r_i`` (the paper's 0.02).
      eps: the budget at which ``success`` is judged (fooled and ``‖delta‖ ≤ eps`` in the
        attack's norm); ``inf``: fooled. ``x_adv`` is the smallest adversarial found either way.
    """

    overshoot: jax.Array
    eps: jax.Array


class _Carry(NamedTuple):
    x: jax.Array  # the iterate clip(x0 + (1 + η)·r_tot), evaluated by the next step
    r_tot: jax.Array  # Σ r_i, the sum of the linearised steps
    others: jax.Array  # the candidate classes other than the label (set at the first step)
    done: jax.Array
    steps: jax.Array
    queries: jax.Array
    best: _Best


@dataclasses.dataclass(frozen=True)
class DeepFool(AttackBase):
    """DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to
    fool deep neural networks", CVPR 2016, Algorithm 2 and §3.3 for ℓp), untargeted.

    Each step evaluates the logits ``z`` at the iterate and the gradients ``w_k = ∇(z_k − z_y)``
    of the candidate classes ``k ≠ y`` (one vector-Jacobian product per row), linearises every
    boundary as ``f_k + w_k·r = 0`` with ``f_k = z_k − z_y``, picks the closest one in the attack's
    norm, ``l = argmin_k |f_k| / ‖w_k‖_q`` (``q`` dual: ℓ1 for ℓ∞, ℓ2 for ℓ2), and adds the least
    step onto it, ``r = |f_l|/‖w_l‖₂²·w_l`` (ℓ2) or ``|f_l|/‖w_l‖₁·sign(w_l)`` (ℓ∞), to ``r_tot``.
    The next iterate is ``clip(x0 + (1 + overshoot)·r_tot)`` (the overshoot applied at every
    step, as the reference implementations do, so that each iterate is the candidate result).
    Every step is at least 1e-4 long (in the attack's norm): the reference codes push each step
    by 1e-4 so that an iterate on a tie of logits still moves; a floor leaves longer steps exact.
    An example stops once it is fooled; the result is its smallest fooled iterate (in the
    attack's norm), or, if none, the iterate of smallest margin ``z_y − max_{k≠y} z_k``.

    ``candidates=k`` restricts the classes to the label and the ``k − 1`` other classes with the
    highest clean logits (foolbox's option; the paper uses all). On an affine classifier in a
    box that does not bind, the first step is the exact minimal perturbation, scaled by
    ``1 + overshoot``.

    ``steps`` counts the linearised steps taken (the paper's iterations: 1 on an affine
    classifier) and ``queries`` their forward+backward passes, one per Jacobian row (``k − 1``,
    or ``num_classes − 1``, per step). The evaluation that finds an iterate fooled needs only
    its forward pass, which is not counted (nor the last iterate's check).
    ``eps`` (default ``inf``) only decides ``success``: AutoAttack-style evaluation at a budget.
    Defaults: 50 steps (the reference code's maximum), overshoot 0.02.

    Attributes:
      norm: the norm of the linearised steps and of the best iterate (``"l2"``, ``"linf"``).
      steps: the most DeepFool steps (50).
      candidates: None (every class) or ``k ≥ 2``: the label and the ``k − 1`` other classes with
        the highest clean logits.
      defaults: per-instance overrides of the defaults of :class:`DeepFoolParams`, as
        ``((name, value), ...)`` (none by default).
      name: a label for tables.
    """

    norm: str = "l2"
    steps: int = 50
    candidates: int | None = None
    defaults: tuple[tuple[str, float], ...] = ()
    name: str = "deepfool"
    params_type: ClassVar[type] = DeepFoolParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "overshoot": Spec(0.02),
        "eps": Spec(float("inf"), "budget"),
    }

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_positive_int("steps", self.steps)
        if self.candidates is not None:
            _checks.check_positive_int("candidates", self.candidates)
            if self.candidates < 2:
                raise ValueError(
                    f"`candidates` must be None (all classes) or at least 2 (the label and one "
                    f"other class); got {self.candidates}."
                )

    def check_victim(self, victim, hp) -> None:
        if self.candidates is not None and self.candidates > victim.num_classes:
            raise ValueError(
                f"`candidates` must be at most the victim's {victim.num_classes} classes; got "
                f"{self.candidates}."
            )

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: DeepFoolParams, x0, label, target) -> Program:
        del target  # untargeted
        low, high = victim.bounds
        classes = jnp.arange(victim.num_classes)
        rows = (self.candidates or victim.num_classes) - 1

        def candidate(x, logits):
            # Fooled iterates rank by size, the others by margin; a NaN victim never counts.
            margin = cw_margin(logits, label, kappa=jnp.inf)
            finite = _finite(logits, margin)
            fooled = self.success(logits, label, label) & finite
            delta = x - x0
            rank = jnp.where(fooled, perturbation_norms(delta)[self.norm], margin)
            return _Best(x, delta, logits, margin, fooled, jnp.where(finite, rank, jnp.inf))

        def init(key):
            del key
            zero = jnp.zeros((), jnp.int32)
            shapes = jax.eval_shape(victim, x0)
            inf = jnp.full((), jnp.inf, jnp.float32)
            best = _Best(
                x0,
                jnp.zeros_like(x0),
                jnp.zeros(shapes.shape, shapes.dtype),
                inf,
                jnp.zeros((), bool),
                inf,
            )
            others = jnp.zeros((rows,), jnp.int32)
            return _Carry(x0, jnp.zeros_like(x0), others, jnp.zeros((), bool), zero, zero, best)

        def step(c: _Carry):
            logits, pullback = jax.vjp(victim, c.x)
            new = candidate(c.x, logits)
            best = _keep_better(c.best, new)
            # The candidate classes, from the clean logits (the first step evaluates x0).
            ranked = jnp.argsort(-jnp.where(classes == label, -jnp.inf, logits), stable=True)
            others = jnp.where(c.steps == 0, ranked[:rows].astype(jnp.int32), c.others)
            seeds = jax.nn.one_hot(others, logits.size) - jax.nn.one_hot(label, logits.size)
            (w,) = jax.vmap(pullback)(seeds.astype(logits.dtype))  # ∇(z_k − z_y), one row each
            f = logits[others] - logits[label]
            nearest = nearest_boundary(f, w, self.norm, valid=jnp.ones((rows,), bool))
            r_tot = c.r_tot + boundary_step(f[nearest], w[nearest], self.norm, MIN_STEP)
            x = jnp.clip(x0 + (1.0 + hp.overshoot) * r_tot, low, high)
            stop = c.done | new.success  # a fooled iterate is final: it does not move
            keep = lambda old, moved: jnp.where(stop, old, moved)  # noqa: E731
            active = (~stop).astype(jnp.int32)  # a linearised step was taken
            carry = _Carry(
                x=keep(c.x, x),
                r_tot=keep(c.r_tot, r_tot),
                others=jnp.where(c.done, c.others, others),
                done=stop,
                steps=c.steps + active,
                queries=c.queries + active * rows,
                best=best,
            )
            return carry, new.loss

        def finish(c: _Carry, trace):
            best = _keep_better(c.best, candidate(c.x, victim(c.x)))
            result = make_result(best, victim.bounds, c.steps, c.queries, trace)
            return within_budget(result, self.norm, hp.eps)

        return Program(init=init, step=step, finish=finish, length=self.length)


def deepfool(*, norm: str = "l2", steps: int = 50, candidates: int | None = None) -> DeepFool:
    """The DeepFool attack (see :class:`DeepFool` for the method, paper and defaults).

    Args:
      norm: ``"l2"`` or ``"linf"``: the norm of the linearised steps and of the best iterate.
      steps: the most DeepFool steps (each one evaluation of logits and Jacobian rows).
      candidates: None (every class) or ``k ≥ 2``: the label and the ``k − 1`` other classes
        with the highest clean logits.

    Hyper-parameters (``attack.hparams``): ``overshoot`` 0.02, ``eps`` inf (the budget at which
    ``success`` is judged).

    Returns:
      An untargeted :class:`DeepFool` named ``"deepfool"``.
    """
    return DeepFool(norm=norm, steps=steps, candidates=candidates)
