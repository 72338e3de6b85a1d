"""Command-line entry points: ``python -m jaxadv demo``, ``evaluate``, ``train-saliency``,
``adv-train``, ``meta-train`` and ``sweep``.

A user error (a bad flag, a missing or unreadable file, a corrupted checkpoint) ends with one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from jaxadv.cli._common import check_dir_flag as _check_dir_flag
from jaxadv.cli._training import _add_adv_train, _add_meta_train, _adv_train, _meta_train

# Errors that report a wrong input or a file at fault (the library raises ValueError for misuse,
# corrupted checkpoints and bad data files); anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse, with a user error reported on ONE line (no usage block) and exit status 2."""

    def error(self, message: str):
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """The command line, ``python -m jaxadv COMMAND ...`` (``--help`` lists the commands).

    Args:
      argv: the arguments after the program name (None: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 2 on a usage error.
    """
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


if __name__ == "__main__":
    sys.exit(main())
