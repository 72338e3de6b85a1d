"""Layers shared by the saliency zoo, with the semantics of the frameworks the papers used.

Everything is NHWC on a batch. Where a published model relies on a framework's exact behaviour
(PyTorch's ``nearest`` interpolation, ``ConvTranspose2d`` arithmetic, ``AvgPool2d`` with
``count_include_pad=False``, Keras' ``same`` pooling), the function here reproduces it and says
so, so that converted weights give the published model's function.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models._layers import max_pool_2x2

# (convolutions, channel multiple of the width) per VGG-16 block (Simonyan & Zisserman 2015, D).
VGG16_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))
# The same for VGG-19 (configuration E): four convolutions in blocks 3-5.
VGG19_BLOCKS = ((2, 1), (2, 2), (4, 4), (4, 8), (4, 8))


def check_input_grid(model: str, shape: Sequence[int], multiple: int, minimum: int) -> None:
    """Raises unless ``shape`` is a batch ``[b, h, w, c]`` with ``h`` and ``w`` multiples of
    ``multiple`` and at least ``minimum``."""
    if len(shape) != 4:
        raise ValueError(f"`x` must be a batch [b, h, w, c] for {model}; got shape {tuple(shape)}.")
    h, w = shape[1:3]
    if h % multiple or w % multiple or h < minimum or w < minimum:
        raise ValueError(
            f"{model} needs image height and width that are multiples of {multiple} and at least "
            f"{minimum} (its stride-{multiple} stages must divide evenly); got {h}x{w}."
        )


def max_pool(x: jax.Array, size: int) -> jax.Array:
    """``size``×``size`` max-pool with stride ``size`` (trailing rows/columns dropped).

    A reshape and a max: its gradient is a select, not XLA's slow CPU select-and-scatter (the
    reasoning of ``jaxadv.models._layers.max_pool_2x2``, which this generalises).
    """
    if size == 2:
        return max_pool_2x2(x)
    b, h, w, c = x.shape
    x = x[:, : h - h % size, : w - w % size, :]
    return jnp.max(x.reshape(b, h // size, size, w // size, size, c), axis=(2, 4))


def max_pool_2x2_same_stride1(x: jax.Array) -> jax.Array:
    """Keras ``MaxPooling2D((2, 2), strides=(1, 1), padding="same")``: window ``[i, i+1]``.

    TensorFlow's ``same`` padding puts the single padded row/column at the end; padding with
    ``-inf`` keeps the last row/column's own maximum.
    """
    p = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-jnp.inf)
    rows = jnp.maximum(p[:, :-1], p[:, 1:])
    return jnp.maximum(rows[:, :, :-1], rows[:, :, 1:])


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2×2 mean with stride 2: the area (box) resize to half size, differentiable everywhere."""
    b, h, w, c = x.shape
    return jnp.mean(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def avg_pool_3x3_stride2(x: jax.Array) -> jax.Array:
    """PyTorch ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)`` (pix2pixHD's
    input pyramid): each window's mean over the pixels inside the image only."""
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    pads = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)
    return total / count


