r"""Robust accuracy of the default C&W digits classifier against PGD-ℓ∞ and PGD-ℓ2, by budget.

Command:   python -m jaxadv sweep experiments/sweeps/pgd_eps_grid.py --out sweeps/pgd_eps_grid
           (tiny smoke run: experiments/sweeps/pgd_eps_grid.py:smoke; several processes: add
           --coordinator HOST:PORT --num-processes N --process-id I to each)
Expected:  robust accuracy falls monotonically with eps, from the clean accuracy (~99% on these
           128 test digits) at eps = 0 to near 0% at ℓ∞ 0.3 (the standard MNIST budget) and at
           ℓ2 3.0. Numbers: see summary.md of a run (not yet recorded here).
Cost:      one compilation per attack structure (2), 128 images × 14 budgets × 20 steps: about
           a minute on 2 CPU cores after the victim is trained (~30 s, cached). Smoke: seconds
           after a 1-epoch victim.
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
