"""Writes the ``.pt`` fixtures of ``tests/test_torch_files.py`` with torch itself (run it with a
Python that has torch, e.g. ``/work/peersenv/bin/python tests/data/torch_files/make_fixtures.py``;
the default tests read the committed files without torch).

* ``zip.pt`` / ``legacy.pt``: one checkpoint in both ``torch.save`` layouts, with a parameter, a
  transposed (non-contiguous) view, an offset view, an int64 and a bfloat16 tensor, and training
  metadata (an ``argparse.Namespace``, a numpy scalar) that the reader must skip, not execute.
* ``robustbench/cifar10/Linf/Wong2020Fast.pt``: RobustBench's layout for a tiny pre-activation
  ResNet (stages (1, 1, 1, 1), width 1) with its ``mu``/``sigma`` buffers, keys under
  ``module.`` (DataParallel) inside ``{"state_dict": ...}``, in the legacy layout.
"""

import argparse
import collections
import pathlib
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for torch_reference

from torch_reference import preact_state_dict  # noqa: E402

TINY_PREACT = dict(blocks=(1, 1, 1, 1), width=1, classes=10, bn_before_fc=False)
MU, SIGMA = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def main():
    sd = collections.OrderedDict()
    sd["a.weight"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    sd["a.bias"] = torch.nn.Parameter(torch.tensor([1.5, -2.0]))
    sd["t"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    sd["v"] = torch.arange(10, dtype=torch.float64)[3:7]
    sd["n"] = torch.tensor(7)
    sd["h"] = torch.tensor([1.0, 2.5], dtype=torch.bfloat16)
    ck = {"state_dict": sd, "epoch": 3, "args": argparse.Namespace(lr=0.1), "acc": np.float64(0.5)}
    torch.save(ck, HERE / "zip.pt")
    torch.save(ck, HERE / "legacy.pt", _use_new_zipfile_serialization=False)

    arrays = preact_state_dict(**TINY_PREACT)
    state = collections.OrderedDict((f"module.{k}", torch.from_numpy(v)) for k, v in arrays.items())
    state["module.mu"] = torch.tensor(MU).view(1, 3, 1, 1)
    state["module.sigma"] = torch.tensor(SIGMA).view(1, 3, 1, 1)
    out = HERE / "robustbench" / "cifar10" / "Linf"
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "epoch": 15}, out / "Wong2020Fast.pt",
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
