r"""Robust accuracy of the default C&W digits classifier against PGD-ℓ∞ and PGD-ℓ2, by budget.

Command:   python -m jaxadv sweep experiments/sweeps/pgd_eps_grid.py --out sweeps/pgd_eps_grid
           (tiny smoke run: experiments/sweeps/pgd_eps_grid.py:smoke; several processes: add
           --coordinator HOST:PORT --num-processes N --process-id I to each)
Expected:  robust accuracy falls monotonically with eps from the clean accuracy. Measured
           2026-11-28 on the first 128 test digits (clean accuracy 99.2%):
             ℓ∞ eps   0     0.05   0.10   0.15   0.20 .. 0.30
             robust   99.2  79.7   25.8   0.8    0.0
             ℓ2 eps   0.5   1.0    1.5    2.0    2.5 .. 3.0
             robust   91.4  63.3   28.1   4.7    0.0
Cost:      one compilation per attack structure (2), 1664 runs of 20 steps. It took 18 min on a
           2-core CPU shared with ~12 other busy processes; expect a few minutes on 2 idle cores
           after the victim is trained (~30 s, cached). Smoke: seconds after a 1-epoch victim.
"""

from __future__ import annotations

from jaxadv.attacks import pgd


def get_config(arg: str | None = None) -> dict:
    smoke = arg == "smoke"
    steps = 3 if smoke else 20
    linf = [0.0, 0.1, 0.3] if smoke else [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    l2 = [1.0, 3.0] if smoke else [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    return dict(
        victims={"c4": "c4"} if smoke else {"cw": "cw"},
        data=dict(num_images=4 if smoke else 128, split="test"),
        grids=[
            dict(attack=pgd(norm="linf", steps=steps), params={"eps": linf}, name="pgd-linf"),
            dict(attack=pgd(norm="l2", steps=steps), params={"eps": l2}, name="pgd-l2"),
        ],
        seed=0,
        chunk_size=8 if smoke else 128,
        micro_batch=4 if smoke else 16,
        victim_epochs=1 if smoke else None,
        figure=dict(x="eps", hue="attack"),
    )
