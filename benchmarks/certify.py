"""Randomized-smoothing CERTIFY, images per second: jaxadv beside a PyTorch loop of the reference
implementation's shape, on the same network weights, in one run.

    /work/peersenv/bin/python benchmarks/certify.py            # 2 images, n = 100,000 (CPU: minutes)
    python benchmarks/certify.py --images 4 --n 20000 --rounds 3
    python benchmarks/certify.py --quick                       # the smoke test: tiny n, 1 round

The victim is the C&W CIFAR-10 net (``benchmarks/_peer_libs.py``'s ``torch_twin``, converted to
Flax by ``from_torch_state_dict``; without torch, Flax's own init and no torch row). CERTIFY:
σ 0.25, n0 = 100 selection draws, n = 100,000 estimation draws, α = 0.001, batches of 1,000 noisy
copies per network call on both sides (Cohen et al.'s ``certify.py`` default). Rows:

* ``jaxadv``: ``jaxadv.certify.certify(...)`` as a user calls it (validation, both compiled
  counting programs, the scipy statistics); its programs are compiled ahead of time, apart.
* ``torch loop``: Cohen, Rosenfeld & Kolter's ``core.py`` ``Smooth.certify`` in shape: per image,
  a Python loop over batches (repeat the image, ``randn_like`` noise, forward, argmax, count on
  the host), then the Clopper–Pearson bound (``beta.ppf``) and ``σ·Φ⁻¹``.

Timings are interleaved rounds (each row once per round, shuffled), ratios paired per round. The
draws differ between the rows, so the certificates agree only statistically: the report prints
both rows' predictions and radii.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _peer_libs, _timing, and this checkout's jaxadv
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _peer_libs
import _timing
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxadv import certify as smoothing
from jaxadv.certify import _counts
from jaxadv.models import CWNet, from_flax, from_torch_state_dict

INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
SIGMA = 0.25
ALPHA = 0.001


def _torch_imports() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001 (any import failure means: no torch row)
        return False
    return True


def interleaved(rows: list[_timing.Row], rounds: int, seed: int = 0):
    """Like ``_timing.interleaved`` (one call per row per round, shuffled), also keeping each
    row's last outputs."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {row.name: [] for row in rows}
    outputs: dict[str, Any] = {}
    for _ in range(rounds):
        for row in rng.sample(rows, len(rows)):
            seconds, outputs[row.name] = _timing.timed(row.call)
            times[row.name].append(seconds)
    return times, jax.device_get(outputs)


def make_problem(num_images: int, seed: int = 0) -> dict[str, Any]:
    """The victim in Flax (and its PyTorch twin when torch imports) and uniform images."""
    module = CWNet(num_classes=NUM_CLASSES)
    problem: dict[str, Any] = {"torch_model": None}
    if _torch_imports():
        model = _peer_libs.torch_twin(seed)
        variables = from_torch_state_dict(model.state_dict(), module, INPUT_SHAPE)
        problem["torch_model"] = model
    else:
        variables = jax.jit(module.init)(jax.random.key(seed), jnp.zeros((1,) + INPUT_SHAPE))
    victim = from_flax(module, variables, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES)
    images = jax.random.uniform(jax.random.key(seed + 1), (num_images,) + INPUT_SHAPE)
    problem.update(victim=victim, images=images, key=jax.random.key(seed + 2))
    if problem["torch_model"] is not None:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(images), (0, 3, 1, 2))))
        with torch.no_grad():
            torch_logits = problem["torch_model"](x).numpy()
        problem["x_t"] = x
        problem["logit_diff"] = float(np.max(np.abs(torch_logits - np.asarray(victim.batch(images)))))
    return problem


# -- the reference shape (Cohen et al., core.py), on the PyTorch twin --------------------------


def _torch_sample_noise(model, x, num: int, batch_size: int, sigma: float) -> np.ndarray:
    import torch

    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    with torch.no_grad():
        while num > 0:
            this_batch = min(batch_size, num)
            num -= this_batch
            batch = x.repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            counts += np.bincount(predictions.numpy(), minlength=NUM_CLASSES)
    return counts


def torch_certify(model, images_t, n0: int, n: int, batch_size: int, sigma: float, alpha: float):
    """``(predictions, radii)`` of ``core.py``'s certify, one image at a time."""
    predictions, radii = [], []
    for x in images_t:
        c_hat = int(_torch_sample_noise(model, x[None], n0, batch_size, sigma).argmax())
        n_a = int(_torch_sample_noise(model, x[None], n, batch_size, sigma)[c_hat])
        p_lower = stats.beta.ppf(alpha, n_a, n - n_a + 1) if n_a > 0 else 0.0
        if p_lower < 0.5:
            predictions.append(-1)
            radii.append(0.0)
        else:
            predictions.append(c_hat)
            radii.append(sigma * stats.norm.ppf(p_lower))
    return np.asarray(predictions), np.asarray(radii)


