"""An ensemble of victims, possibly of different architectures, as one function of the input.

Che et al. (AAAI 2020, SMBEA, Eq. 2) attack K source models at once, in output space and
optionally in feature space::

    output:   Σ_n σ_n·F_n(x)                     (σ normalised to sum 1)
    features: Σ_n ω_n·S(D_n(x))                  (ω normalised over the members with a layer)

``F_n`` is member ``n``'s output (logits of a classifier, the map of a saliency model, the output
of any dense image-to-image model); ``D_n`` the activation of a named hidden layer of member
``n``, and ``S`` an ensemble strategy that brings activations of different architectures to one
shape (their Fig. 2):

* ``CU`` — channel amount unification: the channel axis is resampled to a common count ``C`` by
  area averaging (output channel ``k`` averages the input channels that overlap its share
  ``[k·c/C, (k+1)·c/C)``, weighted by the overlap);
* ``APC`` — average pooling in the channel direction: all channels averaged into one;
* ``BI`` — bilinear interpolation of the spatial axes to a common ``H × W``;
* ``SN`` — softmax normalisation over the spatial positions of each channel (each channel becomes
  a distribution, so models whose activations differ in scale weigh alike).

Named strategies (:data:`FEATURE_STRATEGIES`) chain them: ``"cu_bi"``, ``"cu_bi_sn"``,
``"apc_bi"``, ``"apc_bi_sn"``. Our reading: the paper names the four operations and shows three
combinations without formulas; the channel resampling, the target shape (the largest spatial
size and the smallest channel count of the members unless ``feature_shape`` is given) and the
spatial softmax are ours.

Saliency maps are summed as they are (``combine="raw"``, the paper's and the published code's
sum of raw outputs; the members must then agree on the kind of map) or as densities
(``combine="density"``: each map made non-negative by its kind and divided by its sum, which
lets log-density, ``[0, 1]`` and ``[−1, 1]`` models share one ensemble). Maps of different sizes
are bilinearly resized to the first member's.

The ensemble is a pytree: the members' variables and the weights σ, ω are its dynamic leaves
(so weights can be swept and weights never become compile-time constants), the rest is static.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxadv import _checks
from jaxadv.losses import to_saliency_map

OUTPUTS = ("logits", "saliency", "dense")
COMBINES = ("raw", "density")


class FeatureStrategy(NamedTuple):
    """How activations of different members are brought to one shape (hashable).

    Attributes:
      channels: ``"unify"`` (CU) or ``"average"`` (APC).
      softmax: apply SN after the spatial interpolation (BI, always on).
    """

    channels: str
    softmax: bool


FEATURE_STRATEGIES = {
    "cu_bi": FeatureStrategy("unify", False),
    "cu_bi_sn": FeatureStrategy("unify", True),
    "apc_bi": FeatureStrategy("average", False),
    "apc_bi_sn": FeatureStrategy("average", True),
}


def _as_hwc(a: jax.Array) -> jax.Array:
    """One example's activation as ``[h, w, c]`` (a 2-D map gets one channel)."""
    if a.ndim == 2:
        return a[..., None]
    if a.ndim == 1:
        return a[None, None, :]
    return a


