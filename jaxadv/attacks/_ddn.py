"""Decoupled Direction and Norm (DDN; Rony et al., CVPR 2019): a minimum-ℓ2 attack."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._fmn import (
    _TINY,
    candidate,
    cosine_annealing,
    farthest,
    norm_of,
    placeholder,
)
from jaxadv.attacks._minnorm import within_budget
from jaxadv.attacks._runner import Program, _Best, _keep_better, make_result
from jaxadv.losses import cross_entropy


class DDNParams(NamedTuple):
    """The numbers of :func:`ddn`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the ℓ2 budget at which ``success`` is judged (fooled AND ``‖delta‖₂ ≤ eps``); ``inf``
        (default) judges plain success. ``x_adv`` is the smallest adversarial found regardless.
      gamma: the factor by which the radius grows or shrinks each step (0.05).
      init_norm: the radius ε₀ before the first step (1).
      alpha_init, alpha_final: the step α, cosine-annealed from 1 to 0.01.
    """

    eps: jax.Array
    gamma: jax.Array
    init_norm: jax.Array
    alpha_init: jax.Array
    alpha_final: jax.Array


class _DDNCarry(NamedTuple):
    delta: jax.Array  # δ_k: on the ε-sphere, then clipped to the box (and quantised)
    radius: jax.Array  # ε_k
    k: jax.Array
    best: _Best


@dataclasses.dataclass(frozen=True)
class DecoupledDirectionNorm(AttackBase):
    """DDN (Rony, Hafemann, Oliveira, Ben Ayed, Sabourin & Granger, "Decoupling direction and norm
    for efficient gradient-based L2 adversarial attacks and defenses", CVPR 2019, Algorithm 1).

    The direction and the norm of the perturbation are decoupled: per step ``k`` (from 0), the
    direction takes a step ``δ ← δ − α_k·∇J/‖∇J‖₂`` on the cross-entropy objective ``J``
    (minimised: ``−CE(label)`` untargeted, ``CE(target)`` targeted), while the norm follows the
    verdict on the current iterate: ``ε ← ε(1 − γ)`` if it is adversarial, else ``ε(1 + γ)``;
    then ``δ`` is rescaled onto the ε-sphere (``ε·δ/‖δ‖₂``), ``x0 + δ`` clipped to the pixel box
    and, with ``levels``, quantised to that many grey levels of the box (the paper's 256 for
    8-bit images; off by default, so that results are exact real-valued minima). ``α`` is
    cosine-annealed from 1 to 0.01; ε starts at 1 and, as in the authors' code, never exceeds the
    norm of the farthest point of the box (no adversarial lies farther). A zero gradient makes no
    step (the authors' code draws a random direction).

    The result is the successful iterate of smallest ℓ2 (else the one of lowest objective),
    including the iterate after the last step (one forward pass in ``finish``); ``queries``
    counts forward+backward passes (one per step). ``success`` is judged at the budget ``hp.eps``
    (default inf). No early stop: every step may still shrink the norm.

    Defaults (the paper's): 100 steps, γ 0.05, ε₀ 1, α 1 → 0.01. Measured on the default digits
    C&W net (the 127 of the first 128 test digits it gets right, untargeted, 100 steps;
    ``experiments/min_norm_digits.py``): 100% success, median ℓ2 1.23.

    Attributes:
      steps: iterations (100); each one forward+backward pass.
      levels: quantise every iterate to that many grey levels of the box, an int ≥ 2 (None: off).
      targeted: reach the given ``target`` (True) or leave the label (False).
      defaults: per-instance overrides of the defaults of :class:`DDNParams`, as
        ``((name, value), ...)`` (none by default).
      rel_step_size: unused: :class:`DDNParams` has no ``step_size``.
      name: a label for tables.
    """

    steps: int = 100
    levels: int | None = None
    targeted: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "ddn"
    params_type: ClassVar[type] = DDNParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "eps": Spec(float("inf"), "budget"),
        "gamma": Spec(0.05, "unit"),
        "init_norm": Spec(1.0, "positive"),
        "alpha_init": Spec(1.0, "positive"),
        "alpha_final": Spec(0.01, "nonnegative"),
    }

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        if self.levels is not None and (
            isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 2
        ):
            raise ValueError(
                f"`levels` must be None (no quantisation) or an integer >= 2; got {self.levels!r}."
            )

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: DDNParams, x0, label, target) -> Program:
        low, high = victim.bounds
        goal = target if self.targeted else label
        worst = farthest(x0, victim.bounds, "l2")
        sign = 1.0 if self.targeted else -1.0

        def objective(delta):
            logits = victim(x0 + delta)
            return sign * cross_entropy(logits, goal), logits

        def to_box(delta):
            x = jnp.clip(x0 + delta, low, high)
            if self.levels is not None:
                scale = (self.levels - 1) / (high - low)
                x = low + jnp.round((x - low) * scale) / scale
            return x - x0

        def init(key):
            del key
            return _DDNCarry(
                jnp.zeros_like(x0), hp.init_norm.astype(x0.dtype), jnp.zeros((), jnp.int32),
                placeholder(x0, victim.num_classes),
            )

        def step(c: _DDNCarry):
            (loss, logits), grad = jax.value_and_grad(objective, has_aux=True)(c.delta)
            new = candidate(x0, c.delta, logits, loss, self.success(logits, label, target), "l2")
            best = _keep_better(c.best, new)
            alpha = cosine_annealing(hp.alpha_init, hp.alpha_final, c.k, self.steps)
            delta = c.delta - alpha * grad / jnp.maximum(norm_of(grad, "l2"), _TINY)
            radius = jnp.minimum(c.radius * jnp.where(new.success, 1 - hp.gamma, 1 + hp.gamma),
                                 worst)
            delta = delta * (radius / jnp.maximum(norm_of(delta, "l2"), _TINY))
            return _DDNCarry(to_box(delta), radius, c.k + 1, best), loss

        def finish(c: _DDNCarry, trace):
            loss, logits = objective(c.delta)
            last = candidate(x0, c.delta, logits, loss, self.success(logits, label, target), "l2")
            result = make_result(_keep_better(c.best, last), victim.bounds, c.k, c.k, trace)
            return within_budget(result, "l2", hp.eps)

        return Program(init=init, step=step, finish=finish, length=self.steps)


def ddn(
    *, targeted: bool = False, steps: int = 100, levels: int | None = None
) -> DecoupledDirectionNorm:
    """The DDN minimum-ℓ2 attack (see :class:`DecoupledDirectionNorm` for the method, paper and
    defaults). ``levels``: quantise every iterate to that many grey levels (None: off).

    Hyper-parameters (``attack.hparams``): ``eps`` inf (the budget at which success is judged),
    ``gamma`` 0.05, ``init_norm`` 1, ``alpha_init`` 1, ``alpha_final`` 0.01.

    Args:
      targeted: reach the given ``target`` (True) or leave the label (False).
      steps: iterations (100, the paper's); each one forward+backward pass.
      levels: quantise every iterate to that many grey levels of the pixel box, an int ≥ 2
        (256 for 8-bit images); None (default): no quantisation.

    Returns:
      A :class:`DecoupledDirectionNorm` named ``"ddn"``.
    """
    return DecoupledDirectionNorm(steps=steps, levels=levels, targeted=targeted)
