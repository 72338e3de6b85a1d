"""Forward passes written in numpy the PyTorch way (NCHW activations, OIHW weights, (C, H, W)
flattens) and fabricated state dicts with the real key names and shapes of RobustBench's and
torchvision's modules, built by walking their PyTorch structure (RobustBench ``wide_resnet.py`` and
``resnet.py``, torchvision ``resnet.py`` and ``vgg.py``), not the Flax modules.

Numpy only: ``tests/data/torch_files/make_fixtures.py`` imports it under the peers' Python (torch,
no jax) to write the ``.pt`` fixtures.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
