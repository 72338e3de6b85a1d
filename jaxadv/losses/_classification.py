"""Classification objectives. Every function returns a scalar that the attack MINIMISES.

This is the one place where signs are chosen (no step rule or attack flips one):

* untargeted attacks minimise ``-CE(label)``, the C&W margin ``z_label - max_{j≠label} z_j`` or the
  DLR ratio, so the true class loses;
* targeted attacks minimise ``+CE(target)``, the margin ``max_{j≠target} z_j - z_target`` or the
  targeted DLR ratio, so the target wins.

Papers that MAXIMISE a loss (PGD on CE, APGD on CE/DLR, Croce & Hein 2020) are implemented by
minimising its negative, which is what these functions return.

Stock optax descent (``optax.sgd``, ``optax.adam``, ``scale(-step)``) then works unchanged.
Each function takes ONE example's logits ``f32[num_classes]`` and integer class indices.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks

LOSSES = ("ce", "cw", "dlr")

# (logits, label, target, hp) -> scalar to minimise; `target` is ignored by untargeted objectives.
Objective = Callable[[jax.Array, jax.Array, jax.Array, Any], jax.Array]


def cross_entropy(logits: jax.Array, label: jax.Array) -> jax.Array:
    """``-log softmax(logits)[label]`` for one example (non-negative).

    Args:
      logits: ``[classes]`` scores of one example.
      label: the class index.

    Returns:
      A scalar; minimise its negative to leave ``label``, itself to reach it.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.losses import cross_entropy
      >>> round(float(cross_entropy(jnp.array([0.0, 0.0]), 1)), 4)  # log 2
      0.6931
    """
    return -jax.nn.log_softmax(logits)[label]


def _best_other(logits: jax.Array, label: jax.Array) -> jax.Array:
    """``max_{j≠label} logits_j``."""
    others = jnp.where(jnp.arange(logits.shape[-1]) == label, -jnp.inf, logits)
    return jnp.max(others)


def cw_margin(
    logits: jax.Array, label: jax.Array, *, kappa: jax.Array | float = 0.0, targeted: bool = False
) -> jax.Array:
    """The Carlini–Wagner margin ``f_6`` (Carlini & Wagner, S&P 2017, Eq. for f6), minimised.

    Untargeted: ``max(z_label - max_{j≠label} z_j, -kappa)``; targeted with ``label`` the target
    class: ``max(max_{j≠target} z_j - z_target, -kappa)``. It reaches its floor ``-kappa`` once the
    wanted class leads by a margin ``kappa`` (the confidence).

    Args:
      logits: ``[classes]`` scores of one example.
      label: the true class (untargeted) or the target class (targeted).
      kappa: the confidence κ ≥ 0.
      targeted: which of the two forms.

    Returns:
      A scalar, ``-kappa`` once the attack has succeeded with margin κ.

    References:
      Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
    """
    own, other = logits[label], _best_other(logits, label)
    margin = other - own if targeted else own - other
    return jnp.maximum(margin, -jnp.asarray(kappa, logits.dtype))


def dlr(
    logits: jax.Array, label: jax.Array, target: jax.Array | None = None, *, targeted: bool = False
) -> jax.Array:
    """The Difference of Logits Ratio of Croce & Hein (ICML 2020, Eqs. 6–7), minimised.

    Untargeted (sorted logits ``z_π1 ≥ z_π2 ≥ …``):
    ``(z_y - max_{j≠y} z_j) / (z_π1 - z_π3 + 1e-12)``.
    Targeted: ``(z_y - z_t) / (z_π1 - (z_π3 + z_π4)/2 + 1e-12)`` (needs at least 4 classes).
    Both are invariant to shifting and scaling the logits. Croce & Hein MAXIMISE
    ``-(z_y - max_{j≠y} z_j)/(…)`` (APGD-DLR) and ``-(z_y - z_t)/(…)`` (APGD-T); these are their
    negatives. The untargeted ratio needs at least 3 classes, the targeted one 4 (a ValueError
    names the count; AutoAttack falls back to CE there, a choice left to the caller).

    Args:
      logits: ``[classes]`` scores of one example (at least 3 classes, 4 targeted).
      label: the true class.
      target: the target class (targeted only).
      targeted: which of the two forms.

    Returns:
      A scalar to minimise.

    Raises:
      ValueError: too few classes, or no ``target`` for the targeted form.

    References:
      Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
      parameter-free attacks", ICML 2020.
    """
    needed = 4 if targeted else 3
    if logits.shape[-1] < needed:
        kind = "targeted DLR loss" if targeted else "DLR loss"
        raise ValueError(
            f"The {kind} needs at least {needed} classes (it reads the {needed} largest logits); "
            f"got logits of {logits.shape[-1]} classes. Use the cross-entropy (`loss='ce'`) or "
            "the C&W margin for fewer classes."
        )
    top = jax.lax.top_k(logits, needed)[0]
    own = logits[label]
    if targeted:
        if target is None:
            raise ValueError("`target` is required for the targeted DLR loss; got None.")
        return (own - logits[target]) / (top[0] - 0.5 * (top[2] + top[3]) + 1e-12)
    return (own - _best_other(logits, label)) / (top[0] - top[2] + 1e-12)


class _ClassificationObjective(NamedTuple):
    """A named, hashable objective (so a jit keyed on it is reused across attack instances)."""

    loss: str
    targeted: bool

    def __call__(
        self, logits: jax.Array, label: jax.Array, target: jax.Array, hp: Any
    ) -> jax.Array:
        if self.loss == "ce":
            return cross_entropy(logits, target) if self.targeted else -cross_entropy(logits, label)
        if self.loss == "cw":
            kappa = getattr(hp, "kappa", 0.0)
            goal = target if self.targeted else label
            return cw_margin(logits, goal, kappa=kappa, targeted=self.targeted)
        return dlr(logits, label, target, targeted=self.targeted)


def classification_objective(loss: str, *, targeted: bool) -> Objective:
    """The objective ``(logits, label, target, hp) -> scalar`` to minimise for a named loss.

    Args:
      loss: ``"ce"`` (cross-entropy), ``"cw"`` (C&W margin; reads ``hp.kappa`` if present) or
        ``"dlr"`` (Croce & Hein's difference of logits ratio).
      targeted: move toward ``target`` (True) or away from ``label`` (False).

    Returns:
      A hashable callable ``(logits, label, target, hp) -> scalar``.
    """
    _checks.check_choice("loss", loss, LOSSES)
    return _ClassificationObjective(loss, bool(targeted))
