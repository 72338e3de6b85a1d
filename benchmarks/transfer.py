"""The transfer matrix (5 digits sources × 5 targets × 6 attacks): jaxadv beside torchattacks.

Run with an interpreter that has torch and torchattacks besides jaxadv's dependencies:

    /work/peersenv/bin/python benchmarks/transfer.py                 # 64 digits, 3 rounds
    /work/peersenv/bin/python benchmarks/transfer.py --images 16 --rounds 1 --victims 2

The victims are the digits zoo of ``experiments/transfer_matrix.py`` (cached default victims:
C&W and C4 nets of seeds 0 and 1, the ResNet of seed 0); torchattacks attacks their PyTorch twins
holding the same weights (``_torch_zoo.py``, logits checked equal). Both sides run the same six
attacks with the same settings (ε = 0.1, 10 steps, α = ε/10): BIM, MIFGSM, DIFGSM (μ = 1),
TIFGSM (μ = 1, kernel 5, nsig 3, no DI), NIFGSM and VMIFGSM (N = 5, β = 1.5); jaxadv's NI
uses the code's look-ahead (``lookahead="code"``), as torchattacks does. jaxadv runs the whole
matrix as ONE compiled call (``jaxadv.transfer.transfer_matrix``); torchattacks runs each
(attack, source) pair over the batch and shows the result to every target. Each round times both
once; the ratio is paired within a round. For the deterministic attacks (I, MI, TI, NI) the two
matrices should agree up to float rounding (a few sign flips of near-zero gradient entries).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _torch_zoo, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks
from jaxadv.data import load_digits
from jaxadv.training import default_victim
from jaxadv.transfer import transfer_matrix

VICTIMS = (("cw", 0), ("c4", 0), ("resnet", 0), ("cw", 1), ("c4", 1))
EPS, STEPS = 0.1, 10


def jaxadv_attacks():
    return {
        "I-FGSM": attacks.bim(steps=STEPS),
        "MI-FGSM": attacks.mi_fgsm(steps=STEPS),
        "DI-MI-FGSM": attacks.di_fgsm(steps=STEPS, decay=1.0),
        "TI-MI-FGSM": attacks.ti_fgsm(steps=STEPS, decay=1.0, kernel_size=5),
        "NI-FGSM": attacks.ni_fgsm(steps=STEPS, lookahead="code"),
        "VMI-FGSM": attacks.vmi_fgsm(steps=STEPS, neighbours=5),
    }


def torch_attack(name: str, model):
    import torchattacks as ta

    common = dict(eps=EPS, alpha=EPS / STEPS, steps=STEPS)
    return {
        "I-FGSM": lambda: ta.BIM(model, **common),
        "MI-FGSM": lambda: ta.MIFGSM(model, decay=1.0, **common),
        "DI-MI-FGSM": lambda: ta.DIFGSM(
            model, decay=1.0, resize_rate=0.9, diversity_prob=0.5, **common
        ),
        "TI-MI-FGSM": lambda: ta.TIFGSM(
            model,
            decay=1.0,
            kernel_name="gaussian",
            len_kernel=5,
            nsig=3,
            diversity_prob=0.0,
            **common,
        ),  # fmt: skip
        "NI-FGSM": lambda: ta.NIFGSM(model, decay=1.0, **common),
        "VMI-FGSM": lambda: ta.VMIFGSM(model, decay=1.0, N=5, beta=1.5, **common),
    }[name]()


def _grey(model):
    """``model`` on the channel mean: torchattacks' TIFGSM convolves 3 channels (groups=3), so
    the 1-channel digits enter as 3 equal channels; their gradients, smoothed kernels, steps and
    perturbations stay equal, and channel 0 is the 1-channel attack's result."""
    import torch

    class Grey(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x.mean(dim=1, keepdim=True))

    return Grey().eval()


def torch_matrix(names, twins, x, y) -> np.ndarray:
    """``fooled[A, S, T, B]`` from torchattacks on the twins."""
    import torch

    fooled = np.zeros((len(names), len(twins), len(twins), len(y)), bool)
    for a, name in enumerate(names):
        for s, source in enumerate(twins):
            if name.startswith("TI") and x.shape[1] == 1:
                x_adv = torch_attack(name, _grey(source))(x.repeat(1, 3, 1, 1), y)[:, :1]
            else:
                x_adv = torch_attack(name, source)(x, y)
            with torch.no_grad():
                for t, target in enumerate(twins):
                    fooled[a, s, t] = (target(x_adv).argmax(1) != y).numpy()
    return fooled


