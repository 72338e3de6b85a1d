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
- ``smoothing fwd+bwd``: ŝ_α applied to the batch and differentiated (two solves with the
  default solver, the implicit adjoint) — what sC&W adds per iteration;
- ``C&W`` and ``sC&W`` (the defaults: Chebyshev semi-iteration on the red-black reduced system,
  tolerance 1e-5, at most 50 iterations), ``sC&W full system`` (Chebyshev on the full system,
  ``SmoothingConfig(reduction="none")``), ``sC&W CG`` (the paper's solver,
  ``SmoothingConfig(method="cg")``: CG on the reduced system, each iteration's two solves
  warm-started from the previous iteration's solutions; the default before Chebyshev),
  ``sC&W CG cold`` (every CG solve from 0: the form before issue 19's warm starts),
  ``sC&W CG polynomial`` (warm, and CG preconditioned by the polynomial
  ``preconditioner="polynomial"``), ``sC&W CG one-reduction`` (``sC&W CG`` with CG's
  per-channel inner products as one reduction each, the form before the blocked sums of issue
  19) and ``sC&W unrolled`` (exactly 50 CG iterations, differentiated through them as the
  published code does; ``--no-unrolled`` leaves it out): whole attacks of ``--steps``
  iterations (one search step), reported per iteration.

Before the timings, each size prints the solver iterations per solve of one sC&W run with
each solver setting (same images, same tolerance; every solve counted: the forward and adjoint
ones of every iteration, and the smoother's own solve of ``s_α(1)``; a preconditioned iteration
makes two products with ℒ_α), and the largest difference of their ``x_adv`` from the default
run's.

The ratios printed at the end are sC&W / C&W per iteration (the issue's targets: ≤ 1.3 at
32×32, ≤ 1.5 at 299×299) and smoothing / victim. benchmarks/README.md records measured numbers.
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
from jaxadv.image import _cg, _smoothing
from jaxadv.losses import cross_entropy
from jaxadv.models import _cw_net
from jaxadv.models._victim import from_flax

ALPHA = 0.95
CG_ITERATIONS = 50
_SOLVERS = {  # the sC&W rows and iteration counts, by their solver settings
    "sC&W": attacks.SmoothingConfig(),
    "sC&W full system": attacks.SmoothingConfig(reduction="none"),
    "sC&W CG": attacks.SmoothingConfig(method="cg"),
    "sC&W CG cold": attacks.SmoothingConfig(method="cg", warm_start=False),
    "sC&W CG polynomial": attacks.SmoothingConfig(method="cg", preconditioner="polynomial"),
}


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
    named = [("C&W", cw)] + [
        (name, attacks.scw(steps=steps, search_steps=1, smoothing=config))
        for name, config in _SOLVERS.items()
    ]
    if unrolled:
        config = attacks.SmoothingConfig(method="unrolled", maxiter=CG_ITERATIONS)
        named.append(("sC&W unrolled", attacks.scw(steps=steps, search_steps=1, smoothing=config)))
    # The inner products as one reduction each (the form before issue 19's blocked sums, which
    # attacks compiled with jaxadv's CPU options now use), compiled under another name so that it
    # is traced afresh with them.
    cg = dict(named)["sC&W CG"]
    named.append(("sC&W CG one-reduction", dataclasses.replace(cg, name="scw-one-reduction")))
    for name, attack in named:
        hp = attack.hparams(step_size=0.01, initial_const=1.0)
        with _one_reduction_dots(name == "sC&W CG one-reduction"):
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


def solver_iterations(size: int, batch: int, steps: int, seed: int = 0) -> dict:
    """Solver iterations per solve of one sC&W run for each of ``_SOLVERS`` (every solve of the
    run, counted by a host callback wrapped around the solvers while these programs are
    traced), and the largest difference of each run's ``x_adv`` from the default's."""
    k_victim, k_images, _ = jax.random.split(jax.random.key(seed), 3)
    victim = _victim(size, k_victim)
    images = jax.random.uniform(k_images, (batch, size, size, 3))
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    # The solvers to count, by where they are looked up when an attack is traced.
    places = ((_cg, "cg_to_tolerance"), (_smoothing, "_chebyshev_solve"))
    solvers = {place: getattr(*place) for place in places}
    counts: list = []

    def counted(solver):
        def run(*args):
            x, status = solver(*args)
            jax.debug.callback(lambda it: counts.append(np.asarray(it).ravel()), status.iterations)
            return x, status

        return run

    out = {}
    for (module, name), solver in solvers.items():
        setattr(module, name, counted(solver))
    try:
        for name, config in _SOLVERS.items():
            attack = attacks.scw(steps=steps, search_steps=1, smoothing=config)
            hp = attack.hparams(step_size=0.01, initial_const=1.0)
            counts.clear()
            x_adv = attack.batch(victim, hp, images, labels, jax.random.key(seed)).x_adv
            every = np.concatenate(counts)
            out[name] = (float(every.mean()), every.size, np.asarray(x_adv))
    finally:
        for (module, name), solver in solvers.items():
            setattr(module, name, solver)
        # The driver's jit cache is keyed by the attack, which equals the timed rows' attacks:
        # without this, those rows would reuse these traces, callbacks included (before this line,
        # every run without --no-count timed sC&W, sC&W cold and sC&W polynomial with a host
        # callback per solve: 1.33-1.35x the uncounted time at 32×32, batch 32).
        jax.clear_caches()
    default = out["sC&W"][2]
    return {
        name: dict(
            per_solve=mean, solves=n, max_x_adv_difference=float(np.max(np.abs(x - default)))
        )
        for name, (mean, n, x) in out.items()
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 299])
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="one per size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="16×16, batch 2, 2 rounds")
    parser.add_argument("--no-count", action="store_true", help="skip the iteration counts")
    parser.add_argument("--no-unrolled", action="store_true", help="leave out sC&W unrolled")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.steps, args.rounds = [16], [2], 12, 2
    batches = args.batch or [32 if s <= 64 else 1 for s in args.sizes]
    if len(batches) != len(args.sizes):
        parser.error("give one --batch per --sizes entry")
    print(
        f"backend: {jax.default_backend()}; α = {ALPHA}, at most {CG_ITERATIONS} solver iterations"
    )
    report = {}
    for size, batch in zip(args.sizes, batches):
        iters = None if args.no_count else solver_iterations(size, batch, args.steps)
        if iters is not None:
            print(f"\n{size}×{size}×3, batch {batch}: solver iterations per solve")
            for name, row in iters.items():
                print(
                    f"{name:<22}{row['per_solve']:>8.1f} over {row['solves']} solves; "
                    f"max |x_adv − sC&W's| = {row['max_x_adv_difference']:.2e}"
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
        pairs = [  # (the ratio's name, the row timed over, the row it is relative to)
            ("sC&W / C&W", "sC&W", "C&W"),
            ("sC&W CG / C&W", "sC&W CG", "C&W"),
            ("sC&W / sC&W CG", "sC&W", "sC&W CG"),
            ("sC&W full / C&W", "sC&W full system", "C&W"),
            ("sC&W CG cold / C&W", "sC&W CG cold", "C&W"),
            ("sC&W CG polyn. / C&W", "sC&W CG polynomial", "C&W"),
            ("CG / CG one-reduction", "sC&W CG", "sC&W CG one-reduction"),
            ("smoothing / victim", "smoothing fwd+bwd", "victim fwd+bwd"),
        ]
        ratios = {
            name: _timing.paired_speed_ratio(times, relative_to, row)
            for name, row, relative_to in pairs
        }
        if not args.no_unrolled:
            ratios["sC&W unrolled / C&W"] = _timing.paired_speed_ratio(
                times, "C&W", "sC&W unrolled"
            )
        for name, values in ratios.items():
            med, lo, hi = _timing.summary(values)
            print(f"{name:<22}{med:>18.2f}  ({lo:.2f}–{hi:.2f})   ratio of times")
        report[size] = dict(
            per_iteration=per_iter, ratios=ratios, compile_s=compile_s, solver_iterations=iters
        )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
