"""The smoke run of experiments/lgv_universal_patch.py (universal perturbations, patch, LGV)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "lgv_universal_patch.py"


# Slow (`pytest -m slow`): trains four one-epoch digits victims and LGV models (cached after).
@pytest.mark.slow
def test_lgv_universal_patch_smoke():
    spec = importlib.util.spec_from_file_location("lgv_universal_patch", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--smoke"])  # the shared victim cache
    rows = out["universal"]
    assert [(r["norm"], r["method"]) for r in rows] == [
        ("linf", "deepfool"), ("linf", "sgd"), ("linf", "random noise"),
        ("l2", "deepfool"), ("l2", "sgd"), ("l2", "random noise"),
    ]  # fmt: skip
    assert all(0.0 <= r["held_out"] <= 1.0 for r in rows)
    assert [r["patch"] for r in out["patch"]] == ["trained", "random (its initialisation)"]
    assert all(0.0 <= r["success"] <= 1.0 for r in out["patch"])
    sources = [r["source"] for r in out["lgv"]]
    assert sources == [
        "single surrogate (C&W net)",
        "LGV (2 models), averaged logits",
        "LGV (2 models), one random member per step",  # the paper's form
    ]
    for row in out["lgv"]:
        assert set(row) >= {"C4 net", "ResNet", "white-box"}