def rates(fooled: np.ndarray, clean_correct: np.ndarray) -> np.ndarray:
    kept = clean_correct.sum(-1)
    return (fooled & clean_correct[None, None]).sum(-1) / np.maximum(kept, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--victims", type=int, default=5, help="the first N of the zoo")
    parser.add_argument("--attacks", type=int, default=6, help="the first N attacks")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    import _torch_zoo
    import torch

    from jaxadv import enable_compilation_cache

    enable_compilation_cache()  # a rerun loads the compiled matrix instead of compiling again

    data = load_digits()
    images = np.asarray(data.test_images[: args.images], np.float32)
    labels = np.asarray(data.test_labels[: args.images], np.int32)
    victims, twins = {}, []
    for arch, seed in VICTIMS[: args.victims]:
        victim, _ = default_victim(
            arch, key=jax.random.key(seed), cache_dir=args.cache_dir, progress=False
        )
        victims[f"{arch}/{seed}"] = victim
        twins.append(_torch_zoo.twin(arch, victim, images[:8]))
    suite = dict(list(jaxadv_attacks().items())[: args.attacks])
    hps = {k: a.hparams(eps=EPS, step_size=EPS / STEPS) for k, a in suite.items()}
    key = jax.random.key(0)
    x_j, y_j = jnp.asarray(images), jnp.asarray(labels)
    x_t = torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy())
    y_t = torch.from_numpy(labels.astype(np.int64))

    def run_jaxadv():
        return transfer_matrix(suite, victims, None, x_j, y_j, key, hparams=hps)

    start = time.perf_counter()
    ours = run_jaxadv()
    compile_s = time.perf_counter() - start
    names = list(suite)
    times = {"jaxadv": [], "torchattacks": []}
    outputs = {}
    for r in range(args.rounds):  # torch compiles nothing: its first call is a timed round
        order = [
            ("jaxadv", run_jaxadv),
            ("torchattacks", lambda: torch_matrix(names, twins, x_t, y_t)),
        ]
        for lib, call in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            outputs[lib] = call()
            times[lib].append(time.perf_counter() - start)
    theirs = outputs["torchattacks"]
    ratios = [t / j for j, t in zip(times["jaxadv"], times["torchattacks"])]
    attacked = len(names) * len(victims) * args.images
    print(
        f"transfer matrix: {len(names)} attacks × {len(victims)} sources × {len(victims)} "
        f"targets, {args.images} digits ({attacked} attacked examples), {args.rounds} rounds, "
        f"{jax.devices()[0].platform}, torch {torch.__version__} on {torch.get_num_threads()} "
        "threads"
    )
    print("\n| library | seconds per matrix (median, range) | attacked examples/s |")
    print("|---|---|---|")
    for lib, ts in times.items():
        med = statistics.median(ts)
        print(f"| {lib} | {med:.2f} ({min(ts):.2f}–{max(ts):.2f}) | {attacked / med:.1f} |")
    print(
        f"\njaxadv / torchattacks throughput: {statistics.median(ratios):.2f}× "
        f"(per-round {', '.join(f'{r:.2f}' for r in ratios)}); jaxadv's first call (compile + "
        f"run, or loading it from the compilation cache) {compile_s:.1f} s"
    )
    print(
        "\n| attack | transfer (off-diagonal mean) jaxadv | torchattacks | "
        "mean |rate difference| | same fooled flags |"
    )
    print("|---|---|---|---|---|")
    theirs_rate = rates(theirs, ours.clean_correct)
    off = ~np.eye(len(victims), dtype=bool)
    for a, name in enumerate(names):
        diff = float(np.mean(np.abs(ours.rate[a] - theirs_rate[a])))
        same = float(np.mean(ours.fooled[a] == theirs[a]))
        mine, peer = ours.rate[a][off].mean(), theirs_rate[a][off].mean()
        print(f"| {name} | {mine:.3f} | {peer:.3f} | {diff:.3f} | {same:.3f} |")
    return dict(times=times, ratios=ratios, ours=ours, theirs=theirs)


if __name__ == "__main__":
    main(sys.argv[1:])
