"""sC&W against C&W: what Laplacian smoothing costs per attack iteration, on the same victim.

The paper ("Smooth adversarial examples", EURASIP JIS 2020, §5.3.2) reports 205 s per image for
sC&W against 47 s for C&W (ratio ≈ 4.4) with 50 hand-written CG iterations in TensorFlow. Here:

    python benchmarks/smooth_cw.py                  # 32×32×3 batch 32, and 299×299×3 batch 1
    python benchmarks/smooth_cw.py --sizes 32 --batch 64 --rounds 5
    python benchmarks/smooth_cw.py --sizes 299 --steps 10 --no-unrolled   # the 299×299 row
    python benchmarks/smooth_cw.py --quick          # tiny, for the smoke test

The victim is the C&W CIFAR-10 net (random weights: timing only) built for each image size. Rows
per size, timed in interleaved rounds in this one process (ratios paired within a round):

- ``victim fwd+bwd``: one gradient of the batch's loss — the cost of a C&W iteration's core;
- ``smoothing fwd+bwd``: ŝ_α applied to the batch and differentiated (two CG solves of at most 50
  iterations, the implicit adjoint) — what sC&W adds per iteration;
- ``C&W`` and ``sC&W`` (implicit CG on the red-black reduced system, tolerance 1e-5, at most 50
  iterations, each iteration's two solves warm-started from the previous iteration's solutions),
  ``sC&W full system`` (the same CG on the full system, ``SmoothingConfig(reduction="none")``:
  the form before the reduction), ``sC&W cold`` (every solve from 0: the form before issue 19's
  warm starts), ``sC&W polynomial`` (warm, and CG preconditioned by the polynomial
  ``SmoothingConfig(preconditioner="polynomial")``), ``sC&W one-reduction`` (``sC&W`` with
  CG's per-channel inner products as one reduction each, the form before the blocked sums of
  issue 19; ``smoothing fwd+bwd`` is compiled by a plain ``jax.jit`` and so uses that form) and ``sC&W unrolled`` (exactly
  50 iterations, differentiated through them as the published code does; ``--no-unrolled``
  leaves it out): whole attacks of ``--steps`` iterations (one search step), reported per
  iteration.

Before the timings, each size prints the CG iterations per solve of one sC&W run, warm, on the
full system, cold and polynomial-preconditioned (same images, same tolerance; every solve
counted: the forward and
adjoint ones of every iteration, and the smoother's own solve of ``s_α(1)``; a preconditioned
iteration makes two products with ℒ_α), and the largest difference of their ``x_adv`` from the
warm run's.

The ratios printed at the end are sC&W / C&W per iteration (the issue's target: ≤ 1.5) and
smoothing / victim. benchmarks/README.md records measured numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _timing
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, image
from jaxadv.image import _cg
from jaxadv.losses import cross_entropy
from jaxadv.models import _cw_net
from jaxadv.models._victim import from_flax

ALPHA = 0.95
CG_ITERATIONS = 50


def _victim(size: int, key):
    module = _cw_net.CWNet(num_classes=10)
    shape = (size, size, 3)
    variables = jax.jit(module.init)(key, jnp.zeros((1,) + shape))
    return from_flax(module, variables, input_shape=shape, num_classes=10)


def _rows(size: int, batch: int, steps: int, seed: int = 0, unrolled: bool = True):
    k_victim, k_images, k_dir = jax.random.split(jax.random.key(seed), 3)
    victim = _victim(size, k_victim)
    images = jax.random.uniform(k_images, (batch, size, size, 3))
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    key = jax.random.key(seed)

    def loss(x, label):
        return cross_entropy(victim(x), label)

    grad = jax.jit(jax.vmap(jax.grad(loss)))
    direction = jax.random.normal(k_dir, images.shape)

    def smoothing(x0, d):
        smooth = image.smoother(x0, ALPHA, 0.1, maxiter=CG_ITERATIONS)
        out, vjp = jax.vjp(smooth, d)
        return out, vjp(d)[0]

    smoothed = jax.jit(jax.vmap(smoothing))
    rows = [
        _timing.jitted_row("victim fwd+bwd", grad, images, labels),
        _timing.jitted_row("smoothing fwd+bwd", smoothed, images, direction),
    ]
    cw = attacks.cw_l2(steps=steps, search_steps=1)
    implicit = attacks.scw(steps=steps, search_steps=1)
    full = attacks.scw(
        steps=steps, search_steps=1, smoothing=attacks.SmoothingConfig(reduction="none")
    )
    cold = attacks.scw(
        steps=steps, search_steps=1, smoothing=attacks.SmoothingConfig(warm_start=False)
    )
    polynomial = attacks.scw(
        steps=steps, search_steps=1, smoothing=attacks.SmoothingConfig(preconditioner="polynomial")
    )
    named = [
        ("C&W", cw),
        ("sC&W", implicit),
        ("sC&W full system", full),
        ("sC&W cold", cold),
        ("sC&W polynomial", polynomial),
    ]
    if unrolled:
        named.append(
            (
                "sC&W unrolled",
                attacks.scw(
                    steps=steps,
                    search_steps=1,
                    smoothing=attacks.SmoothingConfig(method="unrolled", maxiter=CG_ITERATIONS),
                ),
            )
        )
    # The inner products as one reduction each (the form before issue 19's blocked sums, which
    # attacks compiled with jaxadv's CPU options now use), compiled under another name so that it
    # is traced afresh with them.
    named.append(("sC&W one-reduction", dataclasses.replace(implicit, name="scw-one-reduction")))
    for name, attack in named:
        hp = attack.hparams(step_size=0.01, initial_const=1.0)
        with _one_reduction_dots(name == "sC&W one-reduction"):
            run = attack.compile_batch(victim, hp, images, labels)  # compiled here, apart
        rows.append(_timing.Row(name, lambda run=run, hp=hp: run(hp, images, labels, key).x_adv))
    return rows


@contextlib.contextmanager
def _one_reduction_dots(active: bool):
    """While active, CG's per-channel inner products are ``_cg._plain_channel_dot``."""
    blocked = _cg.channel_dot
    if active:
        _cg.channel_dot = _cg._plain_channel_dot
    try:
        yield
    finally:
        _cg.channel_dot = blocked


