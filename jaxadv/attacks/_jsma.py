"""JSMA, the Jacobian-based saliency map attack (Papernot et al., EuroS&P 2016), compiled."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _candidate, make_result
from jaxadv.losses import cw_margin

JACOBIANS = ("softmax", "logits")


class JSMAParams(NamedTuple):
    """The numbers of :func:`jsma`; every leaf is a float32 array and may be swept.

    Attributes:
      theta: θ, the change added to both features of the chosen pair each iteration (> 0
        increases them, < 0 decreases them; the paper's MNIST setting is +1).
      gamma: γ, the largest fraction of the features that may be changed (the paper's Υ).
    """

    theta: jax.Array
    gamma: jax.Array


def saliency_pair(alpha, beta, domain, increase=True):
    """The feature pair of JSMA's saliency map (Papernot et al. 2016, Algorithm 3).

    Over pairs ``p ≠ q`` of the search domain, with ``a = α_p + α_q`` (the target's derivative)
    and ``b = β_p + β_q`` (the other classes' summed derivative), keeps pairs with ``a > 0, b < 0``
    (increasing; the signs flip when decreasing) and returns the one maximising ``a·|b|``.

    Args:
      alpha: ``[n]`` derivatives of the target output w.r.t. the features.
      beta: ``[n]`` summed derivatives of the other outputs.
      domain: ``[n]`` bool, the search domain Γ.
      increase: whether θ > 0 (a traced bool is fine).

    Returns:
      ``(p, q, valid)``: the pair's flat indices (``p < q``) and whether any pair qualifies.
    """
    a = alpha[:, None] + alpha[None, :]
    b = beta[:, None] + beta[None, :]
    sign = jnp.where(increase, 1.0, -1.0)
    n = alpha.shape[0]
    ok = (sign * a > 0) & (sign * b < 0) & domain[:, None] & domain[None, :]
    ok = ok & (jnp.arange(n)[:, None] < jnp.arange(n)[None, :])
    score = jnp.where(ok, a * jnp.abs(b), -jnp.inf)
    flat = jnp.argmax(score)
    return flat // n, flat % n, jnp.any(ok)


class _Carry(NamedTuple):
    x: jax.Array
    domain: jax.Array
    done: jax.Array
    steps: jax.Array
    queries: jax.Array


@dataclasses.dataclass(frozen=True)
class JSMA(AttackBase):
    """The Jacobian-based saliency map attack (Papernot, McDaniel, Jha, Fredrikson, Celik &
    Swami, "The limitations of deep learning in adversarial settings", EuroS&P 2016, Algorithms
    2–3), targeted, on one example as a fixed-trip program.

    Each iteration computes the forward derivative (the Jacobian of the victim's outputs w.r.t.
    the input features, one backward pass per class), forms α (the target's row) and β (the sum
    of the other rows), picks the pair of search-domain features maximising the saliency
    ``(α_p + α_q)·|β_p + β_q|`` among pairs with the right signs (:func:`saliency_pair`), and adds
    θ to both (clipped to the pixel box). A feature leaves the search domain once it is saturated
    (at the box's edge in θ's direction), as in Algorithm 3. The example stops (``done``) when the
    target class wins, when the changed fraction of features reaches γ, or when no pair
    qualifies; a stopped example's carry is frozen with ``jnp.where``.

    Outputs: the paper defines F as the network's softmax output, the default here
    (``jacobian="softmax"``). With a softmax the rows sum to zero, so ``β = −α`` and the map
    reduces to ``(α_p + α_q)²`` over pairs with ``α_p + α_q > 0``; the logits' Jacobian
    (``jacobian="logits"``, what widely used implementations differentiate) keeps α and β apart.
    Features are the input's entries (each channel separately).

    Attributes:
      steps: iterations at most (each changes at most two features); the γ budget usually stops
        earlier. Static: the program's length.
      jacobian: ``"softmax"`` (the paper's; default) or ``"logits"``.
      targeted: must be True (JSMA is a targeted attack).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    steps: int = 100
    jacobian: str = "softmax"
    targeted: bool = True
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "jsma"
    params_type: ClassVar[type] = JSMAParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "theta": Spec(1.0, "finite"),
        "gamma": Spec(0.145, "open_unit"),
    }

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("jacobian", self.jacobian, JACOBIANS)
        if self.targeted is not True:
            raise ValueError(f"`targeted` must be True (JSMA is targeted); got {self.targeted!r}.")

    def validate(self, hp) -> None:
        if _checks.is_concrete(hp.theta) and bool(jnp.any(jnp.asarray(hp.theta) == 0)):
            raise ValueError(f"`hp.theta` must be non-zero; got {hp.theta}.")

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: JSMAParams, x0, label, target) -> Program:
        low, high = victim.bounds
        n = x0.size
        increase = hp.theta > 0
        classes = victim.num_classes

        def outputs(x):
            logits = victim(x)
            return (jax.nn.softmax(logits) if self.jacobian == "softmax" else logits), logits

        def saturated(x):
            return jnp.where(increase, x >= high, x <= low)

        def init(key):
            del key
            zero = jnp.zeros((), jnp.int32)
            return _Carry(x0, ~saturated(x0).ravel(), jnp.zeros((), bool), zero, zero)

        def step(c: _Carry):
            out, pullback, logits = jax.vjp(outputs, c.x, has_aux=True)
            (jac,) = jax.vmap(pullback)(jnp.eye(classes, dtype=out.dtype))
            jac = jac.reshape(classes, n)
            alpha = jac[target]
            beta = jnp.sum(jac, axis=0) - alpha
            p, q, valid = saliency_pair(alpha, beta, c.domain, increase)
            flat = c.x.ravel()
            moved = jnp.clip(flat.at[p].add(hp.theta).at[q].add(hp.theta), low, high)
            x_new = moved.reshape(x0.shape)
            domain = c.domain & ~saturated(moved)
            fooled = self.success(logits, label, target)
            stop = fooled | ~valid | (jnp.sum(c.x != x0) / n >= hp.gamma)
            new = _Carry(
                x=jnp.where(stop, c.x, x_new),
                domain=jnp.where(stop, c.domain, domain),
                done=stop,
                steps=c.steps + 1,
                queries=c.queries + classes,
            )
            new = jax.tree.map(lambda old, m: jnp.where(c.done, old, m), c, new)
            return new, cw_margin(logits, target, kappa=jnp.inf, targeted=True)

        def finish(c: _Carry, trace):
            logits = victim(c.x)
            loss = cw_margin(logits, target, kappa=0.0, targeted=True)
            best = _candidate(
                c.x, c.x - x0, logits, loss, self.success(logits, label, target), "l2"
            )
            return make_result(best, victim.bounds, c.steps, c.queries + 1, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def jsma(*, steps: int = 100, jacobian: str = "softmax") -> JSMA:
    """The targeted JSMA attack (see :class:`JSMA` for the method, paper and defaults).

    Hyper-parameters (``attack.hparams``): ``theta`` +1 and ``gamma`` 0.145 (the paper's MNIST
    settings: features pushed to the top of the box, at most 14.5% of them changed).

    Args:
      steps: iterations at most (100); each changes at most two features, so a budget γ over n
        features needs ``γ·n/2`` of them.
      jacobian: ``"softmax"`` (the paper's F; default) or ``"logits"``.

    Returns:
      A :class:`JSMA` (targeted).
    """
    return JSMA(steps=steps, jacobian=jacobian)
