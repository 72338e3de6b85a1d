"""The smoothed perturbation model of sC&W: ``r = ŝ_α(z)`` with an unconstrained latent ``z``."""

from __future__ import annotations

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
      additive: False (the latent is ``z``, not the perturbation).

    References:
      Zhang, Chen, Sauer & Shao, "Smooth adversarial examples", EURASIP J. on Information Security
      2020.
    """

    smoother: Smoother
    additive: bool = struct.field(pytree_node=False, default=False)

    def init(self, x0: jax.Array) -> jax.Array:
        return jnp.zeros_like(x0)

    def to_input(self, z: jax.Array, x0: jax.Array) -> jax.Array:
        return x0 + self.smoother(z)
