"""SAPF's throughput against C&W-ℓ2 doing the same number of gradient steps, side by side.

Every SAPF step (a δ step, an ADMM step on G, or a fine-tuning step) costs one forward+backward
pass of the victim, like a C&W-ℓ2 Adam step; SAPF adds the ADMM's projections and dual updates
and the bookkeeping of its λ1 search. This benchmark measures what that adds: both attacks run
the same (image, target) pairs — each image toward each of the other classes, vmapped in one
compiled batch — with SAPF's ``trials × (steps + mask_steps + finetune_steps)`` equal to C&W's
``search_steps × steps``:

    python benchmarks/sapf_throughput.py                    # 8 digits × 9 targets, 6 × 60 steps
    python benchmarks/sapf_throughput.py --images 16 --rounds 5
    python benchmarks/sapf_throughput.py --quick            # tiny, for the smoke test

The victim is the C&W digits net (28×28×1, random weights: timing only; both attacks run a fixed
number of steps whatever the victim). Rows are timed in interleaved rounds in this one process;
the ratio is paired within a round. Compilation is timed apart. benchmarks/README.md records
measured numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _timing
import jax
import jax.numpy as jnp

from jaxadv import attacks
from jaxadv.metrics import target_pairs
from jaxadv.models import _cw_net
from jaxadv.models._victim import from_flax

NUM_CLASSES = 10
SHAPE = (28, 28, 1)


def _victim(key):
    module = _cw_net.CWNet(num_classes=NUM_CLASSES)
    variables = jax.jit(module.init)(key, jnp.zeros((1,) + SHAPE))
    return from_flax(module, variables, input_shape=SHAPE, num_classes=NUM_CLASSES)


def _rows(n_images: int, trials: int, phase: int, seed: int = 0):
    k_victim, k_images = jax.random.split(jax.random.key(seed))
    victim = _victim(k_victim)
    images = jax.random.uniform(k_images, (n_images,) + SHAPE)
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    images, labels, targets, _ = target_pairs(images, labels, NUM_CLASSES)
    key = jax.random.key(seed)

    # SAPF: `trials` λ1 trials of phase δ steps + phase G steps + phase/2 fine-tuning steps.
    sapf = attacks.sapf(steps=phase, mask_steps=phase, finetune_steps=phase // 2, trials=trials)
    sapf_steps = trials * (2 * phase + phase // 2)
    # C&W-ℓ2: the same number of Adam steps, spread over `trials` binary-search steps.
    cw = attacks.cw_l2(targeted=True, steps=sapf_steps // trials, search_steps=trials)
    rows, compile_s = [], {}
    for name, attack in (("SAPF", sapf), ("C&W-ℓ2", cw)):
        hp = attack.hparams()
        start = time.perf_counter()
        run = attack.compile_batch(victim, hp, images, labels, targets)  # compiled here, apart
        compile_s[name] = time.perf_counter() - start
        rows.append(
            _timing.Row(
                name, lambda run=run, hp=hp: run(hp, images, labels, key, targets).x_adv
            )
        )
    return rows, compile_s, len(labels), sapf_steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="digits; each gets 9 targets")
    parser.add_argument("--trials", type=int, default=6, help="SAPF λ1 trials = C&W search steps")
    parser.add_argument("--phase", type=int, default=24, help="SAPF δ (and G) steps per trial")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 digit, 2 × 5 steps, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.trials, args.phase, args.rounds = 1, 2, 2, 2
    print(f"backend: {jax.default_backend()}")
    rows, compile_s, pairs, steps = _rows(args.images, args.trials, args.phase)
    _timing.first_calls(rows)  # one warm-up call each
    times = _timing.interleaved(rows, args.rounds)
    print(
        f"\n{pairs} (image, target) pairs in one batch, {steps} gradient steps per pair "
        f"(SAPF {args.trials} × ({args.phase} + {args.phase} + {args.phase // 2}); "
        f"C&W-ℓ2 {args.trials} × {steps // args.trials})"
    )
    print(f"{'attack':<10}{'pairs/s (median, min–max)':>30}{'steps·pairs/s':>16}{'compile s':>12}")
    report = {"pairs": pairs, "steps": steps, "compile_s": compile_s, "pairs_per_s": {}}
    for name, values in times.items():
        rates = [pairs / t for t in values]
        med, lo, hi = _timing.summary(rates)
        report["pairs_per_s"][name] = rates
        spread = f"({lo:.2f}–{hi:.2f})"
        print(f"{name:<10}{med:>14.2f}  {spread:<14}{med * steps:>16.0f}{compile_s[name]:>12.1f}")
    ratio = _timing.paired_speed_ratio(times, "C&W-ℓ2", "SAPF")
    med, lo, hi = _timing.summary(ratio)
    print(f"SAPF time / C&W-ℓ2 time, same steps: {med:.2f} ({lo:.2f}–{hi:.2f})")
    report["ratio"] = ratio
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
