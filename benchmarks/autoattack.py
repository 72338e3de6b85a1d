"""AutoAttack-standard, jaxadv beside torchattacks' AutoAttack, on identical weights.

    python benchmarks/autoattack.py                    # 128 digits, ℓ∞ 0.3, 2 rounds
    python benchmarks/autoattack.py --images 32 --rounds 1 --steps 10 --queries 100   # quick

The victim is the default digits C&W net (``jaxadv.training.default_victim``); its PyTorch twin
gets the same weights (``_peer_libs.torch_state_dict_from_flax``). Both ensembles run the standard
version (APGD-CE, APGD-T, FAB-T, Square) with the same iterations, targets and queries, each on
the points still robust; one judge — the Flax victim — scores every x_adv. Rounds are interleaved
and the speed ratio is paired within a round (this machine is shared and noisy). jaxadv's first
call (compilation included) is reported apart.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _peer_libs  # noqa: E402
import _timing  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxadv.attacks import AutoAttack  # noqa: E402
from jaxadv.data import load_digits  # noqa: E402
from jaxadv.models import classifier  # noqa: E402
from jaxadv.training import default_victim  # noqa: E402


@jax.jit
def batch_logits(victim, images):
    return victim.batch(images)


def judge(victim, labels, x_adv, images, eps) -> float:
    """Robust accuracy by the Flax victim, counting only x_adv within the ℓ∞ budget and box."""
    fooled = np.argmax(np.asarray(batch_logits(victim, x_adv)), -1) != labels
    linf = np.max(np.abs(x_adv - images).reshape(len(images), -1), axis=1)
    valid = (linf <= eps * (1 + 1e-5) + 1e-6) & (x_adv.min() >= 0) & (x_adv.max() <= 1)
    clean = np.argmax(np.asarray(batch_logits(victim, images)), -1) == labels
    return float(np.mean(clean & ~(fooled & valid)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=100, help="APGD and FAB iterations")
    parser.add_argument("--queries", type=int, default=5000, help="Square's queries")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    victim, _ = default_victim("cw", progress=False)
    data = load_digits(size=28)
    images = np.asarray(data.test_images[: args.images])
    labels = np.asarray(data.test_labels[: args.images])
    ours = AutoAttack(norm="linf", eps=args.eps, steps=args.steps, queries=args.queries)
    key = jax.random.key(args.seed)
    rows = [_timing.Row("jaxadv", lambda: ours(victim, images, labels, key).x_adv)]

    absent = _peer_libs.missing("torchattacks")
    if absent is None:
        import torch
        import torchattacks

        twin = _peer_libs.torch_twin(0, channels=1, side=28)
        twin.load_state_dict(
            _peer_libs.torch_state_dict_from_flax(
                victim.variables, classifier("cw"), (28, 28, 1), twin.state_dict()
            )
        )
        x_t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        y_t = torch.from_numpy(labels.astype(np.int64))
        with torch.no_grad():
            gap = np.max(np.abs(twin(x_t).numpy() - np.asarray(batch_logits(victim, images))))
        print(f"max |logit difference| torch twin vs Flax: {gap:.2e}")
        peer = torchattacks.AutoAttack(
            twin, norm="Linf", eps=args.eps, version="standard", n_classes=10, seed=args.seed
        )
        for attack in peer._autoattack.attacks:  # the same iterations and queries as ours
            for name, value in (("steps", args.steps), ("n_queries", args.queries)):
                if hasattr(attack, name):
                    setattr(attack, name, value)

        def run_peer():
            return peer(x_t, y_t).detach().numpy().transpose(0, 2, 3, 1)

        rows.append(_timing.Row("torchattacks", run_peer))
    else:
        print(f"{absent} does not import: jaxadv alone (see benchmarks/requirements-peers.txt)")

    start = time.perf_counter()
    first = np.asarray(rows[0].call())
    first_s = time.perf_counter() - start
    outputs = {"jaxadv": first}
    for row in rows[1:]:
        outputs[row.name] = np.asarray(row.call())
    times = _timing.interleaved(rows, args.rounds, seed=args.seed)
    print(
        f"AutoAttack standard, ℓ∞ {args.eps:g}, {args.images} digits, {args.steps} iterations, "
        f"{args.queries} Square queries; jaxadv first call {first_s:.1f} s (compilation included)"
    )
    print(f"{'library':<14}{'robust acc':>11}{'s/run (median)':>16}")
    for row in rows:
        acc = judge(victim, labels, outputs[row.name], images, args.eps)
        median = _timing.summary(times[row.name])[0]
        print(f"{row.name:<14}{100 * acc:>10.2f}%{median:>16.2f}")
    if len(rows) > 1:
        ratios = _timing.paired_speed_ratio(times, "jaxadv", "torchattacks")
        med, low, high = _timing.summary(ratios)
        print(f"jaxadv speed / torchattacks: {med:.2f}x (range {low:.2f}-{high:.2f}, paired)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
