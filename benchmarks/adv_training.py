"""An AT-PGD epoch against a plain epoch of the same classifier, side by side in one process.

Adversarial training (Madry et al. 2018) runs a k-step PGD attack inside every train step: k
forward+backward passes of the batch, one forward pass to evaluate the last iterate, and the
training pass itself. Its epoch should cost about ``k + 1`` plain epochs; the goal is a ratio of
at most ``k + 1.2`` (the attack's bookkeeping, the clean-accuracy forward pass and the best-iterate
selection together under a fifth of a plain step):

    python benchmarks/adv_training.py                    # C&W digits net, 512 images, 10 steps
    python benchmarks/adv_training.py --model mlp --rounds 5
    python benchmarks/adv_training.py --quick            # tiny, for a smoke run

Both rows run the library's own entry points as a user calls them, one epoch per call:
``train_classifier(epochs=1)`` and ``train_adversarial(epochs=1, attack=pgd(steps=k))``, same
module, data, batch size and Adam. Rows are timed in interleaved rounds; the ratio is paired within
a round. Compilation (first call minus second) is reported apart. benchmarks/README.md records
measured numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _timing
import jax

from jaxadv.attacks import pgd
from jaxadv.data import load_digits
from jaxadv.models import ReluMLP, classifier
from jaxadv.training import train_adversarial, train_classifier

PLAIN, ADVERSARIAL = "plain epoch", "AT-PGD epoch"


def _rows(model: str, images: int, size: int, steps: int, batch_size: int):
    data = load_digits(size=size)
    x, y = data.train_images[:images], data.train_labels[:images]
    module = ReluMLP(hidden=(256, 256)) if model == "mlp" else classifier(model)
    key = jax.random.key(0)
    attack = pgd(steps=steps)
    hp = attack.hparams(eps=0.3)
    common = dict(key=key, epochs=1, batch_size=batch_size, progress=False)
    return [
        _timing.Row(
            PLAIN, lambda: train_classifier(module, x, y, cosine_decay=False, **common)["params"]
        ),
        _timing.Row(
            ADVERSARIAL,
            lambda: train_adversarial(module, x, y, attack=attack, hp=hp, **common).variables,
        ),
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cw", choices=("cw", "c4", "mlp"), help="(cw)")
    parser.add_argument("--images", type=int, default=512, help="training images (512)")
    parser.add_argument("--size", type=int, default=28, help="digit side (28)")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps k (10)")
    parser.add_argument("--batch-size", type=int, default=128, help="(128)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="mlp, 8x8, 128 images, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.size, args.images, args.rounds = "mlp", 8, 128, 2
    print(f"backend: {jax.default_backend()}")
    rows = _rows(args.model, args.images, args.size, args.steps, args.batch_size)
    compile_s, _ = _timing.first_calls(rows)
    times = _timing.interleaved(rows, args.rounds)
    steps_per_epoch = args.images // min(args.batch_size, args.images)
    print(
        f"\n{args.model} on {args.images} {args.size}x{args.size} digits, batch "
        f"{args.batch_size} ({steps_per_epoch} steps an epoch), PGD-linf {args.steps} steps"
    )
    print(f"{'row':<14}{'s/epoch (median, min–max)':>30}{'compile s':>12}")
    for name, values in times.items():
        med, lo, hi = _timing.summary(values)
        print(f"{name:<14}{med:>14.3f}  {f'({lo:.3f}–{hi:.3f})':<14}{compile_s[name]:>12.1f}")
    ratio = _timing.paired_speed_ratio(times, PLAIN, ADVERSARIAL)  # time AT / time plain
    med, lo, hi = _timing.summary(ratio)
    goal = args.steps + 1.2
    verdict = "meets" if med <= goal else "misses"
    print(
        f"AT-PGD epoch / plain epoch: {med:.2f} ({lo:.2f}–{hi:.2f}); goal <= steps + 1.2 = "
        f"{goal:.1f}: {verdict} it ({med / goal:.2f} of the goal)"
    )
    return {"times": times, "ratio": ratio, "goal": goal, "compile_s": compile_s}


if __name__ == "__main__":
    main(sys.argv[1:])
