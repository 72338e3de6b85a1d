"""ZOO: symmetric finite differences on a random batch of coordinates (and the diagonal Hessian).

Chen, Zhang, Sharma, Yi & Hsieh, "ZOO: Zeroth Order Optimization based Black-box Attacks to Deep
Neural Networks without Training Substitute Models", AISec 2017, Eqs. (6)–(7): for a coordinate
``i`` and a small ``h`` (the paper's 1e-4),

    ĝ_i  = [F(θ + h e_i) − F(θ − h e_i)] / (2h),
    ĥ_ii = [F(θ + h e_i) − 2 F(θ) + F(θ − h e_i)] / h².

Each call draws ``B`` distinct coordinates uniformly (the paper's batch of 128 evaluated in
parallel) and returns a :class:`CoordinateEstimate`: the gradient and the Hessian diagonal, zero
off the chosen coordinates, and the mask of the chosen ones, so that a coordinate step rule
(``jaxadv.transforms.coordinate_adam``/``coordinate_newton``, ZOO's Algorithms 2 and 3) moves
those coordinates only. One call spends ``2B + 1`` queries: the ``2B`` probes in one batched pass
and the loss at ``θ``, which is both the attack's record of its iterate and the centre value of
every ĥ_ii. (The hierarchical attack and importance sampling of the paper are not implemented.)
Since the estimate always carries its mask, the runner's ``zero_gradient`` flag (any non-zero
leaf) reads False for ZOO runs even when every ĝ_i was zero.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import probe_losses


class CoordinateEstimate(NamedTuple):
    """A gradient estimate known on some coordinates only (all leaves have the latent's shape).

    Attributes:
      grad: ĝ on the chosen coordinates, 0 elsewhere.
      curvature: ĥ_ii (the Hessian diagonal's estimate) on the chosen coordinates, 0 elsewhere.
      chosen: bool, True on the coordinates estimated by this call.
    """

    grad: jax.Array
    curvature: jax.Array
    chosen: jax.Array


def check_coordinates(coordinates: int, dimension: int) -> None:
    """``coordinates`` (ZOO's batch ``B``) must be at most the latent's dimension."""
    if coordinates > dimension:
        raise ValueError(
            f"`batch` (coordinates per ZOO step) must be at most the latent's dimension "
            f"{dimension}; got {coordinates}."
        )


@dataclasses.dataclass(frozen=True)
class ZOO:
    """ZOO's coordinate estimator (module docstring).

    Attributes:
      coordinates: coordinates ``B`` estimated per call (static; distinct, drawn uniformly).
      h: the finite-difference step (a query attack sets it from ``hp.fd_step``).
    """

    coordinates: int = 128
    h: float = 1e-4
    forward_query = 1

    def __post_init__(self):
        _checks.check_positive_int("batch", self.coordinates)

    @property
    def queries_per_call(self) -> int:
        return 2 * self.coordinates + self.forward_query

    def with_params(self, hp) -> ZOO:
        return dataclasses.replace(self, h=hp.fd_step)

    def init(self, theta):
        check_coordinates(self.coordinates, theta.size)
        return ()

    def __call__(self, loss_fn, theta, key, state):
        n, b = theta.size, self.coordinates
        check_coordinates(b, n)
        (loss, aux) = loss_fn(theta)
        index = jax.random.choice(key, n, (b,), replace=False)
        steps = jnp.zeros((b, n), theta.dtype).at[jnp.arange(b), index].set(self.h)
        steps = steps.reshape((b,) + theta.shape)
        losses = probe_losses(loss_fn, jnp.concatenate([theta + steps, theta - steps]))
        plus, minus = losses[:b], losses[b:]
        grad = (plus - minus) / (2 * self.h)
        curvature = (plus - 2 * loss + minus) / (self.h * self.h)

        def scatter(values):
            return jnp.zeros(n, theta.dtype).at[index].set(values).reshape(theta.shape)

        chosen = jnp.zeros(n, bool).at[index].set(True).reshape(theta.shape)
        estimate = CoordinateEstimate(scatter(grad), scatter(curvature), chosen)
        return (loss, aux), estimate, state, jnp.asarray(self.queries_per_call, jnp.int32)


def zoo(coordinates: int = 128, h: float = 1e-4) -> ZOO:
    """ZOO's estimator on ``coordinates`` random coordinates per call, step ``h``.

    Args:
      coordinates: coordinates ``B`` estimated per call (distinct, drawn uniformly).
      h: the finite-difference step (a query attack replaces it with ``hp.fd_step``).

    Returns:
      A :class:`ZOO` oracle.
    """
    return ZOO(coordinates, h)
