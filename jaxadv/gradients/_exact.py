"""The gradient-oracle seam and its white-box member, the exact gradient.

An oracle turns a scalar loss of the latent into ``((loss, aux), grad, queries)``. White-box and
black-box attacks differ only here: query-based estimators (NES, bandits, ZOO, meta-learned) take
the same loss, use ``key`` for their probes and report how many model queries they spent.
Oracles are frozen dataclasses, compared by value, so equal attacks share one compilation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array], tuple[jax.Array, Any]]  # theta -> (loss, aux)


class GradientOracle(Protocol):
    """``oracle(loss_fn, theta, key) -> ((loss, aux), grad, queries)``."""

    def __call__(
        self, loss_fn: LossFn, theta: jax.Array, key: jax.Array
    ) -> tuple[tuple[jax.Array, Any], jax.Array, jax.Array]: ...


@dataclasses.dataclass(frozen=True)
class Exact:
    """Reverse-mode autodiff through the victim: one forward+backward pass (one query) per call."""

    def __call__(self, loss_fn, theta, key):
        del key
        (loss, aux), grad = jax.value_and_grad(loss_fn, has_aux=True)(theta)
        return (loss, aux), grad, jnp.asarray(1, jnp.int32)


def exact() -> Exact:
    """The exact-gradient oracle."""
    return Exact()
