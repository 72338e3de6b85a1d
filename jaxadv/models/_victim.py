"""The victim: a pure function of ``(params, x)`` for ONE example, plus its params.

A ``Victim`` is a pytree whose only dynamic leaves are the model's variables, so it is passed to a
jitted attack as an argument (weights never become compile-time constants) and one compilation
serves any weights of the same architecture. The apply function, the example shape, the number of
classes and the pixel bounds are static.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxadv import _checks


@struct.dataclass
class Victim:
    """A model under attack, called on one example.

    Attributes:
      variables: the model's variables (Flax ``{"params": ..., "batch_stats": ...}`` or any pytree).
      apply_fn: ``(variables, x_batch) -> outputs_batch``, already in inference mode. Static.
      input_shape: shape of ONE example, e.g. ``(28, 28, 1)``. Static.
      num_classes: number of output classes. Static.
      bounds: the closed pixel interval inputs live in, e.g. ``(0.0, 1.0)``. Static.
    """

    variables: Any
    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)
    input_shape: tuple[int, ...] = struct.field(pytree_node=False)
    num_classes: int = struct.field(pytree_node=False)
    bounds: tuple[float, float] = struct.field(pytree_node=False, default=(0.0, 1.0))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits ``f32[num_classes]`` of ONE example ``x`` of shape ``input_shape``."""
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x[None])[0]

    def batch(self, x: jax.Array) -> jax.Array:
        """Logits ``f32[batch, num_classes]`` of ``x`` of shape ``(batch, *input_shape)``."""
        _checks.check_batch_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x)


@struct.dataclass
class _InferenceApply:
    """``module.apply`` with ``train=False``: hashable (by module), so jit caches stay warm."""

    module: nn.Module = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        return self.module.apply(variables, x, train=False)


def from_flax(
    module: nn.Module,
    variables: Any,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Victim:
    """Wraps a Flax linen classifier whose ``__call__(x, train)`` takes a batch.

    The module is always applied with ``train=False``: BatchNorm uses its running statistics and
    dropout is off. (Train-mode BatchNorm under a per-example ``vmap`` would normalise each example
    by its own statistics: silently wrong.)
    """
    if not isinstance(variables, dict) or "params" not in variables:
        raise ValueError(
            "`variables` must be a Flax variables dict with a 'params' collection; got "
            f"{type(variables).__name__}"
            + (f" with keys {sorted(variables)}." if isinstance(variables, dict) else ".")
        )
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"`bounds` must be (low, high) with low < high; got {bounds!r}.")
    return Victim(
        variables=variables,
        apply_fn=_InferenceApply(module),
        input_shape=tuple(int(s) for s in input_shape),
        num_classes=int(num_classes),
        bounds=(float(lo), float(hi)),
    )