@functools.lru_cache(maxsize=64)
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``f32[n_out, n_in]``: 1-D linear interpolation with half-pixel centres and clamped edges
    (``jax.image.resize``'s "linear" without antialiasing); two of them resize a map
    bilinearly as one cheap contraction."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0.0, n_in - 1.0)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), low] += 1.0 - frac
    m[np.arange(n_out), high] += frac
    return m.astype(np.float32)


@functools.lru_cache(maxsize=64)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``f32[n_out, n_in]``: output ``k`` is the overlap-weighted mean of the inputs covering
    ``[k·n_in/n_out, (k+1)·n_in/n_out)`` (rows sum to 1)."""
    edges = np.arange(n_out + 1) * n_in / n_out
    m = np.zeros((n_out, n_in))
    for k in range(n_out):
        for j in range(n_in):
            m[k, j] = max(0.0, min(edges[k + 1], j + 1) - max(edges[k], j))
    return (m / m.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_bilinear(a: jax.Array, height: int, width: int) -> jax.Array:
    """``[h, w, ...]`` -> ``[height, width, ...]`` by bilinear interpolation."""
    if a.shape[:2] == (height, width):
        return a
    rows, cols = bilinear_matrix(a.shape[0], height), bilinear_matrix(a.shape[1], width)
    return jnp.einsum("Hh,hw...,Ww->HW...", rows, a, cols)


def unify_features(
    a: jax.Array, strategy: FeatureStrategy, shape: tuple[int, int, int]
) -> jax.Array:
    """Applies CU or APC, then BI to ``shape[:2]``, then SN if asked, to one ``[h, w, c]``
    activation; returns ``[H, W, C]`` (``C = 1`` for APC)."""
    a = _as_hwc(a).astype(jnp.float32)
    c = a.shape[-1]
    height, width, channels = shape
    if strategy.channels == "average":
        a = jnp.mean(a, axis=-1, keepdims=True)
    elif c != channels:
        a = a @ area_matrix(c, channels).T
    a = resize_bilinear(a, height, width)
    if strategy.softmax:
        flat = a.reshape(-1, a.shape[-1])
        a = jax.nn.softmax(flat, axis=0).reshape(a.shape)
    return a


def _member_output(member: Any) -> str:
    return "saliency" if hasattr(member, "map_shape") else "logits"


@struct.dataclass
class Ensemble:
    """K victims seen as one (module docstring). Build it with :func:`ensemble`.

    Attributes:
      members: the victims (a tuple; each a pytree whose variables are dynamic).
      weights: σ, ``f32[K]``, summing to 1.
      feature_weights: ω, ``f32[K]``, summing to 1 over the members with a layer (0 elsewhere).
      output: ``"logits"``, ``"saliency"`` or ``"dense"``. Static.
      combine: ``"raw"`` or ``"density"`` (saliency only). Static.
      map_kind: the output kind of the combined saliency map (``to_saliency_map``): the
        members' kind (raw) or ``"unit"`` (density); None otherwise. Static.
      input_shape: shape of ONE input. Static.
      bounds: the pixel interval. Static.
      output_shape: shape of the combined output of one input. Static.
      layers: per member, the hidden layer of the feature term, or None. Static.
      strategy: the :class:`FeatureStrategy`. Static.
      feature_shape: ``(H, W, C)`` of the combined features (None without layers). Static.
    """

    members: tuple
    weights: jax.Array
    feature_weights: jax.Array
    output: str = struct.field(pytree_node=False)
    combine: str = struct.field(pytree_node=False)
    map_kind: str | None = struct.field(pytree_node=False)
    input_shape: tuple[int, ...] = struct.field(pytree_node=False)
    bounds: tuple[float, float] = struct.field(pytree_node=False)
    output_shape: tuple[int, ...] = struct.field(pytree_node=False)
    layers: tuple = struct.field(pytree_node=False)
    strategy: FeatureStrategy = struct.field(pytree_node=False)
    feature_shape: tuple[int, int, int] | None = struct.field(pytree_node=False)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def has_features(self) -> bool:
        return self.feature_shape is not None

    def _one_output(self, member: Any, x: jax.Array) -> jax.Array:
        out = member(x)
        if self.output != "saliency":
            return out
        if self.combine == "density":
            out = to_saliency_map(out, member.output)
            out = out / (jnp.sum(out) + 1e-12)
        return resize_bilinear(out, *self.output_shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``Σ σ_n·F_n(x)`` for ONE input ``x`` (shape ``input_shape``)."""
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        total = 0.0
        for n, member in enumerate(self.members):
            total = total + self.weights[n] * self._one_output(member, x)
        return total

    def member_outputs(self, x: jax.Array) -> list[jax.Array]:
        """Each member's output ``F_n(x)`` of ONE input (maps converted as the sum would)."""
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        return [self._one_output(member, x) for member in self.members]

    def features(self, x: jax.Array) -> jax.Array:
        """``Σ ω_n·S(D_n(x))`` for ONE input ``x``: ``f32[H, W, C]``."""
        if not self.has_features:
            raise ValueError(
                "This ensemble has no feature-space term: build it with `layers=` naming a "
                "hidden layer of at least one member; got layers=None for every member."
            )
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        total = 0.0
        for n, (member, layer) in enumerate(zip(self.members, self.layers)):
            if layer is None:
                continue
            activation = member.capture_fn(member.variables, x[None])[layer][0]
            total = total + self.feature_weights[n] * unify_features(
                activation, self.strategy, self.feature_shape
            )
        return total

    def batch(self, x: jax.Array) -> jax.Array:
        """The combined outputs of a batch ``x[b, ...]``."""
        _checks.check_batch_shape("x", jnp.shape(x), self.input_shape)
        return jax.vmap(self)(x)


def _normalized_weights(name: str, weights: Any, k: int, mask: np.ndarray | None = None):
    arr = np.ones(k) if weights is None else np.asarray(weights, np.float64)
    if arr.shape != (k,):
        raise ValueError(
            f"`{name}` must hold one weight per victim, shape ({k},); got shape {arr.shape}."
        )
    if mask is not None:
        arr = np.where(mask, arr, 0.0)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not arr.sum() > 0:
        raise ValueError(
            f"`{name}` must be finite, non-negative and sum to a positive number"
            + (" over the members with a layer" if mask is not None else "")
            + f"; got {arr.tolist()} (sum {arr.sum():.6g})."
        )
    return jnp.asarray(arr / arr.sum(), jnp.float32)


def ensemble(
    victims: Sequence[Any],
    weights: Sequence[float] | None = None,
    *,
    output: str | None = None,
    combine: str = "raw",
    layers: Sequence[str | None] | None = None,
    feature_weights: Sequence[float] | None = None,
    strategy: str = "cu_bi",
    feature_shape: Sequence[int] | None = None,
) -> Ensemble:
    """An :class:`Ensemble` of ``victims`` (module docstring), validated.

    Args:
      victims: K victims: classifiers (:class:`~jaxadv.models.Victim`), saliency models
        (:class:`~jaxadv.models.saliency.SaliencyVictim`) or dense image-to-image models (a
        ``Victim`` whose apply returns images; pass ``output="dense"``). Architectures may
        differ; input shapes, pixel bounds and the output kind must agree.
      weights: σ, one per victim, non-negative with a positive sum (normalised); default equal.
      output: ``"logits"``, ``"saliency"`` or ``"dense"``; default inferred from the victims.
      combine: ``"raw"`` or ``"density"`` for saliency maps (see the module docstring).
      layers: per victim, a hidden layer (a name of its ``layer_names``) for the feature term,
        or None to leave that victim out of it; default no feature term.
      feature_weights: ω, one per victim (those without a layer are ignored); default equal.
      strategy: a key of :data:`FEATURE_STRATEGIES`.
      feature_shape: ``(H, W, C)`` of the unified features; default the largest height and
        width and the smallest channel count among the chosen layers.

    Returns:
      The :class:`Ensemble`: its ``weights`` and ``feature_weights`` normalised ``f32[K]``,
      its input shape and bounds those of the victims.

    Raises:
      ValueError: naming the argument, what was expected and what was received, for victims
        that disagree on input shape, bounds or output kind, bad weights, unknown layer names
        (the message lists the available ones), or an unknown strategy.
    """
    victims = tuple(victims)
    if not victims:
        raise ValueError("`victims` must hold at least one victim; got an empty sequence.")
    k = len(victims)
    _checks.check_choice("combine", combine, COMBINES)
    _checks.check_choice("strategy", strategy, FEATURE_STRATEGIES)
    first = victims[0]
    for n, v in enumerate(victims[1:], 1):
        if tuple(v.input_shape) != tuple(first.input_shape):
            raise ValueError(
                f"`victims` must agree on the input shape; victim 0 takes {first.input_shape}, "
                f"victim {n} takes {v.input_shape}."
            )
        if tuple(v.bounds) != tuple(first.bounds):
            raise ValueError(
                f"`victims` must agree on the pixel bounds; victim 0 has {first.bounds}, victim "
                f"{n} has {v.bounds}."
            )
    kinds = [_member_output(v) for v in victims]
    if output is None:
        output = kinds[0]
    _checks.check_choice("output", output, OUTPUTS)
    expected = "saliency" if output == "saliency" else "logits"
    for n, kind in enumerate(kinds):
        if kind != expected:
            raise ValueError(
                f"`victims` must agree on the output kind; expected {output!r} victims, but "
                f"victim {n} is a {'saliency model' if kind == 'saliency' else 'classifier'}."
            )
    map_kind = None
    x = jax.ShapeDtypeStruct(tuple(first.input_shape), jnp.float32)
    if output == "saliency":
        map_kinds = [v.output for v in victims]
        if combine == "raw" and len(set(map_kinds)) > 1:
            raise ValueError(
                "`victims` must agree on the output kind of their maps to be summed raw; got "
                f"{map_kinds}. Pass `combine='density'` to sum them as densities."
            )
        map_kind = map_kinds[0] if combine == "raw" else "unit"
        output_shape = tuple(first.map_shape)
    else:
        if combine != "raw":
            raise ValueError(f"`combine` must be 'raw' for {output!r} victims; got {combine!r}.")
        shapes = [tuple(jax.eval_shape(v, x).shape) for v in victims]
        for n, s in enumerate(shapes):
            if s != shapes[0]:
                raise ValueError(
                    f"`victims` must agree on the output shape; victim 0 returns {shapes[0]}, "
                    f"victim {n} returns {s}."
                )
        output_shape = shapes[0]
    sigma = _normalized_weights("weights", weights, k)

    layers = (None,) * k if layers is None else tuple(layers)
    if len(layers) != k:
        raise ValueError(f"`layers` must name one layer (or None) per victim, {k}; got {layers}.")
    shapes = []
    for n, (v, layer) in enumerate(zip(victims, layers)):
        if layer is None:
            continue
        names = tuple(getattr(v, "layer_names", ()))
        if layer not in names:
            raise ValueError(
                f"`layers[{n}]` must name a hidden layer of victim {n}; got {layer!r}. "
                f"Available layers: {', '.join(names) or '(none: the victim exposes no layers)'}."
            )
        act = jax.eval_shape(lambda x, v=v, layer=layer: v.capture_fn(v.variables, x[None]), x)
        shapes.append(_as_hwc(jnp.zeros(act[layer].shape[1:])).shape)
    mask = np.array([layer is not None for layer in layers])
    if shapes:
        omega = _normalized_weights("feature_weights", feature_weights, k, mask)
        if feature_shape is None:
            feature_shape = (
                max(s[0] for s in shapes),
                max(s[1] for s in shapes),
                min(s[2] for s in shapes),
            )
        feature_shape = tuple(int(s) for s in feature_shape)
        if len(feature_shape) != 3 or min(feature_shape) < 1:
            raise ValueError(
                f"`feature_shape` must be (height, width, channels) >= 1; got {feature_shape}."
            )
        if FEATURE_STRATEGIES[strategy].channels == "average":
            feature_shape = feature_shape[:2] + (1,)
    else:
        omega = jnp.zeros((k,), jnp.float32)
        feature_shape = None
    return Ensemble(
        members=victims,
        weights=sigma,
        feature_weights=omega,
        output=output,
        combine=combine,
        map_kind=map_kind,
        input_shape=tuple(first.input_shape),
        bounds=tuple(first.bounds),
        output_shape=output_shape,
        layers=layers,
        strategy=FEATURE_STRATEGIES[strategy],
        feature_shape=feature_shape,
    )
