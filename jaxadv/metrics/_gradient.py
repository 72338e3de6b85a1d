"""How well an estimated gradient points along the true one: the cosine similarity per example.

Du et al., "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020 (thesis Table 2.6):
the cosine between the meta attacker's predicted gradients and the victim's white-box gradients,
against a randomly initialised meta attacker (Table 2.2's comparison).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


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
