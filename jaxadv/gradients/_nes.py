"""NES: the gradient of a Gaussian-smoothed loss, estimated from antithetic random probes.

Ilyas, Engstrom, Athalye & Lin, "Black-box Adversarial Attacks with Limited Queries and
Information", ICML 2018 (Algorithm 1): with ``u_i ~ N(0, I)`` and the pairs ``θ ± σ u_i``,

    g ≈ 1 / (σ n) · Σ_{i ≤ n/2} [F(θ + σ u_i) − F(θ − σ u_i)] u_i,

an unbiased estimate of the gradient of ``E_u F(θ + σ u)`` (of ``∇F`` itself for a linear or
quadratic ``F``). One call spends ``n`` probe queries, all in one batched forward pass, plus one
query for the loss at ``θ`` (the attack's record of its current iterate and its success test).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxadv import _checks


def probe_losses(loss_fn, points: jax.Array) -> jax.Array:
    """The loss at each of ``points`` (stacked on axis 0): one batched forward pass.

    Args:
      loss_fn: ``theta -> (loss, aux)``, vmapped over the points (aux is dropped).
      points: ``[n, *theta.shape]`` probe points.

    Returns:
      ``[n]`` losses.
    """
    losses, _ = jax.vmap(loss_fn)(points)
    return losses


def check_even_samples(samples: int) -> None:
    _checks.check_positive_int("samples", samples)
    if samples % 2:
        raise ValueError(f"`samples` must be even (antithetic pairs ±u); got {samples}.")


def antithetic_estimate(plus: jax.Array, minus: jax.Array, directions: jax.Array, sigma):
    """``1/(σ n) Σ_i (plus_i − minus_i) u_i`` over ``n/2`` pairs: the mean central difference.

    Args:
      plus, minus: the losses at ``θ + σ u_i`` and ``θ − σ u_i``, shape ``[n/2]``.
      directions: the ``u_i`` stacked on axis 0, shape ``[n/2, *θ.shape]``.
      sigma: the probe radius σ.

    Returns:
      The estimate, shape ``θ.shape``.
    """
    weights = (plus - minus) / (2 * sigma * plus.shape[0])
    return jnp.tensordot(weights, directions, axes=1)


@dataclasses.dataclass(frozen=True)
class ProbeEstimator:
    """What the stateless finite-difference estimators share: ``samples`` probes of radius
    ``sigma`` (set from ``hp.fd_step`` by a query attack) and one evaluation of the loss at θ per
    call. Subclasses define ``__call__``.
    """

    samples: int
    sigma: float
    forward_query = 1

    @property
    def queries_per_call(self) -> int:
        return self.samples + self.forward_query

    def with_params(self, hp):
        return dataclasses.replace(self, sigma=hp.fd_step)

    def init(self, theta):
        del theta
        return ()


@dataclasses.dataclass(frozen=True)
class Antithetic(ProbeEstimator):
    """The central-difference estimate over ``samples/2`` pairs ``θ ± σ u_i``; subclasses draw
    the directions (``directions(key, shape, dtype)``, stacked on axis 0)."""

    def __post_init__(self):
        check_even_samples(self.samples)

    def directions(self, key, shape, dtype) -> jax.Array:
        raise NotImplementedError

    def __call__(self, loss_fn, theta, key, state):
        (loss, aux) = loss_fn(theta)
        u = self.directions(key, (self.samples // 2,) + theta.shape, theta.dtype)
        plus = probe_losses(loss_fn, theta + self.sigma * u)
        minus = probe_losses(loss_fn, theta - self.sigma * u)
        grad = antithetic_estimate(plus, minus, u, self.sigma)
        return (loss, aux), grad, state, jnp.asarray(self.queries_per_call, jnp.int32)


@dataclasses.dataclass(frozen=True)
class NES(Antithetic):
    """The antithetic NES estimator (module docstring): Gaussian directions.

    Attributes:
      samples: probes per estimate ``n`` (even: ``n/2`` antithetic pairs). Static.
      sigma: the smoothing radius σ (a query attack sets it from ``hp.fd_step``).
    """

    samples: int = 50
    sigma: float = 1e-3

    def directions(self, key, shape, dtype) -> jax.Array:
        return jax.random.normal(key, shape, dtype)


def nes(samples: int = 50, sigma: float = 1e-3) -> NES:
    """The NES estimator with ``samples`` antithetic probes of radius ``sigma``.

    Args:
      samples: probes per estimate ``n`` (even: ``n/2`` antithetic pairs).
      sigma: the smoothing radius σ (a query attack replaces it with ``hp.fd_step``).

    Returns:
      An :class:`NES` oracle.
    """
    return NES(samples, sigma)
