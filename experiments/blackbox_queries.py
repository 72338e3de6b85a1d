r"""Score-based black-box attacks on the digits victim: success rate and queries, ℓ∞ and ℓ2.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/blackbox_queries.py --out DIR
           (tiny smoke run: --smoke; the medium run measured below: --medium; one attack:
           --only NES; one setting: --setting "linf untargeted")
Expected:  the default C&W digits net attacked through `models.score_only` (logits, no gradient),
           ℓ∞ 0.3 and ℓ2 3.0, untargeted and targeted (one random target ≠ label per digit, numpy
           seed 0): success rate on the correctly classified digits, mean / median queries of the
           SUCCESSFUL ones. The full size (128 digits, 10,000 queries) is not yet run; --medium
           (32 digits, 2,000 queries; 2026-12-06, shared 2-core CPU at load 8-15):
             linf untargeted  NES 100%   424 / 408    Square 100%   7 / 6
             linf targeted    NES 67.7%  675 / 561    Square 100%   49 / 42
             l2 untargeted    NES 90.3%  528 / 459    Square 100%   30 / 16
             l2 targeted      NES 51.6%  762 / 561    Square 58.1%  152 / 48
           (experiments/README.md has the table and the settings). Every attack of the table
           at ℓ∞ 0.3 (--medium --setting "linf untargeted" / "linf targeted", 2026-12-07), success
           and median queries: NES 100% 358 / 67.7% 511, RGF 100% 256 / 87.1% 358, Bandits-TD
           100% 40 / 100% 136, P-RGF 100% 25 / 96.8% 37, Algorithm 2 93.5% 7 / 77.4% 10,
           SignHunter 100% 3 / 100% 9, Square 100% 6 / 100% 42 (README: all rows).
Cost:      every step runs for the whole batch however early an example is fooled (fixed-trip
           loop): ~budget forward passes per digit and attack. --medium took ~25 min (675 s of
           runs, the rest compilation, 1-3 min per row under load); the full size does 20x the
           runs' work: hours on 2 CPU cores, minutes on a GPU. Compile and run times are printed
           apart.

Attacks come from one table, :data:`ATTACKS`: name → :class:`Builder` (a factory of ``(norm,
targeted, max_queries)`` and the hyper-parameters per norm). A new query attack is one line there.
An attack that takes a transfer prior sets ``prior=True``: it then attacks the victim joined to a
surrogate (a second digits net, another architecture and seed) by :func:`prior_victim`
(``models.with_surrogates``); the surrogate is trained (or restored) only when such an attack runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, models
from jaxadv.data import load_digits
from jaxadv.training import default_victim


class Builder(NamedTuple):
    """How to build one attack of the table.

    Attributes:
      make: ``(norm, targeted, max_queries) -> attack`` (norm "linf" or "l2").
      hparams: per norm, the hyper-parameters besides ``eps`` (``attack.hparams(eps=..., **these)``).
      prior: True for an attack guided by a surrogate's gradient (it gets :func:`prior_victim`).
    """

    make: Callable[[str, bool, int], Any]
    hparams: Mapping[str, Mapping[str, float]]
    prior: bool = False


def nes_attack(norm: str, targeted: bool, max_queries: int):
    """NES (Ilyas et al. 2018): 50 antithetic probes per step, C&W margin loss, sign (ℓ∞) or
    normalised (ℓ2) steps projected on the ball."""
    return attacks.nes_attack(norm=norm, samples=50, max_queries=max_queries, loss="cw",
                              targeted=targeted)  # fmt: skip


def square_attack(norm: str, targeted: bool, max_queries: int):
    """The Square Attack with the paper's defaults (p_init 0.8; margin loss, CE when targeted)."""
    return attacks.square(norm=norm, targeted=targeted, queries=max_queries)


