"""The base of the pytrees that carry other models beside a victim and act as the victim.

An attack takes its victim as an argument, never as a field (victims hold weight arrays), so
what an attack needs besides the victim — the surrogates of a transfer prior, the saliency model
of the dual attack's λ·S term, the Meta Attack's meta attacker — travels WITH it: a pytree whose
leaves are both models' weights, and which forwards calls, ``batch`` and every other attribute
(shapes, bounds, classes) to the victim, so checks and metrics see the victim itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax


class Carrier:
    """A victim plus other models (subclasses: their attributes and the pytree methods).

    Attributes:
      victim: the model under attack; every attribute not in ``own`` is read from it.
      own: the names of the carrier's own attributes (class-level).
    """

    own: ClassVar[tuple[str, ...]] = ("victim",)
    victim: Any

    def __getattr__(self, name: str) -> Any:
        if name in self.own or name.startswith("__"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.victim, name)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.victim(x)

    def batch(self, x: jax.Array) -> jax.Array:
        return self.victim.batch(x)

    def replace(self, **changes: Any) -> Carrier:
        """The victim's ``replace`` (a layer view, a black-box view); the carried models stay."""
        return self.with_victim(self.victim.replace(**changes))

    def with_victim(self, victim: Any) -> Carrier:
        """The same carried models beside another victim."""
        raise NotImplementedError
