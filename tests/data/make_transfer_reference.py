"""Writes tests/data/transfer_reference.npz: torchattacks' TIFGSM, NIFGSM and SINIFGSM (3.5.1)
on a tiny tanh MLP, with their random parts switched off (no random start, DI probability 0),
and torch's bilinear resize-and-pad (DI's transformation) at fixed sizes and offsets.

Run with the peer environment (torch on CPU), from the repository root:
    /work/peersenv/bin/python tests/data/make_transfer_reference.py
The weights and images are drawn here with numpy and stored, so tests/test_transfer.py builds the
same victim in JAX (no torch needed there).
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks

OUT = pathlib.Path(__file__).with_name("transfer_reference.npz")
SHAPE = (6, 6, 3)  # H, W, C (TIFGSM's depthwise kernel is built for 3 channels)
HIDDEN, CLASSES, N = 8, 3, 3
EPS, ALPHA, STEPS = 0.1, 0.02, 5


class TanhMLP(torch.nn.Module):
    """``tanh(vec(x_NHWC) @ w1 + b1) @ w2 + b2`` on NCHW input (flattened in NHWC order, as the
    JAX victim flattens its NHWC images)."""

    def __init__(self, w):
        super().__init__()
        self.w = {k: torch.tensor(v) for k, v in w.items()}

    def forward(self, x):
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return torch.tanh(flat @ self.w["w1"] + self.w["b1"]) @ self.w["w2"] + self.w["b2"]


def main():
    rng = np.random.default_rng(22)
    dim = int(np.prod(SHAPE))
    w = {
        "w1": (rng.normal(size=(dim, HIDDEN)) * 2.0 / np.sqrt(dim)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.normal(size=(HIDDEN, CLASSES)) * 2.0).astype(np.float32),
        "b2": (rng.normal(size=CLASSES) * 0.1).astype(np.float32),
    }
    images = rng.uniform(size=(N, *SHAPE)).astype(np.float32)
    model = TanhMLP(w).eval()
    x = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
    labels = model(x).argmax(-1)
    common = dict(eps=EPS, alpha=ALPHA, steps=STEPS)
    runs = {
        "ti": torchattacks.TIFGSM(model, decay=1.0, len_kernel=5, nsig=3, diversity_prob=0.0,
                                  random_start=False, **common),
        "ni": torchattacks.NIFGSM(model, decay=1.0, **common),
        "sini": torchattacks.SINIFGSM(model, decay=1.0, m=3, **common),
    }
    out = dict(w, images=images, labels=labels.numpy().astype(np.int32),
               eps=EPS, alpha=ALPHA, steps=STEPS)
    for name, attack in runs.items():
        out[name] = attack(x, labels).permute(0, 2, 3, 1).numpy()
    # DI's transformation at fixed (size, top, left): F.interpolate (bilinear, no corners) + pad
    cases = np.array([[5, 0, 0], [5, 1, 0], [4, 1, 2], [3, 2, 1], [6, 0, 0]], np.int32)
    resized = []
    for rnd, top, left in cases:
        small = F.interpolate(x[:1], size=[int(rnd), int(rnd)], mode="bilinear",
                              align_corners=False)
        rem = SHAPE[0] - int(rnd)
        padded = F.pad(small, [int(left), rem - int(left), int(top), rem - int(top)], value=0)
        resized.append(padded[0].permute(1, 2, 0).numpy())
    out.update(resize_cases=cases, resized=np.stack(resized))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
