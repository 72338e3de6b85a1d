r"""The Meta Attack (thesis chapter 2; Du et al., ICLR 2020) on the digits against ZOO, AutoZOOM, Bandits.

Command:   JAXADV_CACHE_DIR=/root/.cache/jaxadv python experiments/meta_attack_digits.py
           (tiny smoke run: --smoke; fewer digits: --images 8; one setting: --only untargeted;
           Meta Attack vs ZOO at equal success: --only untargeted --images 32 --iterations 100
           --loop-images 0 --const 5 --methods "Meta Attack,ZOO" --zoo-queries 10000 --curve)
Expected:  untargeted and targeted success rate, mean ℓ2 and mean queries of the successful
           digits for Meta Attack (trained and randomly initialised meta attacker), ZOO, AutoZOOM
           and Bandits at one query budget; the cosine of the meta attacker's outputs with the
           victim's white-box gradients (Table 2.6's idea); batched vs one-at-a-time time per
           digit. Measured 2026-12-07 (8 digits, 7 correct; README "Measured:
           meta_attack_digits.py"), untargeted, 671 queries, success / mean ℓ2 / mean queries:
           Meta 14.3% 0.67 269, Meta (random init) 14.3% 0.75 537, ZOO 0%, AutoZOOM 85.7% 2.53
           142, Bandits 100% 2.83 177; targeted (1,006 queries): Meta, random, ZOO 0%, AutoZOOM
           28.6%, Bandits 42.9%. Cosine: trained 0.239, random 0.008. Throughput (--throughput):
           batched 1.80 s/digit vs batch-1 loop 1.88 s/digit (1.04x) in the batch-uniform
           program form, against 21.3 vs 7.48 (0.35x) in the old per-example form.
Cost:      compilation dominates on the CPU: ten attack programs plus one batch-1 program, the
           Meta Attack's ~1 min of CPU each (its in-program fine-tuning of a conv autoencoder);
           ~15-25 min wall on the shared 2-core CPU at load 15 for CONFIG (8 digits, run as two
           processes, --only untargeted and --only targeted). Each attack runs its whole
           fixed-trip loop for the batch (early stopping freezes a fooled digit, it does not end
           the loop): ~budget forward passes per digit; the Meta Attack adds 20 backward passes
           of its autoencoder per fine-tuning. A first attempt at 16 digits and 100 / 150
           iterations got ~2 min of CPU per process in 10 min of wall time and was stopped.

Victim: the default C&W digits net (``default_victim("cw")``) behind ``models.score_only``; the
meta attacker is ``default_meta_attacker("digits")``, meta-trained on surrogates that exclude
that victim (never seen). Settings, scaled from the published CIFAR-10 ones (notes, "Meta
Attack": 100 / 300 iterations, top-q 125, fine-tune every 3 steps for 20 Adam steps, const 0.5):
top-q 32 (125 of 3,072 coordinates is 4%; 32 of the digits' 784 is the same share), the
published interval, fine-tune steps and const, and iterations cut to fit the CPU (CONFIG). The
budget of every attack is what those Meta Attack iterations spend; ZOO estimates ``top_q``
coordinates per step (the same finite differences as the Meta Attack's fine-tuning steps, 2q + 1
queries each), AutoZOOM and ZOO use the same const, and every attack stops an example at its
first success (queries as the paper counts them). Bandits (an ℓ2-ball attack, no const) gets
ℓ2 radius ``bandits_eps``. Targets are (label + 1) mod 10, as the published code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, models
from jaxadv.attacks import MetaOracle
from jaxadv.data import load_digits
from jaxadv.training import default_meta_attacker, default_victim, held_out_cosine

CONFIG = dict(
    num_images=8, iterations=dict(untargeted=30, targeted=45), top_q=32, finetune_interval=3,
    finetune_steps=20, const=0.5, step_size=0.1, bandits_eps=3.0, loop_images=2, search_steps=1,
    zoo_queries=None, zoo_batch=None, zoo_update="adam", zoo_step_size=None, curve=False,
)  # fmt: skip
SMOKE = dict(
    num_images=2, iterations=dict(untargeted=3, targeted=3), top_q=4, finetune_interval=3,
    finetune_steps=2, const=0.5, step_size=0.1, bandits_eps=3.0, loop_images=2, search_steps=1,
    zoo_queries=None, zoo_batch=None, zoo_update="adam", zoo_step_size=None, curve=False,
)  # fmt: skip
METHODS = ("Meta Attack", "Meta Attack (random init)", "ZOO", "AutoZOOM", "Bandits")


def budget(config: dict, iterations: int) -> int:
    """Queries of ``iterations`` Meta Attack steps plus the final evaluation."""
    oracle = MetaOracle(top_q=config["top_q"], finetune_interval=config["finetune_interval"])
    return sum(oracle.call_queries(k) for k in range(iterations)) + oracle.forward_query


def make_attack(method: str, config: dict, targeted: bool, max_queries: int):
    """The attack of ``method`` at the shared settings, and its hyper-parameters."""
    const, search = config["const"], config.get("search_steps", 1)
    if method.startswith("Meta"):
        attack = attacks.meta_attack(
            top_q=config["top_q"], finetune_interval=config["finetune_interval"],
            finetune_steps=config["finetune_steps"], max_queries=max_queries, targeted=targeted,
            const=const, search_steps=search,
        )  # fmt: skip
        return attack, attack.hparams(step_size=config["step_size"])
    if method == "ZOO":
        batch = config.get("zoo_batch") or config["top_q"]
        update = config.get("zoo_update", "adam")
        attack = attacks.zoo(batch=batch, max_queries=max_queries, targeted=targeted, const=const,
                             early_stop=True, search_steps=search, update=update)  # fmt: skip
        step = config.get("zoo_step_size") or config["step_size"]
        # ZOO-Newton's second difference is rounding noise at the paper's h = 1e-4 in float32
        # (attacks.zoo's docstring): it gets h = 1e-2.
        extra = {"fd_step": 1e-2} if update == "newton" else {}
        return attack, attack.hparams(step_size=step, **extra)
    if method == "AutoZOOM":
        attack = attacks.autozoom(max_queries=max_queries, targeted=targeted, const=const,
                                  early_stop=True)  # fmt: skip
        return attack, attack.hparams(step_size=config["step_size"])
    if method == "Bandits":  # blackbox_queries.py's ℓ2 settings (2×2 tiles, step 1, lr 0.001)
        attack = attacks.bandits(norm="l2", tile=2, max_queries=max_queries, targeted=targeted)
        return attack, attack.hparams(eps=config["bandits_eps"], step_size=1.0, prior_lr=1e-3)
    raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")


def run_attack(attack, hp, victim, images, labels, targets):
    """Compiles and runs one attack on the batch; returns the result and both times."""
    start = time.perf_counter()
    run = attack.compile_batch(victim, hp, images, labels, targets)
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    r = jax.block_until_ready(run(hp, images, labels, jax.random.key(0), targets))
    return r, run, compiled, time.perf_counter() - start


def row_of(method, setting, r, correct, max_queries, compiled, seconds) -> dict:
    """Success among the correctly classified digits; ℓ2 and queries of the successful ones."""
    fooled = np.asarray(r.success) & correct
    queries, l2 = np.asarray(r.queries), np.asarray(r.l2)
    nan = float("nan")
    return dict(
        method=method, setting=setting, budget=max_queries,
        success=float(fooled.sum() / max(correct.sum(), 1)),
        mean_l2=float(np.mean(l2[fooled])) if fooled.any() else nan,
        mean_queries=float(np.mean(queries[fooled])) if fooled.any() else nan,
        max_queries_spent=int(queries.max()),
        compile_s=round(compiled, 1), run_s=round(seconds, 1),
    )  # fmt: skip


def throughput(attack, hp, victim, images, labels, targets, batched_seconds, n_batch) -> dict:
    """Seconds per digit: the batched run (already timed) against a Python loop of the same
    attack compiled for batch 1 over ``len(images)`` digits."""
    one = attack.compile_batch(victim, hp, images[:1], labels[:1],
                               None if targets is None else targets[:1])  # fmt: skip
    start = time.perf_counter()
    for i in range(images.shape[0]):
        t = None if targets is None else targets[i : i + 1]
        jax.block_until_ready(one(hp, images[i : i + 1], labels[i : i + 1], jax.random.key(i), t))
    loop = (time.perf_counter() - start) / images.shape[0]
    batched = batched_seconds / n_batch
    return dict(batched_s_per_image=batched, loop_s_per_image=loop, speedup=loop / batched)


FORMS = {"per-example (cond, vmapped fine-tuning)": dict(batch_uniform=False, batching="vmap"),
         "batch-uniform (blocks, looped fine-tuning)": dict(batch_uniform=True, batching="auto")}


def throughput_forms(config, carrier, images, labels, iterations: int) -> list[dict]:
    """Seconds per digit of the untargeted Meta Attack batched and in a batch-1 loop, in the old
    per-example form and the batch-uniform one (``MetaAttack.batch_uniform``), side by side."""
    rows = []
    for form, options in FORMS.items():
        attack, hp = make_attack("Meta Attack", config, False, budget(config, iterations))
        oracle = dataclasses.replace(attack.oracle, finetune_batching=options["batching"])
        attack = dataclasses.replace(attack, oracle=oracle, batch_uniform=options["batch_uniform"])
        _, _, compiled, seconds = run_attack(attack, hp, carrier, images, labels, None)
        k, n = config["loop_images"], images.shape[0]
        speed = throughput(attack, hp, carrier, images[:k], labels[:k], None, seconds, n)
        rows.append(dict(method="throughput", form=form, compile_s=compiled, **speed))
        print(f"{form}: batched {speed['batched_s_per_image']:.3f} s/digit ({n} digits), loop of "
              f"batch 1 {speed['loop_s_per_image']:.3f} s/digit ({k} digits): loop/batched "
              f"{speed['speedup']:.2f}x", flush=True)  # fmt: skip
    old, new = rows
    print(f"batch-uniform vs per-example, batched: {old['batched_s_per_image'] / new['batched_s_per_image']:.2f}x faster; "
          f"loop: {old['loop_s_per_image'] / new['loop_s_per_image']:.2f}x", flush=True)  # fmt: skip
    return rows


def paired(setting, meta, zoo) -> dict:
    """Mean queries and ℓ2 of the Meta Attack and ZOO on the digits BOTH fooled (equal success)
    (``meta``/``zoo``: (fooled, queries, l2) per digit)."""
    both = meta[0] & zoo[0]

    def mean(values):
        return float(values[both].mean()) if both.any() else float("nan")

    row = dict(method="paired Meta vs ZOO", setting=setting, digits=int(both.sum()),
               meta_queries=mean(meta[1]), zoo_queries=mean(zoo[1]), meta_l2=mean(meta[2]),
               zoo_l2=mean(zoo[2]))  # fmt: skip
    print(f"{setting}: on the {row['digits']} digits both fooled, mean queries Meta "
          f"{row['meta_queries']:.0f}, ZOO {row['zoo_queries']:.0f} (ZOO / Meta "
          f"{row['zoo_queries'] / row['meta_queries']:.2f}); mean l2 Meta {row['meta_l2']:.3f}, "
          f"ZOO {row['zoo_l2']:.3f}", flush=True)  # fmt: skip
    return row


# Budgets at which the success-vs-queries curve is read (--curve), up to the largest budget run.
CURVE_BUDGETS = (50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


def success_curve(fooled, queries, budgets) -> list[float]:
    """Success among the correct digits within each of ``budgets`` queries, from ONE run per
    attack that stops each digit at its first success (so ``queries`` of a fooled digit is its
    first-success count): the share of digits fooled with at most that many queries.

    Args:
      fooled: per correctly classified digit, whether the run fooled it.
      queries: per correctly classified digit, the queries the run spent on it.
      budgets: the query budgets to read the curve at.

    Returns:
      One success rate per budget (a non-decreasing list).
    """
    fooled, queries = np.asarray(fooled, bool), np.asarray(queries)
    n = max(fooled.size, 1)
    return [float(np.sum(fooled & (queries <= b)) / n) for b in budgets]


def matched_success(meta, zoo) -> dict:
    """Queries of two attacks at EQUAL success, from their first-success counts on the correct
    digits (``meta``/``zoo``: (fooled, queries) per digit): with k the smaller number of digits
    either fooled, each attack's queries to reach success k/n (its k-th smallest first-success
    count: where its curve reaches that success) and its mean queries over the k digits it
    fooled first (its mean queries at that success; the digits may differ between attacks).
    """
    first = [np.sort(np.asarray(q)[np.asarray(f, bool)]) for f, q in (meta, zoo)]
    k = min(len(first[0]), len(first[1]))
    nan = float("nan")
    reach = [float(q[k - 1]) if k else nan for q in first]
    mean = [float(q[:k].mean()) if k else nan for q in first]
    return dict(digits=k, success=k / max(np.asarray(meta[0]).size, 1), meta_reach=reach[0],
                zoo_reach=reach[1], meta_mean=mean[0], zoo_mean=mean[1],
                reach_ratio=reach[1] / reach[0] if k else nan,
                mean_ratio=mean[1] / mean[0] if k else nan)  # fmt: skip


def curve_rows(setting, fooled: dict, correct, largest: int) -> list[dict]:
    """The success-vs-queries curve of every method (``fooled``: method → (fooled, queries, l2)
    per digit) at the :data:`CURVE_BUDGETS` up to ``largest`` and ``largest`` itself, and the
    Meta Attack against ZOO at equal success (:func:`matched_success`); printed."""
    budgets = [b for b in CURVE_BUDGETS if b < largest] + [largest]
    rows = []
    for method, (ok, queries, _) in fooled.items():
        curve = success_curve(ok[correct], queries[correct], budgets)
        rows.append(dict(method="curve", setting=setting, attack=method,
                         budgets=budgets, success=curve))  # fmt: skip
        points = "  ".join(f"<={b}: {s:.3f}" for b, s in zip(budgets, curve))
        print(f"curve {setting:10s} {method:26s} {points}", flush=True)
    if "Meta Attack" in fooled and "ZOO" in fooled:
        meta, zoo = ((fooled[m][0][correct], fooled[m][1][correct]) for m in ("Meta Attack", "ZOO"))
        row = dict(method="equal success Meta vs ZOO", setting=setting,
                   **matched_success(meta, zoo))  # fmt: skip
        rows.append(row)
        print(f"{setting}: at equal success {row['success']:.3f} ({row['digits']} digits each), "
              f"queries to reach it Meta {row['meta_reach']:.0f}, ZOO {row['zoo_reach']:.0f} "
              f"(ZOO / Meta {row['reach_ratio']:.2f}); mean queries of the digits fooled first "
              f"Meta {row['meta_mean']:.0f}, ZOO {row['zoo_mean']:.0f} (ZOO / Meta "
              f"{row['mean_ratio']:.2f})", flush=True)  # fmt: skip
    return rows


def table(config, black, carriers, images, labels, correct, settings, methods=METHODS):
    """Rows of every ``method`` in every setting (``"untargeted"``/``"targeted"``) on the
    score-only ``black`` (``carriers``: method → black joined to its meta attacker), and the
    throughput row after the untargeted Meta Attack (``config["loop_images"]`` digits looped)."""
    rows = []
    for setting in settings:
        targeted = setting == "targeted"
        targets = (labels + 1) % black.num_classes if targeted else None
        meta_budget = budget(config, config["iterations"][setting])
        fooled, largest = {}, 0
        for method in methods:
            max_queries = meta_budget
            if method == "ZOO" and config.get("zoo_queries"):
                max_queries = config["zoo_queries"]  # ZOO's own, larger budget (--zoo-queries)
            largest = max(largest, max_queries)
            attack, hp = make_attack(method, config, targeted, max_queries)
            victim = carriers.get(method, black)
            r, _, compiled, seconds = run_attack(attack, hp, victim, images, labels, targets)
            row = row_of(method, setting, r, correct, max_queries, compiled, seconds)
            rows.append(row)
            fooled[method] = (np.asarray(r.success) & correct, np.asarray(r.queries),
                              np.asarray(r.l2))  # fmt: skip
            print(f"{setting:10s} {method:26s} success {row['success']:.3f}  mean l2 "
                  f"{row['mean_l2']:.3f}  mean queries {row['mean_queries']:.0f} / {max_queries}"
                  f"  compile {compiled:.1f} s  run {seconds:.1f} s", flush=True)  # fmt: skip
            if method == "Meta Attack" and setting == "untargeted" and config["loop_images"]:
                k, n = config["loop_images"], images.shape[0]
                speed = throughput(attack, hp, victim, images[:k], labels[:k], None, seconds, n)
                rows.append(dict(method="throughput", setting=setting, **speed))
                print(f"throughput: batched {speed['batched_s_per_image']:.3f} s/digit, loop "
                      f"of batch 1 {speed['loop_s_per_image']:.3f} s/digit ({k} digits): "
                      f"{speed['speedup']:.1f}x", flush=True)  # fmt: skip
        if "Meta Attack" in fooled and "ZOO" in fooled:
            rows.append(paired(setting, fooled["Meta Attack"], fooled["ZOO"]))
        if config.get("curve"):
            rows += curve_rows(setting, fooled, correct, largest)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run")
    parser.add_argument("--images", type=int, default=None, help="digits (CONFIG: 16)")
    parser.add_argument("--only", default=None, help="'untargeted' or 'targeted'")
    parser.add_argument("--step-size", type=float, default=None, help="C&W attacks' lr (0.1)")
    parser.add_argument("--loop-images", type=int, default=None, help="0: no throughput row")
    parser.add_argument("--iterations", type=int, default=None, help="Meta Attack steps (both)")
    parser.add_argument("--const", type=float, default=None, help="C&W const (0.5)")
    parser.add_argument("--search-steps", type=int, default=None,
                        help="C&W binary search over the const for Meta Attack and ZOO (1)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of METHODS")
    parser.add_argument("--zoo-queries", type=int, default=None,
                        help="ZOO's own query budget (default: the Meta Attack's)")
    parser.add_argument("--zoo-batch", type=int, default=None,
                        help="coordinates ZOO estimates per step (default: top-q, 32)")
    parser.add_argument("--zoo-update", default=None, choices=("adam", "newton"),
                        help="ZOO-ADAM (default) or ZOO-Newton")
    parser.add_argument("--zoo-step-size", type=float, default=None,
                        help="ZOO's learning rate (default: --step-size)")
    parser.add_argument("--curve", action="store_true",
                        help="success-vs-queries curves and Meta vs ZOO at equal success, from "
                             "each attack's first-success query counts (needs --search-steps 1)")
    parser.add_argument("--throughput", action="store_true",
                        help="only the batched vs batch-1 timing, old and new program forms")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    for name in ("images", "step_size", "loop_images", "const", "search_steps", "zoo_queries",
                 "zoo_batch", "zoo_update", "zoo_step_size"):
        if getattr(args, name) is not None:
            config["num_images" if name == "images" else name] = getattr(args, name)
    config["curve"] = args.curve
    if args.zoo_queries is not None and args.zoo_queries < 1:
        raise ValueError(f"`--zoo-queries` must be a positive budget; got {args.zoo_queries}.")
    if args.curve and config["search_steps"] != 1:
        raise ValueError(
            "`--curve` reads success at each budget off first-success query counts, which a "
            f"constant search (summed over its runs) does not give: use --search-steps 1; got "
            f"{config['search_steps']}."
        )
    if args.iterations is not None:
        config["iterations"] = dict(untargeted=args.iterations, targeted=args.iterations)
    white, info = default_victim("cw", cache_dir=args.cache_dir, progress=True)
    module, variables, meta_info = default_meta_attacker("digits", cache_dir=args.cache_dir,
                                                         progress=True)  # fmt: skip
    data = load_digits(size=28)
    n = config["num_images"]
    images = jnp.asarray(data.test_images[:n])
    labels = jnp.asarray(data.test_labels[:n], jnp.int32)
    correct = np.argmax(np.asarray(white.batch(images)), -1) == np.asarray(labels)
    black = models.score_only(white)
    random = module.init(jax.random.key(7), images[0])
    carriers = {
        "Meta Attack": models.with_meta_attacker(black, module, variables),
        "Meta Attack (random init)": models.with_meta_attacker(black, module, random),
    }
    print(f"victim cw (test accuracy {info['test_accuracy']:.3f}), {n} digits, clean accuracy "
          f"{correct.mean():.3f}; meta attacker {meta_info['path']} (surrogates "
          f"{meta_info['surrogates']}); backend {jax.default_backend()}", flush=True)  # fmt: skip

    if args.throughput:
        return throughput_forms(config, carriers["Meta Attack"], images, labels,
                                config["iterations"]["untargeted"])  # fmt: skip
    trained_cos, random_cos = held_out_cosine(module, variables, white, images, labels,
                                              key=jax.random.key(7))  # fmt: skip
    rows = [dict(method="cosine", setting="white-box gradient", trained=trained_cos,
                 random=random_cos)]  # fmt: skip
    print(f"cosine with the victim's white-box gradients: trained {trained_cos:.3f}, "
          f"random init {random_cos:.3f}", flush=True)  # fmt: skip

    settings = [s for s in ("untargeted", "targeted") if not args.only or s == args.only]
    methods = METHODS if args.methods is None else tuple(args.methods.split(","))
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"`--methods` must name some of {METHODS}; got {unknown}.")
    rows += table(config, black, carriers, images, labels, correct, settings, methods)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
