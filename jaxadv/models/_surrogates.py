"""A black-box victim together with the attacker's own white-box surrogate models.

Transfer-prior query attacks (P-RGF, the subspace attack's bandits, the gradient-prior boosted
attack of Che et al.) query a black-box victim AND differentiate surrogate models the attacker
owns (not counted as queries). Victims are arguments of an attack, never fields (they hold weight
arrays), so the surrogates travel with the victim: ``with_surrogates(victim, *surrogates)`` is a
pytree that answers every query exactly as ``victim`` does (``__call__``, ``batch``, shapes,
bounds, and any other attribute, forwarded) and carries ``surrogates`` for the attack's prior.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxadv.models._carrier import Carrier
from jaxadv.models._randomized import RandomizedVictim
from jaxadv.models._score_only import is_black_box

@jax.tree_util.register_pytree_node_class
class WithSurrogates(Carrier):
    """``victim`` for queries, plus ``surrogates`` (white-box victims) for priors.

    Attributes:
      victim: the attacked model (typically a ``score_only`` view); every attribute not listed
        here is read from it, so attacks, checks and metrics see the victim itself.
      surrogates: a non-empty tuple of white-box victims with the victim's input shape and bounds.
    """

    own = ("victim", "surrogates")

    def __init__(self, victim: Any, surrogates: tuple):
        self.victim = victim
        self.surrogates = tuple(surrogates)

    def with_victim(self, victim: Any) -> WithSurrogates:
        return WithSurrogates(victim, self.surrogates)

    def tree_flatten(self):
        return (self.victim, self.surrogates), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)

    def __repr__(self) -> str:
        return (
            f"WithSurrogates({type(self.victim).__name__}, "
            f"{len(self.surrogates)} surrogate(s))"
        )


def _check_surrogate(i: int, surrogate: Any, victim: Any) -> None:
    name = f"`surrogates[{i}]`"
    if not (callable(surrogate) and hasattr(surrogate, "input_shape")):
        raise ValueError(f"{name} must be a jaxadv victim; got {type(surrogate).__name__}.")
    if isinstance(surrogate, (RandomizedVictim, WithSurrogates)):
        raise ValueError(
            f"{name} must be a plain white-box victim; got {type(surrogate).__name__} (fix a "
            "RandomizedVictim's draw with `with_key`)."
        )
    if is_black_box(surrogate):
        raise ValueError(
            f"{name} is a black-box view: a surrogate is the attacker's own white-box model, "
            "whose gradient the prior needs; pass the unwrapped model."
        )
    for attr in ("input_shape", "bounds"):
        mine, theirs = getattr(surrogate, attr), getattr(victim, attr)
        if tuple(mine) != tuple(theirs):
            raise ValueError(
                f"{name} must have the victim's {attr} {tuple(theirs)}; got {tuple(mine)}."
            )
    if hasattr(victim, "num_classes") and getattr(surrogate, "num_classes", None) != getattr(
        victim, "num_classes"
    ):
        raise ValueError(
            f"{name} must classify into the victim's {victim.num_classes} classes; got "
            f"{getattr(surrogate, 'num_classes', None)}."
        )


def with_surrogates(victim: Any, *surrogates: Any) -> WithSurrogates:
    """``victim`` (queried) with the attacker's white-box ``surrogates`` (for priors).

    Args:
      victim: the black-box victim (e.g. ``models.score_only(model)``), classifier or saliency.
      *surrogates: one or more white-box victims of the same input shape and bounds (and, for a
        classifier, the same number of classes).

    Returns:
      A :class:`WithSurrogates` pytree that every attack accepts as the victim; query attacks
      with a ``prior`` compute it on ``surrogates``.
    """
    if isinstance(victim, WithSurrogates):
        raise ValueError(
            "`victim` already carries surrogates; pass all of them in one call: "
            "`with_surrogates(victim, *surrogates)` on the plain victim."
        )
    if not (callable(victim) and hasattr(victim, "input_shape") and hasattr(victim, "bounds")):
        raise ValueError(f"`victim` must be a jaxadv victim; got {type(victim).__name__}.")
    if not surrogates:
        raise ValueError("`surrogates` must name at least one white-box victim; got none.")
    for i, surrogate in enumerate(surrogates):
        _check_surrogate(i, surrogate, victim)
    return WithSurrogates(victim, surrogates)


def surrogates_of(victim: Any) -> tuple:
    """The surrogates a victim carries (an empty tuple for a plain victim).

    Args:
      victim: any victim; one made by :func:`with_surrogates` carries surrogates.

    Returns:
      The tuple of its surrogate victims if ``victim`` is a :class:`WithSurrogates`, else
      ``()``.
    """
    return tuple(getattr(victim, "surrogates", ())) if isinstance(victim, WithSurrogates) else ()
