"""The smoke variant of experiments/smbea_ablation.py (SMBEA's Figs. 5 and 6, issue 20) runs and
returns both tables.

Marked slow: it trains three tiny zoo models and compiles four attacks (beyond the default
suite's budget for this module).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(monkeypatch):
    # smbea_ablation imports smbea_transfer from its own folder; both register as modules
    # (their Flax modules need it), undone by monkeypatch after the test.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    for name in ("smbea_transfer", "smbea_ablation"):
        spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smbea_ablation_smoke(tmp_path, monkeypatch):
    module = _load(monkeypatch)
    out = module.main(["--smoke", "--cache-dir", str(tmp_path), "--methods", "SMBEA"])
    fig5 = out["figure5"]
    assert list(fig5["rows"]) == ["random noise", "outputs only", "CU+BI"]
    assert set(fig5["rows"]["CU+BI"]) == {"deep"}
    for by_depth in fig5["rows"].values():
        for scores in by_depth.values():
            assert np.isfinite(scores["dcc"]) and -1.0 <= scores["map_cc"] <= 1.0
    np.testing.assert_allclose(fig5["budget"], 1.0e-2, rtol=1e-5)  # Table 1's ℓ1 T^(1)
    fig6 = out["figure6"]
    assert fig6["columns"] == (1, 2)  # every mini-batch scored, not Table 1's 1, 3, 5
    assert fig6["budgets"][1] > fig6["budgets"][0]  # Algorithm 2's loosening
    rows = fig6["rows"]["pix2pix_global#2"]
    assert set(rows) == {"clean", "random noise", "SMBEA"} and set(rows["SMBEA"]) == {1, 2}
    assert "| CU+BI |" in out["table"] and "ΔCC @2" in out["table"]


def test_smbea_ablation_refuses_bad_flags(monkeypatch):
    module = _load(monkeypatch)  # the checks run before any model is trained or loaded
    with pytest.raises(ValueError, match="`--methods` must name attacks"):
        module.main(["--smoke", "--methods", "FGSM"])
    with pytest.raises(ValueError, match="`--minibatches` must be >= 1"):
        module.main(["--smoke", "--minibatches", "0"])
    with pytest.raises(ValueError, match="`--depths` must be"):
        module.main(["--smoke", "--depths", "shallow,bottom"])
    with pytest.raises(ValueError, match="`--strategies` must be"):
        module.main(["--smoke", "--strategies", "sum"])
