r"""Table 1 of "Smooth adversarial examples" (Zhang, Avrithis, Furon & Amsaleg, EURASIP JIS 2020):
P_suc and D̄ of FGSM, I-FGSM, PGD2, C&W, qPGD2 and sC&W on the default digit classifiers, and the
bilateral-filter column of its Table 3 (the same adversarial images against the victim behind a
bilateral filter, σ_d 0.5 and σ_r 0.2, each attack at its single paper budget).

Command:   python experiments/smooth_table1.py                    (tiny smoke run: --smoke)
           add --figure oc.png for the operating characteristics (paper Fig. 5)
Expected:  the paper's MNIST column (C4): FGSM 0.89/5.02, I-FGSM 1.00/2.69, PGD2 1.00/1.71,
           C&W 1.00/2.49, qPGD2 0.97/3.36, sC&W 1.00/1.97 (P_suc/D̄). Its finding to check: sC&W
           keeps C&W's success at lower or equal distortion, qPGD2 pays more distortion than
           PGD2. Our digits are sklearn's 8×8 scans upsampled to 28×28 (smoother than MNIST), so
           the numbers differ; the comparisons are what carries over. Measured values: see
           experiments/README.md.
Cost:      victims train once (~30 s each, cached); then ~10 min per victim for 128 images on 2
           CPU cores (C&W and sC&W, 9×50 steps each, dominate). Smoke: about a minute.

Protocol (paper §5.1): only correctly classified images count; D is the ℓ2 distortion of the
returned adversarial example. Distortion-targeting attacks run at several budgets in ONE
compiled sweep; an image succeeds if any budget does, with its smallest successful distortion.
Settings are the paper's MNIST ones: FGSM/I-FGSM ℓ∞ budgets up to 0.3 (I-FGSM step eps/4, 10
steps), PGD2 and qPGD2 budgets D ∈ [1, 6] with step 0.6·eps (3 at eps = 5), C&W-type margin loss
with m = 1, Adam rate 0.1 and initial constant 15 for C&W (with its tanh box) and sC&W,
smoothing with a Laplacian kernel (σ_f = 0.1), α = 0.95, at most 50 CG iterations.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, metrics
from jaxadv.data import load_digits
from jaxadv.models import bilateral_defense
from jaxadv.training import default_victim

CONFIG = dict(
    models=("c4", "cw"),
    num_images=128,
    epochs=None,
    linf_budgets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    l2_budgets=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    pgd_steps=10,
    cw_steps=50,
    search_steps=9,
)
SMOKE = dict(
    models=("c4",),
    num_images=4,
    epochs=1,
    linf_budgets=(0.1, 0.3),
    l2_budgets=(2.0, 5.0),
    pgd_steps=3,
    cw_steps=5,
    search_steps=2,
)


def table_attacks(config: dict) -> list[tuple[str, object, dict, int | None]]:
    """(name, attack, hyper-parameters, budget index) in the paper's row order.

    Distortion-targeting attacks sweep their budgets (the index is the paper's single budget,
    used for the transfer column); attacks that minimise distortion run once (index None).
    """
    linf = np.asarray(config["linf_budgets"], np.float32)
    l2 = np.asarray(config["l2_budgets"], np.float32)
    at_linf, at_l2 = int(np.argmin(np.abs(linf - 0.3))), int(np.argmin(np.abs(l2 - 5.0)))
    steps, cw_steps, search = config["pgd_steps"], config["cw_steps"], config["search_steps"]
    fgsm, ifgsm = attacks.fgsm(), attacks.bim(steps=steps)
    pgd2 = attacks.pgd(norm="l2", steps=steps, random_start=False, loss="cw")
    qpgd2 = attacks.qpgd2(steps=steps)
    cw = attacks.cw_l2(steps=cw_steps, search_steps=search)
    scw = attacks.scw(steps=cw_steps, search_steps=search)
    return [
        ("FGSM", fgsm, fgsm.hparams(eps=linf), at_linf),
        ("I-FGSM", ifgsm, ifgsm.hparams(eps=linf), at_linf),
        ("PGD2", pgd2, pgd2.hparams(eps=l2, step_size=0.6 * l2, kappa=1.0), at_l2),
        ("C&W", cw, cw.hparams(step_size=0.1, initial_const=15.0, kappa=1.0), None),
        ("qPGD2", qpgd2, qpgd2.hparams(eps=l2, step_size=0.6 * l2, kappa=1.0), at_l2),
        ("sC&W", scw, scw.hparams(), None),
    ]


def run_victim(model: str, config: dict, cache_dir: str | None, key: jax.Array) -> dict:
    """Runs every attack on one victim; returns Table 1 rows, operating characteristics, and
    the transfer rows of Table 3 (the same adversarial images shown to the victim behind a
    bilateral filter, σ_d 0.5 and σ_r 0.2, at the paper's single budget per attack)."""
    victim, _ = default_victim(model, cache_dir=cache_dir, epochs=config["epochs"], progress=False)
    defended = bilateral_defense(victim, sigma_domain=0.5, sigma_range=0.2)
    data = load_digits(size=28)
    images = jnp.asarray(data.test_images[: config["num_images"]])
    labels = jnp.asarray(data.test_labels[: config["num_images"]])
    correct = np.argmax(np.asarray(victim.batch(images)), -1) == np.asarray(labels)
    # Transfer counts the images both the attacked and the defended victim classify correctly.
    both = correct & (np.argmax(np.asarray(defended.batch(images)), -1) == np.asarray(labels))
    rows, curves, transfer = [], {}, []
    for name, attack, hp, budget in table_attacks(config):
        start = time.perf_counter()
        run = attack.batch if budget is None else attack.sweep
        result = jax.block_until_ready(run(victim, hp, images, labels, key))
        seconds = time.perf_counter() - start
        success, distortion = np.asarray(result.success), np.asarray(result.l2)
        single = result if budget is None else jax.tree.map(lambda a: a[budget], result)
        if budget is not None:
            success, distortion = metrics.min_successful_distortion(success, distortion)
        row = metrics.protocol_row(success, distortion, correct)
        converged = bool(np.all(result.converged))
        rows.append(dict(attack=name, **row, seconds=seconds, cg_converged=converged))
        curves[name] = metrics.operating_characteristic(success, distortion, correct)
        fooled = np.argmax(np.asarray(defended.batch(single.x_adv)), -1) != np.asarray(labels)
        transfer.append(
            dict(attack=name, **metrics.protocol_row(fooled, np.asarray(single.l2), both))
        )
        print(f"  {model}/{name}: {rows[-1]} transfer {transfer[-1]}", file=sys.stderr, flush=True)
    return dict(rows=rows, curves=curves, transfer=transfer, accuracy=float(np.mean(correct)))


def format_table(tables: dict, key: str = "rows") -> str:
    """The rows of every victim side by side: P_suc and D̄ per victim (the paper's layout)."""
    models = list(tables)
    head = "attack   " + "".join(f"| {m:^15} " for m in models)
    sub = "         " + "".join("|  P_suc     D̄   " for _ in models)
    lines = [head, sub, "-" * len(sub)]
    for i, row in enumerate(tables[models[0]][key]):
        cells = "".join(
            f"|  {tables[m][key][i]['P_suc']:.2f}  {tables[m][key][i]['D_bar']:6.2f}  "
            for m in models
        )
        lines.append(f"{row['attack']:<9}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--figure", default=None, help="save operating characteristics here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else CONFIG
    tables = {}
    for model in config["models"]:
        tables[model] = run_victim(model, config, args.cache_dir, jax.random.key(args.seed))
    accuracy = ", ".join(f"{m} {t['accuracy']:.1%}" for m, t in tables.items())
    print(f"Table 1 layout: white box (clean accuracy of the attacked images: {accuracy})")
    print(format_table(tables))
    print("\nTable 3 layout: transfer to the victim behind a bilateral filter (σ_d 0.5, σ_r 0.2)")
    print(format_table(tables, "transfer"))
    print("(D̄: mean ℓ2 distortion over the successful images)")
    if args.figure:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.5), squeeze=False)
        for ax, (model, table) in zip(axes[0], tables.items()):
            metrics.plot_operating_characteristics(table["curves"], ax=ax)
            ax.set_title(f"digits, {model}")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
        print(f"operating characteristics saved to {args.figure}")
    return tables


if __name__ == "__main__":
    main(sys.argv[1:])
