"""Smoke test of benchmarks/queries.py: its rows run, count the same queries and attack.

A correctness check only: it never asserts on timings (the machines are shared and noisy).
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)


def _load_benchmark():
    if str(_BENCH) not in sys.path:
        sys.path.insert(0, str(_BENCH))
    spec = importlib.util.spec_from_file_location("benchmark_queries", _BENCH / "queries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Slow (`pytest -m slow`), as the other benchmark smoke tests: one compilation of the NES attack
# (~20 s on the loaded 2-core machine) and the eager loop.
@pytest.mark.slow
def test_quick_rows_count_the_same_queries_and_attack(capsys):
    bench = _load_benchmark()
    out = bench.main(["--quick"])["mlp"]
    lines = capsys.readouterr().out.splitlines()
    labels = ["jaxadv", "jaxadv, rbg key", "loop, jit forward", "loop, eager forward"]
    labels += [f"{a} / {b}" for a, b in bench.RATIOS]
    for label in labels:
        found = [line for line in lines if re.split(r"\s{2,}", line)[0] == label]
        assert len(found) == 1, f"row {label!r} missing or repeated in:\n" + "\n".join(lines)
        numbers = [float(s) for s in _NUMBER.findall(found[0][len(label) :])]
        assert numbers and all(math.isfinite(v) for v in numbers), found[0]
    # Every row answers the same queries: 4 images x (2 steps x 51 + the final evaluation).
    assert set(out["counts"].values()) == {4 * (2 * 51 + 1)}
    victim, images, labels = out["victim"], out["images"], out["labels"]
    for name, x_adv in out["x_adv"].items():
        assert x_adv.shape == images.shape, name
        assert np.abs(x_adv - images).max() <= bench.EPS + 1e-6, name
        assert 0.0 <= x_adv.min() and x_adv.max() <= 1.0, name
        logits = np.asarray(victim.batch(x_adv))
        before = [bench.margin(np.asarray(victim.batch(images[i : i + 1])), y)[0]
                  for i, y in enumerate(labels)]  # fmt: skip
        after = [bench.margin(logits[i : i + 1], y)[0] for i, y in enumerate(labels)]
        assert np.mean(after) < np.mean(before), name  # two NES steps lower the margin
