"""The saliency victim: a pure function ``image -> map`` for ONE image, plus its variables.

A ``SaliencyVictim`` is the dense counterpart of the classifier ``Victim``: a pytree whose only
dynamic leaves are the model's variables (passed to a jitted attack as an argument), with static
apply and capture functions, the example shape, the pixel bounds, the kind of map it returns and
the names of the hidden layers it exposes.

Output kinds (losses and metrics treat them differently, notes §2):

* ``"log_density"``: log-probabilities over the pixels, ``logsumexp(map) == 0`` (DeepGaze, UNISAL);
* ``"unit"``: a saliency map in ``[0, 1]`` (SALICON, SalGAN, SAM);
* ``"signed"``: a saliency map in ``[-1, 1]`` (GazeGAN's tanh head, pix2pixHD convention).

Named hidden layers: every zoo module calls ``self.sow("intermediates", name, value)`` at the
points worth attacking (feature-space and subspace attacks). The capture function applies the
module with ``mutable=["intermediates"]`` and flattens the sown tree to ``"sub/module/name"``
keys; under ``jit`` XLA drops the part of the forward pass after the requested layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxadv import _checks

OUTPUT_KINDS = ("log_density", "unit", "signed")


@struct.dataclass
class SaliencyVictim:
    """A saliency model under attack, called on one image.

    Attributes:
      variables: the model's variables (Flax ``{"params": ..., ...}`` or any pytree).
      apply_fn: ``(variables, x_batch) -> maps [b, h', w']``, in inference mode. Static.
      capture_fn: ``(variables, x_batch) -> {layer_name: [b, ...]}`` for every named hidden
        layer, or None when the model exposes none. Static.
      input_shape: shape of ONE image, e.g. ``(64, 64, 3)``. Static.
      output: one of ``OUTPUT_KINDS``. Static.
      map_shape: ``(h', w')`` of the map of one image. Static.
      layer_names: the names :meth:`features` accepts. Static.
      bounds: the closed pixel interval images live in. Static.
    """

    variables: Any
    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)
    capture_fn: Callable[[Any, jax.Array], dict] | None = struct.field(pytree_node=False)
    input_shape: tuple[int, ...] = struct.field(pytree_node=False)
    output: str = struct.field(pytree_node=False)
    map_shape: tuple[int, int] = struct.field(pytree_node=False)
    layer_names: tuple[str, ...] = struct.field(pytree_node=False, default=())
    bounds: tuple[float, float] = struct.field(pytree_node=False, default=(0.0, 1.0))

    def __call__(self, x: jax.Array) -> jax.Array:
        """The map ``f32[h', w']`` of ONE image ``x`` of shape ``input_shape``."""
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x[None])[0]

    def batch(self, x: jax.Array) -> jax.Array:
        """Maps ``f32[batch, h', w']`` of ``x`` of shape ``(batch, *input_shape)``."""
        _checks.check_batch_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x)

    def features(self, x: jax.Array, layer_name: str | Sequence[str]) -> Any:
        """The activation of the named hidden layer for ONE image ``x`` (no batch axis).

        Args:
          x: one image of shape ``input_shape``.
          layer_name: one of ``layer_names``, or a sequence of them.

        Returns:
          The layer's activation (e.g. ``f32[h, w, c]``), or for a sequence of names a dict from
          name to activation.

        Raises:
          ValueError: on a name that is not in ``layer_names`` (the message lists them), or a
            wrongly shaped ``x``.
        """
        names = (layer_name,) if isinstance(layer_name, str) else tuple(layer_name)
        unknown = [n for n in names if n not in self.layer_names]
        if unknown or not names:
            available = ", ".join(self.layer_names) or "(none: the model sows no layers)"
            raise ValueError(
                f"`layer_name` must name hidden layers of this victim; got {layer_name!r}. "
                f"Available layers: {available}."
            )
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        captured = self.capture_fn(self.variables, x[None])
        picked = {n: captured[n][0] for n in names}
        return picked[names[0]] if isinstance(layer_name, str) else picked


def _flatten_sown(tree: Mapping, prefix: str = "") -> dict[str, jax.Array]:
    """``{"sub": {"name": (value,)}}`` -> ``{"sub/name": value}`` (the last value sown)."""
    flat: dict[str, jax.Array] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten_sown(value, name + "/"))
        else:
            flat[name] = value[-1]
    return flat


@struct.dataclass
class _SaliencyApply:
    """``module.apply`` with ``train=False``: hashable (by module), so jit caches stay warm."""

    module: nn.Module = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        return self.module.apply(variables, x, train=False)


@struct.dataclass
class _SaliencyCapture:
    """Every sown intermediate of ``module`` (inference mode), flattened to ``"a/b"`` names."""

    module: nn.Module = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> dict[str, jax.Array]:
        _, state = self.module.apply(variables, x, train=False, mutable=["intermediates"])
        return _flatten_sown(state.get("intermediates", {}))


def from_flax_saliency(
    module: nn.Module,
    variables: Any,
    *,
    input_shape: Sequence[int],
    output: str | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> SaliencyVictim:
    """Wraps a Flax linen saliency model whose ``__call__(x, train)`` maps a batch to maps.

    The module is always applied with ``train=False`` (BatchNorm running statistics, no dropout):
    train-mode BatchNorm under a per-example ``vmap`` would normalise each image by its own
    statistics. The layers the module sows into ``intermediates`` are what
    :meth:`SaliencyVictim.features` returns.

    Args:
      module: the Flax module; ``module.apply(variables, x[b, h, w, c], train=False)`` must return
        ``[b, h', w']``.
      variables: its variables, with a ``"params"`` collection.
      input_shape: shape of ONE image ``(h, w, c)``.
      output: ``"log_density"``, ``"unit"`` or ``"signed"``; defaults to the module's
        ``output_kind`` attribute (every zoo model has one).
      bounds: the pixel interval ``(low, high)``.

    Returns:
      A :class:`SaliencyVictim`.

    Raises:
      ValueError: on missing ``params``, an unknown ``output``, bad ``bounds``, or a module that
        does not map the batch to 2-D maps.
    """
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError(
            "`variables` must be a Flax variables dict with a 'params' collection; got "
            f"{type(variables).__name__}"
            + (f" with keys {sorted(variables)}." if isinstance(variables, Mapping) else ".")
        )
    if output is None:
        output = getattr(module, "output_kind", None)
        if output is None:
            raise ValueError(
                f"`output` must be one of {', '.join(map(repr, OUTPUT_KINDS))}; got None and "
                f"the module {type(module).__name__} has no `output_kind` attribute."
            )
    _checks.check_choice("output", output, OUTPUT_KINDS)
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"`bounds` must be (low, high) with low < high; got {bounds!r}.")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels); got {input_shape}.")
    x = jax.ShapeDtypeStruct((1,) + input_shape, jnp.float32)
    maps, state = jax.eval_shape(  # one trace gives the map shape and the sown layers
        lambda v, x: module.apply(v, x, train=False, mutable=["intermediates"]), variables, x
    )
    if not hasattr(maps, "shape") or len(maps.shape) != 3:
        raise ValueError(
            f"`module` {type(module).__name__} must map a batch [b, h, w, c] to maps [b, h', w']; "
            f"on `input_shape` {input_shape} it returned {jax.tree.map(jnp.shape, maps)}."
        )
    return SaliencyVictim(
        variables=variables,
        apply_fn=_SaliencyApply(module),
        capture_fn=_SaliencyCapture(module),
        input_shape=input_shape,
        output=output,
        map_shape=tuple(int(s) for s in maps.shape[1:]),
        layer_names=tuple(_flatten_sown(state.get("intermediates", {}))),
        bounds=(float(lo), float(hi)),
    )
