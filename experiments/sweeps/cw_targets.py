r"""Targeted C&W-ℓ2 toward every other class: the best/average/worst-case protocol over targets.

Command:   python -m jaxadv sweep experiments/sweeps/cw_targets.py --out sweeps/cw_targets
           (tiny smoke run: experiments/sweeps/cw_targets.py:smoke)
Expected:  per image, 9 targeted runs (every class but the label). summary.md reports
           success_best ≥ success_avg ≥ success_worst and l2_best ≤ l2_avg ≤ l2_worst (over
           the fooled cases), as in Carlini & Wagner (2017), Table IV's protocol. Numbers: see
           summary.md of a run (not yet recorded here).
Cost:      32 images × 9 targets × (5 search steps × 100 Adam steps) on the default C&W
           classifier: a few minutes on 2 CPU cores. Smoke: seconds after a 1-epoch victim.
"""

from __future__ import annotations

from jaxadv.attacks import cw_l2


def get_config(arg: str | None = None) -> dict:
    smoke = arg == "smoke"
    attack = cw_l2(steps=4 if smoke else 100, search_steps=2 if smoke else 5, targeted=True)
    return dict(
        victims={"c4": "c4"} if smoke else {"cw": "cw"},
        data=dict(num_images=2 if smoke else 32, split="test"),
        grids=[dict(attack=attack, params={"step_size": [1e-2]}, targets="all", name="cw-l2")],
        seed=0,
        chunk_size=9 if smoke else 96,
        micro_batch=9 if smoke else 8,
        victim_epochs=1 if smoke else None,
        figure=None,
    )
