"""The training commands: ``adv-train`` (adversarial training: AT-PGD, AT-Dual, TRADES) and
``meta-train`` (the Meta Attack's meta attacker)."""

from __future__ import annotations

from jaxadv.cli._common import check_dir_flag as _check_dir_flag

# Data sets of ``adv-train``: the embedded digits, and the generated scenes with foreground masks
# (the dual-perturbation paper's Segment-6 analogue), the only ones AT-Dual can train on.
ADV_TRAIN_DATA = ("digits", "scenes")
_EPS_DEFAULTS = {  # (data, norm) -> eps: the digits budgets of `evaluate`; the scenes' are the
    # dual-perturbation paper's Segment-6 settings (appendix F, I)
    ("digits", "linf"): 0.3,
    ("digits", "l2"): 2.0,
    ("scenes", "linf"): 8 / 255,
    ("scenes", "l2"): 0.5,
}


def _add_adv_train(commands) -> None:
    from jaxadv.models import CLASSIFIER_NAMES

    adv = commands.add_parser(
        "adv-train",
        help="adversarially train a classifier (AT-PGD, AT-Dual or TRADES), checkpointed, resumable",
        description="Trains a classifier on adversarial examples made inside each train step "
        "(Madry et al. 2018 with PGD, AT-Dual with the dual-perturbation attack on the scenes' "
        "foreground masks, or TRADES, Zhang et al. 2019), with Adam; orbax "
        "checkpoints, resumable with identical results. Writes the trained variables to --out "
        "(restore_variables, or `evaluate --checkpoint`) and prints clean and PGD robust "
        "accuracy on held-out images. Attack steps default to the dual-perturbation paper's: "
        "10 (linf) / 50 (l2) in training, 20 / 100 in the evaluation.",
    )
    adv.add_argument("--out", required=True, help="directory to write the trained variables to")
    adv.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    adv.add_argument(
        "--data", default="digits", choices=ADV_TRAIN_DATA,
        help="digits, or the generated scenes with foreground masks (needed by --method dual)",
    )  # fmt: skip
    adv.add_argument("--size", type=int, default=None, help="image side (digits 28, scenes 32)")
    adv.add_argument("--train", type=int, default=None, help="training images (all)")
    adv.add_argument("--model", default="cw", choices=("mlp", *CLASSIFIER_NAMES), help="(cw)")
    adv.add_argument("--method", default="pgd", choices=("pgd", "dual", "trades"), help="(pgd)")
    adv.add_argument("--norm", default="linf", choices=("linf", "l2"), help="(linf)")
    adv.add_argument(
        "--eps", type=float, default=None,
        help="budget, the foreground's with dual (digits: linf 0.3, l2 2.0; scenes: 8/255, 0.5)",
    )  # fmt: skip
    adv.add_argument(
        "--eps-b", type=float, default=None,
        help="dual only: the background budget (5 x eps, the paper's ratio)",
    )  # fmt: skip
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
    if args.size is not None and args.size < 8:
        parser.error(f"--size must be >= 8; got {args.size}")
    if args.method == "dual" and args.data != "scenes":
        parser.error("--method dual needs foreground masks: use --data scenes")
    if args.eps_b is not None and args.method != "dual":
        parser.error(f"--eps-b is the dual attack's background budget; --method is {args.method}")
    if args.eps_b is not None and not args.eps_b >= 0:
        parser.error(f"--eps-b must be >= 0; got {args.eps_b}")
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

    from jaxadv.attacks import DualLabels, dual_perturbation, pgd
    from jaxadv.models import ReluMLP, classifier, save_variables
    from jaxadv.training import TRAIN_STEPS, trades_attack, train_adversarial

    _adv_train_checks(parser, args)
    data = _adv_train_data(args)
    images, labels = data["train"]
    module = (
        ReluMLP(hidden=(64,), num_classes=data["num_classes"])
        if args.model == "mlp"
        else classifier(args.model, data["num_classes"])
    )
    eps = _EPS_DEFAULTS[args.data, args.norm] if args.eps is None else args.eps
    steps = args.steps or TRAIN_STEPS[args.norm]
    attack_labels = None
    if args.method == "dual":
        attack = dual_perturbation(norm=args.norm, steps=steps)
        hp = attack.hparams(eps_f=eps, eps_b=5 * eps if args.eps_b is None else args.eps_b)
        attack_labels = DualLabels(labels, data["train_masks"])
    else:
        attack = (pgd if args.method == "pgd" else trades_attack)(norm=args.norm, steps=steps)
        hp = attack.hparams(eps=eps)
    key = jax.random.key(args.seed)
    training = train_adversarial(
        module, images, labels, attack=attack, hp=hp, key=key, attack_labels=attack_labels,
        method="trades" if args.method == "trades" else "madry", beta=args.beta,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        lr_drop_every=args.lr_drop_every, checkpoint_dir=args.checkpoint_dir,
        resume=args.resume, progress=not args.quiet,
    )  # fmt: skip
    path = save_variables(args.out, training.variables, overwrite=args.overwrite)
    budget = f"eps {eps:g}" if args.method != "dual" else f"eps_f {eps:g}, eps_b {hp.eps_b:g}"
    print(
        f"{args.model} trained with {args.method} ({args.norm} {budget}, {steps} steps) for "
        f"{len(training.losses)} epochs on {len(labels)} {args.data} images: final loss "
        f"{training.losses[-1]:.4f}, adversarial train accuracy "
        f"{training.adversarial_accuracy[-1]:.2%}; variables written to {path}"
    )
    if args.eval_images:
        _adv_train_report(args, module, data, training.variables, eps, key)
    return 0


