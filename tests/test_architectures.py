"""RobustBench's and torchvision's architectures and their converters, checked against forward
passes written in numpy the PyTorch way (NCHW, OIHW, the modules' own key names), on fabricated
state dicts at tiny widths. The numpy side builds its state dict by walking the PyTorch module
structure (``wide_resnet.py``, ``resnet.py``, torchvision's ``resnet.py``/``vgg.py``), not the
Flax modules, so a wrong name, shape, layout or wiring on either side fails."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from jaxadv import models

EPS = 1e-5  # PyTorch's BatchNorm2d default


# -- numpy layers, NCHW ----------------------------------------------------------------------------


def conv(x, w, stride=1, pad=None, bias=None):
    pad = w.shape[-1] // 2 if pad is None else pad
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("bchwij,ocij->bohw", win, w)
    return y if bias is None else y + bias[None, :, None, None]


def bn(sd, name, x):
    g = lambda k: sd[f"{name}.{k}"][None, :, None, None]  # noqa: E731
    return (x - g("running_mean")) / np.sqrt(g("running_var") + EPS) * g("weight") + g("bias")


def relu(x):
    return np.maximum(x, 0.0)


def linear(sd, name, x):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def max_pool(x, k, stride, pad=0):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(4, 5))


def adaptive_avg_pool(x, out):
    h, w = x.shape[2:]
    rows = []
    for i in range(out):
        cols = []
        for j in range(out):
            h0, h1 = i * h // out, -(-(i + 1) * h // out)
            w0, w1 = j * w // out, -(-(j + 1) * w // out)
            cols.append(x[:, :, h0:h1, w0:w1].mean(axis=(2, 3)))
        rows.append(np.stack(cols, -1))
    return np.stack(rows, -2)


# -- fabricated state dicts with PyTorch's names ---------------------------------------------------


class Fab:
    """Records ``name -> array`` as a PyTorch module would register them."""

    def __init__(self, seed=0):
        self.rng, self.sd = np.random.default_rng(seed), {}

    def conv(self, name, out, inp, k, bias=False):
        self.sd[f"{name}.weight"] = self.rng.normal(0, np.sqrt(2 / (inp * k * k)), (out, inp, k, k))
        if bias:
            self.sd[f"{name}.bias"] = self.rng.normal(0, 0.1, out)

    def bn(self, name, c):
        self.sd[f"{name}.weight"] = self.rng.uniform(0.5, 1.5, c)
        self.sd[f"{name}.bias"] = self.rng.normal(0, 0.1, c)
        self.sd[f"{name}.running_mean"] = self.rng.normal(0, 0.1, c)
        self.sd[f"{name}.running_var"] = self.rng.uniform(0.5, 1.5, c)
        self.sd[f"{name}.num_batches_tracked"] = np.array(5, np.int64)

    def linear(self, name, out, inp):
        self.sd[f"{name}.weight"] = self.rng.normal(0, np.sqrt(1 / inp), (out, inp))
        self.sd[f"{name}.bias"] = self.rng.normal(0, 0.1, out)

    def float32(self):
        return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in self.sd.items()}


# RobustBench wide_resnet.py: WideResNet(depth, widen_factor, sub_block1)
def wrn_state_dict(depth, k, classes, sub_block1=False):
    f, n = Fab(1), (depth - 4) // 6
    ch = [16, 16 * k, 32 * k, 64 * k]
    f.conv("conv1", 16, 3, 3)
    groups = [("block1", ch[0], ch[1]), ("block2", ch[1], ch[2]), ("block3", ch[2], ch[3])]
    if sub_block1:
        groups.append(("sub_block1", ch[0], ch[1]))
    for group, cin, cout in groups:
        for i in range(n):
            p, inp = f"{group}.layer.{i}", cin if i == 0 else cout
            f.bn(f"{p}.bn1", inp)
            f.conv(f"{p}.conv1", cout, inp, 3)
            f.bn(f"{p}.bn2", cout)
            f.conv(f"{p}.conv2", cout, cout, 3)
            if inp != cout:
                f.conv(f"{p}.convShortcut", cout, inp, 1)
    f.bn("bn1", ch[3])
    f.linear("fc", classes, ch[3])
    return f.float32()


def wrn_forward(sd, x, depth):
    n = (depth - 4) // 6
    out = conv(x, sd["conv1.weight"])
    for g, stride in (("block1", 1), ("block2", 2), ("block3", 2)):
        for i in range(n):
            p, s = f"{g}.layer.{i}", stride if i == 0 else 1
            if f"{p}.convShortcut.weight" in sd:  # not equalInOut
                x_act = relu(bn(sd, f"{p}.bn1", out))
                y = relu(bn(sd, f"{p}.bn2", conv(x_act, sd[f"{p}.conv1.weight"], s)))
                out = conv(x_act, sd[f"{p}.convShortcut.weight"], s, 0) + conv(
                    y, sd[f"{p}.conv2.weight"]
                )
            else:
                y = relu(bn(sd, f"{p}.bn1", out))
                y = relu(bn(sd, f"{p}.bn2", conv(y, sd[f"{p}.conv1.weight"], s)))
                out = out + conv(y, sd[f"{p}.conv2.weight"])
    out = relu(bn(sd, "bn1", out)).mean(axis=(2, 3))
    return linear(sd, "fc", out)


# RobustBench resnet.py: PreActResNet(PreActBlock or PreActBlockV2, [2, 2, 2, 2], bn_before_fc)
def preact_state_dict(blocks, width, classes, bn_before_fc):
    f, cin = Fab(2), width
    f.conv("conv1", width, 3, 3)
    for s, nb in enumerate(blocks):
        planes = width * 2**s
        for i in range(nb):
            p = f"layer{s + 1}.{i}"
            f.bn(f"{p}.bn1", cin)
            f.conv(f"{p}.conv1", planes, cin, 3)
            f.bn(f"{p}.bn2", planes)
            f.conv(f"{p}.conv2", planes, planes, 3)
            if (s > 0 and i == 0) or cin != planes:
                f.conv(f"{p}.shortcut.0", planes, cin, 1)
            cin = planes
    if bn_before_fc:
        f.bn("bn", cin)
    f.linear("linear", classes, cin)
    return f.float32()


def preact_forward(sd, x, blocks, out_shortcut):
    out = conv(x, sd["conv1.weight"])
    for s, nb in enumerate(blocks):
        for i in range(nb):
            p, stride = f"layer{s + 1}.{i}", 2 if s > 0 and i == 0 else 1
            a = relu(bn(sd, f"{p}.bn1", out))
            short = out
            if f"{p}.shortcut.0.weight" in sd:
                short = conv(a if out_shortcut else out, sd[f"{p}.shortcut.0.weight"], stride, 0)
            y = conv(a, sd[f"{p}.conv1.weight"], stride)
            out = conv(relu(bn(sd, f"{p}.bn2", y)), sd[f"{p}.conv2.weight"]) + short
    if "bn.weight" in sd:
        out = relu(bn(sd, "bn", out))
    return linear(sd, "linear", out.mean(axis=(2, 3)))


# torchvision resnet.py: resnet18 / resnet50 (and RobustBench's CIFAR ResNet: shortcut, linear)
def resnet_state_dict(blocks, bottleneck, width, classes, cifar=False, wpg=64):
    f, exp = Fab(3), 4 if bottleneck else 1
    down, fc = ("shortcut", "linear") if cifar else ("downsample", "fc")
    f.conv("conv1", width, 3, 3 if cifar else 7)
    f.bn("bn1", width)
    cin = width
    for s, nb in enumerate(blocks):
        planes = width * 2**s
        inner = planes * wpg // 64
        for i in range(nb):
            p = f"layer{s + 1}.{i}"
            if bottleneck:
                f.conv(f"{p}.conv1", inner, cin, 1)
                f.bn(f"{p}.bn1", inner)
                f.conv(f"{p}.conv2", inner, inner, 3)
                f.bn(f"{p}.bn2", inner)
                f.conv(f"{p}.conv3", planes * exp, inner, 1)
                f.bn(f"{p}.bn3", planes * exp)
            else:
                f.conv(f"{p}.conv1", planes, cin, 3)
                f.bn(f"{p}.bn1", planes)
                f.conv(f"{p}.conv2", planes, planes, 3)
                f.bn(f"{p}.bn2", planes)
            if (s > 0 and i == 0) or cin != planes * exp:
                f.conv(f"{p}.{down}.0", planes * exp, cin, 1)
                f.bn(f"{p}.{down}.1", planes * exp)
            cin = planes * exp
    f.linear(fc, classes, cin)
    return f.float32()


def resnet_forward(sd, x, blocks, bottleneck, cifar=False):
    down, fc = ("shortcut", "linear") if cifar else ("downsample", "fc")
    if cifar:
        out = relu(bn(sd, "bn1", conv(x, sd["conv1.weight"])))
    else:
        out = max_pool(relu(bn(sd, "bn1", conv(x, sd["conv1.weight"], 2, 3))), 3, 2, 1)
    for s, nb in enumerate(blocks):
        for i in range(nb):
            p, stride = f"layer{s + 1}.{i}", 2 if s > 0 and i == 0 else 1
            w = lambda n: sd[f"{p}.{n}.weight"]  # noqa: E731
            if bottleneck:
                y = relu(bn(sd, f"{p}.bn1", conv(out, w("conv1"))))
                y = relu(bn(sd, f"{p}.bn2", conv(y, w("conv2"), stride)))
                y = bn(sd, f"{p}.bn3", conv(y, w("conv3")))
            else:
                y = relu(bn(sd, f"{p}.bn1", conv(out, w("conv1"), stride)))
                y = bn(sd, f"{p}.bn2", conv(y, w("conv2")))
            if f"{p}.{down}.0.weight" in sd:
                out = bn(sd, f"{p}.{down}.1", conv(out, w(f"{down}.0"), stride, 0))
            out = relu(out + y)
    return linear(sd, fc, out.mean(axis=(2, 3)))


# torchvision vgg.py: cfgs "D" (16) and "E" (19), in multiples of the width, with make_layers
VGG_CFG = {16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"]}
VGG_CFG[19] = [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]
VGG_CFG[8] = [1, "M", 2, "M", 4, "M", 8, "M", 8, "M"]  # one convolution per stage (tests)


def vgg_state_dict(depth, width, hidden, classes, batch_norm):
    f, cin, idx = Fab(4), 3, 0
    for v in VGG_CFG[depth]:
        if v == "M":
            idx += 1
            continue
        f.conv(f"features.{idx}", v * width, cin, 3, bias=True)
        if batch_norm:
            f.bn(f"features.{idx + 1}", v * width)
        idx, cin = idx + (3 if batch_norm else 2), v * width
    f.linear("classifier.0", hidden, cin * 49)
    f.linear("classifier.3", hidden, hidden)
    f.linear("classifier.6", classes, hidden)
    return f.float32()


def vgg_forward(sd, x, depth, batch_norm):
    idx = 0
    for v in VGG_CFG[depth]:
        if v == "M":
            x, idx = max_pool(x, 2, 2), idx + 1
            continue
        x = conv(x, sd[f"features.{idx}.weight"], bias=sd[f"features.{idx}.bias"])
        x = relu(bn(sd, f"features.{idx + 1}", x) if batch_norm else x)
        idx += 3 if batch_norm else 2
    x = adaptive_avg_pool(x, 7).reshape(x.shape[0], -1)  # (C, H, W) order
    x = relu(linear(sd, "classifier.3", relu(linear(sd, "classifier.0", x))))
    return linear(sd, "classifier.6", x)


# -- the checks ------------------------------------------------------------------------------------

CIFAR = (32, 32, 3)

# Default run: every architecture's layout at its smallest (one or two blocks per stage, widths of
# 2-4 channels), each block kind with an identity and a projection shortcut.
CASES = {  # name: (module, input_shape, state dict, numpy forward)
    "wrn-10-1": (  # block1 keeps 16 channels (identity); block2/3 widen (convShortcut)
        lambda: models.WideResNet(10, 1, num_classes=5),
        (8, 8, 3),
        lambda: wrn_state_dict(10, 1, 5, sub_block1=True),
        lambda sd, x: wrn_forward(sd, x, 10),
    ),
    "preact-v2-bn": (
        lambda: models.PreActResNet((1, 1, 1, 1), 5, 4, True, True),
        (8, 8, 3),
        lambda: preact_state_dict((1, 1, 1, 1), 4, 5, True),
        lambda sd, x: preact_forward(sd, x, (1, 1, 1, 1), True),
    ),
    "resnet-basic": (
        lambda: models.TorchvisionResNet((1, 1, 1, 1), False, 5, 4),
        CIFAR,
        lambda: resnet_state_dict((1, 1, 1, 1), False, 4, 5),
        lambda sd, x: resnet_forward(sd, x, (1, 1, 1, 1), False),
    ),
    "resnet-bottleneck-cifar": (
        lambda: models.TorchvisionResNet((2, 1, 1, 1), True, 5, 2, cifar_stem=True),
        (8, 8, 3),
        lambda: resnet_state_dict((2, 1, 1, 1), True, 2, 5, cifar=True),
        lambda sd, x: resnet_forward(sd, x, (2, 1, 1, 1), True, cifar=True),
    ),
    "vgg-bn": (
        lambda: models.VGG((1, 1, 1, 1, 1), True, 5, 2, 8),
        CIFAR,
        lambda: vgg_state_dict(8, 2, 8, 5, True),
        lambda sd, x: vgg_forward(sd, x, 8, True),
    ),
}

# Slow run: the published depths (tiny widths), through the public factories.
SLOW_CASES = {
    "wrn-16-2": (
        lambda: models.WideResNet(16, 2, num_classes=5),
        (8, 8, 3),
        lambda: wrn_state_dict(16, 2, 5),
        lambda sd, x: wrn_forward(sd, x, 16),
    ),
    "preact18": (
        lambda: models.PreActResNet18(5, width=4),
        (8, 8, 3),
        lambda: preact_state_dict((2, 2, 2, 2), 4, 5, False),
        lambda sd, x: preact_forward(sd, x, (2, 2, 2, 2), False),
    ),
    "resnet18": (
        lambda: models.ResNet18(5, width=4),
        CIFAR,
        lambda: resnet_state_dict((2, 2, 2, 2), False, 4, 5),
        lambda sd, x: resnet_forward(sd, x, (2, 2, 2, 2), False),
    ),
    "resnet50-wide": (
        lambda: models.ResNet50(5, width=2, width_per_group=128),
        CIFAR,
        lambda: resnet_state_dict((3, 4, 6, 3), True, 2, 5, wpg=128),
        lambda sd, x: resnet_forward(sd, x, (3, 4, 6, 3), True),
    ),
    "vgg16-bn": (
        lambda: models.VGG16(5, batch_norm=True, width=2, hidden=8),
        CIFAR,
        lambda: vgg_state_dict(16, 2, 8, 5, True),
        lambda sd, x: vgg_forward(sd, x, 16, True),
    ),
    "vgg19": (
        lambda: models.VGG19(5, width=2, hidden=8),
        (40, 40, 3),  # a 1x1 map after the last pool, spread over 7x7 by the adaptive pool
        lambda: vgg_state_dict(19, 2, 8, 5, False),
        lambda sd, x: vgg_forward(sd, x, 19, False),
    ),
}


@functools.lru_cache(maxsize=None)
def _case(name):
    make_module, shape, make_sd, forward = {**CASES, **SLOW_CASES}[name]
    return make_module(), shape, make_sd(), forward


def _images(shape, n=2, seed=0):
    return np.random.default_rng(seed).random((n,) + shape).astype(np.float32)


def _check_against_numpy(name):
    module, shape, sd, forward = _case(name)
    variables = models.from_torch_state_dict(sd, module, shape)
    x = _images(shape)
    expected = forward({k: v.astype(np.float64) for k, v in sd.items()}, x.transpose(0, 3, 1, 2))
    logits = jax.jit(module.apply, static_argnames="train")(variables, x, train=False)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", list(CASES))
def test_converted_logits_match_a_numpy_pytorch_forward_pass(name):
    _check_against_numpy(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_published_depths_match_a_numpy_pytorch_forward_pass(name):
    _check_against_numpy(name)
