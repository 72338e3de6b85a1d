"""Smoke test of benchmarks/pgd_linf.py: every row runs and agrees with the hand-written loop.

A correctness check only: it never asserts on timings (the machines are shared and noisy).
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pgd_linf.py"
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_pgd_linf", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(line: str, label: str) -> list[float]:
    return [float(s) for s in _NUMBER.findall(line[len(label) :])]


@pytest.mark.slow  # ~55 s of compiling a dozen loop forms; run with `-m slow` after a change
def test_quick_run_prints_every_row_and_matches_the_hand_loop(capsys):
    bench = _load_benchmark()
    result = bench.main(["--quick"])
    lines = capsys.readouterr().out.splitlines()

    labels = list(bench.ROW_NAMES) + [label for label, _, _ in bench.RATIOS]
    for label in labels:
        found = [line for line in lines if line[: bench.LABEL_WIDTH].rstrip() == label]
        assert len(found) == 1, f"row {label!r} missing or repeated in:\n" + "\n".join(lines)
        values = _numbers(found[0], label)
        assert values, f"row {label!r} has no numbers: {found[0]!r}"
        assert all(math.isfinite(v) for v in values), f"non-finite number in {found[0]!r}"

    x_adv = {name: np.asarray(x) for name, x in result["x_adv"].items()}
    assert x_adv["jaxadv"].shape == (8, 32, 32, 3)
    np.testing.assert_allclose(x_adv["jaxadv"], x_adv["hand"], rtol=0, atol=1e-5)
    # The same program compiled by the benchmark itself.
    np.testing.assert_allclose(x_adv["jaxadv"], x_adv[bench.UNROLLED_TUNED], rtol=0, atol=1e-5)
    # Other loop forms and options round differently, which may flip the sign of a near-zero
    # gradient coordinate and move that pixel: allow a few such pixels.
    for name in bench.ROW_NAMES:
        if name not in (bench.BOUND, bench.BOUND_FIXED):
            ref = x_adv[bench.REFERENCE.get(name, "jaxadv")]
            assert np.mean(np.abs(x_adv[name] - ref) > 1e-5) < 0.01, name
    # The attack moved the images, within the eps-ball and the pixel box.
    delta = x_adv["jaxadv"] - np.asarray(result["images"])
    assert bench.STEP_SIZE / 2 < np.abs(delta).max() <= bench.EPS + 1e-6
    assert 0.0 <= x_adv["jaxadv"].min() and x_adv["jaxadv"].max() <= 1.0
