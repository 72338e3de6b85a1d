"""The smoke variant of experiments/sapf_table1.py runs and returns its Table 1 and k sweep; the
protocol functions it relies on follow their definitions on hand-made results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from jaxadv.results import AttackResult
from jaxadv.metrics._sparse import (
    case_table,
    k_sweep,
    smallest_successful_budget,
    target_pairs,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _fake(success, l2, shape=None):
    success = np.asarray(success, bool)
    l2 = np.asarray(l2, np.float32)
    zeros = np.zeros(success.shape, np.float32)
    return AttackResult(
        x_adv=zeros,
        delta=zeros,
        success=success,
        loss=zeros,
        logits=zeros,
        l0=2 * l2,
        l1=3 * l2,
        l2=l2,
        linf=l2 / 2,
        steps=zeros,
        queries=zeros,
        trace=zeros,
    )


def test_target_pairs_cover_every_other_class():
    images = np.arange(2 * 3).reshape(2, 3).astype(np.float32)
    imgs, labels, targets, index = target_pairs(images, np.array([0, 2]), 3)
    np.testing.assert_array_equal(targets, [1, 2, 0, 1])
    np.testing.assert_array_equal(labels, [0, 0, 2, 2])
    np.testing.assert_array_equal(index, [0, 0, 1, 1])
    np.testing.assert_array_equal(imgs, images[[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="`labels`"):
        target_pairs(images, np.array([0, 3]), 3)


def test_best_average_worst_cases():
    # 2 images × 3 targets; image 0 all succeed, image 1 one failure.
    result = _fake([1, 1, 1, 1, 0, 1], [1.0, 3.0, 2.0, 5.0, 9.0, 4.0])
    table = case_table(result, per_image=3)
    assert table["best"]["asr"] == 100.0 and table["best"]["l2"] == pytest.approx((1 + 4) / 2)
    assert table["average"]["asr"] == pytest.approx(500 / 6)
    assert table["average"]["l2"] == pytest.approx((1 + 3 + 2 + 5 + 4) / 5)
    # Worst: image 0's largest ℓ2 (3); image 1's failed target is its worst case.
    assert table["worst"]["asr"] == 50.0 and table["worst"]["l2"] == pytest.approx(3.0)
    assert table["worst"]["l1"] == pytest.approx(9.0)


def test_smallest_successful_budget_and_k_sweep():
    # Budgets along axis 0; example 0 succeeds from budget 1, example 1 never.
    results = _fake([[0, 0], [1, 0], [1, 0]], [[0.1, 0.2], [0.5, 0.6], [0.9, 1.0]])
    picked, chosen = smallest_successful_budget(results)
    np.testing.assert_array_equal(chosen, [1, 2])
    np.testing.assert_allclose(picked.l2, [0.5, 1.0])
    np.testing.assert_array_equal(picked.success, [True, False])
    rows = k_sweep(results, [1, 2, 3])
    assert [r["asr"] for r in rows] == [0.0, 50.0, 50.0]
    assert rows[1]["l2"] == pytest.approx(0.5) and np.isnan(rows[0]["l2"])


# Notebook 03 runs SAPF on the same victim in the default suite; the table's helpers are tested
# above.
# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_sapf_table1_smoke():
    spec = importlib.util.spec_from_file_location("sapf_table1", EXPERIMENTS / "sapf_table1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--smoke"])  # the shared victim cache
    assert out["pairs"] == 2 * 9
    table = out["tables"]["SAPF"]
    assert set(table) == {"best", "average", "worst"}
    assert 0.0 <= table["worst"]["asr"] <= table["average"]["asr"] <= table["best"]["asr"] <= 100
    for row in out["k_sweep"]:
        assert np.isnan(row["l0"]) or row["l0"] <= row["k"]


# Slow (`pytest -m slow`): fine-tunes the smoke victim against FGSM (once; cached) and runs SAPF.
@pytest.mark.slow
def test_sapf_table1_adversarial_smoke():
    from jaxadv.models import default_cache_dir

    spec = importlib.util.spec_from_file_location("sapf_table1", EXPERIMENTS / "sapf_table1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--smoke", "--adversarial", "--no-sweep"])  # the shared victim cache
    assert out["adversarial"] and 0.0 < out["accuracy"] <= 1.0
    assert out["pairs"] == 2 * 9 and [r["k"] for r in out["k_sweep"]] == [40.0]  # k only
    table = out["tables"]["SAPF"]
    assert 0.0 <= table["worst"]["asr"] <= table["average"]["asr"] <= table["best"]["asr"] <= 100
    # The victim is smooth_table1.py's FGSM-trained one: its checkpoints are the shared cache.
    tag = "cw-digits-28-128-eps0.3-goodfellow"
    assert (default_cache_dir() / f"smooth-table-at-{tag}").is_dir()
