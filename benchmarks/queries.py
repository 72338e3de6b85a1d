"""Queries per second: jaxadv's compiled NES attack beside the Python-loop NES that peers write.

    python benchmarks/queries.py                          # both victims, batch 32, 1,020 queries
    python benchmarks/queries.py --victims mlp --batch 128 --rounds 5
    python benchmarks/queries.py --quick                  # the smoke test (tiny, one round)

The problem: untargeted NES-ℓ∞ (Ilyas et al. 2018) with 50 antithetic probes per step, σ 0.001,
sign steps of 0.06 projected on the ℓ∞ ball of 0.3 and the pixel box, C&W margin loss, no early
stop (every example spends the whole budget), on a victim with random weights (seed 0): ``cw``
(the C&W digits net, 28×28×1, convolutions dominate) or ``mlp`` (a ReLU MLP with 32 hidden units
on 8×8×1, where per-call overhead dominates). Rows, all in this one process, timed in interleaved
rounds (``_timing``):

* ``jaxadv``: ``QueryAttack(oracle=gradients.nes(50))`` on ``models.score_only(victim)``, the
  whole batch in one compiled call (``compile_batch``; vmapped examples, one program).
* ``jaxadv, rbg key``: the same with a ``jax.random.key(0, impl="rbg")`` key (XLA's random bit
  generator instead of threefry): the PRNG's share of the cost (NES draws 25 Gaussian images per
  example and step).
* ``loop, jit forward``: the form peer libraries take — per image, a Python loop over steps; each
  step draws the probes with numpy, evaluates the iterate and its 50 probes in ONE call of a
  jitted forward pass, and computes the estimate, the step and the projection in numpy.
* ``loop, eager forward``: the same loop with the forward pass run eagerly (op by op).

Queries/s counts every query answered (probes and iterate evaluations, the final evaluation
included: jaxadv's ``result.queries`` and the loop's own count); ratios are jaxadv's queries/s
over a loop's, paired within a round (> 1: jaxadv faster). Compilation is reported apart.
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

import _timing  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxadv import attacks, gradients, models  # noqa: E402
from jaxadv.losses import classification_objective  # noqa: E402

SAMPLES, SIGMA, EPS, STEP = 50, 1e-3, 0.3, 0.06
LABEL_WIDTH = 22
RATIO_WIDTH = 40
# (a, b): a's queries/s over b's, paired per round.
RATIOS = [
    (ours, loop)
    for ours in ("jaxadv", "jaxadv, rbg key")
    for loop in ("loop, jit forward", "loop, eager forward")
]
VICTIMS = {
    "cw": (lambda: models.classifier("cw"), (28, 28, 1)),
    "mlp": (lambda: models.ReluMLP(hidden=(32,)), (8, 8, 1)),
}


def make_victim(name: str):
    """The named victim with random weights (seed 0) and pixels in [0, 1]."""
    build, shape = VICTIMS[name]
    module = build()
    variables = module.init(jax.random.key(0), jnp.zeros((1, *shape)))
    return models.from_flax(module, variables, input_shape=shape, num_classes=10)


def nes_attack(max_queries: int):
    return attacks.QueryAttack(
        objective=classification_objective("cw", targeted=False),
        step_rule=attacks.SteepestStep("linf"),
        constraint=attacks.Ball("linf"),
        oracle=gradients.nes(SAMPLES),
        max_queries=max_queries,
        early_stop=False,
        name="nes-linf",
    )


def margin(logits: np.ndarray, label: int) -> np.ndarray:
    """C&W margin of each row: the label's logit minus the largest other one (minimised)."""
    others = np.delete(logits, label, axis=-1)
    return logits[..., label] - others.max(axis=-1)


