"""Attention modules of the saliency library: squeeze-and-excitation (channels) and pyramid
spatial attention (positions), NHWC.

* Hu, Shen & Sun, "Squeeze-and-excitation networks", CVPR 2018, Eqs. 2-4: each channel is
  rescaled by ``s = sigmoid(W2 · relu(W1 · z))``, where ``z`` is the channel's mean over the
  pixels (the squeeze) and ``W1`` reduces the channels by the ratio ``r`` (16 in the paper).
* Wang, Zhao, Shen, Hoi & Borji, "Salient object detection with pyramid attention and salient
  edges" (PAGE-Net), CVPR 2019, §3.1: the feature map ``X`` is average-pooled to a pyramid of
  scales; at each scale ``n`` a 1×1 convolution gives one logit per position and a softmax over
  the positions gives the importance map ``l^n``; the maps are upsampled to the full grid and
  averaged into ``L``, which re-weights ``X`` in residual form, ``X' = (1 + L) ⊙ X``, so that
  the attention can only emphasise positions, never erase the features. (PAGE-Net is not
  among the project's stored papers: this is our reading of its §3.1, and the hand-computed
  test checks the module against this definition, not against PAGE-Net's code.)

* Softmax spatial attention (the "Softmax Spatial Attention" of SAM, Cornia et al. IEEE TIP
  2018, §III-B, and of CSC-Net in the library below): a 1×1 convolution gives one logit per
  position, a softmax over the positions gives ``A`` (summing to 1), and the features are
  re-weighted by ``h·w·A``, i.e. by ``A`` relative to the uniform map: a constant logit map
  leaves the features unchanged.

Table 2 of Che et al.'s robustness study (``shared/papers/000``, "Code repository of victim
models") lists "Squeeze-and-Excitation & Pyramid Spatial Attention" for its DCN models; the
modules here are the published definitions above, since that code is not available.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models.saliency._layers import upsample_repeat


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. CVPR 2018): ``x · sigmoid(fc2(relu(fc1(mean(x)))))``.

    ``fc1`` and ``fc2`` are 1×1 convolutions on the pooled ``[b, 1, 1, c]`` vector (named as in
    torchvision's ``ops.SqueezeExcitation``, whose ``fc1.weight``/``fc2.weight`` convert by the
    usual OIHW → HWIO transpose).

    Attributes:
      reduction: the ratio ``r``; ``fc1`` has ``max(1, c // r)`` outputs.
    """

    reduction: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if isinstance(self.reduction, bool) or not isinstance(self.reduction, int):
            raise ValueError(f"`reduction` must be an integer >= 1; got {self.reduction!r}.")
        if self.reduction < 1:
            raise ValueError(f"`reduction` must be an integer >= 1; got {self.reduction!r}.")
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
        c = x.shape[-1]
        z = jnp.mean(x, axis=(1, 2), keepdims=True)
        z = nn.relu(nn.Conv(max(1, c // self.reduction), (1, 1), name="fc1")(z))
        return x * nn.sigmoid(nn.Conv(c, (1, 1), name="fc2")(z))


class PyramidSpatialAttention(nn.Module):
    """Pyramid spatial attention (PAGE-Net, Wang et al. CVPR 2019, §3.1): ``(1 + L) ⊙ x``.

    For each scale ``s`` in ``scales``: ``x`` average-pooled by ``s×s``, a 1×1 convolution
    ``attention{s}`` to one logit per position, a softmax over the pooled positions, and
    nearest upsampling by ``s`` (each pooled cell's weight copied to its ``s×s`` pixels); ``L``
    is the mean of these maps over the scales. The map ``L`` is sown as
    ``intermediates/attention``.

    Attributes:
      scales: pooling factors of the pyramid (the feature map's height and width must be
        multiples of each).
    """

    scales: Sequence[int] = (1, 2, 4)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scales = tuple(self.scales)
        if not scales or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales
        ):
            raise ValueError(
                f"`scales` must be a non-empty sequence of integers >= 1; got {scales!r}."
            )
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
        b, h, w, c = x.shape
        if any(h % s or w % s for s in scales):
            raise ValueError(
                f"`scales` {scales} must each divide the feature map's height and width; got "
                f"{h}x{w}."
            )
        maps = []
        for s in scales:
            pooled = jnp.mean(x.reshape(b, h // s, s, w // s, s, c), axis=(2, 4))
            logits = nn.Conv(1, (1, 1), name=f"attention{s}")(pooled)[..., 0]
            weights = jax.nn.softmax(logits.reshape(b, -1), axis=-1).reshape(b, h // s, w // s)
            maps.append(upsample_repeat(weights[..., None], s) if s > 1 else weights[..., None])
        attention = sum(maps) / len(maps)
        self.sow("intermediates", "attention", attention[..., 0])
        return (1.0 + attention) * x


class SoftmaxSpatialAttention(nn.Module):
    """Softmax spatial attention: ``x · (h·w·A)`` with ``A = softmax`` over the ``h·w`` positions
    of a 1×1 convolution ``logits`` of ``x`` (no bias: a softmax ignores a constant).

    The rescaling by ``h·w`` makes a uniform attention (constant logits, e.g. a zero kernel) the
    identity, so the module can only move the features' weight between positions. ``A`` is sown
    as ``intermediates/attention`` (``[b, h, w]``, each map summing to 1).

    Attributes:
      name: the Flax module name; the 1×1 kernel lives under ``{name}/logits``. The module has
        no settings of its own: the logits' width is fixed (one channel).
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
        b, h, w, _ = x.shape
        logits = nn.Conv(1, (1, 1), use_bias=False, name="logits")(x)[..., 0]
        attention = jax.nn.softmax(logits.reshape(b, h * w), axis=-1).reshape(b, h, w)
        self.sow("intermediates", "attention", attention)
        return x * (h * w) * attention[..., None]
