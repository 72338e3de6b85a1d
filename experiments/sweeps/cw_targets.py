r"""Targeted C&W-ℓ2 toward every other class: the best/average/worst-case protocol over targets.

Command:   python -m jaxadv sweep experiments/sweeps/cw_targets.py --out sweeps/cw_targets
           (tiny smoke run: experiments/sweeps/cw_targets.py:smoke)
Expected:  per image, 9 targeted runs (every class but the label); the best/average/worst
           case over targets as in Carlini & Wagner (2017), Table IV's protocol. Measured
           2026-11-28 on the first 32 test digits (clean accuracy 96.9%, 279 pairs):
             case      success   mean ℓ2 of the fooled
             best      100%      1.18
             average    95.7%    2.32
             worst      64.5%    3.76
           (the paper's 10,000 steps × 9 search steps would raise the worst case's success).
Cost:      288 runs × (5 search steps × 100 Adam steps), host-driven in chunks of 10 steps on
           CPU: 11 min on a 2-core CPU shared with ~12 other busy processes; expect a few
           minutes on 2 idle cores. Smoke: seconds after a 1-epoch victim.
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
