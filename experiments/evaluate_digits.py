r"""Evaluate a digits classifier as a paper would: the AutoAttack report, and how close minimum-norm
attacks come to the exact minimum (AttackBench's optimality, against mixed-integer programs).

Command:   python experiments/evaluate_digits.py [--images 128] [--eps 0.1] [--opt-images 50]
           (tiny smoke run: --smoke)
Expected:  see experiments/README.md ("Measured: evaluate_digits.py"): at ℓ∞ 0.1 on 128 digits
           AutoAttack 21.09%, APGD-CE alone 26.56%, PGD 27.34%; on the ReLU net FAB-ℓ∞ found/exact
           median 1.006, p90 1.042 at 1,001 passes, FAB-ℓ1 1.004 / 1.104.
           Part 1, the default C&W digits net (no adversarially trained victim exists yet): the
           AutoAttack-standard report at ℓ∞ eps, next to APGD-CE alone and PGD with the same
           budget and iterations (robust accuracy: AutoAttack ≤ APGD-CE ≤ PGD is the claim).
           Part 2, the small ReLU net on 8×8 digits (jaxadv.training.small_relu_victim): exact
           minimum ℓ∞ and ℓ1 perturbations by MIP (jaxadv.metrics.exact_min_norm), and per
           minimum-norm attack the median and 90th percentile of found/exact, its success and its
           forward+backward passes per image; the per-image best of the attacks; each attack's
           local optimality (Cinà et al. 2025) with the exact minima as reference; the robust-
           accuracy curve of ONE FMN run against the exact one.
Cost:      part 1 several minutes on 2 CPU cores (compilation included); part 2 ~5 s of MIP per
           image and norm plus the attacks.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from jaxadv import attacks, metrics
from jaxadv.data import load_digits
from jaxadv.training import default_victim, small_relu_victim

CONFIG = dict(images=128, eps=0.1, steps=100, queries=5000, opt_images=50, opt_steps=1000)
SMOKE = dict(images=8, eps=0.1, steps=3, queries=10, opt_images=3, opt_steps=5)


def _robust_accuracy(victim, images, labels, result, eps) -> float:
    """Clean-correct and not fooled within ``eps`` (ℓ∞), judged on ``x_adv`` by the victim."""
    x_adv = np.asarray(result.x_adv)
    clean = np.argmax(np.asarray(victim.batch(images)), -1) == labels
    fooled = np.argmax(np.asarray(victim.batch(x_adv)), -1) != labels
    linf = np.max(np.abs(x_adv - np.asarray(images)).reshape(len(x_adv), -1), axis=1)
    return float(np.mean(clean & ~(fooled & (linf <= eps * (1 + 1e-5) + 1e-6))))


def autoattack_part(config, cache_dir=None) -> dict:
    victim, _ = default_victim("cw", cache_dir=cache_dir, progress=False)
    data = load_digits(size=28)
    n, eps, steps = config["images"], config["eps"], config["steps"]
    images, labels = data.test_images[:n], data.test_labels[:n]
    key = jax.random.key(0)
    report = attacks.AutoAttack(
        norm="linf", eps=eps, steps=steps, queries=config["queries"], progress=True
    )(victim, images, labels, key)
    print(report.table())
    rows = {"AutoAttack standard": report.robust_accuracy}
    for name, attack in (
        ("APGD-CE alone", attacks.apgd(steps=steps)),
        ("PGD alone (same steps, step eps/4)", attacks.pgd(steps=steps)),
    ):
        hp = attack.hparams(eps=eps)
        result = attack.batch(victim, hp, images, labels, key)
        rows[name] = _robust_accuracy(victim, images, labels, result, eps)
    for name, acc in rows.items():
        print(f"{name:<36} robust accuracy {100 * acc:6.2f}%")
    return {"report": report, "robust_accuracy": rows}


def _min_norm_attacks(norm: str, steps: int) -> dict:
    """The minimum-norm attacks of ``norm`` at a budget of about ``steps`` passes per image."""
    if norm == "linf":
        return {
            "FMN-ℓ∞": attacks.fmn(norm="linf", steps=steps),
            "FAB-ℓ∞": attacks.fab(norm="linf", steps=max(steps // 10, 1)),
            "DeepFool-ℓ∞": attacks.deepfool(norm="linf", steps=max(steps // 20, 1)),
        }
    search = 9 if steps >= 90 else 1
    return {
        "FMN-ℓ1": attacks.fmn(norm="l1", steps=steps),
        "FAB-ℓ1": attacks.fab(norm="l1", steps=max(steps // 10, 1)),
        "EAD": attacks.ead(steps=max(steps // search, 1), search_steps=search, decision="l1"),
    }


def optimality_part(config) -> dict:
    victim, info = small_relu_victim()
    data = load_digits(size=8)
    n = config["opt_images"]
    images, labels = data.test_images[:n], data.test_labels[:n]
    clean = np.argmax(np.asarray(victim.batch(images)), -1) == labels
    print(f"\nsmall ReLU net: clean test accuracy {info['test_accuracy']:.3f}; {clean.sum()}/{n}")
    out = {}
    for norm in ("linf", "l1"):
        start = time.perf_counter()
        exact = np.array(
            [
                metrics.exact_min_norm(victim, x, int(y), norm=norm).norm if ok else 0.0
                for x, y, ok in zip(images, labels, clean)
            ]
        )
        print(f"exact {norm} minima: median {np.median(exact[clean]):.4f} "
              f"({time.perf_counter() - start:.0f} s of MIP)")  # fmt: skip
        found, passes, success = {}, {}, {}
        for name, attack in _min_norm_attacks(norm, config["opt_steps"]).items():
            result = attack.batch(victim, attack.hparams(), images, labels, jax.random.key(0))
            found[name] = np.asarray(getattr(result, norm))
            success[name] = np.asarray(result.success)
            passes[name] = float(np.mean(np.asarray(result.queries)[clean]))
        names = list(found)
        stacked = np.where(np.stack([success[a] for a in names]), np.stack(
            [found[a] for a in names]), np.inf)  # fmt: skip
        found["best of the above"] = stacked.min(0)
        success["best of the above"] = np.isfinite(found["best of the above"])
        passes["best of the above"] = sum(passes.values())
        scores = metrics.local_optimality(
            np.stack([found[a] for a in names]), np.stack([success[a] for a in names]), clean,
            reference=exact,
        )  # fmt: skip
        rows = []
        print(f"{'attack':<20}{'success':>9}{'median':>9}{'p90':>9}{'passes':>9}{'LO':>7}")
        for i, name in enumerate(found):
            ok = success[name] & clean
            ratio = found[name][ok] / np.maximum(exact[ok], 1e-12)
            row = dict(
                attack=name, norm=norm,
                success=float(ok.sum() / max(clean.sum(), 1)),
                median_ratio=float(np.median(ratio)) if ratio.size else float("nan"),
                p90_ratio=float(np.percentile(ratio, 90)) if ratio.size else float("nan"),
                passes=passes[name],
                optimality=float(scores[i]) if i < len(names) else float("nan"),
            )  # fmt: skip
            rows.append(row)
            print(f"{name:<20}{100 * row['success']:>8.1f}%{row['median_ratio']:>9.4f}"
                  f"{row['p90_ratio']:>9.4f}{row['passes']:>9.0f}"
                  f"{row['optimality']:>7.3f}")  # fmt: skip
        budgets = np.quantile(exact[clean], [0.25, 0.5, 0.75]) if clean.any() else np.zeros(3)
        fmn_name = names[0]
        curve = metrics.robust_accuracy_curve(found[fmn_name], success[fmn_name], clean, budgets)
        truth = metrics.robust_accuracy_curve(exact, clean, clean, budgets)
        print(f"robust accuracy at {np.round(budgets, 4).tolist()}: {fmn_name} "
              f"{np.round(np.asarray(curve), 3).tolist()}, exact "
              f"{np.round(np.asarray(truth), 3).tolist()}")  # fmt: skip
        out[norm] = dict(rows=rows, exact=exact, curve=np.asarray(curve), truth=np.asarray(truth))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--eps", type=float, default=None)
    parser.add_argument("--opt-images", type=int, default=None)
    parser.add_argument("--part", choices=("autoattack", "optimality", "both"), default="both")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    for name in ("images", "eps", "opt_images"):
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    out = {}
    if args.part in ("autoattack", "both"):
        out["autoattack"] = autoattack_part(config, args.cache_dir)
    if args.part in ("optimality", "both"):
        out["optimality"] = optimality_part(config)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
