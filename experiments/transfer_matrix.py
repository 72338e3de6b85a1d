r"""The transfer matrix of the digits zoo: 5 sources × 5 targets × the transfer attacks.

Five classifiers of the embedded digits (28×28, pixels in [0, 1]), each the cached default victim
(``training.default_victim``): the C&W net and the cleverhans C4 net of training seeds 0 and 1,
and the small ResNet of seed 0. Every attack crafts untargeted ℓ∞ examples white-box on every
source; every target sees them. A cell is the transfer success rate: of the test digits the target
classifies correctly, the fraction its adversarial example fools (``jaxadv.transfer``); the
diagonal is the white-box success. One compiled call runs the whole matrix.

Attacks (the published comparisons' setting: ε = 0.1, T = 10 iterations, α = ε/T for every
attack, so they differ only in how the gradient is computed and accumulated): I-FGSM (Kurakin et
al. 2017), MI-FGSM (Dong et al. 2018, μ = 1), and the boosters of ``jaxadv.attacks`` on
MI-FGSM: DI (Xie et al. 2019), TI (Dong et al. 2019), NI (Lin et al. 2020), VMI (Wang & He 2021)
(see :func:`make_attacks`); ``--extra`` runs SI-NI, VNI and Admix instead. The published ordering
(ImageNet, Inception family): every booster above MI-FGSM above I-FGSM in black-box transfer.
ε = 0.1 leaves room on both sides (measured on 64 digits, C&W and C4 nets: white-box ≈ 0.7,
transfer ≈ 0.4 for I-FGSM; ε = 0.2 fools every model on almost every digit).

Command:   python experiments/transfer_matrix.py [--images N] [--out DIR]   (--smoke: tiny run)
Expected:  see experiments/README.md ("transfer_matrix.py").
Cost:      the first call trains the victims that are not cached (a minute or more each on the
           loaded 2-core CPU); then compiling the matrix (minutes) and running it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, models, training
from jaxadv.data import load_digits
from jaxadv.transfer import TransferMatrix, plot_transfer_matrix, transfer_matrix


def make_attacks(steps: int, pool) -> list[tuple[str, attacks.Attack]]:
    """The attacks in table order (I-FGSM and MI-FGSM first). The boosters ride on MI-FGSM
    (μ = 1), as the published combinations: M-DI²-FGSM (DI p = 0.5, shrink to 0.9 and pad),
    TI-MI-FGSM (kernel 5, σ = 4/6: the paper's 15-pixel kernel is for 299-pixel images), NI-FGSM,
    VMI-FGSM (N = 5 neighbours in 1.5·ε, torchattacks' N; the paper's is 20); then SI-NI-FGSM
    (5 scales), VNI-FGSM (N = 5) and Admix (η = 0.2, 3 images of ``pool`` × 5 scales)."""
    return [
        ("I-FGSM", attacks.bim(steps=steps)),
        ("MI-FGSM", attacks.mi_fgsm(steps=steps)),
        ("DI-MI-FGSM", attacks.di_fgsm(steps=steps, decay=1.0)),
        ("TI-MI-FGSM", attacks.ti_fgsm(steps=steps, decay=1.0, kernel_size=5)),
        ("NI-FGSM", attacks.ni_fgsm(steps=steps)),
        ("VMI-FGSM", attacks.vmi_fgsm(steps=steps, neighbours=5)),
        ("SI-NI-FGSM", attacks.si_ni_fgsm(steps=steps)),
        ("VNI-FGSM", attacks.vni_fgsm(steps=steps, neighbours=5)),
        ("Admix", attacks.admix_fgsm(pool, steps=steps)),
    ]


CONFIG = dict(
    victims=(("cw", 0), ("c4", 0), ("resnet", 0), ("cw", 1), ("c4", 1)),
    images=256, eps=0.1, steps=10, first_attack=0, last_attack=6, seed=0,
)  # fmt: skip
SMOKE = dict(
    victims=(("mlp", 0), ("mlp", 1), ("mlp", 2)), images=8, eps=0.2, steps=2, first_attack=0,
    last_attack=3, seed=0,
)  # fmt: skip
RESULTS = Path(__file__).resolve().parent / "results"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_victims(config: dict, cache_dir=None) -> dict:
    """name → victim: the cached digits zoo, or (smoke) tiny ReLU MLPs trained for ten epochs on
    8×8 digits."""
    victims = {}
    for arch, seed in config["victims"]:
        if arch == "mlp":
            data = load_digits(size=8)
            module = models.ReluMLP(hidden=(16,), num_classes=10)
            variables = training.train_classifier(
                module, data.train_images, data.train_labels, key=jax.random.key(seed),
                epochs=10, batch_size=64, learning_rate=1e-2, progress=False,
            )  # fmt: skip
            victim = models.from_flax(module, variables, input_shape=(8, 8, 1), num_classes=10)
        else:
            victim, _ = training.default_victim(
                arch, key=jax.random.key(seed), cache_dir=cache_dir, progress=True
            )
        victims[f"{arch}/{seed}"] = victim
    return victims


def build_attacks(config: dict, pool) -> tuple[dict, dict]:
    """The configured attacks (label → attack) and their hyper-parameters (ε, α = ε/T)."""
    chosen = make_attacks(config["steps"], pool)[config["first_attack"] : config["last_attack"]]
    suite = dict(chosen)
    step = config["eps"] / config["steps"]
    hps = {label: atk.hparams(eps=config["eps"], step_size=step) for label, atk in chosen}
    return suite, hps


def run(config: dict, cache_dir=None) -> tuple[TransferMatrix, dict]:
    victims = load_victims(config, cache_dir)
    size = next(iter(victims.values())).input_shape[0]
    data = load_digits(size=size)
    n = config["images"]
    images = jnp.asarray(data.test_images[:n])
    labels = jnp.asarray(data.test_labels[:n], jnp.int32)
    # Admix's pool: training digits (never the attacked test digits).
    suite, hps = build_attacks(config, jnp.asarray(data.train_images[:64]))
    key = jax.random.key(config.get("seed", 0))
    start = time.perf_counter()
    matrix = transfer_matrix(suite, victims, None, images, labels, key, hparams=hps)
    first = time.perf_counter() - start  # compilation + one run
    start = time.perf_counter()
    again = transfer_matrix(suite, victims, None, images, labels, key, hparams=hps)
    second = time.perf_counter() - start  # the compiled program alone
    assert np.array_equal(again.fooled, matrix.fooled), "same key, same matrix"
    cells = len(suite) * len(victims)
    timing = dict(
        first_call_s=first, run_s=second, attacked_examples=cells * n,
        examples_per_s=cells * n / second,
    )  # fmt: skip
    return matrix, timing


def summary_table(matrix: TransferMatrix) -> str:
    """Per attack: white-box success (diagonal mean), black-box transfer (off-diagonal mean),
    and its mean per target architecture (over sources of another architecture or seed)."""
    arch = [name.split("/")[0] for name in matrix.targets]
    kinds = sorted(set(arch), key=arch.index)
    head = "| attack | white-box (diagonal) | transfer (off-diagonal) | "
    head += " | ".join(f"→ {k}" for k in kinds) + " |"
    lines = [head, "|---" * (3 + len(kinds)) + "|"]
    transfer = matrix.mean_transfer()
    for a, name in enumerate(matrix.attacks):
        rate = matrix.rate[a]
        diagonal = np.nanmean([rate[i, i] for i in range(min(rate.shape))])
        per = []
        for kind in kinds:
            cols = [t for t, k in enumerate(arch) if k == kind]
            cells = [rate[s, t] for t in cols for s in range(rate.shape[0]) if s != t]
            per.append(f"{np.nanmean(cells):.3f}")
        lines.append(f"| {name} | {diagonal:.3f} | {transfer[a]:.3f} | {' | '.join(per)} |")
    return "\n".join(lines)


def report(matrix: TransferMatrix, timing: dict, config: dict) -> str:
    accuracy = matrix.clean_correct.mean(axis=1)
    parts = [
        f"{config['images']} test digits, ε = {config['eps']}, {config['steps']} steps, "
        f"α = ε/{config['steps']}; clean accuracy "
        + ", ".join(f"{t} {a:.3f}" for t, a in zip(matrix.targets, accuracy)),
        "",
        summary_table(matrix),
    ]
    for name in matrix.attacks:
        parts += ["", f"{name} (rows: source, columns: target)", "", matrix.table(name)]
    parts += [
        "",
        f"one compiled call: first {timing['first_call_s']:.1f} s (compile + run), then "
        f"{timing['run_s']:.1f} s for {timing['attacked_examples']} attacked examples "
        f"({timing['examples_per_s']:.1f} /s), each shown to {len(matrix.targets)} targets",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> tuple[TransferMatrix, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--images", type=int, default=None, help="test digits (default 256)")
    parser.add_argument("--out", default=None, help="folder for the table and heat map")
    parser.add_argument("--cache-dir", default=None, help="victim cache (default jaxadv's)")
    parser.add_argument("--extra", action="store_true", help="SI-NI, VNI and Admix instead")
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.images:
        config["images"] = args.images
    if args.extra:
        config.update(first_attack=6, last_attack=9)
    began = time.perf_counter()
    matrix, timing = run(config, args.cache_dir)
    text = report(matrix, timing, config)
    print(text)
    out = Path(args.out) if args.out else (None if args.smoke else RESULTS)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = "transfer_matrix_smoke" if args.smoke else "transfer_matrix"
        stem += "_extra" * args.extra
        (out / f"{stem}.md").write_text(text + "\n")
        plot_transfer_matrix(matrix, path=out / f"{stem}.png")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return matrix, timing


if __name__ == "__main__":
    main(sys.argv[1:])
