"""A classifier carrying a saliency model: the victim of the dual-perturbation attack's λ·S term.

Victims are arguments of an attack, never fields (they hold weight arrays), so the saliency model
travels with the classifier: ``with_saliency(victim, saliency_victim)`` is a pytree (both models'
weights are dynamic leaves) that behaves exactly as ``victim`` for every attack (``__call__``,
``batch``, shapes, bounds, classes and any other attribute, forwarded) and carries
``saliency_victim`` for the attacks that read it (``jaxadv.attacks.dual_perturbation``).
"""

from __future__ import annotations

from typing import Any

import jax

from jaxadv.models._carrier import Carrier
from jaxadv.models._randomized import RandomizedVictim
from jaxadv.models.saliency import SaliencyVictim

@jax.tree_util.register_pytree_node_class
class WithSaliency(Carrier):
    """``victim`` (the classifier under attack) plus ``saliency_victim`` (maps of its inputs).

    Attributes:
      victim: the classifier; every attribute not listed here is read from it.
      saliency_victim: a :class:`~jaxadv.models.saliency.SaliencyVictim` with the classifier's
        input shape and bounds.
    """

    own = ("victim", "saliency_victim")

    def __init__(self, victim: Any, saliency_victim: Any):
        self.victim = victim
        self.saliency_victim = saliency_victim

    def with_victim(self, victim: Any) -> WithSaliency:
        return WithSaliency(victim, self.saliency_victim)

    def tree_flatten(self):
        return (self.victim, self.saliency_victim), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)

    def __repr__(self) -> str:
        return f"WithSaliency({type(self.victim).__name__}, {type(self.saliency_victim).__name__})"


def with_saliency(victim: Any, saliency_victim: Any) -> WithSaliency:
    """``victim`` (attacked) with a saliency model whose maps of the same inputs an attack reads.

    Args:
      victim: a white-box classifier victim (``jaxadv.models.Victim`` or any object with
        ``input_shape``, ``bounds`` and ``num_classes`` that maps one example to logits).
      saliency_victim: a :class:`~jaxadv.models.saliency.SaliencyVictim` (a zoo model, or
        ``models.saliency.from_flax_saliency(...)``) of the same ``input_shape`` and ``bounds``.

    Returns:
      A :class:`WithSaliency` pytree that every attack accepts as the classifier itself.

    Raises:
      ValueError: when either is not a victim of its kind, or their input shapes or bounds differ.
    """
    if isinstance(victim, WithSaliency):
        raise ValueError("`victim` already carries a saliency model; pass the plain classifier.")
    if isinstance(victim, RandomizedVictim):
        raise ValueError(
            "`victim` is a RandomizedVictim; a saliency model is carried by a deterministic "
            "classifier only (fix a draw with `victim.with_key(key)`)."
        )
    if not (callable(victim) and all(hasattr(victim, a) for a in ("input_shape", "bounds"))):
        raise ValueError(f"`victim` must be a jaxadv classifier victim; got {type(victim).__name__}.")
    if not hasattr(victim, "num_classes"):
        raise ValueError(
            f"`victim` must be a classifier (with `num_classes`); got {type(victim).__name__}."
        )
    if not isinstance(saliency_victim, SaliencyVictim):
        raise ValueError(
            "`saliency_victim` must be a jaxadv.models.saliency.SaliencyVictim (e.g. "
            f"`models.saliency.saliency_model(...)`); got {type(saliency_victim).__name__}."
        )
    for attr in ("input_shape", "bounds"):
        mine, theirs = tuple(getattr(saliency_victim, attr)), tuple(getattr(victim, attr))
        if mine != theirs:
            raise ValueError(
                f"`saliency_victim` must have the classifier's {attr} {theirs}; got {mine}."
            )
    return WithSaliency(victim, saliency_victim)


def saliency_of(victim: Any) -> Any:
    """The saliency model a victim carries (None for a plain victim).

    Args:
      victim: any victim; one made by :func:`with_saliency` carries a saliency model.

    Returns:
      Its ``saliency_victim`` if ``victim`` is a :class:`WithSaliency`, else None.
    """
    return victim.saliency_victim if isinstance(victim, WithSaliency) else None
