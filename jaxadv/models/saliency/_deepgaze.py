"""DeepGaze II-style model: frozen features, a 1×1 readout network, centre bias, log density.

Kümmerer, Wallis, Gatys & Bethge, "Understanding low- and high-level contributions to fixation
prediction", ICCV 2017 (DeepGaze II), and Linardos, Kümmerer, Press & Bethge, "DeepGaze IIE",
ICCV 2021; details from matthias-k/DeepGaze (``deepgaze_pytorch/modules.py``, ``layers.py``,
``deepgaze2e.py``):

* the image is downsampled ×2 (nearest) before a frozen feature extractor whose hooked layers are
  nearest-resized to a common readout grid and concatenated;
* readout ("saliency network"): [LayerNorm → 1×1 conv 8 → softplus] → [LN → 16 → softplus] →
  [LN → 1 → softplus]; "fixation selection network": [LN → 128 → softplus] → [LN → 16 →
  softplus] → 1×1 conv to 1 without bias. DeepGaze's LayerNorm normalises over (C, H, W) jointly
  with per-channel scale and bias and eps 1e-12;
* finalizer: nearest-resize to the half-size centre-bias grid, Gaussian blur (learned σ,
  truncated at 3σ, replicate padding), ``+ w · log centre bias`` (learned w, starts at 1),
  nearest-resize to the image size, ``− logsumexp`` → a log density over the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models.saliency._layers import (
    check_input_grid,
    gaussian_blur,
    max_pool,
    resize_nearest,
    spatial_log_softmax,
)

FROZEN_PREFIX = "frozen_"


def gaussian_log_center_bias(height: int, width: int, sigma: float = 0.25) -> np.ndarray:
    """A log density over ``height × width`` pixels: a Gaussian centred on the image with standard
    deviations ``sigma · (height, width)`` (a stand-in for DeepGaze's empirical MIT1003 bias).

    Args:
      height: the number of pixel rows.
      width: the number of pixel columns.
      sigma: the standard deviations as fractions of the height and the width (0.25).

    Returns:
      ``float32[height, width]``, normalised so that its ``logsumexp`` is 0.
    """
    ys = (np.arange(height) - (height - 1) / 2) / (sigma * height)
    xs = (np.arange(width) - (width - 1) / 2) / (sigma * width)
    logits = -0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)
    logits -= np.log(np.sum(np.exp(logits - logits.max()))) + logits.max()
    return logits.astype(np.float32)


class ChannelLayerNorm(nn.Module):
    """DeepGaze's LayerNorm: statistics over (H, W, C) of each example, per-channel affine."""

    epsilon: float = 1e-12

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=(1, 2, 3), keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        return y * self.param("scale", nn.initializers.ones, (c,)) + self.param(
            "bias", nn.initializers.zeros, (c,)
        )


class FrozenFeatures(nn.Module):
    """The small stand-in for DeepGaze's frozen ImageNet backbone: three VGG-style blocks.

    Returns the hooked layers: block 2 (after its pool) and block 3, both at stride 4 of its input.
    """

    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        taps = []
        for block, mult in enumerate((1, 2, 4), start=1):
            for i in (1, 2):
                x = nn.Conv(self.width * mult, (3, 3), padding=1, name=f"conv{block}_{i}")(x)
                x = nn.relu(x)
            if block < 3:
                x = max_pool(x, 2)
            if block > 1:
                self.sow("intermediates", f"block{block}", x)
                taps.append(x)
        return taps


def _readout_layer(x: jax.Array, features: int, name: str, *, use_bias: bool = True):
    x = ChannelLayerNorm(name=f"{name}_layernorm")(x)
    return nn.Conv(features, (1, 1), use_bias=use_bias, name=f"{name}_conv")(x)


class DeepGazeII(nn.Module):
    """DeepGaze II-style model: images ``[b, h, w, c]`` in [0, 1] → log densities ``[b, h, w]``.

    The feature extractor is the top-level submodule ``frozen_features``: exclude it from training
    with :func:`trainable_mask` (DeepGaze never trains its backbone). The log centre bias is the
    non-trainable variable ``constants/log_center_bias`` ``[h, w]`` (a Gaussian by default, see
    :func:`gaussian_log_center_bias`; replace it with :func:`with_log_center_bias`).

    The blur kernel's extent is fixed from ``initial_sigma`` (``2·ceil(3σ)+1`` taps; compiled
    shapes must be static), while DeepGaze recomputes it from the current σ; the weights do follow
    the learned σ. Gradients reach only the pixels the ×2 nearest downsampling reads, as in the
    published model.

    Named layers: ``frozen_features/block2``, ``frozen_features/block3``, ``readout_input``,
    ``saliency_network``, ``fixation_selection`` (the map before the finalizer).

    Attributes:
      width: channels of the feature extractor's first block.
      readout_factor: stride of the readout grid relative to the half-size image (16 published
        for backbones of stride 32; 4 matches this small backbone).
      initial_sigma: initial blur σ in pixels of the half-size map (8 published, for ~1024-pixel
        images).
      center_bias_sigma: width of the default Gaussian centre bias, as a fraction of each side.
    """

    width: int = 16
    readout_factor: int = 4
    initial_sigma: float = 8.0
    center_bias_sigma: float = 0.25
    output_kind: ClassVar[str] = "log_density"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("DeepGazeII", x.shape, 2 * self.readout_factor, 2 * self.readout_factor)
        h, w = x.shape[1:3]
        log_cb = self.variable(
            "constants",
            "log_center_bias",
            lambda: jnp.asarray(gaussian_log_center_bias(h, w, self.center_bias_sigma)),
        ).value
        if log_cb.shape != (h, w):
            raise ValueError(
                f"The DeepGazeII variables hold a centre bias of shape {log_cb.shape} but the "
                f"images are {h}x{w}; initialise the model (or `with_log_center_bias`) for them."
            )
        half = resize_nearest(x, (h // 2, w // 2))
        grid = (math.ceil(h / 2 / self.readout_factor), math.ceil(w / 2 / self.readout_factor))
        taps = FrozenFeatures(self.width, name="frozen_features")(half)
        y = jnp.concatenate([resize_nearest(t, grid) for t in taps], axis=-1)
        self.sow("intermediates", "readout_input", y)
        for k, features in enumerate((8, 16, 1)):
            y = nn.softplus(_readout_layer(y, features, f"saliency{k}"))
        self.sow("intermediates", "saliency_network", y[..., 0])
        y = nn.softplus(_readout_layer(y, 128, "selection0"))
        y = nn.softplus(_readout_layer(y, 16, "selection1"))
        y = nn.Conv(1, (1, 1), use_bias=False, name="selection2_conv")(y)
        self.sow("intermediates", "fixation_selection", y[..., 0])
        # Finalizer (DeepGaze's saliency_map_factor 2: blur and centre bias at half size).
        small_cb = resize_nearest(log_cb[None, :, :, None], (h // 2, w // 2))
        y = resize_nearest(y, small_cb.shape[1:3])
        sigma = self.param("sigma", nn.initializers.constant(self.initial_sigma), ())
        y = gaussian_blur(y, sigma, max(1, math.ceil(3 * self.initial_sigma)))
        weight = self.param("center_bias_weight", nn.initializers.ones, ())
        y = resize_nearest(y + weight * small_cb, (h, w))[..., 0]
        return spatial_log_softmax(y)


def trainable_mask(params: Mapping[str, Any]) -> Any:
    """A pytree of bools like ``params``: False under every top-level ``frozen_*`` submodule.

    For ``optax.masked(tx, trainable_mask(params))`` (or ``optax.multi_transform``): DeepGaze's
    feature extractor (``frozen_features``) is not trained.

    Args:
      params: a Flax params dict (``variables["params"]``).

    Returns:
      A dict with ``params``'s top-level keys; each value is ``params``'s subtree with every leaf
      replaced by ``False`` if the key starts with ``frozen_``, else ``True``.

    Raises:
      ValueError: if ``params`` is not a mapping.
    """
    if not isinstance(params, Mapping):
        raise ValueError(
            "`params` must be a Flax params dict (variables['params']); got "
            f"{type(params).__name__}."
        )
    return {
        name: jax.tree.map(lambda _, keep=not name.startswith(FROZEN_PREFIX): keep, subtree)
        for name, subtree in params.items()
    }


def with_log_center_bias(variables: Mapping[str, Any], log_center_bias: Any) -> dict[str, Any]:
    """A copy of DeepGazeII ``variables`` whose centre bias is ``log_center_bias`` ``[h, w]``.

    The array is a log density up to a constant (e.g. ``log`` of an empirical fixation histogram
    plus a small floor); it is normalised so that its ``logsumexp`` is 0.

    Args:
      variables: DeepGazeII variables with ``constants/log_center_bias``; not modified.
      log_center_bias: ``[h, w]`` array-like of finite log densities, the shape of the old bias
        (the images' height and width).

    Returns:
      A shallow copy of ``variables`` whose ``constants`` hold the normalised bias as
      ``float32``; the other collections are shared with ``variables``.

    Raises:
      ValueError: if ``variables`` has no ``constants/log_center_bias``, or the array has another
        shape or non-finite entries.
    """
    old = (
        variables.get("constants", {}).get("log_center_bias")
        if isinstance(variables, Mapping)
        else None
    )
    if old is None:
        raise ValueError(
            "`variables` must be DeepGazeII variables with constants/log_center_bias; got "
            f"{type(variables).__name__}"
            + (f" with keys {sorted(variables)}." if isinstance(variables, Mapping) else ".")
        )
    new = np.asarray(log_center_bias, dtype=np.float64)
    if new.shape != tuple(old.shape):
        raise ValueError(
            f"`log_center_bias` must have shape {tuple(old.shape)} (the images' height and width); "
            f"got {new.shape}."
        )
    if not np.all(np.isfinite(new)):
        raise ValueError("`log_center_bias` must be finite (floor the density before the log).")
    new = new - (np.log(np.sum(np.exp(new - new.max()))) + new.max())
    out = dict(variables)
    out["constants"] = {**variables["constants"], "log_center_bias": jnp.asarray(new, jnp.float32)}
    return out
