"""RGF: random gradient-free estimation by one-sided differences along random unit directions.

Nesterov & Spokoiny, "Random gradient-free minimization of convex functions", FoCM 2017, in the
form used by Cheng, Dong, Pang, Su & Zhu, "Improving Black-box Adversarial Attacks with a
Transfer-based Prior", NeurIPS 2019 (their Eq. 2, the prior-free baseline of P-RGF): with ``q``
directions ``u_i`` uniform on the unit sphere of ``R^D``,

    ĝ = 1/q · Σ_i [F(θ + σ u_i) − F(θ)] / σ · u_i.

The differences reuse the loss at ``θ`` (which the attack needs anyway), so a call costs ``q + 1``
queries. As ``E[u uᵀ] = I/D``, ``E[ĝ] = ∇F / D`` for a linear ``F``, and for a quadratic ``F``
too (the curvature term ``σ/2 · (uᵀHu) u`` is odd in ``u``); for smooth ``F`` the bias is
``O(σ)``. The scale ``1/D`` is the published estimator's; the attacks normalise their steps, so
it does not matter there (multiply by ``D`` for an unbiased gradient). With ``orthogonal=True``
the directions are orthonormalised (Gram-Schmidt on Gaussian vectors, so that each ``u_i``
stays uniform on the sphere), the setting of Cheng et al.'s analysis; it needs ``q ≤ D``.

:func:`rgf_estimate` is the formula on its own, so that the prior-guided P-RGF can put the prior
(or a mix of it) among the directions and share it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import ProbeEstimator, probe_losses


def rgf_estimate(loss_at_theta, probe_losses, directions, sigma) -> jax.Array:
    """``1/q · Σ_i (probe_losses_i − loss_at_theta) / σ · u_i``: the mean one-sided difference.

    Args:
      loss_at_theta: ``F(θ)``, a scalar.
      probe_losses: ``F(θ + σ u_i)``, shape ``[q]``.
      directions: the ``u_i`` stacked on axis 0, shape ``[q, *θ.shape]`` (unit vectors for the
        published estimator; any directions for variants such as P-RGF's).
      sigma: the probe radius σ.

    Returns:
      The estimate, shape ``θ.shape``.
    """
    weights = (probe_losses - loss_at_theta) / (sigma * probe_losses.shape[0])
    return jnp.tensordot(weights, directions, axes=1)


def _orthonormal_rows(g: jax.Array) -> jax.Array:
    """Gram-Schmidt on the rows of ``g`` ([q, D]), each projection done twice (CGS2, stable in
    float32). For Gaussian rows the result is the Q of ``g``'s QR with R's diagonal positive:
    Haar-distributed rows. (No LAPACK QR: several of them in one XLA CPU program hung in our
    runs.)"""
    q = g.shape[0]

    def body(i, u):
        done = (jnp.arange(q) < i)[:, None] * u  # the rows already orthonormal
        v = u[i]
        v = v - (done @ v) @ done
        v = v - (done @ v) @ done
        return u.at[i].set(v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(g.dtype).tiny))

    return jax.lax.fori_loop(0, q, body, g)


def rgf_directions(key, samples: int, shape, dtype=jnp.float32, orthogonal=False):
    """``samples`` directions uniform on the unit sphere of ``R^prod(shape)``, stacked on axis 0.

    With ``orthogonal=True`` they are also mutually orthonormal (Gram-Schmidt on Gaussian
    vectors: a uniformly random orthonormal frame, each direction uniform on the sphere).

    Args:
      key: the PRNG key of the Gaussian draws.
      samples: how many directions ``q``.
      shape: the shape of one direction.
      dtype: their dtype.
      orthogonal: also orthonormalise them (needs ``samples`` ≤ ``prod(shape)``, else
        ``ValueError``).

    Returns:
      ``[samples, *shape]`` array, each slice of unit ℓ2 norm.
    """
    size = math.prod(shape)
    if orthogonal and samples > size:
        raise ValueError(
            f"`samples` must be at most the input size {size} for orthogonal directions; "
            f"got {samples}."
        )
    u = jax.random.normal(key, (samples, size), dtype)
    if orthogonal:
        u = _orthonormal_rows(u)
    else:
        u = u / jnp.maximum(jnp.linalg.norm(u, axis=1, keepdims=True), jnp.finfo(dtype).tiny)
    return u.reshape((samples,) + tuple(shape))


@dataclasses.dataclass(frozen=True)
class RGF(ProbeEstimator):
    """The RGF estimator (module docstring).

    Attributes:
      samples: directions per estimate ``q`` (≥ 1). Static.
      sigma: the probe radius σ, the ℓ2 length of each probe's displacement; a query attack sets
        it from ``hp.fd_step``.
      orthogonal: orthonormalise the directions (needs ``samples ≤`` the input size).
    """

    samples: int = 50
    sigma: float = 1e-3
    orthogonal: bool = False

    def __post_init__(self):
        _checks.check_positive_int("samples", self.samples)

    def __call__(self, loss_fn, theta, key, state):
        (loss, aux) = loss_fn(theta)
        u = rgf_directions(key, self.samples, theta.shape, theta.dtype, self.orthogonal)
        probes = probe_losses(loss_fn, theta + self.sigma * u)
        grad = rgf_estimate(loss, probes, u, self.sigma)
        return (loss, aux), grad, state, jnp.asarray(self.queries_per_call, jnp.int32)


def rgf(samples: int = 50, sigma: float = 1e-3, *, orthogonal: bool = False) -> RGF:
    """The RGF estimator with ``samples`` unit directions of radius ``sigma``.

    Args:
      samples: directions per estimate ``q`` (≥ 1).
      sigma: the probe radius σ (a query attack replaces it with ``hp.fd_step``).
      orthogonal: orthonormalise the directions (needs ``samples ≤`` the input size).

    Returns:
      An :class:`RGF` oracle.
    """
    return RGF(samples, sigma, orthogonal)