def _adv_train_data(args) -> dict:
    """The train split (and a held-out split) of ``--data`` as host arrays."""
    from jaxadv.data import load_digits, load_segment_scenes

    if args.data == "digits":
        d = load_digits(size=args.size or 28, seed=args.seed)
        n = args.train
        return dict(
            train=(d.train_images[:n], d.train_labels[:n]), num_classes=d.num_classes,
            test=(d.test_images[: args.eval_images], d.test_labels[: args.eval_images]),
        )  # fmt: skip
    size = (args.size or 32,) * 2
    train = load_segment_scenes("train", args.train, size=size, seed=args.seed)
    test = load_segment_scenes("test", max(args.eval_images, 1), size=size, seed=args.seed)
    return dict(
        train=(train.images, train.labels), train_masks=train.masks,
        num_classes=train.num_classes, test=(test.images, test.labels), test_masks=test.masks,
    )  # fmt: skip


def _adv_train_report(args, module, data, variables, eps, key) -> None:
    """Held-out clean accuracy and PGD robust accuracy at the training budget (and the dual
    attack's at its budgets, for AT-Dual)."""
    import jax

    from jaxadv.attacks import DualLabels, dual_perturbation, pgd
    from jaxadv.metrics import robust_accuracy
    from jaxadv.models import from_flax
    from jaxadv.training import EVAL_STEPS, accuracy

    x, y = data["test"]
    victim = from_flax(module, variables, input_shape=x.shape[1:],
                       num_classes=data["num_classes"])  # fmt: skip
    steps = args.eval_steps or EVAL_STEPS[args.norm]
    clean_correct = jax.numpy.argmax(victim.batch(x), -1) == y
    evaluation = pgd(norm=args.norm, steps=steps)
    result = evaluation.batch(victim, evaluation.hparams(eps=eps), x, y,
                              jax.random.fold_in(key, 1))  # fmt: skip
    line = (
        f"held out ({len(y)} images): clean accuracy {accuracy(victim, x, y):.2%}, PGD "
        f"({steps} steps, {args.norm} eps {eps:g}) robust accuracy "
        f"{robust_accuracy(result, y, clean_correct):.2%}"
    )
    if args.method == "dual":
        dual = dual_perturbation(norm=args.norm, steps=steps)
        eps_b = 5 * eps if args.eps_b is None else args.eps_b
        labels = DualLabels(y, data["test_masks"])
        hp = dual.hparams(eps_f=eps, eps_b=eps_b)
        result = dual.batch(victim, hp, x, labels, jax.random.fold_in(key, 2))
        line += f", dual (eps_b {eps_b:g}) {robust_accuracy(result, y, clean_correct):.2%}"
    print(line)


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
