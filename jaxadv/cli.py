"""Command-line entry points: ``python -m jaxadv demo``, ``evaluate``, ``train-saliency``,
``adv-train``, ``meta-train`` and ``sweep``.

A user error (a bad flag, a missing or unreadable file, a corrupted checkpoint) ends with one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

# Errors that report a wrong input or a file at fault (the library raises ValueError for misuse,
# corrupted checkpoints and bad data files); anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse, with a user error reported on ONE line (no usage block) and exit status 2."""

    def error(self, message: str):
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m jaxadv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train or restore the default victim, attack it, print a table"
    )
    demo.add_argument(
        "--model", default="cw", choices=("cw", "c4", "resnet"), help="victim (default cw)"
    )
    demo.add_argument("--images", type=int, default=128, help="test images to attack (128)")
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed of the attacks (0)")
    demo.add_argument("--cache-dir", default=None, help="where trained victims are kept")
    demo.add_argument("--epochs", type=int, default=None, help="victim training epochs")
    demo.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only the attacks whose name starts with one of these words, e.g. PGD C&W",
    )
    _add_evaluate(commands)
    _add_train_saliency(commands)
    _add_sweep(commands)
    _add_adv_train(commands)
    _add_meta_train(commands)
    args = parser.parse_args(argv)
    from jaxadv._compile_cache import enable_compilation_cache

    enable_compilation_cache()  # programs persist across runs; JAXADV_NO_COMPILE_CACHE=1: off

    run = {
        "sweep": _sweep, "train-saliency": _train_saliency, "demo": _demo, "evaluate": _evaluate,
        "adv-train": _adv_train, "meta-train": _meta_train,
    }[args.command]
    command = commands.choices[args.command]  # its parser: errors name the sub-command
    try:
        return run(command, args)
    except _USER_ERRORS as err:
        text = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OSError):
            text = f"{type(err).__name__}: {text}"
        print(f"{command.prog}: error: {text}", file=sys.stderr, flush=True)
        return 2


def _check_dir_flag(parser, flag: str, value) -> None:
    """A directory flag must not name a file or lie under one (checked before any work)."""
    from jaxadv import _checks

    if value is not None:
        try:
            _checks.check_directory(flag, value)
        except ValueError as err:
            parser.error(str(err))


