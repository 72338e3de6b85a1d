"""PGD-ℓ∞ on a RobustBench-sized victim: WideResNet-28-10 at CIFAR size, time and peak memory.

    python benchmarks/wrn_pgd.py                              # batch 8, 5 steps, 2 timed rounds
    python benchmarks/wrn_pgd.py --batch 512 --steps 10       # on a GPU
    python benchmarks/wrn_pgd.py --depth 10 --widen 1 --steps 2 --rounds 1   # smoke

The victim is ``models.WideResNet(28, 10)`` (RobustBench's layout, 36.5 M parameters) with
random weights and batch-norm statistics, as :func:`models.load_robustbench` would build it from
a RobustBench checkpoint (``Carmon2019Unlabeled`` and 7 more entries use this architecture);
images uniform in [0, 1], labels the clean predictions. Attack: ``attacks.pgd(norm="linf")``,
eps 8/255, step 2/255, no random start, called as a user calls it (``atk.batch``). Reported: the
first call (compilation included), the median of the timed calls, images/s, the process's peak
resident memory (``ru_maxrss``: host memory, compilation included) and, on a GPU, the device's
peak bytes in use.

Where torch and robustbench import (the peers' Python, ``/work/peersenv/bin/python``), a
``torch bound`` row times what any PGD must do at least: ``steps + 1`` forward+backward passes of
RobustBench's own ``WideResNet`` on the batch (eval mode, same weights), interleaved with the
jaxadv calls; ``jaxadv / torch bound`` is the ratio of times paired per round (the machines are
shared: a paired ratio is far steadier than either time).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxadv import models  # noqa: E402
from jaxadv.attacks import pgd  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _random_statistics(variables, seed):
    """Batch-norm running statistics away from (0, 1), as after training."""
    rng = np.random.default_rng(seed)

    def draw(path, a):
        is_var = str(getattr(path[-1], "key", "")) == "var"
        value = rng.uniform(0.5, 1.5, a.shape) if is_var else rng.normal(0.0, 0.1, a.shape)
        return jnp.asarray(value, a.dtype)

    stats = jax.tree_util.tree_map_with_path(draw, variables["batch_stats"])
    return {**variables, "batch_stats": stats}


def victim(depth: int, widen: int, seed: int = 0):
    module = models.WideResNet(depth, widen, 10)
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.jit(lambda k: module.init(k, x, train=False))(jax.random.key(seed))
    variables = _random_statistics(variables, seed)
    return models.from_flax(module, variables, input_shape=(32, 32, 3), num_classes=10)


def torch_bound(vic, depth: int, widen: int, images, steps: int):
    """``(run, logit_diff)``: ``run`` does ``steps + 1`` forward+backward passes of RobustBench's
    WRN in torch on the same weights, ``logit_diff`` is the largest difference of its logits
    from the victim's; None when torch or robustbench does not import."""
    try:
        import importlib.util

        import torch

        origin = importlib.util.find_spec("robustbench").origin
    except Exception:  # noqa: BLE001 (no peers here: the row is skipped)
        return None
    path = Path(origin).parent / "model_zoo" / "architectures" / "wide_resnet.py"
    spec = importlib.util.spec_from_file_location("_rb_wide_resnet", path)
    arch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(arch)
    net = arch.WideResNet(depth, 10, widen).eval()
    sd = net.state_dict()
    params = jax.tree_util.tree_flatten_with_path(vic.variables)[0]
    for keys, leaf in params:  # Flax -> torch layout, by the converter's naming rule
        names = [str(getattr(k, "key", k)) for k in keys]
        prefix = ".".join(names[1:-1]).replace("_", ".")
        leaf = np.asarray(leaf)
        torch_leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}.get(names[-1])
        torch_leaf = torch_leaf or f"running_{names[-1]}"
        if leaf.ndim == 4:
            leaf = leaf.transpose(3, 2, 0, 1)
        elif leaf.ndim == 2:
            leaf = leaf.T
        sd[f"{prefix}.{torch_leaf}"] = torch.from_numpy(np.array(leaf))
    net.load_state_dict(sd)
    x = torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())

    def run():
        for _ in range(steps + 1):
            xi = x.clone().requires_grad_(True)
            net(xi).logsumexp(-1).sum().backward()
        return xi.grad

    with torch.no_grad():  # the twin must compute the victim's logits
        diff = np.abs(net(x).numpy() - np.asarray(jax.jit(vic.batch)(images))).max()
    run()  # warm-up (oneDNN primitives are built on first use)
    return run, float(diff)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--depth", type=int, default=28)
    parser.add_argument("--widen", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    rss0 = _peak_rss_mib()
    vic = victim(args.depth, args.widen, args.seed)
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(vic.variables["params"]))
    rng = np.random.default_rng(args.seed)
    images = jnp.asarray(rng.random((args.batch, 32, 32, 3), np.float32))
    labels = jnp.argmax(jax.jit(vic.batch)(images), axis=-1).astype(jnp.int32)
    atk = pgd(norm="linf", steps=args.steps, random_start=False)
    hp = atk.hparams(eps=8 / 255, step_size=2 / 255)
    key = jax.random.key(args.seed)

    start = time.perf_counter()
    result = atk.batch(vic, hp, images, labels, key)
    jax.block_until_ready(result.x_adv)
    first = time.perf_counter() - start
    bound, twin_diff = torch_bound(vic, args.depth, args.widen, images, args.steps) or (None, None)
    times, bound_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        jax.block_until_ready(atk.batch(vic, hp, images, labels, key).x_adv)
        times.append(time.perf_counter() - start)
        if bound is not None:
            start = time.perf_counter()
            bound()
            bound_times.append(time.perf_counter() - start)
    median = statistics.median(times) if times else float("nan")

    delta = np.asarray(result.x_adv) - np.asarray(images)
    stats = device.memory_stats() or {}
    report = {
        "device": f"{device.platform}:{device.device_kind}",
        "model": f"WideResNet-{args.depth}-{args.widen}",
        "parameters": n_params,
        "batch": args.batch,
        "steps": args.steps,
        "first_call_s": round(first, 2),
        "median_call_s": round(median, 3),
        "images_per_s": round(args.batch / median, 2),
        "ms_per_image_step": round(1e3 * median / (args.batch * args.steps), 2),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "rss_before_mib": round(rss0, 1),
        "device_peak_mib": round(stats.get("peak_bytes_in_use", 0) / 2**20, 1) or None,
        "torch_twin_logit_diff": twin_diff,
        "torch_bound_s": round(statistics.median(bound_times), 3) if bound_times else None,
        "jaxadv/torch_bound": (
            [round(a / b, 2) for a, b in zip(times, bound_times)] if bound_times else None
        ),
        "success_rate": float(np.mean(np.asarray(result.success))),
        "linf_max": float(np.abs(delta).max()),
    }
    for name, value in report.items():
        print(f"{name:>18}: {value}")
    return report


if __name__ == "__main__":
    main()
