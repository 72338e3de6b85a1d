r"""The Square Attack (score-based, ℓ∞ and ℓ2) on the default digits victim: success, queries, time.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/square_digits.py
           (tiny smoke run: --smoke; one setting: --only "linf 0.3 / 1000")
Expected:  the C&W net, first 128 test digits (127 correct), key 0, measured 2026-12-06 on the
           shared 2-core CPU (load 5-9): success on correct digits / mean / median queries of
           the successful ones / run time (compile apart):
             linf 0.3 / 1000:            100%  7.7   6    56 s (compile 35 s)
             linf 0.3 / 1000 resample:   100%  7.4   5    39 s
             linf 0.3 / 5000:            100%  12.9  10   411 s (compile 48 s)
             l2 3.0 / 5000:              98.4% 92.8  19   355 s (compile 69 s)
           (linf 0.1 / 1000: 66.1% mean 120 median 55; with resample 68.5% mean 125 median 58.)
Cost:      minutes per setting: every one of the `queries` steps runs a forward pass of the whole
           batch (the queries of examples already fooled are not counted, but a vmapped batch
           still computes them), however early the examples are fooled.
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

# (label, attack, eps)
SETTINGS = (
    ("linf 0.3 / 1000", lambda: attacks.square(queries=1000), 0.3),
    ("linf 0.3 / 1000 resample", lambda: attacks.square(queries=1000, resample=True), 0.3),
    ("linf 0.3 / 5000", lambda: attacks.square(queries=5000), 0.3),
    ("l2 3.0 / 5000", lambda: attacks.square(norm="l2", queries=5000), 3.0),
)
CONFIG = dict(model="cw", num_images=128)
SMOKE = dict(model="cw", num_images=4)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run (20 queries)")
    parser.add_argument("--only", default=None, help="run the settings whose label starts so")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else CONFIG
    victim, info = default_victim(config["model"], cache_dir=args.cache_dir, progress=True)
    data = load_digits(size=28)
    n = config["num_images"]
    images = jnp.asarray(data.test_images[:n])
    labels = jnp.asarray(data.test_labels[:n], jnp.int32)
    correct = np.argmax(np.asarray(victim.batch(images)), -1) == np.asarray(labels)
    print(
        f"victim {config['model']} (test accuracy {info['test_accuracy']:.3f}), {n} images, "
        f"clean accuracy {correct.mean():.3f}, backend {jax.default_backend()}"
    )
    rows = []
    for label, make, eps in SETTINGS:
        if args.only and not label.startswith(args.only):
            continue
        attack = make()
        if args.smoke:
            attack = attacks.square(norm=attack.norm, queries=20, resample=attack.resample)
        hp = attack.hparams(eps=eps)
        start = time.perf_counter()
        run = attack.compile_batch(victim, hp, images, labels)
        compiled = time.perf_counter() - start
        start = time.perf_counter()
        r = jax.block_until_ready(run(hp, images, labels, jax.random.key(0)))
        seconds = time.perf_counter() - start
        success, queries = np.asarray(r.success), np.asarray(r.queries)
        fooled = success & correct  # as the paper counts: attacks on correctly classified points
        row = dict(
            setting=label,
            success=float(fooled.sum() / max(correct.sum(), 1)),
            mean_queries=float(np.mean(queries[fooled])) if fooled.any() else float("nan"),
            median_queries=float(np.median(queries[fooled])) if fooled.any() else float("nan"),
            mean_queries_all=float(np.mean(queries[correct])),
            max_norm=float(np.max(r.linf if attack.norm == "linf" else r.l2)),
            compile_s=round(compiled, 1),
            run_s=round(seconds, 1),
        )
        rows.append(row)
        print(
            f"{label:26s} success {row['success']:.3f}  queries (successful) mean "
            f"{row['mean_queries']:.1f} median {row['median_queries']:.0f}  (all correct: mean "
            f"{row['mean_queries_all']:.1f})  max {attack.norm} {row['max_norm']:.4f}  compile "
            f"{compiled:.1f} s  run {seconds:.1f} s",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
