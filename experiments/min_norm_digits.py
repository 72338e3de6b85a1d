r"""Minimum-norm attacks on the default digits victim: DeepFool ℓ2/ℓ∞, EAD ℓ1, FMN ℓ0/ℓ1/ℓ2/ℓ∞,
DDN ℓ2, FAB ℓ2/ℓ∞/ℓ1 (success rate, median norm of the smallest adversarial found, steps,
queries, time).

Command:   python experiments/min_norm_digits.py [--num-images 128] [--ead-steps 100]
           [--only FMN DDN FAB] (tiny smoke run: --smoke)
Expected:  measured on the first 128 test digits, C&W net (2026-12-06, 2-core CPU shared with
           other jobs, load ~9-15, so wall times are several times an idle machine's): see the
           README of experiments/ ("Measured: min_norm_digits.py").
Cost:      DeepFool 50 steps × 9 Jacobian rows; EAD search_steps × ead_steps (F)ISTA steps, each
           one forward+backward and one forward; FMN and DDN `--steps` (100) forward+backward
           passes. Minutes per attack on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from jaxadv.attacks import ddn, deepfool, ead, fab, fmn
from jaxadv.data import load_digits
from jaxadv.training import default_victim

_FMN_NORMS = (("l2", "ℓ2"), ("linf", "ℓ∞"), ("l1", "ℓ1"), ("l0", "ℓ0"))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--num-images", type=int, default=128)
    parser.add_argument("--ead-steps", type=int, default=1000, help="(F)ISTA steps per constant")
    parser.add_argument("--ead-search-steps", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100, help="FMN and DDN steps")
    parser.add_argument("--only", nargs="*", default=None, help="attack names to run")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    n, steps, search = args.num_images, args.ead_steps, args.ead_search_steps
    df_steps, gd_steps = 50, args.steps
    if args.smoke:
        n, steps, search, df_steps, gd_steps = 4, 3, 2, 3, 3
    attacks = {
        "DeepFool ℓ2": (deepfool(norm="l2", steps=df_steps), "l2"),
        "DeepFool ℓ∞": (deepfool(norm="linf", steps=df_steps), "linf"),
        f"EAD ℓ1 ({search}×{steps}, EN rule)": (ead(steps=steps, search_steps=search), "l1"),
        "DDN ℓ2": (ddn(steps=gd_steps), "l2"),
        **{f"FMN {name}": (fmn(norm=norm, steps=gd_steps), norm) for norm, name in _FMN_NORMS},
        **{
            f"FAB {name}": (fab(norm=norm, steps=gd_steps), norm)
            for norm, name in _FMN_NORMS
            if norm != "l0"
        },
    }
    data = load_digits(size=28)
    victim, _ = default_victim("cw", cache_dir=args.cache_dir, progress=not args.smoke)
    images, labels = data.test_images[:n], data.test_labels[:n]
    correct = np.argmax(np.asarray(victim.batch(images)), axis=-1) == labels
    print(f"clean accuracy {correct.mean():.1%} on {n} test digits")
    rows = []
    for name, (attack, norm) in attacks.items():
        if args.only is not None and not any(name.startswith(o) for o in args.only):
            continue
        hp = attack.hparams()
        start = time.perf_counter()
        run = attack.compile_batch(victim, hp, images, labels)
        compiled = time.perf_counter()
        result = jax.block_until_ready(run(hp, images, labels, jax.random.key(0)))
        done = time.perf_counter()
        fooled = np.asarray(result.success) & correct  # of the correctly classified
        row = dict(
            attack=name,
            success=float(fooled.sum() / max(correct.sum(), 1)),
            median_norm=float(np.median(np.asarray(getattr(result, norm))[fooled]))
            if fooled.any()
            else float("nan"),
            norm=norm,
            median_l2=float(np.median(np.asarray(result.l2)[fooled])) if fooled.any() else 0.0,
            mean_steps=float(np.mean(result.steps)),
            mean_queries=float(np.mean(result.queries)),
            compile_s=compiled - start,
            run_s=done - compiled,
        )
        rows.append(row)
        print(
            f"{name}: success {row['success']:.1%}, median {norm} {row['median_norm']:.3f} "
            f"(ℓ2 {row['median_l2']:.3f}), mean steps {row['mean_steps']:.1f}, mean queries "
            f"{row['mean_queries']:.0f}, compile {row['compile_s']:.1f} s, run {row['run_s']:.1f} s",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