def _demo(parser, args) -> int:
    from jaxadv.data import load_digits
    from jaxadv.demo import DEMO_ATTACKS, run_demo, unmatched

    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1; got {args.epochs}")
    available = len(load_digits(size=28).test_labels)
    if not 1 <= args.images <= available:
        parser.error(f"--images must be in [1, {available}] (the test split); got {args.images}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.only is not None and not args.only:
        parser.error("--only needs at least one word, e.g. --only PGD")
    missing = unmatched(args.only)
    if missing:
        labels = ", ".join(repr(label) for label, _, _ in DEMO_ATTACKS)
        parser.error(f"--only {' '.join(missing)} starts no demo attack; the attacks: {labels}")
    _check_dir_flag(parser, "--cache-dir", args.cache_dir)
    run_demo(
        model=args.model,
        num_images=args.images,
        seed=args.seed,
        cache_dir=args.cache_dir,
        only=tuple(args.only) if args.only else None,
        epochs=args.epochs,
    )
    return 0


def _add_evaluate(commands) -> None:
    from jaxadv.attacks import AUTOATTACK_ATTACKS, AUTOATTACK_NORMS, AUTOATTACK_VERSIONS

    ev = commands.add_parser(
        "evaluate",
        help="the AutoAttack report of a digits classifier (a checkpoint or the default victim)",
        description="Runs AutoAttack (Croce & Hein 2020) on the digits test split and prints its "
        "report: clean accuracy, which attack broke which points, robust accuracy, and flags.",
    )
    ev.add_argument("--model", default="cw", choices=("cw", "c4", "resnet"), help="(cw)")
    ev.add_argument("--checkpoint", default=None, help="weights saved by save_variables")
    ev.add_argument("--norm", default="linf", choices=AUTOATTACK_NORMS, help="threat model (linf)")
    ev.add_argument("--eps", type=float, default=None, help="budget (linf 0.3, l2 2.0, l1 10)")
    ev.add_argument("--version", default="standard", choices=AUTOATTACK_VERSIONS, help="(standard)")
    ev.add_argument(
        "--attacks", nargs="+", default=None, choices=AUTOATTACK_ATTACKS, help="a custom selection"
    )
    ev.add_argument("--images", type=int, default=128, help="test images (128)")
    ev.add_argument("--seed", type=int, default=0, help="PRNG seed of the attacks (0)")
    ev.add_argument("--steps", type=int, default=100, help="APGD and FAB iterations (100)")
    ev.add_argument("--queries", type=int, default=5000, help="Square's queries (5000)")
    ev.add_argument("--cache-dir", default=None, help="where trained victims are kept")


def _evaluate(parser, args) -> int:
    from jaxadv.evaluate import evaluate_digits

    for flag in ("images", "steps", "queries"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1; got {getattr(args, flag)}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.eps is not None and not args.eps > 0:
        parser.error(f"--eps must be > 0; got {args.eps}")
    _check_dir_flag(parser, "--cache-dir", args.cache_dir)
    evaluate_digits(
        model=args.model, checkpoint=args.checkpoint, norm=args.norm, eps=args.eps,
        version=args.version, attacks=tuple(args.attacks) if args.attacks else None,
        num_images=args.images, seed=args.seed, steps=args.steps, queries=args.queries,
        cache_dir=args.cache_dir,
    )  # fmt: skip
    return 0


SALIENCY_DATA = ("scenes", "salicon", "mit1003", "cat2000")


def _add_train_saliency(commands) -> None:
    from jaxadv.models.saliency import SALIENCY_MODEL_NAMES

    sal = commands.add_parser(
        "train-saliency",
        help="train a saliency zoo model, checkpoint it, and score it against the centre bias",
        description="Trains a saliency zoo model with its paper's content loss (orbax "
        "checkpoints, resumable with identical results) and prints CC, NSS, sAUC, KL and SIM on "
        "held-out data next to two content-blind baselines.",
    )
    sal.add_argument("--model", required=True, choices=SALIENCY_MODEL_NAMES)
    sal.add_argument("--epochs", type=int, default=10, help="total epochs (10)")
    sal.add_argument(
        "--data",
        default="scenes",
        choices=SALIENCY_DATA,
        help="the embedded generated scenes (default) or a real data set under --root",
    )
    sal.add_argument("--root", default=None, help="folder of the real data set")
    sal.add_argument(
        "--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"), help="(64 64)"
    )
    sal.add_argument("--train", type=int, default=None, help="training images (scenes: 1000)")
    sal.add_argument("--test", type=int, default=None, help="held-out images (scenes: 200)")
    sal.add_argument("--checkpoint-dir", default=None, help="orbax checkpoints of the run")
    sal.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    sal.add_argument("--width", type=int, default=8, help="the model's base width (8)")
    sal.add_argument("--seed", type=int, default=0, help="PRNG seed (0)")
    sal.add_argument("--batch-size", type=int, default=16, help="(16)")
    sal.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's step size (1e-3)")
    sal.add_argument(
        "--loss",
        default=None,
        choices=("sam", "gazegan", "unisal", "nll"),
        help="content loss preset (default: nll for log densities, else sam)",
    )
    sal.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def _saliency_data(parser, args):
    """(train, held-out) stacked data sets for ``train-saliency``."""
    from jaxadv.data import saliency as data

    for flag in ("train", "test"):
        value = getattr(args, flag)
        if value is not None and value < (2 if flag == "test" else 1):
            parser.error(f"--{flag} must be >= {2 if flag == 'test' else 1}; got {value}")
    size = tuple(args.size)
    if args.data == "scenes":
        if args.root is not None:
            parser.error("--root is for real data sets; the scenes are generated")
        return (
            data.load_scenes("train", args.train, size=size, seed=args.seed),
            data.load_scenes("test", args.test, size=size, seed=args.seed),
        )
    if args.root is None:
        parser.error(f"--data {args.data} needs --root, the folder of the data set")
    try:
        return _real_saliency_data(parser, args, data, size)
    except data.DatasetLayoutError as err:
        parser.error(f"--root: {' '.join(str(err).split())}")


def _real_saliency_data(parser, args, data, size):
    import numpy as np

    if args.data == "salicon":
        return (
            data.load_salicon(args.root, "train", size=size, limit=args.train),
            data.load_salicon(args.root, "val", size=size, limit=args.test),
        )
    loader = data.load_mit1003 if args.data == "mit1003" else data.load_cat2000
    limit = args.train + args.test if args.train and args.test else None
    everything = loader(args.root, size=size, limit=limit)
    n = len(everything)
    n_test = args.test or max(2, n // 10)
    if n - n_test < 1:
        parser.error(f"--data {args.data} has {n} images: too few to hold out {n_test}")
    # A seeded random hold-out: the loaders' order groups categories (CAT2000).
    order = np.random.default_rng(args.seed).permutation(n)
    return everything.subset(np.sort(order[n_test:])), everything.subset(np.sort(order[:n_test]))


def _train_saliency(parser, args) -> int:
    import jax

    from jaxadv.training import (
        center_bias_baselines,
        evaluate_saliency,
        format_saliency_table,
        train_zoo_saliency,
    )

    for flag in ("epochs", "width", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be > 0; got {args.learning_rate}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if min(args.size) < 1:
        parser.error(f"--size must be two positive integers; got {' '.join(map(str, args.size))}")
    _check_dir_flag(parser, "--checkpoint-dir", args.checkpoint_dir)
    train, test = _saliency_data(parser, args)
    key = jax.random.key(args.seed)
    eval_key = jax.random.fold_in(key, 1)
    victim, training = train_zoo_saliency(
        args.model,
        train,
        key=jax.random.fold_in(key, 2),
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        loss=args.loss,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.quiet,
    )
    rows = {args.model: evaluate_saliency(victim, test, key=eval_key)}
    rows.update(center_bias_baselines(train, test, key=eval_key))
    print(
        f"{args.model} (width {args.width}) after {len(training.losses)} epochs on "
        f"{len(train)} {train.name} images (final loss {training.losses[-1]:.4f}); "
        f"held out: {len(test)} images"
    )
    print(format_saliency_table(rows))
    return 0


def _add_sweep(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a sweep config (grids of attacks × victims), checkpointed and resumable",
        description="Runs every victim × attack grid of CONFIG (a Python file defining "
        "get_config(arg); CONFIG:ARG passes ARG) as chunks of one compiled program sharded over "
        "all devices (and processes), checkpointing after each chunk; writes table.csv, "
        "summary.md and a figure to --out. Rerunning resumes where it stopped.",
    )
    sweep.add_argument("config", metavar="CONFIG[:ARG]", help="e.g. experiments/sweeps/x.py:smoke")
    sweep.add_argument("--out", default=None, help="output directory (sweeps/<config name>)")
    sweep.add_argument("--fresh", action="store_true", help="discard checkpoints in --out")
    sweep.add_argument("--chunk-size", type=int, default=None, help="entries per checkpoint")
    sweep.add_argument(
        "--micro-batch", type=int, default=None, help="entries per device per call (fixes the bits)"
    )
    sweep.add_argument("--cache-dir", default=None, help="where trained default victims are kept")
    sweep.add_argument("--quiet", action="store_true", help="no progress display")
    group = sweep.add_argument_group(
        "several processes (jax.distributed); or set JAXADV_COORDINATOR, "
        "JAXADV_NUM_PROCESSES and JAXADV_PROCESS_ID"
    )
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="process 0's")
    group.add_argument("--num-processes", type=int, default=None)
    group.add_argument("--process-id", type=int, default=None)
    group.add_argument(
        "--join-timeout", type=int, default=300, help="seconds to wait for all processes (300)"
    )


def _sweep(parser, args) -> int:
    from jaxadv.sweeps import distributed_from_environment, initialize, shutdown

    for flag in ("chunk_size", "micro_batch"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}")
    joined = {
        "coordinator": args.coordinator,
        "num_processes": args.num_processes,
        "process_id": args.process_id,
    }
    _check_dir_flag(parser, "--out", args.out)
    _check_dir_flag(parser, "--cache-dir", args.cache_dir)
    given = [k for k, v in joined.items() if v is not None]
    if given and len(given) != 3:
        parser.error("--coordinator, --num-processes and --process-id go together")
    if not given:
        joined = distributed_from_environment()
    if joined is not None:
        try:
            initialize(**joined, timeout_s=args.join_timeout)
        except TimeoutError as err:
            print(f"jaxadv sweep: {err}", file=sys.stderr)
            return 2
    from pathlib import Path

    from jaxadv.sweeps import load_config, run_sweep

    config = load_config(args.config)
    out = args.out or str(Path("sweeps") / config.name)
    run_sweep(
        config,
        out,
        resume=not args.fresh,
        chunk_size=args.chunk_size,
        micro_batch=args.micro_batch,
        cache_dir=args.cache_dir,
        progress=False if args.quiet else None,
    )
    if joined is not None:
        shutdown()
    return 0


# Data sets of ``adv-train``: name -> (dataset, attack labels of its train split or None). The
# generated scenes with foreground masks (issue 17, jaxadv.data) plug in here, their attack labels
# DualLabels(labels, masks) for the dual-perturbation attack (AT-Dual).
ADV_TRAIN_DATA = ("digits",)
_EPS_DEFAULTS = {"linf": 0.3, "l2": 2.0}  # the digits budgets of `evaluate`


def _add_adv_train(commands) -> None:
    from jaxadv.models import CLASSIFIER_NAMES

    adv = commands.add_parser(
        "adv-train",
        help="adversarially train a classifier (AT-PGD or TRADES), checkpointed and resumable",
        description="Trains a classifier on adversarial examples made inside each train step "
        "(Madry et al. 2018 with PGD, or TRADES, Zhang et al. 2019), with Adam; orbax "
        "checkpoints, resumable with identical results. Writes the trained variables to --out "
        "(restore_variables, or `evaluate --checkpoint`) and prints clean and PGD robust "
        "accuracy on held-out images. Attack steps default to the dual-perturbation paper's: "
        "10 (linf) / 50 (l2) in training, 20 / 100 in the evaluation.",
    )
    adv.add_argument("--out", required=True, help="directory to write the trained variables to")
    adv.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    adv.add_argument("--data", default="digits", choices=ADV_TRAIN_DATA, help="(digits)")
    adv.add_argument("--size", type=int, default=28, help="image side (28)")
    adv.add_argument("--train", type=int, default=None, help="training images (all)")
    adv.add_argument("--model", default="cw", choices=("mlp", *CLASSIFIER_NAMES), help="(cw)")
    adv.add_argument("--method", default="pgd", choices=("pgd", "trades"), help="(pgd)")
    adv.add_argument("--norm", default="linf", choices=("linf", "l2"), help="(linf)")
    adv.add_argument("--eps", type=float, default=None, help="budget (linf 0.3, l2 2.0)")
    adv.add_argument("--steps", type=int, default=None, help="attack steps (linf 10, l2 50)")
    adv.add_argument("--beta", type=float, default=6.0, help="TRADES' KL weight (6)")
    adv.add_argument("--epochs", type=int, default=10, help="total epochs (10)")
    adv.add_argument("--batch-size", type=int, default=128, help="(128)")
    adv.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's step size (1e-3)")
    adv.add_argument("--lr-drop-every", type=int, default=None, help="x0.1 every N epochs")
    adv.add_argument("--checkpoint-dir", default=None, help="orbax checkpoints of the run")
    adv.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    adv.add_argument("--eval-images", type=int, default=200, help="held-out images (200; 0: none)")
    adv.add_argument(
        "--eval-steps", type=int, default=None, help="evaluation PGD steps (linf 20, l2 100)"
    )
    adv.add_argument("--seed", type=int, default=0, help="PRNG seed (0)")
    adv.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def _adv_train_checks(parser, args) -> None:
    from pathlib import Path

    for flag in ("epochs", "batch_size", "steps", "eval_steps", "train", "lr_drop_every"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1; got {value}")
    if args.size < 8:
        parser.error(f"--size must be >= 8; got {args.size}")
    if args.eval_images < 0:
        parser.error(f"--eval-images must be >= 0; got {args.eval_images}")
    if args.eps is not None and not args.eps >= 0:
        parser.error(f"--eps must be >= 0; got {args.eps}")
    if not args.beta >= 0:
        parser.error(f"--beta must be >= 0; got {args.beta}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be > 0; got {args.learning_rate}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    _check_dir_flag(parser, "--checkpoint-dir", args.checkpoint_dir)
    _check_dir_flag(parser, "--out", args.out)
    if Path(args.out).exists() and not args.overwrite:
        parser.error(f"--out {args.out!r} already exists; pass --overwrite to replace it")


def _adv_train(parser, args) -> int:
    import jax

    from jaxadv.attacks import pgd
    from jaxadv.data import load_digits
    from jaxadv.metrics import robust_accuracy
    from jaxadv.models import ReluMLP, classifier, from_flax, save_variables
    from jaxadv.training import EVAL_STEPS, TRAIN_STEPS, accuracy, trades_attack
    from jaxadv.training import train_adversarial

    _adv_train_checks(parser, args)
    data = load_digits(size=args.size, seed=args.seed)
    images, labels = data.train_images[: args.train], data.train_labels[: args.train]
    module = (
        ReluMLP(hidden=(64,), num_classes=data.num_classes)
        if args.model == "mlp"
        else classifier(args.model, data.num_classes)
    )
    eps = _EPS_DEFAULTS[args.norm] if args.eps is None else args.eps
    steps = args.steps or TRAIN_STEPS[args.norm]
    make = pgd if args.method == "pgd" else trades_attack
    attack = make(norm=args.norm, steps=steps)
    key = jax.random.key(args.seed)
    training = train_adversarial(
        module, images, labels, attack=attack, hp=attack.hparams(eps=eps), key=key,
        method="madry" if args.method == "pgd" else "trades", beta=args.beta,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        lr_drop_every=args.lr_drop_every, checkpoint_dir=args.checkpoint_dir,
        resume=args.resume, progress=not args.quiet,
    )  # fmt: skip
    path = save_variables(args.out, training.variables, overwrite=args.overwrite)
    print(
        f"{args.model} trained with {args.method} ({args.norm} eps {eps:g}, {steps} steps) for "
        f"{len(training.losses)} epochs on {len(labels)} {data.name} images: final loss "
        f"{training.losses[-1]:.4f}, adversarial train accuracy "
        f"{training.adversarial_accuracy[-1]:.2%}; variables written to {path}"
    )
    if args.eval_images:
        victim = from_flax(module, training.variables, input_shape=images.shape[1:],
                           num_classes=data.num_classes)  # fmt: skip
        x, y = data.test_images[: args.eval_images], data.test_labels[: args.eval_images]
        evaluation = pgd(norm=args.norm, steps=args.eval_steps or EVAL_STEPS[args.norm])
        result = evaluation.batch(victim, evaluation.hparams(eps=eps), x, y,
                                  jax.random.fold_in(key, 1))  # fmt: skip
        clean_correct = jax.numpy.argmax(victim.batch(x), -1) == y
        robust = robust_accuracy(result, y, clean_correct)
        print(
            f"held out ({len(y)} images): clean accuracy {accuracy(victim, x, y):.2%}, PGD "
            f"({evaluation.steps} steps, {args.norm} eps {eps:g}) robust accuracy {robust:.2%}"
        )
    return 0


def _add_meta_train(commands) -> None:
    from jaxadv.training import DEFAULT_SURROGATES, META_DATASETS, META_METHODS, SURROGATE_NAMES

    meta = commands.add_parser(
        "meta-train",
        help="meta-train a meta attacker (Meta Attack) on surrogates' gradients, resumable",
        description="Trains surrogate classifiers (cached), collects their loss gradients at "
        "training images (one task each) and meta-trains a MetaAttacker on them (Du et al., ICLR "
        "2020: Reptile, 3 tasks per step, 5 inner Adam steps of 1e-2, outer step 1). Writes the "
        "variables to --out (training.restore_meta_attacker).",
    )
    meta.add_argument("--out", required=True, help="directory to write the meta attacker to")
    meta.add_argument("--data", default="digits", choices=META_DATASETS, help="(digits)")
    meta.add_argument("--surrogates", nargs="+", default=list(DEFAULT_SURROGATES),
                      choices=SURROGATE_NAMES, help=f"(default: {' '.join(DEFAULT_SURROGATES)})")
    meta.add_argument("--surrogate-epochs", type=int, default=3, help="(3)")
    meta.add_argument("--gradient-images", type=int, default=512, help="images per task (512)")
    meta.add_argument("--estimator", default="white-box", choices=("white-box", "zoo"))
    meta.add_argument("--method", default="reptile", choices=META_METHODS, help="(reptile)")
    meta.add_argument("--steps", type=int, default=200, help="meta-steps (200)")
    meta.add_argument("--batch-size", type=int, default=8, help="pairs per task and step (8)")
    meta.add_argument("--inner-steps", type=int, default=5, help="(5)")
    meta.add_argument("--inner-lr", type=float, default=1e-2, help="inner Adam step (1e-2)")
    meta.add_argument("--outer-lr", type=float, default=1.0, help="Reptile's ε / MAML's step (1)")
    meta.add_argument("--tasks-per-step", type=int, default=3, help="(3)")
    meta.add_argument("--features", type=int, nargs="+", default=[8, 16, 32], help="(8 16 32)")
    meta.add_argument("--held-out", default=None, choices=SURROGATE_NAMES,
                      help="report the gradient cosine on test images against this classifier")
    meta.add_argument("--cache-dir", default=None, help="where trained surrogates are kept")
    meta.add_argument("--checkpoint-dir", default=None, help="orbax checkpoints of the run")
    meta.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    meta.add_argument("--seed", type=int, default=1, help="PRNG seed (1)")
    meta.add_argument("--quiet", action="store_true", help="no progress lines")


def _meta_train(parser, args) -> int:
    from pathlib import Path

    import jax

    from jaxadv.models import MetaAttacker
    from jaxadv.training import held_out_cosine, meta_dataset, meta_train, save_meta_attacker
    from jaxadv.training import surrogate, surrogate_tasks

    for flag in ("steps", "batch_size", "inner_steps", "tasks_per_step", "surrogate_epochs",
                 "gradient_images", "features"):
        value = getattr(args, flag)
        if (min(value) if isinstance(value, list) else value) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1; got {value}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir")
    _check_dir_flag(parser, "--checkpoint-dir", args.checkpoint_dir)
    _check_dir_flag(parser, "--out", args.out)
    if Path(args.out).exists():
        parser.error(f"--out {args.out!r} already exists")
    key, progress = jax.random.key(args.seed), not args.quiet
    tasks = surrogate_tasks(args.data, args.surrogates, key=key, images=args.gradient_images,
                            epochs=args.surrogate_epochs, estimator=args.estimator,
                            cache_dir=args.cache_dir, progress=progress)  # fmt: skip
    module = MetaAttacker(features=tuple(args.features))
    data = meta_dataset(args.data)
    init = module.init(jax.random.fold_in(key, 1), data.train_images[0])
    run = meta_train(module, init, tasks, key=jax.random.fold_in(key, 2), steps=args.steps,
                     batch_size=args.batch_size, method=args.method, inner_steps=args.inner_steps,
                     inner_lr=args.inner_lr, outer_lr=args.outer_lr,
                     tasks_per_step=args.tasks_per_step, checkpoint_dir=args.checkpoint_dir,
                     resume=args.resume, progress=progress)  # fmt: skip
    record = {"settings": {k: v for k, v in vars(args).items() if k != "command"},
              "losses": list(run.losses)}  # fmt: skip
    path = save_meta_attacker(args.out, run.variables, record)
    print(f"meta attacker {args.method} on {' '.join(args.surrogates)} ({args.data}): "
          f"{len(run.losses)} steps, final loss {run.losses[-1]:.4f}; written to {path}")
    if args.held_out:
        victim, _ = surrogate(args.held_out, args.data, key=jax.random.fold_in(key, 3),
                              epochs=args.surrogate_epochs, cache_dir=args.cache_dir)  # fmt: skip
        x, y = data.test_images[:200], data.test_labels[:200]
        trained, random = held_out_cosine(module, run.variables, victim, x, y,
                                          key=jax.random.fold_in(key, 4))  # fmt: skip
        print(f"gradient cosine vs held-out {args.held_out} on {len(y)} test images: "
              f"meta-trained {trained:.3f}, random init {random:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
