"""Modulated deformable convolution (DCNv2) with bilinear sampling written in JAX.

Zhu, Hu, Lin & Dai, "Deformable ConvNets v2: More deformable, better results", CVPR 2019, Eq. 3:

    y(p) = sum_k  w_k · x(p + p_k + Δp_k) · Δm_k

over the ``K = kh·kw`` taps ``p_k`` of a regular (strided, padded, dilated) grid, with learned
fractional offsets ``Δp_k`` and modulation scalars ``Δm_k ∈ [0, 1]``, both predicted per output
pixel by a convolution of the same input (its weights start at zero, so ``Δp = 0`` and
``Δm = sigmoid(0) = 0.5`` at initialisation, §3). Fractional positions are read by bilinear
interpolation in which every neighbour outside the image reads zero: the sampling rule of
torchvision's ``deform_conv2d`` and of the reference CUDA kernels.

Layouts (NHWC throughout), chosen so weights and offsets of the PyTorch implementations carry
over channel for channel:

* ``offsets``: ``[b, ho, wo, 2·G·K]`` ordered ``(group, tap, (dy, dx))`` with taps row-major
  over the kernel: torchvision's ``offset`` ``[b, 2·G·K, ho, wo]`` moved to the last axis;
* ``mask``: ``[b, ho, wo, G·K]`` ordered ``(group, tap)``;
* the offset-predicting convolution of :class:`DeformConv` has ``3·G·K`` outputs, the first
  ``2·G·K`` the offsets and the last ``G·K`` the mask logits (mmcv's
  ``ModulatedDeformConv2dPack``: ``o1, o2, m = chunk(out, 3)``, ``offset = cat(o1, o2)``).

The input channels are split into ``G`` consecutive offset groups, each sampled at its own
positions. Sampling is one vectorised gather per corner (no loop over pixels); its gradient
w.r.t. the offsets is the bilinear weights' derivative (defined everywhere but on the integer
grid, where bilinear interpolation has a kink).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum} or a pair of them; got {value!r}."
        )
    return pair  # type: ignore[return-value]


def deform_conv2d(
    x: jax.Array,
    offsets: jax.Array,
    kernel: jax.Array,
    mask: jax.Array | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> jax.Array:
    """Modulated deformable convolution (DCNv2, Zhu et al. 2019, Eq. 3), without bias.

    Args:
      x: input batch ``[b, h, w, cin]``.
      offsets: ``[b, ho, wo, 2·G·K]`` in the ``(group, tap, (dy, dx))`` order of the module
        docstring; ``G`` (the offset groups) is read from its size and must divide ``cin``.
      kernel: ``[kh, kw, cin, cout]`` (Flax's HWIO).
      mask: modulation ``[b, ho, wo, G·K]`` (DCNv2), or None for DCNv1 (all ones).
      stride: output stride, an int or ``(sy, sx)``.
      padding: zero padding of each side, an int or ``(py, px)``.
      dilation: kernel dilation, an int or ``(dy, dx)``.

    Returns:
      ``[b, ho, wo, cout]`` with ``ho = (h + 2·py - dy·(kh - 1) - 1) // sy + 1`` (same for ``wo``).

    Raises:
      ValueError: on a wrong rank, a kernel whose input channels differ from ``x``'s, offsets or
        a mask of the wrong shape, or offset groups that do not divide the channels.
    """
    stride = _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    dilation = _pair("dilation", dilation, 1)
    if x.ndim != 4:
        raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
    if kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"`kernel` must be [kh, kw, cin, cout] with cin = {x.shape[3]} (the input's "
            f"channels); got shape {tuple(kernel.shape)}."
        )
    b, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    taps = kh * kw
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"`kernel` of size {kh}x{kw} (dilation {dilation}, padding {padding}) does not fit "
            f"an input of {h}x{w}."
        )
    last = offsets.shape[-1] if offsets.ndim == 4 else 0
    if offsets.ndim != 4 or offsets.shape[:3] != (b, ho, wo) or last % (2 * taps) or last == 0:
        raise ValueError(
            f"`offsets` must have shape [b, ho, wo, 2*G*K] = [{b}, {ho}, {wo}, 2*G*{taps}] for "
            f"some number of offset groups G; got {tuple(offsets.shape)}."
        )
    groups = last // (2 * taps)
    if cin % groups:
        raise ValueError(
            f"`offsets` imply {groups} offset groups, which must divide the {cin} input channels."
        )
    if mask is not None and tuple(mask.shape) != (b, ho, wo, groups * taps):
        raise ValueError(
            f"`mask` must have shape [b, ho, wo, G*K] = {(b, ho, wo, groups * taps)}; got "
            f"{tuple(mask.shape)}."
        )
    dtype = x.dtype
    # Sampling positions [b, G, ho, wo, K] (taps row-major over the kernel).
    off = jnp.moveaxis(offsets.reshape(b, ho, wo, groups, taps, 2), 3, 1).astype(dtype)
    tap_y = jnp.repeat(jnp.arange(kh) * dilation[0], kw).astype(dtype)
    tap_x = jnp.tile(jnp.arange(kw) * dilation[1], kh).astype(dtype)
    grid_y = (jnp.arange(ho) * stride[0] - padding[0]).astype(dtype)
    grid_x = (jnp.arange(wo) * stride[1] - padding[1]).astype(dtype)
    py = grid_y[:, None, None] + tap_y + off[..., 0]
    px = grid_x[None, :, None] + tap_x + off[..., 1]
    y0 = jnp.floor(py)
    x0 = jnp.floor(px)
    ly = py - y0
    lx = px - x0
    y0 = y0.astype(jnp.int32)
    x0 = x0.astype(jnp.int32)
    # The image as [b, G, h*w, cin/G]: one gather per corner along the pixel axis.
    image = jnp.moveaxis(x.reshape(b, h * w, groups, cin // groups), 2, 1)
    sampled = jnp.zeros((b, groups, ho * wo * taps, cin // groups), dtype)
    for dy, wy in ((0, 1 - ly), (1, ly)):
        for dx, wx in ((0, 1 - lx), (1, lx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            index = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
            weight = jnp.where(inside, wy * wx, 0.0)
            values = jnp.take_along_axis(image, index.reshape(b, groups, -1, 1), axis=2)
            sampled = sampled + weight.reshape(b, groups, -1, 1) * values
    sampled = sampled.reshape(b, groups, ho, wo, taps, cin // groups)
    if mask is not None:
        sampled = sampled * jnp.moveaxis(mask.reshape(b, ho, wo, groups, taps), 3, 1)[..., None]
    # Columns [b, ho, wo, K·cin] in (tap, channel) order, the order of the flattened HWIO kernel.
    columns = jnp.transpose(sampled, (0, 2, 3, 4, 1, 5)).reshape(b, ho, wo, taps * cin)
    return columns @ kernel.reshape(taps * cin, cout).astype(dtype)


class DeformConv(nn.Module):
    """A modulated deformable convolution layer (DCNv2, Zhu et al. CVPR 2019).

    A convolution ``conv_offset`` (same kernel size, stride, padding and dilation as the layer,
    weights and bias initialised to zero as in DCNv2 §3) predicts ``3·G·K`` channels per output
    pixel: the offsets and, through a sigmoid, the modulation (layouts in the module
    docstring); :func:`deform_conv2d` then applies the layer's ``kernel`` at the shifted,
    modulated taps. At initialisation the offsets are zero and the modulation is 0.5, so the
    layer computes half of a standard convolution with the same kernel.

    Parameters: ``conv_offset/kernel``, ``conv_offset/bias``, ``kernel`` ``[k, k, cin,
    features]`` and ``bias``, the tensors of mmcv's ``ModulatedDeformConv2dPack`` (``weight``,
    ``bias``, ``conv_offset.weight``, ``conv_offset.bias``): ``jaxadv.models.from_torch_state_dict``
    converts them as it converts any convolution (OIHW → HWIO), checked in the tests against a
    direct loop.

    Attributes:
      features: output channels.
      kernel_size: square kernel side ``k``.
      stride: output stride.
      padding: zero padding per side; None for ``dilation·(k - 1) // 2`` (same size at stride 1).
      dilation: kernel dilation.
      offset_groups: ``G``, the number of channel groups with their own offsets (must divide the
        input channels; DCNv2's ``deformable_groups``).
      use_bias: add a learned bias.
      kernel_init: initialiser of ``kernel`` (Flax's ``lecun_normal`` by default, the scale of a
        standard convolution; mmcv and torchvision also draw it as for a plain convolution).
        :class:`DCNSAMVGG` passes a 4× variance to undo the initial modulation of 0.5.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | None = None
    dilation: int = 1
    offset_groups: int = 1
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for name in ("features", "kernel_size", "stride", "dilation", "offset_groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
        if x.ndim != 4:
            raise ValueError(f"`x` must be a batch [b, h, w, c]; got shape {tuple(x.shape)}.")
        if x.shape[-1] % self.offset_groups:
            raise ValueError(
                f"`offset_groups` ({self.offset_groups}) must divide the input channels "
                f"({x.shape[-1]})."
            )
        k = self.kernel_size
        pad = self.dilation * (k - 1) // 2 if self.padding is None else self.padding
        groups_taps = self.offset_groups * k * k
        predicted = nn.Conv(
            3 * groups_taps,
            (k, k),
            strides=self.stride,
            padding=((pad, pad), (pad, pad)),
            kernel_dilation=self.dilation,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="conv_offset",
        )(x)
        offsets = predicted[..., : 2 * groups_taps]
        mask = nn.sigmoid(predicted[..., 2 * groups_taps :])
        kernel = self.param(
            "kernel", self.kernel_init, (k, k, x.shape[-1], self.features)
        )
        y = deform_conv2d(
            x, offsets, kernel, mask, stride=self.stride, padding=pad, dilation=self.dilation
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y