def upsample_repeat(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest ×``factor`` upsampling by repetition (Lasagne ``Upscale2DLayer``, Keras
    ``UpSampling2D``)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def resize_nearest(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """PyTorch ``F.interpolate(mode="nearest", size=size)``: output pixel ``i`` reads input pixel
    ``floor(i * in / out)`` (not the half-pixel rule of ``jax.image.resize``)."""
    for axis, out in ((1, int(size[0])), (2, int(size[1]))):
        n = x.shape[axis]
        if out % n == 0:  # integer upsampling: repeat (a cheap gradient, unlike a gather)
            x = jnp.repeat(x, out // n, axis=axis)
        elif n % out == 0:  # integer downsampling: every (n // out)-th pixel from the first
            x = jax.lax.slice_in_dim(x, 0, n, n // out, axis=axis)
        else:
            x = jnp.take(x, (np.arange(out) * n) // out, axis=axis)
    return x


def resize_bilinear(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """Bilinear resize with half-pixel centres and clamped edges, no antialiasing: PyTorch's
    ``F.interpolate(mode="bilinear", align_corners=False)`` (exactly so when upsampling)."""
    h, w = (int(s) for s in size)
    if (h, w) == tuple(x.shape[1:3]):
        return x
    return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), "linear", antialias=False)


def instance_norm(x: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """PyTorch ``InstanceNorm2d(affine=False)``: per example and channel, over the pixels (biased
    variance)."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + epsilon)


def spatial_log_softmax(logits: jax.Array) -> jax.Array:
    """Log-probabilities over the pixels of each map ``[b, h, w]`` (each map's logsumexp is 0)."""
    return logits - jax.nn.logsumexp(logits, axis=(1, 2), keepdims=True)


def conv_lstm_step(gates: jax.Array, cell: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One ConvLSTM update (Shi et al., NeurIPS 2015, no peepholes) from its summed gate inputs.

    ``gates`` holds ``W * X + U * H`` for the four gates in the order i, f, c, o along the last
    axis; returns ``(H', C')`` with ``C' = σ(f)·C + σ(i)·tanh(c)`` and ``H' = σ(o)·tanh(C')``.
    """
    i, f, c, o = jnp.split(gates, 4, axis=-1)
    cell = nn.sigmoid(f) * cell + nn.sigmoid(i) * jnp.tanh(c)
    return nn.sigmoid(o) * jnp.tanh(cell), cell


def gaussian_blur(x: jax.Array, sigma: jax.Array, radius: int) -> jax.Array:
    """Separable Gaussian blur of ``[b, h, w, c]`` with replicate (edge) padding.

    The kernel has the static extent ``2 * radius + 1`` (compiled shapes must be static) and
    weights ``exp(-(d / sigma)^2 / 2)`` normalised to sum 1, so ``sigma`` may be a traced, learned
    parameter.
    """
    taps = jnp.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = jnp.exp(-0.5 * jnp.square(taps / sigma))
    kernel = kernel / jnp.sum(kernel)
    c = x.shape[-1]
    x = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    for kshape in ((2 * radius + 1, 1, 1, c), (1, 2 * radius + 1, 1, c)):
        x = jax.lax.conv_general_dilated(
            x,
            jnp.broadcast_to(kernel.reshape(kshape[:2] + (1, 1)), kshape),
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=c,
        )
    return x


class TorchConvTranspose(nn.Module):
    """PyTorch ``ConvTranspose2d(in, features, k, stride, padding, output_padding)``, NHWC.

    The output has ``(n - 1) * stride - 2 * padding + k + output_padding`` rows (same for
    columns); ``output_padding`` is given per call so a decoder can match its skip connection's
    size. Computed as a stride-1 convolution of the stride-dilated input padded by
    ``k - 1 - padding`` (plus ``output_padding`` at the end) with ``kernel`` as is: this
    ``kernel`` is PyTorch's weight ``(in, out, kh, kw)`` flipped spatially and transposed to
    ``(kh, kw, in, out)`` (see ``torch_conv_transpose_to_hwio``); Flax's ``ConvTranspose`` with
    ``transpose_kernel=False`` uses the same layout.

    Attributes:
      features: output channels.
      kernel_size: square kernel side ``k``.
      stride: upsampling factor.
      padding: PyTorch's ``padding`` (removed from both ends of the full transposed output).
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, output_padding: Sequence[int] = (0, 0)) -> jax.Array:
        k = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        lo = k - 1 - self.padding
        y = jax.lax.conv_general_dilated(
            x,
            kernel,
            (1, 1),
            [(lo, lo + int(op)) for op in output_padding],
            lhs_dilation=(self.stride, self.stride),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + bias


class WeightNormConv(nn.Module):
    """3×3 (SAME) convolution with weight normalisation, ``W = g · v / ||v||`` per output channel.

    Salimans & Kingma, "Weight normalization", NeurIPS 2016 (used by SalGAN's discriminator).
    ``g`` starts at 1 (the paper's data-dependent initialisation is a training-time choice).
    """

    features: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        v = self.param("v", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        g = self.param("g", nn.initializers.ones, (self.features,))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        w = v * (g / jnp.sqrt(jnp.sum(jnp.square(v), axis=(0, 1, 2))))
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return y + b


class VGG16(nn.Module):
    """The convolutional part of VGG-16 (Simonyan & Zisserman 2015, configuration D), ReLU.

    Convolutions are named ``conv{block}_{i}`` as in the published Caffe/Lasagne models; each
    block's last activation is sown as ``intermediates/relu{block}_{n}`` (Caffe's name for it).

    Attributes:
      width: channels of block 1 (64 in the paper); blocks 2-5 have 2, 4, 8, 8 times as many.
      num_pools: 2×2 stride-2 max-pools after blocks ``1..num_pools`` (SALICON 5, SalGAN 4).
      dilated: SAM's variant (Cornia et al. 2018, §III-A): pools after blocks 1-3 only, a 2×2
        stride-1 ``same`` pool after block 4 and dilation 2 in block 5, for output stride 8.
        Overrides ``num_pools``.
      blocks: ``(convolutions, channel multiple)`` per block: VGG-16's (default),
        ``VGG19_BLOCKS``, or a prefix of either (the first blocks only).
    """

    width: int = 64
    num_pools: int = 5
    dilated: bool = False
    blocks: tuple[tuple[int, int], ...] = VGG16_BLOCKS

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for block, (convs, mult) in enumerate(self.blocks, start=1):
            dilation = 2 if self.dilated and block == 5 else 1
            for i in range(1, convs + 1):
                x = nn.Conv(
                    self.width * mult,
                    (3, 3),
                    padding=dilation,
                    kernel_dilation=dilation,
                    name=f"conv{block}_{i}",
                )(x)
                x = nn.relu(x)
            self.sow("intermediates", f"relu{block}_{convs}", x)
            if self.dilated:
                if block <= 3:
                    x = max_pool(x, 2)
                elif block == 4:
                    x = max_pool_2x2_same_stride1(x)
            elif block <= self.num_pools:
                x = max_pool(x, 2)
        return x
