r"""FAB-ℓ∞ and FAB-ℓ2 (untargeted, minimum norm) on the default digits victim.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/fab_digits.py
           (tiny smoke run: --smoke)
Expected:  the C&W net on the first 128 test digits (clean 99.2%), 100 FAB steps, 1 restart,
           measured 2026-12-06 on the shared 2-core CPU (load 5-15, so times are loose):
           FAB-ℓ∞: 100% of the clean-correct digits fooled, median ℓ∞ 0.0769 (mean 0.0767),
           robust accuracy at ℓ∞ 0.3: 0%, 347 s (+ 74 s compile);
           FAB-ℓ2: 100% fooled, median ℓ2 1.250 (mean 1.214; the README quotes C&W-ℓ2 5×50 at
           1.281), robust accuracy at ℓ2 3.0: 0%, 289 s (+ 87 s compile).
           1001 queries per clean-correct image (1 + 100 × (9 gradients + 1 forward)).
Cost:      about 6-7 min per norm there (each step is the Jacobian of the 10 logits).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from jaxadv import attacks
from jaxadv.data import load_digits
from jaxadv.training import default_victim

CONFIG = dict(num_images=128, steps=100, runs=(("linf", 0.3), ("l2", 3.0)))
SMOKE = dict(num_images=4, steps=3, runs=(("linf", 0.3),))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else CONFIG
    victim, _ = default_victim("cw", progress=True)
    data = load_digits(size=28)
    images = data.test_images[: config["num_images"]]
    labels = data.test_labels[: config["num_images"]]
    correct = np.argmax(np.asarray(victim.batch(images)), axis=-1) == labels
    print(f"clean accuracy on {len(labels)} test digits: {correct.mean():.1%}")
    rows = []
    for norm, eps in config["runs"]:
        attack = attacks.fab(norm=norm, steps=config["steps"])
        hp = attack.hparams(eps=eps)  # success = fools the victim within eps
        start = time.perf_counter()
        run = attack.compile_batch(victim, hp, images, labels)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        result = jax.block_until_ready(run(hp, images, labels, jax.random.key(0)))
        seconds = time.perf_counter() - start
        fooled = np.argmax(np.asarray(result.logits), axis=-1) != labels
        size = np.asarray(getattr(result, norm))
        found = fooled & correct  # a fooling point found for a clean-correct digit
        row = dict(
            attack=f"FAB-{norm}",
            success_rate=found.sum() / correct.sum(),
            median_norm=float(np.median(size[found])) if found.any() else float("nan"),
            mean_norm=float(np.mean(size[found])) if found.any() else float("nan"),
            eps=eps,
            robust_accuracy=float(np.mean(correct & ~np.asarray(result.success))),
            run_s=seconds,
            compile_s=compile_s,
            queries_per_image=float(np.mean(np.asarray(result.queries))),
        )
        rows.append(row)
        print(
            f"{row['attack']}: success {row['success_rate']:.1%} of clean-correct, median "
            f"{norm} {row['median_norm']:.4f} (mean {row['mean_norm']:.4f}), robust accuracy at "
            f"{eps} {row['robust_accuracy']:.1%}, run {seconds:.1f} s (+ compile "
            f"{compile_s:.1f} s), "
            f"{row['queries_per_image']:.0f} queries/image"
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
