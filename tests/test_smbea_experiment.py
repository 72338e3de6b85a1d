"""The smoke variant of experiments/smbea_transfer.py runs and returns its tables.

Marked slow: the smoke run trains three tiny saliency models and three tiny classifiers and
compiles four attacks per table (≈1 min on an idle 2-core CPU), beyond the default suite's
budget for this module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "smbea_transfer.py"


@pytest.mark.slow
def test_smbea_transfer_smoke(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("smbea_transfer", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "smbea_transfer", module)  # its Flax modules need it
    spec.loader.exec_module(module)
    out = module.main(["--smoke", "--cache-dir", str(tmp_path)])
    methods = ["random noise", "ensemble PGD", "ensemble C&W", "ensemble MIM", "Liu's ensemble",
               "SMBEA"]  # fmt: skip
    budgets = out["saliency"]["budgets"]
    t1 = 8 / 255
    np.testing.assert_allclose(
        budgets, [t1, t1 * (1 + 0.7**2), t1 * (1 + 0.7**2 + 0.7**3)], rtol=1e-6
    )
    baseline = "centre bias (content-blind)"  # scored clean only: no input to attack
    assert list(out["saliency"]["rows"].pop(baseline)) == ["clean"]
    assert out["saliency"]["rows"]  # the held-out victims
    for rows in out["saliency"]["rows"].values():
        assert list(rows) == ["clean"] + methods
        for method in methods:
            for scores in rows[method].values():
                assert -1.0 <= scores["cc"] <= 1.0 and 0.0 <= scores["sauc"] <= 1.0
    for rows in out["classifiers"]["rows"].values():
        assert list(rows) == ["clean"] + methods
        assert all(0.0 <= acc <= 1.0 for m in methods for acc in rows[m].values())
    assert "| SMBEA |" in out["table"]


@pytest.mark.slow  # trains four tiny zoo models (one adversarially) and compiles one attack
def test_smbea_transfer_library_smoke(tmp_path, monkeypatch):
    # issue 18: mini-batches from a library of different forms, off-centre scenes, ℓ1 budgets.
    spec = importlib.util.spec_from_file_location("smbea_transfer", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "smbea_transfer", module)
    spec.loader.exec_module(module)
    args = ["--smoke", "--library", "--cache-dir", str(tmp_path), "--minibatches", "2"]
    out = module.main(args + ["--methods", "SMBEA"])
    rows = out["saliency"]["rows"]
    assert set(rows) == {"pix2pix_local#2", "centre bias (content-blind)"}
    assert set(rows["pix2pix_local#2"]) == {"clean", "random noise", "SMBEA"}
    assert out["saliency"]["norm"] == "l1" and out["config"]["off_center"]
    # off-centre scenes: the content-blind centre bias does not predict the fixations
    assert rows["centre bias (content-blind)"]["clean"]["cc"] < 0.05
    np.testing.assert_allclose(out["saliency"]["budgets"][0], 1.0e-2, rtol=1e-5)
    check = module.main(args + ["--at-check"])["table"]
    assert "salgan+at#0" in check and "salgan#0" in check
    with pytest.raises(ValueError, match="`--methods` must name attacks"):
        module.main(args + ["--methods", "FGSM"])


def test_smbea_transfer_refuses_bad_flags(monkeypatch):
    # the check runs before any model is trained or loaded
    spec = importlib.util.spec_from_file_location("smbea_transfer", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "smbea_transfer", module)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match="`--at-model` must be one of"):
        module.main(["--smoke", "--library", "--at-check", "--at-model", "resnet"])
    with pytest.raises(ValueError, match="`--eps` must be > 0"):
        module.main(["--smoke", "--library", "--eps", "0"])