# NES: σ = 0.001 (the paper's, for pixels in [0, 1]; σ = 0.01 gave the same success on digits,
# 16 digits at 1,000 queries); ℓ∞ step eps/5 as the paper's ImageNet setting (0.01 for 0.05);
# ℓ2 step eps/3 (eps/10 fooled 3 of 16 digits within 1,000 queries, eps/3 fooled 14). Every
# estimator attack takes these same steps (the estimator is then the only difference); bandits
# with 2×2 tiles and an online lr of 10 (the paper's 100 is for a 50×50×3 prior: with fewer
# entries the prior saturates, see attacks.bandits).
STEPS = {"linf": dict(step_size=0.06), "l2": dict(step_size=1.0)}
NES_STEPS = {"linf": dict(STEPS["linf"], fd_step=1e-3), "l2": dict(STEPS["l2"], fd_step=1e-3)}
ATTACKS: dict[str, Builder] = {
    "NES": Builder(nes_attack, NES_STEPS),
    "SPSA": Builder(  # Adam's learning rate: the same step as the others (its default 0.01 is
        # for ε = 8/255-sized budgets: 16% success at ℓ∞ 0.3 within 2,000 queries)
        lambda n, t, q: attacks.spsa_attack(norm=n, targeted=t, max_queries=q), STEPS
    ),
    "RGF": Builder(lambda n, t, q: attacks.rgf_attack(norm=n, targeted=t, max_queries=q), STEPS),
    "Bandits-TD": Builder(
        lambda n, t, q: attacks.bandits(norm=n, tile=2, targeted=t, max_queries=q),
        {k: dict(v, prior_lr=10.0 if k == "linf" else 0.001) for k, v in STEPS.items()},
    ),
    "P-RGF": Builder(
        lambda n, t, q: attacks.prgf(norm=n, targeted=t, max_queries=q), STEPS, prior=True
    ),
    "Alg. 2 (prior)": Builder(
        lambda n, t, q: attacks.prior_boosted(
            prior="gradient", step="steepest", norm=n, targeted=t, max_queries=q
        ),
        STEPS, prior=True,
    ),
    "Yan subspace": Builder(
        lambda n, t, q: attacks.subspace_bandits(norm=n, targeted=t, max_queries=q), STEPS,
        prior=True,
    ),
    "SignHunter": Builder(
        lambda n, t, q: attacks.signhunter(norm=n, targeted=t, max_queries=q), {"linf": {}, "l2": {}}
    ),
    "Square": Builder(square_attack, {"linf": {}, "l2": {}}),
}

# (label, norm, eps, targeted)
SETTINGS = (
    ("linf untargeted", "linf", 0.3, False),
    ("linf targeted", "linf", 0.3, True),
    ("l2 untargeted", "l2", 3.0, False),
    ("l2 targeted", "l2", 3.0, True),
)
# epochs None: the victim's default training; the surrogate is another architecture and seed.
CONFIG = dict(model="cw", epochs=None, surrogate="c4", surrogate_seed=1, num_images=128,
              queries=10_000)  # fmt: skip
MEDIUM = dict(CONFIG, num_images=32, queries=2_000)
# The smoke run checks the plumbing on the test suite's one-epoch victim (tests/test_demo.py
# trains it); its surrogate is that victim itself (no second training in a test).
# 300 queries: SPSA's one step of 256 probes (+ 1) and its final evaluation must fit.
SMOKE = dict(model="cw", epochs=1, surrogate=None, surrogate_seed=0, num_images=4, queries=300)
SMOKE_SETTINGS = ("linf untargeted", "l2 targeted")  # both norms and both goals, 4 compilations


def prior_victim(victim, surrogate):
    """HOOK (issue 15, priors): the victim a prior-guided attack queries — the black-box victim
    carrying the white-box surrogate whose gradient is the prior (``models.with_surrogates``)."""
    return models.with_surrogates(victim, surrogate)