# -- rows ---------------------------------------------------------------------------------------


def jaxadv_row(problem, n0: int, n: int, batch_size: int) -> tuple[_timing.Row, float]:
    victim, images, key = problem["victim"], problem["images"], problem["key"]

    def call():
        result = smoothing.certify(victim, images, key, sigma=SIGMA, n0=n0, n=n, alpha=ALPHA,
                                   batch_size=batch_size)
        return result.prediction, result.radius

    # Compile both counting programs ahead of time (the public call then reuses them).
    start = time.perf_counter()
    for draws, k in zip(sorted({n0, n}), jax.random.split(key)):
        _counts._sample_counts.lower(victim, jnp.asarray(images, jnp.float32), k,
                                     jnp.float32(SIGMA), draws, batch_size).compile()
    return _timing.Row("jaxadv", call), time.perf_counter() - start


def torch_row(problem, n0: int, n: int, batch_size: int) -> _timing.Row:
    model, x = problem["torch_model"], problem["x_t"]
    _torch_sample_noise(model, x[:1], batch_size, batch_size, SIGMA)  # warm-up: one batch
    return _timing.Row("torch loop", lambda: torch_certify(model, x, n0, n, batch_size, SIGMA,
                                                           ALPHA))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="images certified per call (2)")
    parser.add_argument("--n", type=int, default=100_000, help="estimation draws (100,000)")
    parser.add_argument("--n0", type=int, default=100, help="selection draws (100)")
    parser.add_argument("--batch", type=int, default=1000, help="noisy copies per call (1,000)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (2)")
    parser.add_argument("--quick", action="store_true",
                        help="2 images, n0 = n = 100 (one program), batch 100, 1 round (the "
                        "smoke test)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch row")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.n, args.n0, args.batch, args.rounds = 2, 100, 100, 100, 1
    problem = make_problem(args.images)
    use_torch = problem["torch_model"] is not None and not args.no_torch
    versions = [f"jax {jax.__version__} on {jax.default_backend()} "
                f"({jax.devices()[0].device_kind})", f"{os.cpu_count()} CPUs"]
    if use_torch:
        import torch

        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"CERTIFY: C&W CIFAR-10 net, {args.images} uniform images, sigma {SIGMA}, "
          f"n0 {args.n0}, n {args.n}, alpha {ALPHA}, batch {args.batch}")
    print("; ".join(versions))
    if "logit_diff" in problem:
        print(f"PyTorch twin vs Flax logits: max|diff| {problem['logit_diff']:.1e}")
        if problem["logit_diff"] > 1e-4:
            raise SystemExit("the PyTorch and Flax victims differ; refusing to compare")
    elif not args.no_torch:
        print("note: torch does not import here: Flax-initialised victim, no torch row")

    row, compile_s = jaxadv_row(problem, args.n0, args.n, args.batch)
    rows = [row] + ([torch_row(problem, args.n0, args.n, args.batch)] if use_torch else [])
    print(f"jaxadv: the counting programs (n0, n) compiled ahead of time in {compile_s:.1f} s")
    print(f"timing {len(rows)} row(s), {args.rounds} round(s) ...", flush=True)
    times, outputs = interleaved(rows, args.rounds)

    forwards = args.images * (args.n0 + args.n)
    print(f"\n{'row':<12}{'img/s':>10}{'  [range]':<22}{'forwards/s':>12}  {'s/image':>8}")
    for r in rows:
        med, lo, hi = _timing.summary([args.images / t for t in times[r.name]])
        print(f"{r.name:<12}{med:>10.4g}  [{lo:.4g}, {hi:.4g}]{'':<5}"
              f"{med * forwards / args.images:>12.0f}  {1 / med:>8.2f}")
    if use_torch:
        ratio = _timing.summary(_timing.paired_speed_ratio(times, "jaxadv", "torch loop"))
        print(f"{'jaxadv / torch loop':<22} {ratio[0]:.2f}x  ({ratio[1]:.2f}-{ratio[2]:.2f}), "
              "throughput ratio paired per round (> 1: jaxadv faster)")
    print("\nper image: prediction / certified radius (-1 / 0: abstain); the rows draw different "
          "noise, so radii agree only within sampling error")
    for name, (prediction, radius) in outputs.items():
        cells = "  ".join(f"{int(c):>2} / {float(r):.4f}" for c, r in zip(prediction, radius))
        print(f"{name:<12}{cells}")
    return {"times": times, "outputs": outputs, "problem": problem}


if __name__ == "__main__":
    main()
