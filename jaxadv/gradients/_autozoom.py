"""AutoZOOM's random-vector estimate, with its adaptive number of directions.

Tu, Ting, Chen, Liu, Zhang, Yi, Hsieh & Cheng, "AutoZOOM: Autoencoder-based Zeroth Order
Optimization Method for Attacking Black-box Neural Networks", AAAI 2019, §3.1: with ``u_j``
drawn uniformly on the unit sphere of the latent (of dimension ``d``) and a smoothing radius β,

    g = b · (1/q) Σ_{j ≤ q} [F(θ + β u_j) − F(θ)] / β · u_j.

With ``b = d`` (the default) the estimate is unbiased for a linear ``F`` (``E[u uᵀ] = I/d``);
the published code uses ``b = q`` instead (``scale=`` sets any constant). The latent is the
attack's reduced space (a small image upsampled, or an autoencoder's code: the decoder is the
attack's perturbation model), so ``d`` is the reduced dimension.

Adaptive ``q`` (§3.2): one direction per call until the attack first succeeds, then ``directions``
per call to fine-tune the distortion. The switch is ``found(aux)``, given by the attack (which
knows the success test); without it the estimator stays at ``initial_directions``. A call spends
``q + 1`` queries: the probes in one batched pass and the loss at θ, the forward-difference centre.
Shapes are static, so every call evaluates the larger number of probes and counts (and uses) only
the first ``q``; ``queries_per_call`` is the fewest a call spends, so steps derived from a budget
are an upper bound that the runner's budget check cuts short.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import probe_losses


def sphere_directions(key: jax.Array, count: int, shape: tuple[int, ...]) -> jax.Array:
    """``count`` directions uniform on the unit sphere of arrays of ``shape`` (stacked on axis 0).

    Args:
      key: the PRNG key of the Gaussian draws (normalised to unit ℓ2 norm).
      count: how many directions.
      shape: the shape of one direction.

    Returns:
      ``[count, *shape]`` array (JAX's default float dtype), each slice of unit ℓ2 norm.
    """
    u = jax.random.normal(key, (count,) + tuple(shape))
    norms = jnp.sqrt(jnp.sum(jnp.square(u.reshape(count, -1)), axis=1))
    return u / norms.reshape((count,) + (1,) * len(shape))


@dataclasses.dataclass(frozen=True)
class AutoZOOM:
    """AutoZOOM's estimator (module docstring).

    Attributes:
      directions: ``q`` after the switch (fine-tuning). Static.
      initial_directions: ``q`` before it (the paper's 1). Static.
      beta: the smoothing radius β (a query attack sets it from ``hp.fd_step``).
      scale: the constant ``b``; None: the latent's dimension ``d``.
      found: ``aux -> bool``, whether the current iterate fools the victim (the attack binds it);
        None: never switch.
    """

    directions: int = 4
    initial_directions: int = 1
    beta: float = 1e-3
    scale: float | None = None
    found: Callable[[Any], jax.Array] | None = None
    forward_query = 1

    def __post_init__(self):
        _checks.check_positive_int("directions", self.directions)
        _checks.check_positive_int("initial_directions", self.initial_directions)
        if self.scale is not None:
            _checks.check_positive("scale", self.scale)

    @property
    def queries_per_call(self) -> int:
        fewest = self.initial_directions
        if self.found is not None:
            fewest = min(fewest, self.directions)
        return fewest + self.forward_query

    def with_params(self, hp) -> AutoZOOM:
        return dataclasses.replace(self, beta=hp.fd_step)

    def init(self, theta):
        del theta
        return jnp.zeros((), bool)  # whether the switch to `directions` has happened

    def __call__(self, loss_fn, theta, key, state):
        (loss, aux) = loss_fn(theta)
        if self.found is None:
            switched, most = state, self.initial_directions
        else:
            switched = state | self.found(aux)
            most = max(self.initial_directions, self.directions)
        q = jnp.where(switched, self.directions, self.initial_directions)
        u = sphere_directions(key, most, theta.shape).astype(theta.dtype)
        probes = probe_losses(loss_fn, theta + self.beta * u)
        b = theta.size if self.scale is None else self.scale
        used = jnp.arange(most) < q
        weights = jnp.where(used, (probes - loss) / self.beta, 0.0) * (b / q)
        grad = jnp.tensordot(weights, u, axes=1)
        return (loss, aux), grad, switched, (q + self.forward_query).astype(jnp.int32)


def autozoom(directions: int = 4, beta: float = 1e-3, scale: float | None = None) -> AutoZOOM:
    """AutoZOOM's estimator: one direction per call, ``directions`` once the attack has bound a
    success test (:func:`jaxadv.attacks.autozoom` does) and it first holds.

    Args:
      directions: ``q`` after the switch (the fine-tuning phase); before it, 1.
      beta: the smoothing radius β (a query attack replaces it with ``hp.fd_step``).
      scale: the constant ``b`` of the estimate; None: the latent's dimension ``d`` (unbiased
        for a linear loss).

    Returns:
      An :class:`AutoZOOM` oracle (with no success test bound: ``found=None``).
    """
    return AutoZOOM(directions=directions, beta=beta, scale=scale)
