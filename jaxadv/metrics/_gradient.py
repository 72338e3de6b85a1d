"""How well an estimated gradient points along the true one: the cosine similarity per example.

Du et al., "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020 (thesis Table 2.6):
the cosine between the meta attacker's predicted gradients and the victim's white-box gradients,
against a randomly initialised meta attacker (Table 2.2's comparison). :func:`estimator_cosine`
asks the same of any gradient oracle of :mod:`jaxadv.gradients` (NES, ZOO, bandits, RGF, ...).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.gradients import CoordinateEstimate


def gradient_cosine(estimated: Any, reference: Any) -> np.ndarray:
    """Cosine similarity of ``estimated[i]`` and ``reference[i]`` (each flattened), per example.

    Args:
      estimated: ``f32[n, ...]`` gradient estimates.
      reference: ``f32[n, ...]`` the true gradients, same shape.

    Returns:
      ``float32[n]`` in ``[-1, 1]``; 0 where either vector is zero (no direction to compare).
    """
    a, b = jnp.asarray(estimated, jnp.float32), jnp.asarray(reference, jnp.float32)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"`estimated` and `reference` must have one shape (n, ...); got {a.shape} and "
            f"{b.shape}."
        )
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    norms = jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1)
    dots = jnp.sum(a * b, axis=1)
    return np.asarray(jnp.where(norms > 0, dots / jnp.where(norms > 0, norms, 1.0), 0.0))


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    a, b = a.reshape(-1), b.reshape(-1)
    norms = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    return jnp.where(norms > 0, jnp.vdot(a, b) / jnp.where(norms > 0, norms, 1.0), 0.0)


def estimator_cosine(
    oracle: Any, loss_fn: Any, theta: jax.Array, key: jax.Array, state: Any = None
) -> tuple[jax.Array, jax.Array]:
    """The cosine between one call of a gradient oracle and the exact gradient, for ONE example.

    ``vmap`` it over examples (and keys) for a batch, as every metric of the library. The exact
    gradient is reverse-mode autodiff of the same ``loss_fn``; the cosine is 0 where either
    vector is zero. ZOO's estimate counts as its gradient on the chosen coordinates, 0 elsewhere.

    Args:
      oracle: a gradient oracle of :mod:`jaxadv.gradients` (``init(theta)`` and
        ``oracle(loss_fn, theta, key, state)``), e.g. ``gradients.nes(samples=50)``.
      loss_fn: ``theta -> (loss, aux)``, the scalar loss the oracle estimates the gradient of.
      theta: the point, any shape.
      key: PRNG key of the oracle's probes.
      state: the oracle's state (a bandit's prior after some steps); None: ``oracle.init(theta)``.

    Returns:
      ``(cosine, queries)``: a float32 scalar in ``[-1, 1]`` and the int32 number of model
      queries the estimate spent.

    Raises:
      ValueError: if ``oracle`` is not a gradient oracle.
    """
    if not (callable(oracle) and callable(getattr(oracle, "init", None))):
        raise ValueError(
            "`oracle` must be a gradient oracle of jaxadv.gradients (with `init` and a call "
            f"`oracle(loss_fn, theta, key, state)`); got {type(oracle).__name__}."
        )
    theta = jnp.asarray(theta, jnp.float32)
    state = oracle.init(theta) if state is None else state
    _, estimate, _, queries = oracle(loss_fn, theta, key, state)
    if isinstance(estimate, CoordinateEstimate):  # ZOO: known on the chosen coordinates
        estimate = estimate.grad
    exact = jax.grad(lambda t: loss_fn(t)[0])(theta)
    return _cosine(jnp.asarray(estimate, jnp.float32), exact), jnp.asarray(queries, jnp.int32)
