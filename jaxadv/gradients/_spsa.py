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

from jaxadv.gradients._nes import Antithetic


@dataclasses.dataclass(frozen=True)
class SPSA(Antithetic):
    """The antithetic SPSA estimator (module docstring): Rademacher directions.

    Attributes:
      samples: probes per estimate ``n`` (even: ``n/2`` pairs ``θ ± δv``). Static.
      sigma: the perturbation size δ (each coordinate moves by ±δ); a query attack sets it from
        ``hp.fd_step``.
    """

    samples: int = 256
    sigma: float = 0.01

    def directions(self, key, shape, dtype) -> jax.Array:
        return jax.random.rademacher(key, shape, dtype)


def spsa(samples: int = 256, sigma: float = 0.01) -> SPSA:
    """The SPSA estimator with ``samples`` antithetic ±1 probes of size ``sigma`` (δ).

    Args:
      samples: probes per estimate ``n`` (even: ``n/2`` pairs ``θ ± δv``).
      sigma: the perturbation size δ (a query attack replaces it with ``hp.fd_step``).

    Returns:
      An :class:`SPSA` oracle.
    """
    return SPSA(samples, sigma)
