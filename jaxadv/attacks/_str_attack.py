"""StrAttack, the structured (group-sparse) ADMM attack (Xu et al., ICLR 2019), compiled."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _candidate, _keep_better, make_result
from jaxadv.losses import cw_margin


class StrAttackParams(NamedTuple):
    """The numbers of :func:`str_attack`; every leaf is a float32 array and may be swept.

    Attributes:
      const: c, the weight of the attack loss against the distortion terms.
      group_weight: γ, the weight of the group-sparsity term ``Σ_g ‖δ_g‖₂``.
      l2_weight: τ, the weight of ``‖δ‖₂²``.
      rho: ρ, the ADMM penalty.
      step_size: η, the step of the linearised loss update.
      kappa: confidence κ of the C&W margin.
    """

    const: jax.Array
    group_weight: jax.Array
    l2_weight: jax.Array
    rho: jax.Array
    step_size: jax.Array
    kappa: jax.Array


def group_norms(v, group_size):
    """``‖v_g‖₂`` per group: ``s×s`` spatial blocks (all channels) of an ``[H, W, C]`` array, or
    runs of ``s`` entries of a 1-D one; shaped like ``v`` (each entry carries its group's norm).

    Args:
      v: ``[H, W, C]`` or ``[n]`` array (``H``, ``W`` or ``n`` divisible by ``group_size``).
      group_size: s.

    Returns:
      An array shaped like ``v``.
    """
    s = group_size
    if v.ndim == 1:
        g = v.reshape(-1, s)
        return jnp.repeat(jnp.sqrt(jnp.sum(g * g, axis=1)), s)
    h, w, c = v.shape
    g = v.reshape(h // s, s, w // s, s, c)
    norms = jnp.sqrt(jnp.sum(g * g, axis=(1, 3, 4), keepdims=True))
    return jnp.broadcast_to(norms, g.shape).reshape(v.shape)


def group_soft_threshold(v, threshold, group_size):
    """The proximal operator of ``threshold·Σ_g ‖v_g‖₂`` (non-overlapping groups).

    ``prox(v)_g = max(0, 1 − threshold/‖v_g‖₂)·v_g``: a group shrinks toward zero by
    ``threshold`` in norm, and vanishes when its norm is below it.

    Args:
      v: the point (see :func:`group_norms` for the shapes and groups).
      threshold: ≥ 0.
      group_size: s.

    Returns:
      The proximal point, shaped like ``v``.
    """
    norms = group_norms(v, group_size)
    return v * jnp.maximum(0.0, 1.0 - threshold / jnp.maximum(norms, 1e-12))


class _Carry(NamedTuple):
    delta: jax.Array
    z: jax.Array
    u_z: jax.Array
    u_y: jax.Array
    u_w: jax.Array
    best: object
    steps: jax.Array
    queries: jax.Array


@dataclasses.dataclass(frozen=True)
class StrAttack(AttackBase):
    """StrAttack (Xu, Liu, Zhao, Chen, Zhang, Gan, Lin, Wang, "Structured adversarial attack:
    towards general implementation and better interpretability", ICLR 2019), on one example as
    a fixed-trip ADMM program.

    Problem: ``min_δ c·f(x0 + δ) + γ Σ_g ‖δ_g‖₂ + τ‖δ‖₂²`` subject to ``x0 + δ`` in the pixel
    box, with ``f`` the C&W margin (confidence κ) and ``g`` ranging over non-overlapping
    ``s×s`` spatial groups of all channels (the paper's MNIST/CIFAR groups are 2×2, the
    default). ADMM on the consensus form ``δ = z = y = w``, scaled duals ``u``, per step:

    * ``z``: one linearised (inexact) step on ``c·f``: ``z = (ρ·v + z/η − c·∇f(x0 + z))/(ρ + 1/η)``
      with ``v = δ − u_z`` (the paper's linearised ADMM, which keeps the loss step closed-form);
    * ``y``: the group soft-threshold, ``y = prox_{(γ/ρ)Σ‖·‖₂}(δ − u_y)``
      (:func:`group_soft_threshold`);
    * ``w``: ``argmin τ‖w‖² + (ρ/2)‖w − v‖²`` over the box: ``clip(ρv/(ρ + 2τ))``;
    * ``δ``: the mean of ``z + u_z``, ``y + u_y``, ``w + u_w``; then ``u += (·) − δ``.

    For a convex loss (e.g. a linear victim) the iteration converges to the problem's minimum.
    Each step's candidate is the group-sparse ``y`` clipped to the box; the best candidate is
    kept (successes first, then the smallest ℓ2). Two forward passes (one with gradient) per
    step. Left out: the paper's binary search over c and its refinement (a masked C&W re-run on
    the found groups), and overlapping groups.

    Attributes:
      steps: ADMM iterations (static: the program's length).
      group_size: s, the side of a square group (2); the input's height and width must be
        multiples of it (1-D inputs: runs of s entries).
      targeted: move towards ``target`` (else away from ``label``).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    steps: int = 200
    group_size: int = 2
    targeted: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "strattack"
    params_type: ClassVar[type] = StrAttackParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "const": Spec(1.0, "positive"),
        "group_weight": Spec(0.05),
        "l2_weight": Spec(0.05),
        "rho": Spec(1.0, "positive"),
        "step_size": Spec(0.1, "positive"),
        "kappa": Spec(0.0),
    }

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("group_size", self.group_size)

    def check_victim(self, victim, hp) -> None:
        shape, s = victim.input_shape, self.group_size
        spatial = shape[:1] if len(shape) == 1 else shape[:2] if len(shape) == 3 else None
        if spatial is None or any(d % s for d in spatial):
            raise ValueError(
                "`victim.input_shape` must be (n,) or (height, width, channels) with n, height "
                f"and width multiples of `group_size` = {s}; got {shape}."
            )

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: StrAttackParams, x0, label, target) -> Program:
        low, high = victim.bounds
        goal = target if self.targeted else label
        s = self.group_size

        def loss_of(logits, kappa):
            return cw_margin(logits, goal, kappa=kappa, targeted=self.targeted)

        def init(key):
            del key
            zeros = jnp.zeros_like(x0)
            logits = victim(x0)
            start = _candidate(
                x0, zeros, logits, loss_of(logits, 0.0), self.success(logits, label, target), "l2"
            )
            zero = jnp.zeros((), jnp.int32)
            return _Carry(zeros, zeros, zeros, zeros, zeros, start, zero, jnp.ones((), jnp.int32))

        def step(c: _Carry):
            grad = jax.grad(lambda z: hp.const * loss_of(victim(x0 + z), hp.kappa))(c.z)
            inv = 1.0 / hp.step_size
            z = (hp.rho * (c.delta - c.u_z) + inv * c.z - grad) / (hp.rho + inv)
            y = group_soft_threshold(c.delta - c.u_y, hp.group_weight / hp.rho, s)
            w = jnp.clip(
                hp.rho * (c.delta - c.u_w) / (hp.rho + 2 * hp.l2_weight), low - x0, high - x0
            )
            delta = (z + c.u_z + y + c.u_y + w + c.u_w) / 3.0
            x = jnp.clip(x0 + y, low, high)
            logits = victim(x)
            loss = loss_of(logits, 0.0)
            best = _keep_better(
                c.best, _candidate(x, x - x0, logits, loss, self.success(logits, label, target), "l2")
            )
            new = _Carry(
                delta, z, c.u_z + z - delta, c.u_y + y - delta, c.u_w + w - delta, best,
                c.steps + 1, c.queries + 2,
            )
            return new, loss

        def finish(c: _Carry, trace):
            return make_result(c.best, victim.bounds, c.steps, c.queries, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def str_attack(*, steps: int = 200, group_size: int = 2, targeted: bool = False) -> StrAttack:
    """StrAttack (see :class:`StrAttack` for the method, paper and defaults).

    Hyper-parameters (``attack.hparams``): ``const`` 1, ``group_weight`` 0.05, ``l2_weight``
    0.05, ``rho`` 1, ``step_size`` 0.1, ``kappa`` 0 (chosen for [0, 1] images; tune ``const``
    per victim as for C&W).

    Args:
      steps: ADMM iterations (200).
      group_size: side of the square groups (2, the paper's for MNIST and CIFAR-10).
      targeted: move towards ``target`` (else away from ``label``).

    Returns:
      A :class:`StrAttack`.
    """
    return StrAttack(steps=steps, group_size=group_size, targeted=targeted)
