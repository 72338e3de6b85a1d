"""Smoke test of benchmarks/pgd_linf.py: every row runs and agrees with the hand-written loop.

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


# -- benchmarks/certify.py (randomized smoothing, issue 17) -----------------------------------


# Slow like the rows above: one C&W-net counting program compiles in ~3 s idle, ~9 s on a busy
# 2-core machine; the statistics themselves are checked by tests/test_certify.py.
@pytest.mark.slow
def test_certify_quick_run_prints_its_row_and_valid_certificates(capsys):
    from scipy import stats

    spec = importlib.util.spec_from_file_location(
        "benchmark_certify", _SCRIPT.parent / "certify.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--quick", "--no-torch"])  # the torch row is skipped without torch
    lines = capsys.readouterr().out.splitlines()
    found = [line for line in lines if line.startswith("jaxadv ") and "[" in line]
    assert len(found) == 1, "\n".join(lines)
    values = [float(v) for v in _NUMBER.findall(found[0][len("jaxadv"):])]
    assert values and all(math.isfinite(v) and v > 0 for v in values), found[0]
    prediction, radius = result["outputs"]["jaxadv"]
    assert prediction.shape == radius.shape == (2,)
    assert np.all((prediction >= -1) & (prediction < 10))
    # No certificate beyond what n = 100 unanimous draws allow: sigma * Phi^-1(alpha^(1/n)).
    most = bench.SIGMA * stats.norm.ppf(bench.ALPHA ** (1 / 100))
    assert np.all((radius >= 0) & (radius <= most + 1e-12))
    np.testing.assert_array_equal(radius == 0, prediction == -1)


@pytest.mark.slow  # ~10-30 s of compiling; tests/test_conv_forms.py checks the same forms fast
def test_conv_forms_quick_run_agrees_with_the_plain_form(capsys):
    """benchmarks/conv_forms.py --quick with two forms: both rows print, and the library's
    matmul input gradient equals the plain form's to float32 tolerance."""
    path = _SCRIPT.parent / "conv_forms.py"
    spec = importlib.util.spec_from_file_location("benchmark_conv_forms", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its Flax modules are dataclasses: they look it up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    out = module.main(["--quick", "--forms", "conv1-matmul-grad"])
    printed = capsys.readouterr().out
    assert set(out) == {"plain", "conv1-matmul-grad"}
    for name in out:
        assert re.search(rf"^{name}\s", printed, re.MULTILINE)
        assert all(math.isfinite(v) for v in out[name]["ratio"])
    assert out["conv1-matmul-grad"]["max_dgrad"] < 1e-6
    assert out["conv1-matmul-grad"]["differ_pct"] == 0.0


# -- benchmarks/smooth_cw.py (sC&W against C&W, issue 19) ------------------------------------


@pytest.mark.slow  # ~2.5 min: eight attacks compiled at 16×16, twice (counted, then timed)
def test_smooth_cw_quick_run_counts_every_solver_and_they_agree(capsys):
    """benchmarks/smooth_cw.py --quick: every row and ratio prints, every solver setting's solves
    are counted (the counting wraps the solvers by name), and their attacks agree."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_smooth_cw", _SCRIPT.parent / "smooth_cw.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--quick", "--no-unrolled"])[16]
    out = capsys.readouterr().out
    for name in ("C&W", *bench._SOLVERS, "sC&W CG one-reduction", "smoothing fwd+bwd"):
        assert name in report["per_iteration"], name
    assert all(math.isfinite(v) and v > 0 for r in report["ratios"].values() for v in r)
    counts = report["solver_iterations"]
    assert set(counts) == set(bench._SOLVERS), out
    solves = {row["solves"] for row in counts.values()}
    assert len(solves) == 1 and solves.pop() > 0  # the same solves, each counted once
    # Chebyshev's count is fixed by α and the norm; CG adapts. At α = 0.95 both need ~20 on
    # the reduced system, about twice that on the full one.
    assert 15 <= counts["sC&W"]["per_solve"] <= 25
    assert 30 <= counts["sC&W full system"]["per_solve"] <= 50
    assert counts["sC&W CG polynomial"]["per_solve"] < counts["sC&W CG"]["per_solve"]
    for row in counts.values():
        assert row["max_x_adv_difference"] < 1e-3