def targets_for(labels: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    """One uniformly random target class ≠ label per example (numpy seed ``seed``)."""
    shift = np.random.default_rng(seed).integers(1, num_classes, size=labels.shape)
    return ((labels + shift) % num_classes).astype(np.int32)


def success_curve(queries, fooled, attacked, budget: int, points: int = 65):
    """``(q, s)``: the fraction ``s`` of the attacked examples fooled within ``q`` queries, at
    ``points`` budgets from 1 to ``budget`` (log-spaced)."""
    grid = np.unique(np.round(np.geomspace(1, budget, points)).astype(int))
    hits = np.sort(np.asarray(queries)[np.asarray(fooled)])
    total = max(int(np.sum(attacked)), 1)
    return grid, np.searchsorted(hits, grid, side="right") / total


def _stats(queries, fooled, correct) -> dict[str, float]:
    """Success among the correctly classified examples, and queries of the successful ones."""
    nan = float("nan")
    return dict(
        success=float(fooled.sum() / max(correct.sum(), 1)),
        mean_queries=float(np.mean(queries[fooled])) if fooled.any() else nan,
        median_queries=float(np.median(queries[fooled])) if fooled.any() else nan,
    )


def run_one(name, builder, setting, victim, surrogate, images, labels, targets, correct, queries):
    """One (attack, setting): its row of the table and its per-example counts."""
    label, norm, eps, targeted = setting
    attack = builder.make(norm, targeted, queries)
    target = victim if not builder.prior else prior_victim(victim, surrogate)
    hp = attack.hparams(eps=eps, **builder.hparams[norm])
    tgt = jnp.asarray(targets) if targeted else None
    start = time.perf_counter()
    run = attack.compile_batch(target, hp, images, labels, tgt)
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    r = jax.block_until_ready(run(hp, images, labels, jax.random.key(0), tgt))
    seconds = time.perf_counter() - start
    success, spent = np.asarray(r.success), np.asarray(r.queries)
    fooled = success & correct  # counted on the correctly classified examples, as the papers do
    row = dict(
        attack=name,
        setting=label,
        prior=builder.prior,
        **_stats(spent, fooled, correct),
        max_queries_spent=int(spent.max()),
        max_norm=float(np.max(np.asarray(r.linf if norm == "linf" else r.l2))),
        compile_s=round(compiled, 1),
        run_s=round(seconds, 1),
    )
    per_example = dict(queries=spent.tolist(), success=success.tolist())
    return row, per_example


def markdown(rows, budget: int) -> str:
    lines = [
        "| setting | attack | prior | success | mean queries | median queries | run s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['attack']} | {'surrogate' if r['prior'] else '—'} | "
            f"{100 * r['success']:.1f}% | {r['mean_queries']:.0f} | {r['median_queries']:.0f} | "
            f"{r['run_s']:.0f} |"
        )
    lines.append(
        f"\nBudget {budget} queries per example. Success: among the correctly classified "
        "examples; mean and median queries: over the successful ones only."
    )
    return "\n".join(lines)


def figure(setting: str, curves: Mapping[str, tuple], path: Path) -> None:
    """Success rate against queries (log scale), one line per attack."""
    from matplotlib.figure import Figure  # an optional dependency (pyproject's `sweeps` extra)

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, (grid, frac) in curves.items():
        ax.step(grid, frac, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("fraction fooled within q queries")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(setting, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)


def _victims(config, cache_dir, need_surrogate: bool):
    victim, info = default_victim(
        config["model"], cache_dir=cache_dir, epochs=config["epochs"], progress=True
    )
    surrogate = victim
    if need_surrogate and config["surrogate"] is not None:
        surrogate, _ = default_victim(
            config["surrogate"], cache_dir=cache_dir, key=jax.random.key(config["surrogate_seed"]),
            progress=True,
        )  # fmt: skip
    return victim, info, surrogate


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny run: 4 digits, 200 queries")
    size.add_argument("--medium", action="store_true", help="32 digits, 2,000 queries")
    parser.add_argument("--only", default=None, help="comma-separated attack names")
    parser.add_argument("--setting", default=None, help="comma-separated setting labels")
    parser.add_argument("--out", default=None, help="folder for the JSON, markdown and figures")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else MEDIUM if args.medium else CONFIG
    names = list(ATTACKS) if args.only is None else args.only.split(",")
    wanted = args.setting.split(",") if args.setting else SMOKE_SETTINGS if args.smoke else None
    settings = [s for s in SETTINGS if wanted is None or s[0] in wanted]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not settings:
        raise ValueError(
            f"`--only` must name attacks of {list(ATTACKS)} and `--setting` settings of "
            f"{[s[0] for s in SETTINGS]}; got {args.only!r} and {args.setting!r}."
        )
    victim, info, surrogate = _victims(config, args.cache_dir, any(ATTACKS[n].prior for n in names))
    black_box = models.score_only(victim)  # logits only: a gradient through it raises
    data = load_digits(size=28)
    n, budget = config["num_images"], config["queries"]
    images = jnp.asarray(data.test_images[:n])
    labels_np = np.asarray(data.test_labels[:n], np.int32)
    labels = jnp.asarray(labels_np)
    targets = targets_for(labels_np, victim.num_classes)
    correct = np.argmax(np.asarray(victim.batch(images)), -1) == labels_np
    print(
        f"victim {config['model']} (test accuracy {info['test_accuracy']:.3f}), {n} digits, "
        f"clean accuracy {correct.mean():.3f}, {budget} queries, backend {jax.default_backend()}",
        flush=True,
    )
    rows, examples, curves = [], {}, {}
    for setting in settings:
        curves[setting[0]] = {}
        for name in names:
            row, per_example = run_one(
                name, ATTACKS[name], setting, black_box, surrogate, images, labels, targets,
                correct, budget,
            )  # fmt: skip
            rows.append(row)
            examples[f"{setting[0]} / {name}"] = per_example
            fooled = np.asarray(per_example["success"]) & correct
            curves[setting[0]][name] = success_curve(
                per_example["queries"], fooled, correct, budget
            )
            print(
                f"{setting[0]:16s} {name:12s} success {row['success']:.3f}  queries of the "
                f"successful: mean {row['mean_queries']:.1f} median {row['median_queries']:.0f}  "
                f"max {setting[1]} {row['max_norm']:.4f}  compile {row['compile_s']:.1f} s  run "
                f"{row['run_s']:.1f} s",
                flush=True,
            )
    table = markdown(rows, budget)
    print(table)
    out = dict(
        config=config, labels=labels_np.tolist(), targets=targets.tolist(),
        correct=correct.tolist(), rows=rows, examples=examples,
        curves={s: {a: [g.tolist(), f.tolist()] for a, (g, f) in c.items()}
                for s, c in curves.items()},
    )  # fmt: skip
    if args.out is not None:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "blackbox_queries.json").write_text(json.dumps(out, indent=1))
        (folder / "blackbox_queries.md").write_text(table + "\n")
        for setting, lines in curves.items():
            figure(setting, lines, folder / f"success_vs_queries_{setting.replace(' ', '_')}.png")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
