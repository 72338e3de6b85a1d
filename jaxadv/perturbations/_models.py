"""The perturbation-model seam: a latent ``theta`` the step rule optimises, mapped to an input.

The runner only ever sees ``theta``. Today there are two models: the additive ``x0 + delta`` of
PGD-type attacks and the tanh change of variables of C&W; later families (factorised ``δ⊙G``,
Laplacian-smoothed, foreground/background, motion-warped) plug in here without touching the runner.

A model is a frozen dataclass (compared by value), so two attacks built with equal settings share
one compiled program.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp


class Perturbation(Protocol):
    """``init(x0) -> theta`` (the latent of the clean input) and ``to_input(theta, x0) -> x``.

    ``additive`` is True when ``theta`` IS the additive perturbation ``delta``, so norm-ball
    constraints and random starts act on it directly.

    Attributes:
      additive: whether the latent is the additive perturbation itself.
    """

    additive: bool

    def init(self, x0: jax.Array) -> jax.Array: ...

    def to_input(self, theta: jax.Array, x0: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class Additive:
    """``x = x0 + delta``, starting from ``delta = 0``.

    Attributes:
      additive: True.
    """

    additive: bool = dataclasses.field(default=True, init=False)

    def init(self, x0):
        return jnp.zeros_like(x0)

    def to_input(self, delta, x0):
        return x0 + delta


@dataclasses.dataclass(frozen=True)
class TanhBox:
    """The C&W change of variables: ``x = low + (high − low)·(tanh(w) + 1)/2``.

    Any ``w`` maps inside the pixel box, so an unconstrained optimiser can be used
    (Carlini & Wagner, S&P 2017, §V "change of variables"). ``init`` maps ``x0`` to ``w`` through
    ``arctanh``, shrunk by ``1 − 1e-6`` so that pixels on the box edges stay finite.

    Attributes:
      low: the smallest pixel value.
      high: the largest pixel value.
      additive: False (the latent is ``w``, not ``delta``).

    References:
      Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.
    """

    low: float
    high: float
    additive: bool = dataclasses.field(default=False, init=False)

    def init(self, x0):
        half = 0.5 * (self.high - self.low)
        return jnp.arctanh(((x0 - self.low) / half - 1.0) * (1.0 - 1e-6))

    def to_input(self, w, x0):
        del x0
        return self.low + 0.5 * (self.high - self.low) * (jnp.tanh(w) + 1.0)


def additive() -> Additive:
    """The additive model ``x = x0 + delta``.

    Returns:
      An :class:`Additive`.
    """
    return Additive()


def tanh_box(low: float, high: float) -> TanhBox:
    """The C&W tanh model for the pixel box ``[low, high]``.

    Args:
      low: the smallest pixel value.
      high: the largest pixel value (> ``low``).

    Returns:
      A :class:`TanhBox`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.perturbations import tanh_box
      >>> model = tanh_box(0.0, 1.0)
      >>> x0 = jnp.array([0.0, 0.25, 1.0])
      >>> bool(jnp.allclose(model.to_input(model.init(x0), x0), x0, atol=1e-6))
      True
    """
    return TanhBox(float(low), float(high))