def python_loop_nes(forward, images, labels, steps: int, seed: int = 0):
    """NES-ℓ∞ as a Python loop per image (module docstring); returns ``(x_adv, queries)``."""
    rng = np.random.default_rng(seed)
    out, queries = [], 0
    for x0, label in zip(images, labels):
        x = x0.copy()
        for _ in range(steps):
            u = rng.standard_normal((SAMPLES // 2, *x.shape)).astype(np.float32)
            probes = np.concatenate([x[None], x + SIGMA * u, x - SIGMA * u])
            losses = margin(np.asarray(forward(probes)), int(label))  # 1 + SAMPLES queries
            plus, minus = losses[1 : 1 + SAMPLES // 2], losses[1 + SAMPLES // 2 :]
            grad = np.tensordot((plus - minus) / (SIGMA * SAMPLES), u, axes=1)
            x = np.clip(x0 + np.clip(x - STEP * np.sign(grad) - x0, -EPS, EPS), 0.0, 1.0)
            queries += 1 + SAMPLES
        forward(x[None])  # the final evaluation, as jaxadv counts it
        out.append(x)
        queries += 1
    return np.stack(out), queries


def rows_for(victim, images, labels, max_queries: int, peer_images: int):
    """The three timed rows; each call returns ``(x_adv, queries answered)``."""
    attack = nes_attack(max_queries)
    steps = attack.length
    hp = attack.hparams(eps=EPS, step_size=STEP, fd_step=SIGMA)
    black_box = models.score_only(victim)
    start = time.perf_counter()
    run = attack.compile_batch(black_box, hp, images, labels)
    compile_s = time.perf_counter() - start
    key = jax.random.key(0)

    def ours():
        r = run(hp, images, labels, key)
        return r.x_adv, jnp.sum(r.queries)

    jit_forward = jax.jit(victim.batch)
    x_np, y_np = np.asarray(images[:peer_images]), np.asarray(labels[:peer_images])
    rbg = jax.random.key(0, impl="rbg")

    def ours_rbg():  # compiled at its first call (`compile_batch` is for threefry keys)
        r = attack.batch(black_box, hp, images, labels, rbg)
        return r.x_adv, jnp.sum(r.queries)

    return compile_s, [
        _timing.Row("jaxadv", ours),
        _timing.Row("jaxadv, rbg key", ours_rbg),
        _timing.Row("loop, jit forward", lambda: python_loop_nes(jit_forward, x_np, y_np, steps)),
        _timing.Row(
            "loop, eager forward", lambda: python_loop_nes(victim.batch, x_np, y_np, steps)
        ),
    ]


def bench_victim(name, batch, max_queries, rounds, peer_images, seed) -> dict:
    victim = make_victim(name)
    shape = VICTIMS[name][1]
    images = jax.random.uniform(jax.random.key(seed + 1), (batch, *shape))
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)  # the clean predictions
    ours_compile_s, rows = rows_for(victim, images, labels, max_queries, peer_images)
    compile_s, outputs = _timing.first_calls(rows, warmup=0)  # loops: first call - second
    compile_s["jaxadv"] = ours_compile_s  # compile_batch, ahead of time
    counts = {row.name: int(outputs[row.name][1]) for row in rows}
    times = _timing.interleaved(rows, rounds, seed=seed)
    qps = {n: [counts[n] / t for t in times[n]] for n in times}
    print(
        f"\nvictim {name} {shape} (random weights), NES-ℓ∞ {SAMPLES} probes, {max_queries} "
        f"queries per example, jaxadv batch {batch}, loops over {peer_images} images, {rounds} "
        f"round(s), backend {jax.default_backend()}"
    )
    print(f"{'row':<{LABEL_WIDTH}}{'queries/s (median)':>20}{'range':>22}{'queries':>10}"
          f"{'compile s':>11}")  # fmt: skip
    for row in rows:
        med, low, high = _timing.summary(qps[row.name])
        eager = row.name == "loop, eager forward"  # nothing compiled: first - second is noise
        compiled = "-" if eager else f"{compile_s[row.name]:.2f}"
        print(
            f"{row.name:<{LABEL_WIDTH}}{med:>20.0f}{f'{low:.0f}-{high:.0f}':>22}"
            f"{counts[row.name]:>10}{compiled:>11}"
        )
    ratios = {}
    for ours, other in RATIOS:
        label = f"{ours} / {other}"
        ratios[label] = _timing.summary([a / b for a, b in zip(qps[ours], qps[other])])
        med, low, high = ratios[label]
        print(f"{label:<{RATIO_WIDTH}}{med:>8.1f}x (range {low:.1f}-{high:.1f}, paired)")
    x_adv = {row.name: np.asarray(outputs[row.name][0]) for row in rows}
    return dict(qps=qps, ratios=ratios, counts=counts, x_adv=x_adv, images=np.asarray(images),
                labels=np.asarray(labels), victim=victim)  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--victims", default="mlp,cw", help="comma-separated: mlp, cw")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--queries",
        type=int,
        default=20 * (SAMPLES + 1) + 1,
        help="per example (steps of 51 queries + the final evaluation)",
    )
    parser.add_argument(
        "--peer-images",
        type=int,
        default=None,
        help="images the Python loops attack (default: the batch)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="mlp, batch 4, 2 steps, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.victims, args.batch, args.queries, args.rounds = "mlp", 4, 2 * (SAMPLES + 1) + 1, 1
    names = args.victims.split(",")
    if any(n not in VICTIMS for n in names):
        raise ValueError(f"`--victims` must name some of {list(VICTIMS)}; got {args.victims!r}.")
    peer_images = min(args.peer_images or args.batch, args.batch)
    return {
        name: bench_victim(name, args.batch, args.queries, args.rounds, peer_images, args.seed)
        for name in names
    }


if __name__ == "__main__":
    main(sys.argv[1:])
