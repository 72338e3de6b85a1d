"""The gradient-oracle seam and its white-box member, the exact gradient.

An oracle turns a scalar loss of the latent into ``((loss, aux), grad, state, queries)``.
White-box and black-box attacks differ only here: query-based estimators (NES, bandits, ZOO,
meta-learned) take the same loss, evaluate it at probe points (all probes of one call batched into
one ``vmap``), use ``key`` for their random directions, carry what they learn between steps (a
bandit's prior, a ZOO coordinate's moments) in ``state``, and report how many model queries they
spent. Oracles are frozen dataclasses: ones with equal fields are equal, so equal attacks share one
compilation; a sweepable number (a finite-difference step) may be a traced array field when the
oracle is built inside the attack's trace from its hyper-parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Protocol

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array], tuple[jax.Array, Any]]  # theta -> (loss, aux)


class GradientOracle(Protocol):
    """The seam between an attack's loop and how it obtains a descent direction.

    Attributes:
      queries_per_call: model queries one call spends (static; a query-budgeted attack derives
        its number of steps from it).
      forward_query: queries charged for one plain evaluation of the loss (0 for white-box
        oracles, whose budget counts forward+backward passes; 1 for query-based ones).

    ``init(theta) -> state`` gives the state before the first call; ``oracle(loss_fn, theta, key,
    state) -> ((loss, aux), grad, state, queries)`` evaluates the loss at ``theta`` (its value and
    aux are the attack's record of the current iterate) and returns the gradient or its estimate.
    """

    queries_per_call: int
    forward_query: int

    def init(self, theta: jax.Array) -> Any: ...

    def __call__(
        self, loss_fn: LossFn, theta: jax.Array, key: jax.Array, state: Any
    ) -> tuple[tuple[jax.Array, Any], jax.Array, Any, jax.Array]: ...


@dataclasses.dataclass(frozen=True)
class Exact:
    """Reverse-mode autodiff through the victim: one forward+backward pass (one query) per call.

    Attributes:
      queries_per_call: 1 (one forward+backward pass). Class constant.
      forward_query: 0 (a white-box budget counts forward+backward passes). Class constant.
    """

    queries_per_call: ClassVar[int] = 1
    forward_query: ClassVar[int] = 0

    def init(self, theta):
        del theta
        return ()

    def with_params(self, hp):
        """Itself: the exact gradient has no numbers (lets a query attack run white-box)."""
        del hp
        return self

    def __call__(self, loss_fn, theta, key, state):
        del key
        (loss, aux), grad = jax.value_and_grad(loss_fn, has_aux=True)(theta)
        return (loss, aux), grad, state, jnp.asarray(1, jnp.int32)


def exact() -> Exact:
    """The exact-gradient oracle.

    Returns:
      An :class:`Exact` oracle (it has no fields: all are equal).
    """
    return Exact()
