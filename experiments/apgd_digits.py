r"""APGD-CE, APGD-T and PGD on the default digits victim: robust accuracy and wall time.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/apgd_digits.py
           (tiny smoke run: --smoke; other budgets: --eps 0.1)
Expected:  the C&W net (test accuracy 97.8%), first 128 test digits (clean 99.2%), 100 steps,
           measured 2026-12-06 on the shared 2-core CPU (load average 9-13, so times are rough):
             ℓ∞ eps 0.3: APGD-CE 0.0%, APGD-T 0.0%, PGD 0.0% robust accuracy (the victim is not
               adversarially trained); run 64 s / 419 s / 42 s, compile 104 s / 118 s / 30 s.
             ℓ∞ eps 0.1 (--eps 0.1): APGD-CE 26.6%, APGD-T 21.9%, PGD 27.3%; run 28 s / 278 s /
               33 s, compile 26 s / 54 s / 22 s.
           APGD-T spends 9 × 100 forward+backward passes per image (one run per target class).
Cost:      on 2 CPU cores, ~10 minutes (APGD-T dominates); compile and run times are printed
           apart.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks
from jaxadv.data import load_digits
from jaxadv.training import default_victim

CONFIG = dict(model="cw", num_images=128, steps=100, eps=0.3)
SMOKE = dict(model="cw", num_images=4, steps=3, eps=0.3)


def contenders(steps: int) -> dict:
    return {
        "APGD-CE": attacks.apgd(steps=steps),
        "APGD-T (9 targets)": attacks.apgd(loss="dlr-targeted", steps=steps),
        "PGD (CE, random start)": attacks.pgd(steps=steps),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--eps", type=float, default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.eps is not None:
        config["eps"] = args.eps
    victim, info = default_victim(config["model"], cache_dir=args.cache_dir, progress=True)
    data = load_digits(size=28)
    n = config["num_images"]
    images = jnp.asarray(data.test_images[:n])
    labels = jnp.asarray(data.test_labels[:n], jnp.int32)
    clean = np.mean(np.argmax(np.asarray(victim.batch(images)), -1) == np.asarray(labels))
    print(
        f"victim {config['model']} (test accuracy {info['test_accuracy']:.3f}), {n} images, "
        f"clean accuracy {clean:.3f}, ℓ∞ eps {config['eps']}, {config['steps']} steps, "
        f"backend {jax.default_backend()}"
    )
    rows = []
    for name, attack in contenders(config["steps"]).items():
        hp = attack.hparams(eps=config["eps"])
        start = time.perf_counter()
        run = attack.compile_batch(victim, hp, images, labels)
        compiled = time.perf_counter() - start
        start = time.perf_counter()
        result = jax.block_until_ready(run(hp, images, labels, jax.random.key(0)))
        seconds = time.perf_counter() - start
        row = dict(
            attack=name,
            robust_accuracy=float(1 - np.mean(result.success)),
            mean_linf=float(np.mean(result.linf)),
            queries_per_image=float(np.mean(result.queries)),
            compile_s=round(compiled, 2),
            run_s=round(seconds, 2),
        )
        rows.append(row)
        print(
            f"{name:24s} robust acc {row['robust_accuracy']:.3f}  max ℓ∞ "
            f"{float(np.max(result.linf)):.4f}  fwd+bwd/image {row['queries_per_image']:.0f}  "
            f"compile {compiled:.1f} s  run {seconds:.1f} s"
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
