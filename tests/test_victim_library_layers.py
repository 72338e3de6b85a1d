"""Issue 18's victim-library layers: modulated deformable convolution (DCNv2), squeeze-and-
excitation, pyramid spatial attention, and the DenseSal converter, each against an independent
reference (a standard convolution, direct numpy loops, central finite differences, hand
computations, a numpy NCHW forward pass of torchvision's DenseNet)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models.saliency import (
    DCNSal,
    DeformConv,
    DenseSal,
    PyramidSpatialAttention,
    SqueezeExcitation,
    deform_conv2d,
    densesal_from_torch_state_dict,
)

_DN = ("NHWC", "HWIO", "NHWC")
# Each check is one small jitted program compiled at XLA optimisation level 0 (an eager call
# compiles every operation separately: seconds per test on the 2-core CPU).
_FAST = {"xla_backend_optimization_level": 0}
_deform = jax.jit(
    deform_conv2d, static_argnames=("stride", "padding", "dilation"), compiler_options=_FAST
)


def _jit(f):
    return jax.jit(f, compiler_options=_FAST)


def _conv(x, kernel, stride, padding, dilation):
    pads = [(padding, padding)] * 2
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), pads, rhs_dilation=(dilation, dilation), dimension_numbers=_DN
    )


# ---------------------------------------------------------------------------------------------
# DCNv2


def _bilinear_zero(img, y, x):
    """torchvision's ``bilinear_interpolate`` for one channel plane: 0 outside (-1, h) × (-1, w),
    each of the four neighbours outside the image reads 0."""
    h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ly, lx = y - y0, x - x0
    total = 0.0
    for yi, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xi, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yi < h and 0 <= xi < w:
                total += wy * wx * img[yi, xi]
    return total


def _deform_loop(x, offsets, mask, kernel, stride, padding, dilation):
    """DCNv2 (Zhu et al. 2019, Eq. 3) by direct loops, offsets in the (group, tap, (dy, dx))
    layout, channels split into consecutive offset groups."""
    b, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    ho, wo = offsets.shape[1:3]
    groups = offsets.shape[-1] // (2 * kh * kw)
    per_group = cin // groups
    out = np.zeros((b, ho, wo, cout))
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                for ky in range(kh):
                    for kx in range(kw):
                        t = ky * kw + kx
                        for c in range(cin):
                            g = c // per_group
                            dy = offsets[n, i, j, 2 * (g * kh * kw + t)]
                            dx = offsets[n, i, j, 2 * (g * kh * kw + t) + 1]
                            py = i * stride - padding + ky * dilation + dy
                            px = j * stride - padding + kx * dilation + dx
                            v = _bilinear_zero(x[n, :, :, c], py, px)
                            v *= mask[n, i, j, g * kh * kw + t]
                            out[n, i, j] += v * kernel[ky, kx, c]
    return out


def test_deform_conv_with_zero_offsets_and_unit_mask_is_a_convolution():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 7, 6, 4)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, 4, 5)), jnp.float32)
    for stride, padding, dilation, groups in ((1, 1, 1, 1), (2, 2, 2, 2)):
        want = _conv(x, kernel, stride, padding, dilation)
        ho, wo = want.shape[1:3]
        offsets = jnp.zeros((2, ho, wo, 2 * groups * 9))
        mask = jnp.ones((2, ho, wo, groups * 9))
        got = _deform(x, offsets, kernel, mask, stride=stride, padding=padding, dilation=dilation)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # DCNv1 (no mask) is the same at unit modulation.
    got = _deform(x, offsets, kernel, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_deform_conv_module_starts_as_half_a_convolution():
    # DCNv2 §3: the offset convolution starts at zero, so offsets 0 and modulation sigmoid(0).
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 6, 5, 4)), jnp.float32)
    layer = DeformConv(3, 3, offset_groups=2)
    params = jax.jit(layer.init, compiler_options=_FAST)(jax.random.key(0), x)["params"]
    assert (
        not np.any(params["conv_offset"]["kernel"])
        and params["conv_offset"]["kernel"].shape[-1] == 3 * 2 * 9
    )
    params = {**params, "bias": jnp.arange(3.0)}
    want = 0.5 * _conv(x, params["kernel"], 1, 1, 1) + jnp.arange(3.0)
    np.testing.assert_allclose(_jit(layer.apply)({"params": params}, x), want, rtol=1e-5, atol=1e-5)


def test_deform_conv_matches_direct_loop_with_random_offsets_and_masks():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 6, 4))
    kernel = rng.normal(size=(3, 3, 4, 3))
    stride, padding, dilation, groups = 2, 2, 2, 2
    ho, wo = 3, 3  # (5 + 4 - 4 - 1) // 2 + 1 and (6 + 4 - 4 - 1) // 2 + 1
    # Offsets up to ±3 px: many taps land partly or wholly outside the 5×6 image.
    offsets = rng.uniform(-3, 3, size=(2, ho, wo, 2 * groups * 9))
    mask = rng.uniform(0, 1, size=(2, ho, wo, groups * 9))
    want = _deform_loop(x, offsets, mask, kernel, stride, padding, dilation)
    got = _deform(
        *(jnp.asarray(a, jnp.float32) for a in (x, offsets, kernel, mask)),
        stride=stride,
        padding=padding,
        dilation=dilation,
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_deform_conv_samples_outside_the_image_read_zero():
    x = jnp.ones((1, 4, 4, 1))
    kernel = jnp.ones((1, 1, 1, 1))
    offsets = np.zeros((1, 4, 4, 2), np.float32)
    offsets[0, 0, 0] = (-1.0, 0.0)  # exactly one row above: 0
    offsets[0, 0, 1] = (-0.25, 0.0)  # a quarter row above: 3/4 of the border pixel
    offsets[0, 3, 3] = (0.0, 0.5)  # half a column right of the last one: 1/2
    offsets[0, 1, 1] = (-10.0, 7.0)  # far away: 0
    got = np.asarray(_deform(x, jnp.asarray(offsets), kernel))[0, ..., 0]
    want = np.ones((4, 4))
    want[0, 0], want[0, 1], want[3, 3], want[1, 1] = 0.0, 0.75, 0.5, 0.0
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_deform_conv_offset_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(1, 5, 5, 2)))
        kernel = jnp.asarray(rng.normal(size=(3, 3, 2, 2)))
        # Fractional offsets away from the integer grid (where bilinear sampling has kinks).
        offsets = jnp.asarray(
            rng.integers(-2, 2, size=(1, 3, 3, 18)) + rng.uniform(0.2, 0.8, size=(1, 3, 3, 18))
        )
        mask = jnp.asarray(rng.uniform(0, 1, size=(1, 3, 3, 9)))
        weights = jnp.asarray(rng.normal(size=(1, 3, 3, 2)))

        def loss(o, m):
            return jnp.sum(weights * deform_conv2d(x, o, kernel, m))

        g_off, g_mask = _jit(jax.grad(loss, argnums=(0, 1)))(offsets, mask)
        loss = _jit(loss)
        eps = 1e-6
        for idx in [(0, 0, 0, 0), (0, 1, 2, 5), (0, 2, 1, 17), (0, 0, 2, 8)]:
            e = jnp.zeros_like(offsets).at[idx].set(eps)
            fd = (loss(offsets + e, mask) - loss(offsets - e, mask)) / (2 * eps)
            np.testing.assert_allclose(g_off[idx], fd, rtol=1e-6, atol=1e-8)
        for idx in [(0, 0, 0, 0), (0, 2, 2, 8)]:
            e = jnp.zeros_like(mask).at[idx].set(eps)
            fd = (loss(offsets, mask + e) - loss(offsets, mask - e)) / (2 * eps)
            np.testing.assert_allclose(g_mask[idx], fd, rtol=1e-6, atol=1e-8)


def test_deform_conv_bad_input():
    x = jnp.zeros((1, 5, 5, 4))
    kernel = jnp.zeros((3, 3, 4, 2))
    with pytest.raises(ValueError, match="`kernel` must be .* cin = 4"):
        deform_conv2d(x, jnp.zeros((1, 3, 3, 18)), jnp.zeros((3, 3, 3, 2)))
    with pytest.raises(ValueError, match="`offsets` must have shape"):
        deform_conv2d(x, jnp.zeros((1, 3, 3, 17)), kernel)
    with pytest.raises(ValueError, match="3 offset groups, which must divide the 4"):
        deform_conv2d(x, jnp.zeros((1, 3, 3, 54)), kernel)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        deform_conv2d(x, jnp.zeros((1, 3, 3, 18)), kernel, jnp.zeros((1, 3, 3, 18)))
    with pytest.raises(ValueError, match="`stride` must be an integer >= 1"):
        deform_conv2d(x, jnp.zeros((1, 3, 3, 18)), kernel, stride=0)
    with pytest.raises(ValueError, match="`x` must be a batch"):
        deform_conv2d(x[0], jnp.zeros((1, 3, 3, 18)), kernel)
    with pytest.raises(ValueError, match="`offset_groups` \\(3\\) must divide the input channels"):
        DeformConv(2, offset_groups=3).init(jax.random.key(0), x)


# ---------------------------------------------------------------------------------------------
# Attention


def test_squeeze_excitation_matches_hand_computation():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4, 8))
    se = SqueezeExcitation(reduction=4)
    abstract = jax.eval_shape(se.init, jax.random.key(0), jnp.zeros(x.shape))
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), abstract)
    got = _jit(se.apply)(params, jnp.asarray(x, jnp.float32))
    p = params["params"]
    w1, b1 = np.asarray(p["fc1"]["kernel"])[0, 0], np.asarray(p["fc1"]["bias"])
    w2, b2 = np.asarray(p["fc2"]["kernel"])[0, 0], np.asarray(p["fc2"]["bias"])
    assert w1.shape == (8, 2)  # c // r hidden units
    for n in range(2):
        z = x[n].mean(axis=(0, 1))  # squeeze (Hu et al. Eq. 2)
        s = 1 / (1 + np.exp(-(np.maximum(z @ w1 + b1, 0) @ w2 + b2)))  # excitation (Eq. 3)
        np.testing.assert_allclose(got[n], x[n] * s, rtol=1e-5, atol=1e-5)  # scale (Eq. 4)


def test_pyramid_spatial_attention_matches_hand_computation():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 4, 4, 3))
    psa = PyramidSpatialAttention(scales=(1, 2))
    abstract = jax.eval_shape(psa.init, jax.random.key(0), jnp.zeros(x.shape))
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), abstract)
    got, state = _jit(lambda p, x: psa.apply(p, x, mutable=["intermediates"]))(
        params, jnp.asarray(x, jnp.float32)
    )
    p = params["params"]
    maps = []
    for s in (1, 2):
        w, b = (
            np.asarray(p[f"attention{s}"]["kernel"])[0, 0, :, 0],
            float(p[f"attention{s}"]["bias"][0]),
        )
        pooled = x[0].reshape(4 // s, s, 4 // s, s, 3).mean(axis=(1, 3))
        logits = pooled @ w + b
        soft = np.exp(logits - logits.max())
        soft /= soft.sum()  # a softmax over the positions of this scale
        maps.append(np.kron(soft, np.ones((s, s))))  # each cell's weight on its s×s pixels
    attention = (maps[0] + maps[1]) / 2
    np.testing.assert_allclose(state["intermediates"]["attention"][0][0], attention, rtol=1e-5)
    np.testing.assert_allclose(got[0], (1 + attention[..., None]) * x[0], rtol=1e-5, atol=1e-6)


def test_attention_bad_input():
    with pytest.raises(ValueError, match="`scales` \\(1, 3\\) must each divide"):
        PyramidSpatialAttention(scales=(1, 3)).init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="`scales` must be a non-empty"):
        PyramidSpatialAttention(scales=()).init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="`reduction` must be an integer >= 1"):
        SqueezeExcitation(reduction=0).init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="`x` must be a batch"):
        SqueezeExcitation().init(jax.random.key(0), jnp.zeros((4, 4, 2)))
    with pytest.raises(
        ValueError, match="DCNSal needs image height and width that are multiples of 16"
    ):
        jax.eval_shape(DCNSal(width=2).init, jax.random.key(0), jnp.zeros((1, 24, 32, 3)))


# ---------------------------------------------------------------------------------------------
# DenseSal: torchvision names -> Flax, against a numpy NCHW forward pass


def _np_conv(x, w, stride=1, pad=0):
    """PyTorch Conv2d (no bias) on NCHW numpy arrays, OIHW weights."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, kh, kw = w.shape
    ho = (xp.shape[2] - kh) // stride + 1
    wo = (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out


def _np_bn(x, sd, prefix):
    scale = sd[prefix + ".weight"] / np.sqrt(sd[prefix + ".running_var"] + 1e-5)
    shift = sd[prefix + ".bias"] - sd[prefix + ".running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def _np_bilinear(x, size):
    """F.interpolate(mode="bilinear", align_corners=False) on NCHW."""
    for axis, out in ((2, size[0]), (3, size[1])):
        n = x.shape[axis]
        src = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        t = src - lo
        shape = [1, 1, 1, 1]
        shape[axis] = out
        t = t.reshape(shape)
        x = np.take(x, lo, axis=axis) * (1 - t) + np.take(x, hi, axis=axis) * t
    return x


def _np_densesal(sd, images, block_config):
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    x = images.transpose(0, 3, 1, 2).astype(np.float64)
    y = relu(_np_bn(_np_conv(x, sd["features.conv0.weight"], 2, 3), sd, "features.norm0"))
    y = np.pad(y, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ho, wo = (y.shape[2] - 3) // 2 + 1, (y.shape[3] - 3) // 2 + 1
    y = np.max(
        [y[:, :, i : i + 2 * ho : 2, j : j + 2 * wo : 2] for i in range(3) for j in range(3)],
        axis=0,
    )
    for i, layers in enumerate(block_config, start=1):
        for j in range(1, layers + 1):
            p = f"features.denseblock{i}.denselayer{j}."
            z = _np_conv(relu(_np_bn(y, sd, p + "norm1")), sd[p + "conv1.weight"])
            z = _np_conv(relu(_np_bn(z, sd, p + "norm2")), sd[p + "conv2.weight"], 1, 1)
            y = np.concatenate([y, z], axis=1)
        if i < len(block_config):
            p = f"features.transition{i}."
            y = _np_conv(relu(_np_bn(y, sd, p + "norm")), sd[p + "conv.weight"])
            b, c, h, w = y.shape
            y = y.reshape(b, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    y = relu(_np_bn(y, sd, "features.norm5"))
    y = relu(_np_conv(y, sd["readout1.weight"]) + sd["readout1.bias"][None, :, None, None])
    y = _np_conv(y, sd["readout2.weight"]) + sd["readout2.bias"][None, :, None, None]
    y = _np_bilinear(y, images.shape[1:3])
    return 1 / (1 + np.exp(-y[:, 0]))


def _torch_state_dict(module, shape, rng):
    """A random state dict in torchvision's layout for ``module`` (OIHW convolutions, batch norm
    with running statistics), plus an ImageNet classifier the converter must ignore."""
    from jaxadv.models._checkpoint import abstract_variables

    abstract = abstract_variables(module, shape)
    sd = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract["params"])[0]:
        keys = [k.key for k in path]
        prefix, name = ".".join(keys[:-1]), keys[-1]
        if name == "kernel":
            kh, kw, cin, cout = leaf.shape
            sd[prefix + ".weight"] = rng.normal(
                0, np.sqrt(2 / (kh * kw * cin)), (cout, cin, kh, kw)
            )
        elif name == "scale":
            sd[prefix + ".weight"] = rng.uniform(0.5, 1.5, leaf.shape)
        else:
            sd[prefix + ".bias"] = rng.normal(0, 0.1, leaf.shape)
    for path, leaf in jax.tree_util.tree_flatten_with_path(abstract["batch_stats"])[0]:
        keys = [k.key for k in path]
        prefix = ".".join(keys[:-1])
        if keys[-1] == "mean":
            sd[prefix + ".running_mean"] = rng.normal(0, 0.1, leaf.shape)
            sd[prefix + ".num_batches_tracked"] = np.array(7)
        else:
            sd[prefix + ".running_var"] = rng.uniform(0.5, 1.5, leaf.shape)
    sd["classifier.weight"] = rng.normal(size=(10, 4))
    sd["classifier.bias"] = rng.normal(size=(10,))
    return {k: v.astype(np.float32) for k, v in sd.items()}


def test_densesal_converter_round_trip():
    block_config = (2, 1)
    module = DenseSal(width=4, block_config=block_config, readout_width=3)
    shape = (16, 16, 3)
    rng = np.random.default_rng(6)
    sd = _torch_state_dict(module, shape, rng)
    assert "features.denseblock1.denselayer2.conv2.weight" in sd  # torchvision's names
    variables = densesal_from_torch_state_dict(sd, module, shape)
    images = rng.random((2,) + shape).astype(np.float32)
    apply = _jit(module.apply)
    got = apply(variables, images)
    want = _np_densesal(sd, images, block_config)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    # A backbone-only (ImageNet) state dict with the readout taken from given variables.
    backbone_only = {k: v for k, v in sd.items() if not k.startswith("readout")}
    readout = {
        "params": {**variables["params"], "features": None},
        "batch_stats": {"features": None},
    }
    again = densesal_from_torch_state_dict(backbone_only, module, shape, readout=readout)
    np.testing.assert_array_equal(apply(again, images), got)

    with pytest.raises(ValueError, match="missing entries: readout1"):
        densesal_from_torch_state_dict(backbone_only, module, shape)
    with pytest.raises(ValueError, match="`module` must be a DenseSal"):
        densesal_from_torch_state_dict(sd, DCNSal(width=2), shape)
    with pytest.raises(ValueError, match="`readout` must be the variables"):
        densesal_from_torch_state_dict(backbone_only, module, shape, readout={"params": {}})
    wrong = dict(sd, **{"features.conv0.weight": sd["features.conv0.weight"][:, :2]})
    with pytest.raises(ValueError, match="features.conv0.weight has shape"):
        densesal_from_torch_state_dict(wrong, module, shape)


def test_densesal_shape_rules():
    module = DenseSal(width=4, block_config=(1, 1, 1))
    assert module.stride == 16
    out = jax.eval_shape(
        lambda x: module.init_with_output(jax.random.key(0), x)[0], jnp.zeros((1, 32, 48, 3))
    )
    assert out.shape == (1, 32, 48)
    with pytest.raises(
        ValueError, match="DenseSal needs image height and width that are multiples of 16"
    ):
        jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 24, 32, 3)))
    assert isinstance(module.backbone(), nn.Module)


