"""A bandit gradient estimate whose exploration directions are transfer priors.

The online estimate ``g̃`` (the state, zero at first) is refined at every call along a prior ``u``
computed white-box on a surrogate (``prior_fn``): two probes at the normalised ``g̃ ± τu`` give a
finite difference of the loss along ``u``,

    g̃'_± = (g̃ ± τu) / ‖g̃ ± τu‖,
    Δ = [L(θ + δ g̃'_+) − L(θ + δ g̃'_−)] / (τ δ) · u,
    g̃ ← g̃ + η Δ,

and the updated ``g̃`` is the returned gradient. Two estimators of the literature are this one:

* Che et al.'s Algorithm 2 ("using the gradient priors crafted by our subspace attack to boost
  the query-based black-box attack", the seed paper 000): ℓ1 normalisation, ``u`` the subspace
  attack's prior (Algorithm 1) of a randomly chosen substitute;
* Yan, Guo & Zhang, "Subspace Attack: Exploiting Promising Subspaces for Query-Efficient
  Black-box Attacks", NeurIPS 2019 (Algorithm 1): ℓ2 normalisation, ``u`` the gradient of a
  randomly chosen reference model at the current point.

Both follow the bandits-TD estimator of Ilyas, Engstrom & Madry (ICLR 2019) with the random
exploration replaced by the prior. Hyper-parameters: ``δ`` = ``hp.fd_step``, ``τ`` =
``hp.exploration``, ``η`` = ``hp.prior_lr``. One call spends 2 probe queries (one batched pass)
plus one for the loss at θ.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import probe_losses

NORMALIZATIONS = ("l1", "l2")


def _normalised(g: jax.Array, kind: str) -> jax.Array:
    norm = jnp.sum(jnp.abs(g)) if kind == "l1" else jnp.sqrt(jnp.sum(jnp.square(g)))
    return g / jnp.maximum(norm, 1e-30)


@dataclasses.dataclass(frozen=True)
class PriorBandit:
    """The prior-guided bandit estimator (module docstring).

    Attributes:
      normalization: ``"l1"`` (Che et al.) or ``"l2"`` (Yan et al.). Static.
      fd_step: δ, the probe radius (set from ``hp.fd_step``).
      exploration: τ, the prior's exploration scale (set from ``hp.exploration``).
      prior_lr: η, the online learning rate of ``g̃`` (set from ``hp.prior_lr``).
      prior_fn: ``(theta, key) -> u`` (set by a query attack from its ``prior``).
    """

    normalization: str = "l1"
    fd_step: Any = 0.01
    exploration: Any = 1.0
    prior_lr: Any = 0.1
    prior_fn: Callable | None = None
    queries_per_call: ClassVar[int] = 3
    forward_query: ClassVar[int] = 1
    needs_prior: ClassVar[bool] = True

    def __post_init__(self):
        _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)

    def with_params(self, hp) -> PriorBandit:
        return dataclasses.replace(
            self, fd_step=hp.fd_step, exploration=hp.exploration, prior_lr=hp.prior_lr
        )

    def with_prior(self, prior_fn: Callable) -> PriorBandit:
        return dataclasses.replace(self, prior_fn=prior_fn)

    def init(self, theta):
        return jnp.zeros_like(theta)

    def __call__(self, loss_fn, theta, key, state):
        if self.prior_fn is None:
            raise ValueError("The prior bandit needs a prior: give the attack `prior=`.")
        loss, aux = loss_fn(theta)
        u = self.prior_fn(theta, key)
        tau, delta = self.exploration, self.fd_step
        plus = _normalised(state + tau * u, self.normalization)
        minus = _normalised(state - tau * u, self.normalization)
        probes = probe_losses(loss_fn, jnp.stack([theta + delta * plus, theta + delta * minus]))
        estimate = state + self.prior_lr * (probes[0] - probes[1]) / (tau * delta) * u
        return (loss, aux), estimate, estimate, jnp.asarray(self.queries_per_call, jnp.int32)


def prior_bandit(normalization: str = "l1") -> PriorBandit:
    """The prior-guided bandit estimator (``"l1"``: Che et al.'s Algorithm 2; ``"l2"``: Yan et
    al.'s subspace attack).

    Args:
      normalization: ``"l1"`` or ``"l2"``, the norm that normalises ``g̃ ± τu``.

    Returns:
      A :class:`PriorBandit` oracle with default numbers and no prior (a query attack sets
      both).
    """
    return PriorBandit(normalization)
