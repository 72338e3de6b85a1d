"""The perceptual penalty of Che et al.'s Eq. 1, shared by the rule-library and saliency attacks.

``min L1[F(I*), F(G)] + λ1·L2(I, I*)``: the attack's objective plus ``hp.penalty · D(x0, x)``,
``D`` a kind of :data:`jaxadv.image.PERCEPTUAL_DISTANCES` (a static field) and λ1 a leaf of the
hyper-parameters (so it may be swept). A mixin for :class:`~jaxadv.attacks.Attack` subclasses
whose ``params_type`` has a ``penalty`` field.
"""

from __future__ import annotations

import dataclasses

from jaxadv import _checks
from jaxadv.image import PERCEPTUAL_DISTANCES, penalized


@dataclasses.dataclass(frozen=True)
class PerceptualPenalty:
    """Adds ``hp.penalty · D(x0, x)`` to the loss (``penalty``: the kind of ``D``, or None).

    The distance is measured on the victim's pixel range (SSIM's data range)."""

    penalty: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.penalty is not None:
            _checks.check_choice("penalty", self.penalty, PERCEPTUAL_DISTANCES)

    def loss_fn(self, victim, hp, x0, label, target):
        objective = super().loss_fn(victim, hp, x0, label, target)
        if self.penalty is None:
            return objective
        if "penalty" not in type(hp)._fields:
            raise ValueError(
                f"`penalty` ({self.penalty!r}) needs a λ1 in the hyper-parameters (a `penalty` "
                f"field); {type(hp).__name__} has none: build the attack without `penalty`."
            )
        low, high = victim.bounds
        return penalized(objective, x0, self.penalty, hp.penalty, data_range=high - low)