def cg_iterations(size: int, batch: int, steps: int, seed: int = 0) -> dict:
    """CG iterations per solve of one sC&W run, warm-started, cold and warm with the polynomial
    preconditioner (every solve of the run, counted by a host callback wrapped around the solver
    while these programs are traced)."""
    k_victim, k_images, _ = jax.random.split(jax.random.key(seed), 3)
    victim = _victim(size, k_victim)
    images = jax.random.uniform(k_images, (batch, size, size, 3))
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    solver = _cg.cg_to_tolerance
    counts: list = []

    def counted(*args):
        x, status = solver(*args)
        jax.debug.callback(lambda it: counts.append(np.asarray(it).ravel()), status.iterations)
        return x, status

    out = {}
    _cg.cg_to_tolerance = counted
    try:
        configs = {
            "warm": attacks.SmoothingConfig(),
            "full system": attacks.SmoothingConfig(reduction="none"),
            "cold": attacks.SmoothingConfig(warm_start=False),
            "polynomial": attacks.SmoothingConfig(preconditioner="polynomial"),
        }
        for name, config in configs.items():
            attack = attacks.scw(steps=steps, search_steps=1, smoothing=config)
            hp = attack.hparams(step_size=0.01, initial_const=1.0)
            counts.clear()
            x_adv = attack.batch(victim, hp, images, labels, jax.random.key(seed)).x_adv
            every = np.concatenate(counts)
            out[name] = (float(every.mean()), every.size, np.asarray(x_adv))
    finally:
        _cg.cg_to_tolerance = solver
        # The driver's jit cache is keyed by the attack, which equals the timed rows' attacks:
        # without this, those rows would reuse these traces, callbacks included (before this line,
        # every run without --no-count timed sC&W, sC&W cold and sC&W polynomial with a host
        # callback per solve: 1.33-1.35x the uncounted time at 32×32, batch 32).
        jax.clear_caches()
    for name in ("full system", "cold", "polynomial"):
        out[f"max |x_adv warm - {name}|"] = float(np.max(np.abs(out["warm"][2] - out[name][2])))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 299])
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="one per size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="16×16, batch 2, 2 rounds")
    parser.add_argument("--no-count", action="store_true", help="skip the CG iteration counts")
    parser.add_argument("--no-unrolled", action="store_true", help="leave out sC&W unrolled")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.steps, args.rounds = [16], [2], 12, 2
    batches = args.batch or [32 if s <= 64 else 1 for s in args.sizes]
    if len(batches) != len(args.sizes):
        parser.error("give one --batch per --sizes entry")
    print(f"backend: {jax.default_backend()}; α = {ALPHA}, at most {CG_ITERATIONS} CG iterations")
    report = {}
    for size, batch in zip(args.sizes, batches):
        iters = None if args.no_count else cg_iterations(size, batch, args.steps)
        print(
            ""
            if iters is None
            else f"\n{size}×{size}×3, batch {batch}: CG iterations per solve, warm "
            f"{iters['warm'][0]:.1f} / full system {iters['full system'][0]:.1f} / cold "
            f"{iters['cold'][0]:.1f} / polynomial {iters['polynomial'][0]:.1f} "
            f"({iters['warm'][1]} solves each); max |x_adv warm − full system| = "
            f"{iters['max |x_adv warm - full system|']:.2e}, warm − cold "
            f"{iters['max |x_adv warm - cold|']:.2e}, warm − polynomial "
            f"{iters['max |x_adv warm - polynomial|']:.2e}"
        )
        rows = _rows(size, batch, args.steps, unrolled=not args.no_unrolled)
        compile_s, _ = _timing.first_calls(rows)
        times = _timing.interleaved(rows, args.rounds)
        per_iter = {n: [t / args.steps for t in ts] for n, ts in times.items() if "C&W" in n}
        per_iter.update({n: ts for n, ts in times.items() if "C&W" not in n})
        print(f"\n{size}×{size}×3, batch {batch}, {args.steps} iterations per attack run")
        print(f"{'row':<22}{'ms per iteration (median, min–max)':>38}{'compile s':>12}")
        for name, values in per_iter.items():
            med, lo, hi = _timing.summary(values)
            spread = f"({lo * 1e3:.2f}–{hi * 1e3:.2f})"
            print(f"{name:<22}{med * 1e3:>18.2f}  {spread:<16}{compile_s[name]:>8.1f}")
        ratios = {
            "sC&W / C&W": _timing.paired_speed_ratio(times, "C&W", "sC&W"),
            "sC&W full / C&W": _timing.paired_speed_ratio(times, "C&W", "sC&W full system"),
            "sC&W / sC&W full": _timing.paired_speed_ratio(times, "sC&W full system", "sC&W"),
            "sC&W cold / C&W": _timing.paired_speed_ratio(times, "C&W", "sC&W cold"),
            "sC&W polynomial / C&W": _timing.paired_speed_ratio(times, "C&W", "sC&W polynomial"),
            "sC&W / sC&W cold": _timing.paired_speed_ratio(times, "sC&W cold", "sC&W"),
            "sC&W / one-reduction": _timing.paired_speed_ratio(times, "sC&W one-reduction", "sC&W"),
            "sC&W polyn. / sC&W": _timing.paired_speed_ratio(times, "sC&W", "sC&W polynomial"),
            "smoothing / victim": _timing.paired_speed_ratio(
                times, "victim fwd+bwd", "smoothing fwd+bwd"
            ),
        }
        if not args.no_unrolled:
            ratios["sC&W unrolled / C&W"] = _timing.paired_speed_ratio(
                times, "C&W", "sC&W unrolled"
            )
        for name, values in ratios.items():
            med, lo, hi = _timing.summary(values)
            print(f"{name:<22}{med:>18.2f}  ({lo:.2f}–{hi:.2f})   ratio of times")
        report[size] = dict(
            per_iteration=per_iter, ratios=ratios, compile_s=compile_s, cg_iterations=iters
        )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
