"""P-RGF: random gradient-free estimation biased towards a transfer-based prior.

Cheng, Dong, Pang, Su & Zhu, "Improving Black-box Adversarial Attacks with a Transfer-based
Prior", NeurIPS 2019 (Algorithm 1). With ``v`` the (normalised) gradient of a white-box surrogate
at the current point and ``α = vᵀ∇f / (‖v‖‖∇f‖)`` its cosine with the true gradient, the
estimate ``ĝ = 1/q Σ_i [f(θ + σu_i) − f(θ)]/σ · u_i`` uses the biased directions

    u_i = √λ · v + √(1 − λ) · ξ_i,    ξ_i ⟂ v, normalised like v,

and the λ that minimises the estimate's expected squared error (their Eq. 12, ``D`` the input
dimension):

    λ* = 0                                                    if α² ≤ 1/(D + 2q − 2),
    λ* = (1 − α²)(α²(D + 2q − 2) − 1) / (2α²Dq − α⁴D(D + 2q − 2) − 1)   in between,
    λ* = 1 (return v, no sampling)                            if α² ≥ (2q − 1)/(D + 2q − 2).

α is estimated from queries (their Sec. 3.3): ``vᵀ∇f ≈ [f(θ + σv) − f(θ)]/σ`` (one query) and
``‖∇f‖² ≈ mean_s ([f(θ + σw_s) − f(θ)]/σ)²`` over ``S`` random directions ``w_s`` (``S``
queries); a negative α flips v. Directions are scaled to unit root-mean-square (``‖u‖₂ = √D``),
as the authors' code does, so σ is the per-pixel RMS of a probe and ``E[u uᵀ] = I``.

One call spends ``1 + S + q`` probe queries (``S`` only when the norm is re-estimated, every
``norm_every`` calls: 1 is the paper's reading, 10 the authors' code; ``q`` only when λ* < 1) plus
one for the loss at θ. The probes take two batched passes: the prior's and the norm's, then the
``q`` biased ones, whose λ depends on the first. When λ* = 1 the estimate is v scaled by its
estimated directional derivative, ``[(f(θ + σv) − f(θ))/σ] · v/D`` (the paper returns v; same
direction). The code's doubling of σ when a difference is exactly zero is not done.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import probe_losses

_TINY = 1e-12


class PRGFState(NamedTuple):
    calls: jax.Array  # i32: calls so far (the norm is re-estimated when calls % norm_every == 0)
    norm_sq: jax.Array  # f32: the last estimate of ‖∇f‖²


def prgf_lambda(alpha: jax.Array, dim: int, samples: int) -> jax.Array:
    """The optimal bias λ* of P-RGF (module docstring) for cosine ``alpha`` (≥ 0), input
    dimension ``dim`` and ``samples`` directions.

    Args:
      alpha: the (estimated) cosine α between the prior and the true gradient, ≥ 0.
      dim: the input dimension ``D``.
      samples: the number ``q`` of biased directions.

    Returns:
      λ* in ``[0, 1]``, an array of ``alpha``'s shape (1 where ``alpha`` ≥ 1).
    """
    a2 = jnp.square(alpha)
    span = dim + 2 * samples - 2
    inner = (1 - a2) * (a2 * span - 1) / (2 * a2 * dim * samples - a2 * a2 * dim * span - 1)
    lam = jnp.where(a2 * span <= 1, 0.0, jnp.where(a2 * span >= 2 * samples - 1, 1.0, inner))
    return jnp.where(alpha >= 1, 1.0, jnp.clip(lam, 0.0, 1.0))


def rms_normalise(u: jax.Array, axes: tuple[int, ...] | None = None) -> jax.Array:
    """``u`` scaled to unit root-mean-square over ``axes`` (all: None); zero stays zero."""
    rms = jnp.sqrt(jnp.mean(jnp.square(u), axis=axes, keepdims=axes is not None))
    return u / jnp.maximum(rms, _TINY)


def one_sided_estimate(loss_fn, theta, loss, directions, sigma) -> jax.Array:
    """``1/q Σ_i [f(θ + σu_i) − f(θ)]/σ · u_i`` over ``directions`` stacked on axis 0 (one
    batched pass; ``loss`` is ``f(θ)``, already paid)."""
    diffs = (probe_losses(loss_fn, theta + sigma * directions) - loss) / sigma
    return jnp.tensordot(diffs, directions, axes=1) / directions.shape[0]


def prgf_draws(key, theta, norm_samples: int, samples: int):
    """The random draws of one call: ``(prior_key, w, xi)``, ``w`` the norm-estimate directions
    and ``xi`` the raw normals of the biased directions (shared with the tests)."""
    prior_key, draw_key = jax.random.split(key)
    normals = jax.random.normal(draw_key, (norm_samples + samples,) + theta.shape, theta.dtype)
    return prior_key, normals[:norm_samples], normals[norm_samples:]


@dataclasses.dataclass(frozen=True)
class PRGF:
    """The P-RGF estimator (module docstring).

    Attributes:
      samples: ``q``, the biased directions per estimate. Static.
      norm_samples: ``S``, the random directions of the ‖∇f‖ estimate. Static.
      norm_every: re-estimate ‖∇f‖ every this many calls (1: every call). Static.
      sigma: the probe radius σ (a query attack sets it from ``hp.fd_step``).
      prior_fn: ``(theta, key) -> v``, the transfer gradient (a query attack sets it from its
        ``prior`` and the victim's surrogates).
    """

    samples: int = 50
    norm_samples: int = 10
    norm_every: int = 1
    sigma: Any = 1e-4
    prior_fn: Callable | None = None
    forward_query: ClassVar[int] = 1
    needs_prior: ClassVar[bool] = True

    def __post_init__(self):
        _checks.check_positive_int("samples", self.samples)
        _checks.check_positive_int("norm_samples", self.norm_samples)
        _checks.check_positive_int("norm_every", self.norm_every)

    @property
    def queries_per_call(self) -> int:
        return 1 + self.norm_samples + self.samples + self.forward_query

    def with_params(self, hp) -> PRGF:
        return dataclasses.replace(self, sigma=hp.fd_step)

    def with_prior(self, prior_fn: Callable) -> PRGF:
        return dataclasses.replace(self, prior_fn=prior_fn)

    def init(self, theta):
        del theta
        return PRGFState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))

    def __call__(self, loss_fn, theta, key, state):
        if self.prior_fn is None:
            raise ValueError("P-RGF needs a prior: give the attack `prior=` and surrogates.")
        loss, aux = loss_fn(theta)
        prior_key, w, xi = prgf_draws(key, theta, self.norm_samples, self.samples)
        v = rms_normalise(self.prior_fn(theta, prior_key))
        dim = theta.size
        sigma = self.sigma
        # Pass 1: the prior's probe and the norm's probes.
        first = jnp.concatenate([v[None], rms_normalise(w, tuple(range(1, w.ndim)))])
        diffs = (probe_losses(loss_fn, theta + sigma * first) - loss) / sigma
        renorm = state.calls % self.norm_every == 0
        norm_sq = jnp.where(renorm, jnp.mean(jnp.square(diffs[1:])), state.norm_sq)
        along = diffs[0]  # ≈ vᵀ∇f, with ‖v‖ = √D
        alpha = along / jnp.maximum(jnp.sqrt(dim * norm_sq), _TINY)
        flip = jnp.where(alpha < 0, -1.0, 1.0)
        v, alpha, along = flip * v, flip * alpha, flip * along
        lam = prgf_lambda(alpha, dim, self.samples)
        # Pass 2: the q biased directions (not queried when λ* = 1).
        flat_v = v.reshape(-1)
        xi = xi.reshape(self.samples, -1)
        xi = xi - jnp.outer(xi @ flat_v, flat_v) / jnp.maximum(flat_v @ flat_v, _TINY)
        xi = rms_normalise(xi, (1,)).reshape((self.samples,) + theta.shape)
        u = jnp.sqrt(lam) * v + jnp.sqrt(1 - lam) * xi
        sampled = one_sided_estimate(loss_fn, theta, loss, u, sigma)
        grad = jnp.where(lam >= 1, along / dim * v, sampled)
        queries = 1 + jnp.where(renorm, self.norm_samples, 0) + jnp.where(lam < 1, self.samples, 0)
        state = PRGFState(state.calls + 1, norm_sq.astype(jnp.float32))
        return (loss, aux), grad, state, (queries + self.forward_query).astype(jnp.int32)


def prgf(samples: int = 50, norm_samples: int = 10, norm_every: int = 1, sigma=1e-4) -> PRGF:
    """The P-RGF estimator with ``samples`` biased directions (module docstring).

    Args:
      samples: ``q``, the biased directions per estimate.
      norm_samples: ``S``, the random directions of the ‖∇f‖ estimate.
      norm_every: re-estimate ‖∇f‖ every this many calls (1: every call, the paper's reading;
        10: the authors' code).
      sigma: the probe radius σ (a query attack replaces it with ``hp.fd_step``).

    Returns:
      A :class:`PRGF` oracle without a prior (a query attack binds ``prior_fn``).
    """
    return PRGF(samples, norm_samples, norm_every, sigma)
