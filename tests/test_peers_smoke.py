"""Smoke test of benchmarks/peers.py: the jaxadv and hand rows run and agree.

A correctness check only: it never asserts on timings (the machines are shared and noisy). It runs
the jaxadv-only rows (no peer library needed) on PGD-ℓ∞ at batch 8 with one round, with 2 steps
instead of 10 and without the bound and matmul rows, so that it compiles in a few seconds (the
default suite is near its time limit).
"""

from __future__ import annotations

import pytest

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)


def _load_benchmark():
    if str(_BENCH) not in sys.path:
        sys.path.insert(0, str(_BENCH))
    spec = importlib.util.spec_from_file_location("benchmark_peers", _BENCH / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_quick_jaxadv_rows_are_finite_and_match_the_hand_loop(capsys):
    bench = _load_benchmark()
    result = bench.main(
        ["--quick", "--libs", "jaxadv,hand", "--attacks", "pgd-linf", "--steps", "2", "--no-bound"]
    )
    lines = capsys.readouterr().out.splitlines()

    for lib in ("jaxadv", "hand"):
        found = [line for line in lines if line.split()[:2] == [lib, "pgd-linf"]]
        assert len(found) == 1, f"row {lib!r} missing or repeated in:\n" + "\n".join(lines)
        numbers = [float(s) for s in _NUMBER.findall(found[0].split(None, 2)[2])]
        assert len(numbers) >= 6, found[0]
        assert all(math.isfinite(v) for v in numbers), f"non-finite number in {found[0]!r}"

    records = {r["lib"]: r for r in result["records"]}
    x_adv, x_hand = records["jaxadv"]["x_adv"], records["hand"]["x_adv"]
    assert x_adv.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(x_adv, x_hand, rtol=0, atol=1e-5)
    assert records["jaxadv"]["robust"] == records["hand"]["robust"]
    # The attack moved the images, inside the eps-ball and the pixel box.
    spec = bench.SPECS["pgd-linf"]
    delta = x_adv - result["images"]
    assert spec.step / 2 < np.abs(delta).max() <= spec.eps + 1e-6
    assert 0.0 <= x_adv.min() and x_adv.max() <= 1.0
