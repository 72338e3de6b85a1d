"""Executes every notebook under notebooks/ in smoke mode and checks what it computes.

Each notebook runs in a fresh ``python3`` kernel with ``JAXADV_SMOKE=1`` (few images, few steps,
short training), the test run's shared ``JAXADV_CACHE_DIR`` (conftest) and ``notebooks/`` as working
directory. The
kernel imports the repository's ``jaxadv``: the repository root is put first on ``PYTHONPATH``,
which is harmless when the package is also pip-installed.
"""

from __future__ import annotations

import ast
import itertools
import os
import pathlib
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
TIMEOUT_S = 300  # per cell


def _execute(path: pathlib.Path, monkeypatch) -> object:
    """Runs the notebook in a kernel whose environment is ours plus the smoke settings."""
    # The kernel is a subprocess that inherits os.environ, so set the variables here.
    monkeypatch.setenv("JAXADV_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return nb


def _tagged_stdout(nb, tag: str) -> str:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return "".join(
        out.get("text", "")
        for out in cells[0].get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )


def test_notebooks_are_stored_without_outputs():
    assert NOTEBOOK_PATHS, f"no notebooks found in {NOTEBOOKS}"
    for path in NOTEBOOK_PATHS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: cell {i} is stored with outputs"
                assert cell.execution_count is None, f"{path.name}: cell {i} has a count"


def _check_compose_an_attack(nb) -> None:
    """The robustness curves the first notebook prints start at clean accuracy and go down."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    clean, slack = summary["clean"], 1.0 / summary["images"]
    assert 0.5 <= clean <= 1.0, summary
    for name in ("hand_made", "pgd"):
        curve = summary[name]
        assert len(curve) >= 3, summary
        assert curve[0] == pytest.approx(clean), summary
        assert curve[-1] < clean, summary
        assert all(b <= a + slack + 1e-6 for a, b in itertools.pairwise(curve)), summary


def _check_smooth_examples(nb) -> None:
    """C&W and sC&W report probabilities, curves that end at them, converged CG, finite maps."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    assert summary["images"] >= 1, summary
    for name in ("C&W", "sC&W"):
        row = summary[name]
        assert 0.0 <= row["P_suc"] <= 1.0, summary
        assert row["curve_end"] == pytest.approx(row["P_suc"]) and row["curve_monotone"], summary
        assert row["converged"] and row["magnified_finite"], summary


def _check_sparse_sapf(nb) -> None:
    """SAPF and SAPF-GS never change more than k pixels (the cardinality is exact)."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    assert summary["l0"] and all(0 <= v <= summary["k"] for v in summary["l0"]), summary
    assert len(summary["success"]) >= 2, summary


def _check_saliency_attacks(nb) -> None:
    """The targeted saliency attack stays in its budget and does not move the map away from the
    guide (with the smoke run's one-epoch model the maps may barely depend on the image)."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    assert summary["linf"] <= summary["eps"] + 1e-6 and summary["trace_finite"], summary
    before, after = summary["cc_before"], summary["cc_after"]
    assert len(before) == len(after) == 4, summary
    assert sum(after) >= sum(before) - 1e-3, summary


def _check_update_rules_and_smbea(nb) -> None:
    """The hand-built rules equal the library's; SMBEA's budget loosens as Algorithm 2 says,
    T(2) = T(1) + β3²·T(1), and holds on the final example."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    assert summary["rules_match_library"] and summary["curves_finite"], summary
    assert set(summary["curve_lengths"].values()) == {summary["steps"]}, summary
    t1, t2 = summary["budgets"]
    assert t2 == pytest.approx(t1 * (1 + summary["beta3"] ** 2), rel=1e-5), summary
    assert summary["linf_final"] <= t2 + 1e-6, summary
    # the trace runs over every step of both mini-batches: [images, N·X]
    assert summary["trace_shape"][1:] == [summary["minibatches"] * summary["steps"]], summary


def _check_evaluate_a_model(nb) -> None:
    """AutoAttack is no weaker than APGD-CE or PGD alone (up to one point: their keys differ); the
    randomized victim is flagged; each minimum-norm curve starts at clean accuracy and never rises;
    no attack beats the exact MIP minimum; optimality scores lie in [0, 1]."""
    summary = ast.literal_eval(_tagged_stdout(nb, "check").strip().splitlines()[-1])
    slack = 1.0 / summary["images"]
    assert all(summary["autoattack"] <= v + slack + 1e-6 for v in summary["alone"].values()), summary
    assert summary["broken_by_valid"] and summary["randomized_flagged"], summary
    assert summary["curves_monotone"], summary
    assert all(abs(c - summary["clean"]) < 1e-6 for c in summary["curves_start"]), summary
    assert summary["min_ratio"] >= 0.99, summary
    assert all(-1e-6 <= s <= 1 + 1e-6 for s in summary["scores"]), summary


# Checks on values a notebook computes, run on the executed notebook (so it executes once).
VALUE_CHECKS = {
    "01_compose_an_attack.ipynb": _check_compose_an_attack,
    "02_smooth_adversarial_examples.ipynb": _check_smooth_examples,
    "03_sparse_sapf.ipynb": _check_sparse_sapf,
    "04_saliency_attacks.ipynb": _check_saliency_attacks,
    "05_update_rules_and_smbea.ipynb": _check_update_rules_and_smbea,
    "06_evaluate_a_model.ipynb": _check_evaluate_a_model,
}


# Every notebook is a slow test (`pytest -m slow`): each runs in a fresh kernel that compiles its
# programs again (40-100 s each on 2 cores), and the default suite has 8 minutes. What they glue
# together is tested directly: the attacks and sweeps (test_conformance, test_closed_form), smooth
# examples (test_smooth_attacks), SAPF (test_sapf), saliency training and attacks (test_saliency_*),
# update rules and SMBEA (test_update_rules, test_smbea), AutoAttack (test_autoattack). The
# default suite still checks that they are stored without outputs.
SLOW_NOTEBOOKS = tuple(p.name for p in NOTEBOOK_PATHS)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_NOTEBOOKS else p
        for p in NOTEBOOK_PATHS
    ],
    ids=lambda p: p.name,
)
def test_notebook_executes(path, monkeypatch):
    start = time.perf_counter()
    nb = _execute(path, monkeypatch)
    print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s")
    if path.name in VALUE_CHECKS:
        VALUE_CHECKS[path.name](nb)
