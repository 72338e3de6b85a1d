"""Fast Minimum-Norm attack (FMN; Pintor, Roli, Brendel & Biggio, NeurIPS 2021), ℓ0/ℓ1/ℓ2/ℓ∞.

Also the pieces that the minimum-norm families share (DDN imports them): cosine annealing, the
norm of a perturbation by name, the farthest point of the pixel box, and the best-so-far
candidate ranked by its norm.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._minnorm import within_budget
from jaxadv.attacks._runner import Program, _Best, _finite, _keep_better, make_result
from jaxadv.constraints import norm_ball, pixel_box, project_l0_box
from jaxadv.losses import cw_margin

NORMS = ("l0", "l1", "l2", "linf")
_DUAL = {"l1": "linf", "l2": "l2", "linf": "l1"}
_TINY = 1e-12  # guards the divisions by a gradient's norm (a zero gradient makes a zero step)


def cosine_annealing(initial, final, k, steps):
    """``final + (initial − final)·(1 + cos(π·k/steps))/2``: ``initial`` at ``k = 0``, falling to
    ``final`` at ``k = steps`` (step ``k`` counts from 0, as in the authors' code)."""
    return final + (initial - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * k / steps))


def norm_of(delta: jax.Array, norm: str) -> jax.Array:
    """``‖delta‖`` in ``"l0"`` (non-zero entries), ``"l1"``, ``"l2"`` or ``"linf"``."""
    flat = jnp.ravel(delta)
    if norm == "l0":
        return jnp.sum(flat != 0).astype(flat.dtype)
    if norm == "l1":
        return jnp.sum(jnp.abs(flat))
    if norm == "l2":
        return jnp.sqrt(jnp.sum(flat * flat))
    return jnp.max(jnp.abs(flat))


def farthest(x0: jax.Array, bounds, norm: str) -> jax.Array:
    """The norm of the largest perturbation the pixel box allows around ``x0``: no adversarial
    input lies farther, so a radius never needs to exceed it."""
    low, high = bounds
    return norm_of(jnp.maximum(x0 - low, high - x0), norm)


def candidate(x0, delta, logits, loss, success, norm: str) -> _Best:
    """An iterate as a best-so-far candidate: successful ones rank by their norm, others by loss.
    A victim with NaN/inf outputs is never fooled, and such an iterate never wins."""
    finite = _finite(logits, loss)
    success = success & finite
    rank = jnp.where(success, norm_of(delta, norm), loss)
    return _Best(x0 + delta, delta, logits, loss, success, jnp.where(finite, rank, jnp.inf))


def placeholder(x0: jax.Array, num_classes: int) -> _Best:
    """A best-so-far that every evaluated iterate beats (the clean input, infinitely bad)."""
    inf = jnp.full((), jnp.inf, x0.dtype)
    zeros = jnp.zeros_like(x0)
    return _Best(x0, zeros, jnp.zeros((num_classes,), x0.dtype), inf, jnp.zeros((), bool), inf)


class FMNParams(NamedTuple):
    """The numbers of :func:`fmn`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the budget at which ``success`` is judged (fooled AND ``‖delta‖ ≤ eps``, in the
        attack's norm); ``inf`` (default) judges plain success. It does not constrain the search:
        ``x_adv`` is the smallest adversarial input found, whatever its norm.
      alpha_init, alpha_final: the step size α, cosine-annealed from ``alpha_init`` to
        ``alpha_final`` (defaults 1 and 0.01, the authors' code: α_K = α_0/100).
      gamma_init, gamma_final: the ε step γ, cosine-annealed (defaults 0.05 and 0.001).
    """

    eps: jax.Array
    alpha_init: jax.Array
    alpha_final: jax.Array
    gamma_init: jax.Array
    gamma_final: jax.Array


class _FMNCarry(NamedTuple):
    delta: jax.Array  # δ_k, inside the ε-ball and the pixel box
    radius: jax.Array  # ε_k
    k: jax.Array  # steps taken (the schedules' clock)
    best: _Best


