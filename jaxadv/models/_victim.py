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

    Args:
      module: the Flax linen classifier; ``module.apply(variables, x, train=False)`` maps a
        batch ``[b, *input_shape]`` to logits ``[b, num_classes]``.
      variables: its Flax variables dict, with a ``"params"`` collection (and e.g.
        ``"batch_stats"``).
      input_shape: shape of ONE example, e.g. ``(28, 28, 1)``.
      num_classes: the number of logits the module returns per example.
      bounds: ``(low, high)`` with ``low < high``, the pixel interval inputs live in (default
        ``(0, 1)``).

    Returns:
      A :class:`Victim` of ``module`` and ``variables``, applied in inference mode.

    Raises:
      ValueError: if ``variables`` has no ``"params"``, ``bounds`` is not increasing,
        ``num_classes`` is not a positive integer, or the module does not map a batch of
        ``input_shape`` examples to ``[batch, num_classes]`` logits (checked by shape
        inference, without compute).
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
    _checks.check_positive_int("num_classes", num_classes)
    apply_fn = _InferenceApply(module)
    input_shape = tuple(int(s) for s in input_shape)
    _check_logits(module, apply_fn, variables, input_shape, int(num_classes))
    return Victim(
        variables=variables,
        apply_fn=apply_fn,
        input_shape=input_shape,
        num_classes=int(num_classes),
        bounds=(float(lo), float(hi)),
    )


def _check_logits(module, apply_fn, variables, input_shape, num_classes) -> None:
    """The module must map a batch of ``input_shape`` examples to ``[batch, num_classes]``
    logits (checked by shape inference, no compute)."""
    name = type(module).__name__
    x = jax.ShapeDtypeStruct((1,) + input_shape, jnp.float32)
    try:
        out = jax.eval_shape(apply_fn, variables, x)
    except Exception as err:  # flax/lax shape errors of a wrong input_shape or variables
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"`module` {name} cannot be applied to `variables` on examples of `input_shape` "
            f"{input_shape}: {type(err).__name__}: {first}"
        ) from None
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2:
        raise ValueError(
            f"`module` {name} must return logits [batch, num_classes]; on a batch of one example "
            f"of `input_shape` {input_shape} it returned {shape or type(out).__name__}."
        )
    if shape[1] != num_classes:
        raise ValueError(
            f"`num_classes` is {num_classes} but `module` {name} returns {shape[1]} logits per "
            "example; pass the module's number of classes."
        )
