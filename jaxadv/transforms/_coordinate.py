"""ZOO's coordinate step rules: per-coordinate Adam (Algorithm 2) and Newton (Algorithm 3).

Chen, Zhang, Sharma, Yi & Hsieh, "ZOO", AISec 2017. A step moves only the coordinates estimated
in it: the update is a :class:`~jaxadv.gradients.CoordinateEstimate` (gradient, Hessian diagonal
and the mask of chosen coordinates, as ``jaxadv.gradients.ZOO`` returns it); a plain array counts
as an estimate on every coordinate (then ``coordinate_adam`` is ``optax.adam``). The mask travels
inside the update rather than as an extra argument because the runner passes the oracle's output
to the step rule as it is: the rule needs no cooperation from the loop. The latent is one array.

Adam (Alg. 2), for each chosen ``i``: ``T_i ← T_i + 1``, ``M_i ← β1 M_i + (1 − β1) ĝ_i``,
``v_i ← β2 v_i + (1 − β2) ĝ_i²``, ``M̂_i = M_i/(1 − β1^{T_i})``, ``v̂_i = v_i/(1 − β2^{T_i})``,
``δ_i = −η M̂_i/(√v̂_i + ε)``; the moments and counters of the other coordinates do not change.

Newton (Alg. 3), for each chosen ``i``: ``δ_i = −η ĝ_i/ĥ_ii`` where ``ĥ_ii > 0``, else
``−η ĝ_i``. (A plain array carries no curvature: every step is then ``−η g``.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv.gradients import CoordinateEstimate


def _parts(updates) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(gradient, curvature, chosen) of an estimate; a plain array is chosen everywhere and has
    no curvature (zeros)."""
    if isinstance(updates, CoordinateEstimate):
        return updates.grad, updates.curvature, updates.chosen
    return updates, jnp.zeros_like(updates), jnp.ones(jnp.shape(updates), bool)


class CoordinateAdamState(NamedTuple):
    """State of :func:`coordinate_adam` (each leaf shaped like the latent).

    Attributes:
      mu: first moments ``M`` (float).
      nu: second moments ``v`` (float).
      count: per-coordinate step counters ``T`` (int32): how often each coordinate was chosen.
    """

    mu: jax.Array
    nu: jax.Array
    count: jax.Array


def coordinate_adam(
    learning_rate: jax.Array | float = 1e-2,
    b1: jax.Array | float = 0.9,
    b2: jax.Array | float = 0.999,
    eps: jax.Array | float = 1e-8,
) -> optax.GradientTransformation:
    """ZOO-ADAM (module docstring): Adam with per-coordinate moments and step counters, moving
    only the chosen coordinates. The paper's η, β1, β2, ε are 0.01, 0.9, 0.999, 1e-8.

    Args:
      learning_rate: the step size ``η``; default 0.01.
      b1: the first moment's decay ``β1``; default 0.9.
      b2: the second moment's decay ``β2``; default 0.999.
      eps: ``ε``, added to ``√v̂_i`` in the denominator; default 1e-8.

    Returns:
      An ``optax.GradientTransformation`` with :class:`CoordinateAdamState`; its update takes a
      :class:`~jaxadv.gradients.CoordinateEstimate` (or a plain array) and returns the step
      ``δ`` (already negated: add it to the latent), zero on the coordinates not chosen.
    """

    def init_fn(params):
        zeros = jnp.zeros_like(params)
        return CoordinateAdamState(zeros, zeros, jnp.zeros(jnp.shape(params), jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        grad, _, chosen = _parts(updates)
        count = state.count + chosen.astype(jnp.int32)
        mu = jnp.where(chosen, b1 * state.mu + (1 - b1) * grad, state.mu)
        nu = jnp.where(chosen, b2 * state.nu + (1 - b2) * jnp.square(grad), state.nu)
        t = jnp.maximum(count, 1).astype(grad.dtype)  # unchosen, never-chosen: no division by 0
        mu_hat = mu / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)
        step = -learning_rate * mu_hat / (jnp.sqrt(nu_hat) + eps)
        step = jnp.where(chosen, step, 0.0).astype(grad.dtype)
        return step, CoordinateAdamState(mu, nu, count)

    return optax.GradientTransformation(init_fn, update_fn)


def coordinate_newton(learning_rate: jax.Array | float = 1e-2) -> optax.GradientTransformation:
    """ZOO-Newton (module docstring): ``−η ĝ_i/ĥ_ii`` on the chosen coordinates with positive
    curvature, ``−η ĝ_i`` on those without, nothing elsewhere. Stateless.

    Args:
      learning_rate: the step size ``η``; default 0.01.

    Returns:
      A stateless ``optax.GradientTransformation``; its update takes a
      :class:`~jaxadv.gradients.CoordinateEstimate` (or a plain array) and returns the step
      (already negated: add it to the latent), zero on the coordinates not chosen.
    """

    def update_fn(updates, state, params=None):
        del params
        grad, curvature, chosen = _parts(updates)
        convex = curvature > 0
        newton = grad / jnp.where(convex, curvature, 1.0)
        step = -learning_rate * jnp.where(convex, newton, grad)
        return jnp.where(chosen, step, 0.0).astype(grad.dtype), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
