"""TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically principled trade-off between
robustness and accuracy", ICML 2019): its inner attack and its outer loss.

The outer loss of a batch is ``CE(f(x), y) + β · KL(f(x) ‖ f(x'))`` (Eq. 5 of the paper, with the
surrogate φ the cross-entropy and the boundary term the KL divergence of the softmax outputs),
averaged over the batch; the gradient flows through both f(x) and f(x') (the reference code does
not detach the clean prediction). ``x'`` comes from an inner attack that MAXIMISES
``KL(f(x) ‖ f(x'))`` inside the budget, started at ``x + 0.001 · N(0, I)`` as the authors' code
does: :class:`TradesKL`, an :class:`~jaxadv.attacks.Attack` whose objective is that KL (negated:
attacks minimise), run by the library's one driver.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks import Attack, Ball, SteepestStep
from jaxadv.constraints import NORMS, Constraint

START_SCALE = 0.001  # the reference code's x + 0.001 · randn start


def kl_divergence(clean_logits: jax.Array, adv_logits: jax.Array) -> jax.Array:
    """``KL(softmax(clean) ‖ softmax(adv))`` over the last axis (one value per example).

    Args:
      clean_logits: ``[..., classes]`` logits of the clean inputs, ``f(x)``.
      adv_logits: ``[..., classes]`` logits of the adversarial inputs, ``f(x')``.

    Returns:
      ``[...]``: the KL divergence (in nats) of each example.
    """
    log_p = jax.nn.log_softmax(clean_logits, axis=-1)
    log_q = jax.nn.log_softmax(adv_logits, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def trades_loss(
    clean_logits: jax.Array, adv_logits: jax.Array, labels: jax.Array, beta: float
) -> jax.Array:
    """TRADES' outer loss of a batch: ``mean(CE(f(x), y)) + β · mean(KL(f(x) ‖ f(x')))``.

    Args:
      clean_logits: ``[batch, classes]`` logits of the clean inputs, ``f(x)``.
      adv_logits: ``[batch, classes]`` logits of the inner attack's inputs, ``f(x')``.
      labels: ``[batch]`` integer class indices ``y``.
      beta: the weight β of the KL (boundary) term.

    Returns:
      A scalar: the loss, differentiable through both sets of logits.
    """
    natural = optax.softmax_cross_entropy_with_integer_labels(clean_logits, labels)
    return jnp.mean(natural) + beta * jnp.mean(kl_divergence(clean_logits, adv_logits))


@dataclasses.dataclass(frozen=True)
class _GaussianStart:
    """``hp -> Constraint``: ``norm``'s ball, whose random start is ``0.001 · N(0, I)`` (the
    reference code's; the driver projects it onto the ball and the pixel box)."""

    norm: str

    def __call__(self, hp) -> Constraint:
        ball = Ball(self.norm)(hp)
        return ball._replace(
            sample=lambda key, x0: START_SCALE * jax.random.normal(key, x0.shape, x0.dtype)
        )


@dataclasses.dataclass(frozen=True)
class TradesKL(Attack):
    """TRADES' inner maximisation: ``max_{x' ∈ B(x, ε)} KL(f(x) ‖ f(x'))``, by steepest ascent.

    The clean prediction ``f(x)`` is computed once per example and held fixed. There is no notion
    of success here: ``success`` is always False, so the kept iterate is the one of largest KL
    (the reference code keeps the last; with ascent steps they mostly coincide). Build it with
    :func:`trades_attack`.

    Attributes:
      objective: unused (None): :meth:`loss_fn` is the KL. The other fields are
        :class:`~jaxadv.attacks.Attack`'s, set by :func:`trades_attack`.
    """

    def loss_fn(self, victim, hp, x0, label, target) -> Callable:
        clean = jax.lax.stop_gradient(victim(x0))
        return lambda x, logits: -kl_divergence(clean, logits)

    def success(self, logits, label, target):
        return jnp.zeros(jnp.shape(logits)[:-1], bool)


def trades_attack(*, norm: str = "linf", steps: int = 10) -> TradesKL:
    """The inner attack of TRADES on the ``norm`` ball (ℓ∞ sign steps or ℓ2 normalised steps).

    Defaults: the paper's CIFAR-10 setting, ε = 0.031 and step 0.007 (≈ ε/4.4), 10 steps; the
    step is relative, ``rel_step_size = 0.007/0.031``, so it follows ``eps``. (Their MNIST
    setting: ε 0.3, step 0.01, 40 steps.)

    Args:
      norm: the ball's norm, one of ``jaxadv.constraints.NORMS`` (``"linf"``: sign steps).
      steps: ascent steps (positive).

    Returns:
      A :class:`TradesKL` attack, with a random start ``0.001 · N(0, I)`` and default ε 0.031.
    """
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_positive_int("steps", steps)
    return TradesKL(
        objective=None,  # unused: loss_fn is the KL
        step_rule=SteepestStep(norm),
        constraint=_GaussianStart(norm),
        steps=steps,
        random_start=True,
        defaults=(("eps", 0.031),),
        rel_step_size=0.007 / 0.031,
        name=f"trades-kl-{norm}",
    )