@dataclasses.dataclass(frozen=True)
class FastMinimumNorm(AttackBase):
    """FMN (Pintor, Roli, Brendel & Biggio, "Fast minimum-norm adversarial attacks through adaptive
    norm constraints", NeurIPS 2021, Algorithm 1): projected gradient descent on the logit
    difference inside an ℓp ball whose radius ε adapts to the boundary.

    The loss is ``L = z_y − max_{j≠y} z_j`` (targeted: ``max_{j≠t} z_j − z_t``), minimised; an
    iterate is adversarial when the victim's prediction is (not) the label (the target). Per step
    ``k`` (counted from 0), with ``γ_k``, ``α_k`` cosine-annealed over the ``steps``:

    * adversarial: keep ``δ`` if it is the smallest adversarial so far (``δ*``), then shrink
      ``ε ← min(ε·(1 − γ_k), ‖δ*‖)``;
    * not adversarial: before any adversarial was found, jump to the linearised boundary,
      ``ε ← ‖δ‖ + L/‖∇L‖_q`` (``q`` the dual norm); afterwards grow ``ε ← ε·(1 + γ_k)``;
    * ``ε ← min(ε, ‖max(x0 − low, high − x0)‖)`` (the authors' code: no adversarial is farther);
    * ``δ ← δ − α_k·∇L/‖∇L‖₂`` (the ℓ2-normalised gradient for every norm, as the paper's
      line 14), then the projection onto the ε-ball and the pixel box.

    Projections: ℓ∞ clips (exact with the box), ℓ2 rescales and ℓ1 is the exact sort-based ℓ1
    projection (each followed by the box clip, as the paper's lines 15–16); ℓ0 keeps the ``ε``
    entries whose clipping to the box keeps them closest (``jaxadv.constraints.project_l0_box``,
    the exact projection onto ℓ0 ∩ box; the authors' code keeps the largest ``|δ|``, then clips).
    ℓ0 has no dual norm, so its ε is a count that starts at 1 and moves by whole numbers:
    ``ε ← max(ε + 1, ⌊ε(1 + γ)⌋)`` when not adversarial, ``ε ← min(ε − 1, ⌊ε(1 − γ)⌋, ‖δ*‖₀)``
    when adversarial (the authors' code). ℓ0 counts entries (channels separately).

    The result is the best iterate, not the last: the successful one of smallest norm (else the
    one of lowest loss), including the iterate after the last step (one forward pass in
    ``finish``). ``queries`` counts forward+backward passes (one per step). ``success`` is judged
    at the budget ``hp.eps`` (default inf; see :class:`FMNParams`). No early stop: every step may
    still shrink the norm.

    Defaults: ``steps`` 100 (the paper runs 1,000 for its tables), α 1 → 0.01, γ 0.05 → 0.001
    (the authors' code). Measured on the default digits C&W net (the 127 of the first 128 test
    digits it gets right, untargeted, 100 steps; ``experiments/min_norm_digits.py``): success
    ℓ2 97.6% (median ℓ2 1.27), ℓ∞ 100% (median 0.081), ℓ1 98.4% (median 7.56), ℓ0 100% (median
    12 entries). The ℓ2/ℓ1 failures approach the boundary from the correct side (the linearised
    radius undershoots a curved boundary) and have not crossed it after 100 steps.

    Attributes:
      norm: the norm minimised, ``"l0"``, ``"l1"``, ``"l2"`` (default) or ``"linf"``.
      steps: iterations (100); each one forward+backward pass.
      targeted: reach the given ``target`` (True) or leave the label (False).
      defaults: per-instance overrides of the defaults of :class:`FMNParams`, as
        ``((name, value), ...)`` (none by default).
      rel_step_size: unused: :class:`FMNParams` has no ``step_size``.
      name: a label for tables (:func:`fmn` names it ``"fmn-{norm}"``).
    """

    norm: str = "l2"
    steps: int = 100
    targeted: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "fmn"
    params_type: ClassVar[type] = FMNParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "eps": Spec(float("inf"), "budget"),
        "alpha_init": Spec(1.0, "positive"),
        "alpha_final": Spec(0.01, "nonnegative"),
        "gamma_init": Spec(0.05, "unit"),
        "gamma_final": Spec(0.001, "unit"),
    }

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_positive_int("steps", self.steps)

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: FMNParams, x0, label, target) -> Program:
        norm, bounds = self.norm, victim.bounds
        goal = target if self.targeted else label
        box = pixel_box(*bounds)
        worst = farthest(x0, bounds, norm)

        def loss_fn(delta):
            logits = victim(x0 + delta)
            return cw_margin(logits, goal, kappa=jnp.inf, targeted=self.targeted), logits

        def project(delta, radius):
            if norm == "l0":
                return project_l0_box(delta, radius, bounds[0] - x0, bounds[1] - x0)
            return box.project(norm_ball(norm, radius).project(delta, x0), x0)

        def next_radius(c, delta, loss, grad, adversarial, best, gamma):
            if norm == "l0":
                shrunk = jnp.minimum(jnp.minimum(c.radius - 1, jnp.floor(c.radius * (1 - gamma))),
                                     norm_of(best.delta, norm))
                grown = jnp.maximum(c.radius + 1, jnp.floor(c.radius * (1 + gamma)))
                return jnp.maximum(jnp.where(adversarial, shrunk, grown), 0.0)
            shrunk = jnp.minimum(c.radius * (1 - gamma), norm_of(best.delta, norm))
            to_boundary = jnp.abs(loss) / jnp.maximum(norm_of(grad, _DUAL[norm]), _TINY)
            grown = jnp.where(best.success, c.radius * (1 + gamma), norm_of(delta, norm)
                              + to_boundary)
            return jnp.where(adversarial, shrunk, grown)

        def init(key):
            del key
            radius = jnp.ones((), x0.dtype) if norm == "l0" else jnp.zeros((), x0.dtype)
            return _FMNCarry(
                jnp.zeros_like(x0), radius, jnp.zeros((), jnp.int32),
                placeholder(x0, victim.num_classes),
            )

        def step(c: _FMNCarry):
            (loss, logits), grad = jax.value_and_grad(loss_fn, has_aux=True)(c.delta)
            new = candidate(x0, c.delta, logits, loss, self.success(logits, label, target), norm)
            best = _keep_better(c.best, new)
            gamma = cosine_annealing(hp.gamma_init, hp.gamma_final, c.k, self.steps)
            alpha = cosine_annealing(hp.alpha_init, hp.alpha_final, c.k, self.steps)
            radius = next_radius(c, c.delta, loss, grad, new.success, best, gamma)
            radius = jnp.minimum(radius, worst)
            length = jnp.sqrt(jnp.sum(jnp.square(grad)))
            delta = c.delta - alpha * grad / jnp.maximum(length, _TINY)
            return _FMNCarry(project(delta, radius), radius, c.k + 1, best), loss

        def finish(c: _FMNCarry, trace):
            loss, logits = loss_fn(c.delta)
            last = candidate(x0, c.delta, logits, loss, self.success(logits, label, target), norm)
            best = _keep_better(c.best, last)
            result = make_result(best, bounds, c.k, c.k, trace)
            return within_budget(result, norm, hp.eps)

        return Program(init=init, step=step, finish=finish, length=self.steps)


def fmn(*, norm: str = "l2", targeted: bool = False, steps: int = 100) -> FastMinimumNorm:
    """The Fast Minimum-Norm attack in ``norm`` (``"l0"``, ``"l1"``, ``"l2"`` or ``"linf"``); see
    :class:`FastMinimumNorm` for the method, paper and defaults.

    Hyper-parameters (``attack.hparams``): ``eps`` inf (the budget at which success is judged),
    ``alpha_init`` 1, ``alpha_final`` 0.01, ``gamma_init`` 0.05, ``gamma_final`` 0.001.

    Args:
      norm: the norm minimised, ``"l0"`` (entries, channels counted separately), ``"l1"``,
        ``"l2"`` (default) or ``"linf"``.
      targeted: reach the given ``target`` (True) or leave the label (False).
      steps: iterations (100; the paper's tables use 1,000).

    Returns:
      A :class:`FastMinimumNorm` named ``"fmn-{norm}"``.
    """
    return FastMinimumNorm(norm=norm, steps=steps, targeted=targeted, name=f"fmn-{norm}")
