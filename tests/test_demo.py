"""The demo end to end on a tiny setting: train (or restore), attack, print the table.

It uses the test run's shared victim cache (conftest), so another test may have trained the
one-epoch victim already; training-then-restoring itself is tested in test_checkpoint.py."""

from __future__ import annotations

import io
import math

from jaxadv.cli import main
from jaxadv.demo import run_demo


# The one default-suite run of run_demo (test_experiments' classic smoke run, on another victim,
# is slow); its one-epoch C&W victim is the notebooks' and is trained once per test run.
def test_demo_prints_a_row_per_attack_and_reuses_the_cached_victim(capsys):
    out = io.StringIO()
    rows = run_demo(num_images=8, epochs=1, only=("FGSM", "PGD ℓ∞"), out=out)
    text = out.getvalue()
    assert [r["attack"] for r in rows] == ["FGSM ℓ∞ 0.3", "PGD ℓ∞ 0.3"]
    for row in rows:
        assert row["attack"] in text
        assert 0.0 <= row["robust_accuracy"] <= 1.0 and 0.0 <= row["success_rate"] <= 1.0
        assert row["images_per_s"] > 0 and row["compile_s"] > 0
    assert "clean accuracy on 8 test digits" in text
    pgd = rows[1]
    assert math.isnan(pgd["linf"]) or pgd["linf"] <= 0.3 + 1e-6
    # PGD ℓ∞ 0.3 fools nearly every digit of a one-epoch victim (C&W's 450 steps: experiments).
    assert pgd["success_rate"] >= 0.75
    first = capsys.readouterr().err
    assert "trained in" in first or "restored from" in first
    # The second run restores the orbax checkpoint instead of training.
    assert (
        main(
            [
                "demo",
                "--images",
                "8",  # the shapes of the first run: its compiled program comes from the cache
                "--epochs",
                "1",
                "--only",
                "FGSM",
            ]
        )
        == 0
    )
    assert "restored from" in capsys.readouterr().err
