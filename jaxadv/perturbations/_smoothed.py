"""The smoothed perturbation model of sC&W: ``r = ŝ_α(z)`` with an unconstrained latent ``z``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxadv.image import Smoother


@struct.dataclass
class Smoothed:
    """``x = x0 + ŝ_α(z)``, starting from ``z = 0`` (Zhang et al., EURASIP JIS 2020, Eq. 17–18).

    Every iterate's perturbation is smooth like the clean image. The input is NOT clipped here:
    sC&W penalises ``‖r‖²`` on the unclipped perturbation and clips ``x0 + r`` to the pixel box
    in front of the victim (paper §4.2), so the attack applies the clip. ``smoother`` is built
    from the same ``x0`` (one per example).

    Attributes:
      smoother: the smoothing operator ``ŝ_α`` of this example (:func:`jaxadv.image.smoother`).
      hint: the warm starts of the CG solves, ``(guess, adjoint_guess)`` (None: from 0);
        the runner carries them from step to step (``init_hint``/``with_hint``/``next_hint``).
      warm_start: whether the runner should carry them (False: every solve from 0).
      additive: False (the latent is ``z``, not the perturbation).

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """

    smoother: Smoother
    hint: Any = None
    warm_start: bool = struct.field(pytree_node=False, default=False)
    additive: bool = struct.field(pytree_node=False, default=False)

    def init(self, x0: jax.Array) -> jax.Array:
        return jnp.zeros_like(x0)

    def to_input(self, z: jax.Array, x0: jax.Array) -> jax.Array:
        return x0 + self.smoother.solve(z, self.hint)[0]

    # Warm starts (the runner's optional hint protocol): each step's two CG solves start from
    # the previous step's solutions. The forward one is ``s_α(z)`` = (x − x0)/scale, read off
    # the evaluated input; the adjoint one is the gradient with respect to ``z`` itself.

    def init_hint(self, theta: jax.Array, x0: jax.Array):
        """The first guesses: zeros, the solutions at ``z = 0`` (the latent starts there)."""
        del x0
        return jnp.zeros_like(theta), jnp.zeros_like(theta)

    def with_hint(self, hint) -> Smoothed:
        """This model with its solves warm-started from ``hint``."""
        return self.replace(hint=hint)

    def next_hint(self, hint, x: jax.Array, x0: jax.Array, grad: jax.Array):
        """The guesses for the next step: this step's solutions."""
        del hint
        return (x - x0) / self.smoother.scale, grad
