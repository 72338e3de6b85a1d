"""Layers shared by the victims, written in the form that is fast on every backend."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2×2 max-pool with stride 2 on ``[batch, h, w, c]`` (odd trailing rows/columns dropped).

    Written as a reshape and a max instead of ``flax.linen.max_pool``: the same values, but its
    gradient is a cheap select instead of XLA's select-and-scatter, which runs as a slow scatter on
    CPU (1.5–1.6× the cost of the whole PGD step on the C&W net, measured on a 2-core CPU).

    Args:
      x: ``[batch, h, w, c]`` feature maps.

    Returns:
      ``[batch, h // 2, w // 2, c]``, the maximum of each 2×2 block, in ``x``'s dtype.
    """
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    x = x.reshape(b, h // 2, 2, w // 2, 2, c)
    return jnp.max(x, axis=(2, 4))


# -- a convolution whose input gradient is one matmul ---------------------------------------------

_NHWC = ("NHWC", "HWIO", "NHWC")
INPUT_GRAD_FORMS = ("autodiff", "matmul")


def _conv_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=_NHWC)


def _im2col(x: jax.Array, kh: int, kw: int) -> jax.Array:
    """``[b, h, w, c] -> [b, h-kh+1, w-kw+1, kh*kw*c]``: each output pixel's receptive field, taps
    in HWI order (so that ``_im2col(x) @ kernel.reshape(-1, features)`` is the VALID convolution).

    Each tap is cut from its own copy of ``x`` (a broadcast, free in the forward pass) so that the
    transpose JAX derives, the col2im of the input gradient, ends in one sum over the copies: a
    reduction, which XLA computes once into one buffer. Cut from ``x`` itself, the col2im is an
    add of ``kh·kw`` padded taps, which XLA CPU fuses into the gradient's consumer when it has one
    (a hand-written loop) but, when it has two (jaxadv's step rule and its zero-gradient check),
    writes out as ``kh·kw`` image-sized buffers and adds up twice: on the C&W net's 10-step
    PGD-ℓ∞ at batch 128, 140 against 80 MB of XLA temporaries and 6% of the attack's time
    (``benchmarks/README.md``, issue 19)."""
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    copies = jnp.broadcast_to(x, (kh * kw, *x.shape))
    taps = [copies[i * kw + j, :, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(taps, axis=-1)


@jax.custom_jvp
def conv_matmul_input_grad(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A VALID stride-1 convolution (NHWC input, HWIO kernel) whose input gradient is one matmul.

    The value is ``lax.conv_general_dilated``'s. Only the derivative is written differently: its
    tangent in ``x`` is ``im2col(ẋ) @ K`` (``K`` the kernel as a ``[kh·kw·c, features]`` matrix),
    whose transpose, the input gradient, is ``g @ Kᵀ`` followed by the shifted adds that undo the
    im2col (col2im). XLA CPU runs the autodiff form of that gradient (a convolution with 3 output
    channels for an RGB input) slowly: on the C&W CIFAR-10 net's first layer (3→32 channels,
    batch 128, 2-core x86, jax 0.10.2) the input gradient took 48 ms as XLA's convolution and 12 ms
    as matmul + col2im; the layers with 32 or 64 input channels gain nothing from it
    (``benchmarks/conv_forms.py``, ``benchmarks/README.md``). The tangent in ``kernel`` stays the
    plain convolution (its transpose is XLA's kernel gradient). Being a ``custom_jvp``, forward
    mode and higher derivatives work as for the plain convolution.
    """
    return _conv_valid(x, kernel)


def _conv_matmul_jvp(primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    y = _conv_valid(x, kernel)
    kh, kw, c, f = kernel.shape
    dy = jnp.zeros_like(y)
    if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
        dy = dy + jnp.dot(_im2col(dx, kh, kw), kernel.reshape(kh * kw * c, f))
    if not isinstance(dkernel, jax.custom_derivatives.SymbolicZero):
        dy = dy + _conv_valid(x, dkernel)
    return y, dy


conv_matmul_input_grad.defjvp(_conv_matmul_jvp, symbolic_zeros=True)


def _explicit_pads(padding, spatial: tuple[int, int], kernel_size: tuple[int, int]):
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME"):
            raise ValueError(
                f"`padding` must be 'VALID', 'SAME', an int or ((lo, hi), (lo, hi)); got {padding!r}"
            )
        return [tuple(p) for p in jax.lax.padtype_to_pads(spatial, kernel_size, (1, 1), padding)]
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    pads = [tuple(int(p) for p in pair) for pair in padding]
    if len(pads) != 2 or any(len(pair) != 2 for pair in pads):
        raise ValueError(f"`padding` must be ((lo, hi), (lo, hi)) for 2-D; got {padding!r}")
    return pads


class Conv2D(nn.Module):
    """``flax.linen.Conv(features, kernel_size, padding=...)`` (2-D, NHWC, stride 1) with a choice of
    how its input gradient is computed.

    The parameters are ``nn.Conv``'s (``kernel`` HWIO, LeCun-normal; ``bias`` zeros; the same names,
    shapes and, for the same key, values), so checkpoints load either way, and the outputs are
    ``nn.Conv``'s. ``input_grad="autodiff"`` differentiates XLA's convolution as ``nn.Conv`` does;
    ``"matmul"`` computes the input gradient as one matmul and a col2im
    (:func:`conv_matmul_input_grad`), faster on CPU for a layer with few input channels.

    Attributes:
      features: output channels.
      kernel_size: ``(kh, kw)``.
      padding: ``"VALID"``, ``"SAME"``, an int, or ``((lo, hi), (lo, hi))``.
      use_bias: add a learned bias.
      input_grad: ``"autodiff"`` or ``"matmul"``.
    """

    features: int
    kernel_size: tuple[int, int]
    padding: str | int | tuple = "VALID"
    use_bias: bool = True
    input_grad: str = "autodiff"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.input_grad not in INPUT_GRAD_FORMS:
            raise ValueError(
                f"`input_grad` must be one of {INPUT_GRAD_FORMS}; got {self.input_grad!r}"
            )
        if x.ndim != 4:
            raise ValueError(f"`x` must be [batch, h, w, c]; got shape {x.shape}")
        kernel_size = tuple(int(k) for k in self.kernel_size)
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (*kernel_size, x.shape[-1], self.features)
        )
        pads = _explicit_pads(self.padding, x.shape[1:3], kernel_size)
        if self.input_grad == "autodiff":
            y = jax.lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=_NHWC)
        else:
            if any(p != (0, 0) for p in pads):
                x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
            y = conv_matmul_input_grad(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y