class _OneDeformConv(nn.Module):
    """A DeformConv under the PyTorch module name ``dcn`` (mmcv's ModulatedDeformConv2dPack)."""

    @nn.compact
    def __call__(self, x, train=False):
        return DeformConv(3, 3, offset_groups=2, name="dcn")(x)


def test_deform_conv_reads_mmcv_weights():
    # mmcv's ModulatedDeformConv2dPack keeps weight, bias, conv_offset.weight, conv_offset.bias;
    # the offset conv's 3·G·K outputs are the offsets (G, K, (dy, dx)) then the mask logits.
    from jaxadv.models import from_torch_state_dict

    rng = np.random.default_rng(7)
    sd = {
        "dcn.weight": rng.normal(size=(3, 4, 3, 3)),
        "dcn.bias": rng.normal(size=(3,)),
        "dcn.conv_offset.weight": rng.normal(0, 0.5, size=(54, 4, 3, 3)),
        "dcn.conv_offset.bias": rng.normal(size=(54,)),
    }
    sd = {k: v.astype(np.float32) for k, v in sd.items()}
    x = rng.normal(size=(1, 5, 4, 4)).astype(np.float32)
    variables = from_torch_state_dict(sd, _OneDeformConv(), x.shape[1:])
    got = _jit(_OneDeformConv().apply)(variables, jnp.asarray(x))
    predicted = _np_conv(x.transpose(0, 3, 1, 2), sd["dcn.conv_offset.weight"], 1, 1)
    predicted = (predicted + sd["dcn.conv_offset.bias"][None, :, None, None]).transpose(0, 2, 3, 1)
    offsets, mask = predicted[..., :36], 1 / (1 + np.exp(-predicted[..., 36:]))
    kernel = sd["dcn.weight"].transpose(2, 3, 1, 0)
    want = _deform_loop(x, offsets, mask, kernel, 1, 1, 1) + sd["dcn.bias"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
