"""SAM: dilated VGG-16, attentive ConvLSTM and learned Gaussian priors.

Cornia, Baraldi, Serra & Cucchiara, "Predicting human eye fixations via an LSTM-based saliency
attentive model", IEEE TIP 2018 (SAM-VGG); details from marcellacornia/sam (Keras/Theano):
``dcn_vgg.py``, ``attentive_convlstm.py``, ``gaussian_prior.py`` and ``models.py``.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models.saliency._layers import (
    VGG16,
    check_input_grid,
    conv_lstm_step,
    resize_bilinear,
)

_KERAS_EPSILON = 1e-7


class AttentiveConvLSTM(nn.Module):
    """SAM's attentive ConvLSTM run for ``num_steps`` steps on the same feature map ``X``.

    Each step: ``e = V_a * tanh(W_a * H + U_a * X)``, ``A = softmax`` of ``e`` over the pixels,
    ``X~ = A ⊙ X``, then a ConvLSTM step on ``X~`` (sigmoid gates, tanh cell). All convolutions
    are 3×3 ``same``; ``V_a`` has no bias and starts at zero (uniform attention), as published.
    The four input convolutions (``W_i, W_f, W_c, W_o``) and the four recurrent ones (``U_*``)
    are each fused into one convolution with 4× the channels (gate order i, f, c, o). H and C
    start at zero. Returns the last hidden state; the last attention map is sown as
    ``attention``.

    Attributes:
      features: channels of the hidden state (512 published).
      attention_features: channels of ``W_a``/``U_a`` (512 published).
      num_steps: recurrence length T (4 published).
    """

    features: int
    attention_features: int
    num_steps: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, _ = x.shape

        def conv(features: int, name: str, **kwargs) -> nn.Conv:
            return nn.Conv(features, (3, 3), padding=1, name=name, **kwargs)

        w_a = conv(self.attention_features, "W_a")
        v_a = conv(1, "V_a", use_bias=False, kernel_init=nn.initializers.zeros)
        w_gates, u_gates = conv(4 * self.features, "W"), conv(4 * self.features, "U")
        u_a_x = conv(self.attention_features, "U_a")(x)  # X is the same at every step
        hidden = jnp.zeros((b, h, w, self.features), x.dtype)
        cell = jnp.zeros_like(hidden)
        attention = None
        for _ in range(self.num_steps):
            e = v_a(jnp.tanh(w_a(hidden) + u_a_x)).reshape(b, h * w)
            attention = jax.nn.softmax(e, axis=-1).reshape(b, h, w, 1)
            hidden, cell = conv_lstm_step(w_gates(x * attention) + u_gates(hidden), cell)
        self.sow("intermediates", "attention", attention[..., 0])
        return hidden


class SAMGaussianPriors(nn.Module):
    """``num_gaussians`` learned 2-D Gaussian maps ``[h, w, n]``, each divided by its maximum.

    SAM's ``LearningPrior``: centres and standard deviations are clipped to the published ranges
    (μx ∈ [0.25, 0.75], μy ∈ [0.35, 0.65], σx ∈ [0.1, 0.9], σy ∈ [0.2, 0.8]) on a grid where x
    runs over [0, 1] across the width and y over an interval of length h/w centred on 0.5 (the
    aspect ratio is kept). Initialised as published: centres uniform in [0.3, 0.7], standard
    deviations uniform in [0.05, 0.3] (those below a clip bound start clipped).
    """

    num_gaussians: int = 16

    @nn.compact
    def __call__(self, height: int, width: int) -> jax.Array:
        n = self.num_gaussians

        def uniform(lo, hi):
            return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, lo, hi)

        mu = self.param("mu", uniform(0.3, 0.7), (2, n))  # rows: x, y
        sigma = self.param("sigma", uniform(0.05, 0.3), (2, n))
        mu_x, mu_y = jnp.clip(mu[0], 0.25, 0.75), jnp.clip(mu[1], 0.35, 0.65)
        sigma_x, sigma_y = jnp.clip(sigma[0], 0.1, 0.9), jnp.clip(sigma[1], 0.2, 0.8)
        ratio = height / width
        ys = np.linspace((1 - ratio) / 2, (1 + ratio) / 2, height, dtype=np.float32)
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
        exponent = (xs[None, :, None] - mu_x) ** 2 / (2 * sigma_x**2 + _KERAS_EPSILON) + (
            ys[:, None, None] - mu_y
        ) ** 2 / (2 * sigma_y**2 + _KERAS_EPSILON)
        gauss = jnp.exp(-exponent) / (2 * np.pi * sigma_x * sigma_y + _KERAS_EPSILON)
        return gauss / jnp.max(gauss, axis=(0, 1))


class SAM(nn.Module):
    """SAM-VGG on ``[b, h, w, c]`` images in ``[0, 1]`` → maps ``[b, h, w]`` in [0, 1].

    Dilated VGG-16 (output stride 8) → attentive ConvLSTM → [features ⊕ 16 Gaussian priors] →
    5×5 convolution with dilation 4 and ReLU, twice (each with its own priors) → 1×1 convolution
    with ReLU → bilinear upsampling to the image size.

    Output normalisation (documented choice): the published model's post-processing divides the
    map by its maximum (its losses do too), so the map is ``m / (max(m) + 1e-7)`` per image, in
    [0, 1] and differentiable almost everywhere (the max passes its gradient to the arg-max pixel).
    A map that the ReLU head zeroes everywhere stays 0.

    Named layers: ``backbone/relu{b}_{n}``, ``attentive_lstm/attention`` (last attention map),
    ``lstm`` (last hidden state), ``learned_priors1``, ``learned_priors2`` (the dilated
    convolutions after each prior block), ``readout`` (before upsampling).

    Attributes:
      width: channels of VGG block 1 (64 published); the LSTM, attention and prior convolutions
        have ``8 * width`` (512 published).
      num_steps: ConvLSTM steps (4 published).
      num_gaussians: Gaussian priors per prior block (16 published).
    """

    width: int = 64
    num_steps: int = 4
    num_gaussians: int = 16
    output_kind: ClassVar[str] = "unit"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no batch norm or dropout
        check_input_grid("SAM", x.shape, 8, 8)
        wide = 8 * self.width
        feats = VGG16(self.width, dilated=True, name="backbone")(x)
        y = AttentiveConvLSTM(wide, wide, self.num_steps, name="attentive_lstm")(feats)
        self.sow("intermediates", "lstm", y)
        b, h, w, _ = y.shape
        for k in (1, 2):
            priors = SAMGaussianPriors(self.num_gaussians, name=f"priors{k}")(h, w)
            y = jnp.concatenate([y, jnp.broadcast_to(priors, (b, h, w, priors.shape[-1]))], -1)
            y = nn.Conv(wide, (5, 5), padding=8, kernel_dilation=4, name=f"prior_conv{k}")(y)
            y = nn.relu(y)
            self.sow("intermediates", f"learned_priors{k}", y)
        m = nn.relu(nn.Conv(1, (1, 1), name="output_conv")(y))
        self.sow("intermediates", "readout", m[..., 0])
        m = resize_bilinear(m, x.shape[1:3])[..., 0]
        return m / (jnp.max(m, axis=(1, 2), keepdims=True) + _KERAS_EPSILON)
