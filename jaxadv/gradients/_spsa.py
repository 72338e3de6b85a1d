"""SPSA: simultaneous-perturbation finite differences along random ±1 directions.

Spall, "Multivariate stochastic approximation using a simultaneous perturbation gradient
approximation", IEEE TAC 1992; as an attack gradient in Uesato, O'Donoghue, van den Oord & Kohli,
"Adversarial Risk and the Dangers of Evaluating Against Weak Attacks", ICML 2018. With Rademacher
directions ``v_i ∈ {−1, +1}^D`` and the antithetic pairs ``θ ± δ v_i``,

    g ≈ 1 / (δ n) · Σ_{i ≤ n/2} [F(θ + δ v_i) − F(θ − δ v_i)] v_i,

the average over ``n/2`` pairs of the central difference ``[F(θ + δv) − F(θ − δv)] / 2δ · v``.
Since ``E[v vᵀ] = I`` it is unbiased for ``∇F`` when ``F`` is linear or quadratic (the central
difference cancels the curvature term), and for smooth ``F`` its bias is ``O(δ²)``. (Spall's
``Δ⁻¹`` equals ``Δ`` for ±1 entries.) One call spends ``n`` probe queries in one batched forward
pass, plus one query for the loss at ``θ``, as :class:`~jaxadv.gradients.NES` does.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxadv.gradients._nes import check_even_samples, probe_losses


def antithetic_estimate(plus: jax.Array, minus: jax.Array, directions: jax.Array, sigma):
    """``1/(σ n) Σ_i (plus_i − minus_i) u_i`` over ``n/2`` pairs: the mean central difference.

    Args:
      plus, minus: the losses at ``θ + σ u_i`` and ``θ − σ u_i``, shape ``[n/2]``.
      directions: the ``u_i`` stacked on axis 0, shape ``[n/2, *θ.shape]``.
      sigma: the probe radius σ.
    """
    weights = (plus - minus) / (2 * sigma * plus.shape[0])
    return jnp.tensordot(weights, directions, axes=1)


@dataclasses.dataclass(frozen=True)
class SPSA:
    """The antithetic SPSA estimator (module docstring).

    Attributes:
      samples: probes per estimate ``n`` (even: ``n/2`` pairs ``θ ± δv``). Static.
      sigma: the perturbation size δ (each coordinate moves by ±δ); a query attack sets it from
        ``hp.fd_step``.
    """

    samples: int = 256
    sigma: float = 0.01
    forward_query = 1

    def __post_init__(self):
        check_even_samples(self.samples)

    @property
    def queries_per_call(self) -> int:
        return self.samples + self.forward_query

    def with_params(self, hp) -> SPSA:
        return dataclasses.replace(self, sigma=hp.fd_step)

    def init(self, theta):
        del theta
        return ()

    def __call__(self, loss_fn, theta, key, state):
        (loss, aux) = loss_fn(theta)
        v = jax.random.rademacher(key, (self.samples // 2,) + theta.shape, theta.dtype)
        plus = probe_losses(loss_fn, theta + self.sigma * v)
        minus = probe_losses(loss_fn, theta - self.sigma * v)
        grad = antithetic_estimate(plus, minus, v, self.sigma)
        return (loss, aux), grad, state, jnp.asarray(self.queries_per_call, jnp.int32)


def spsa(samples: int = 256, sigma: float = 0.01) -> SPSA:
    """The SPSA estimator with ``samples`` antithetic ±1 probes of size ``sigma`` (δ)."""
    return SPSA(samples, sigma)
