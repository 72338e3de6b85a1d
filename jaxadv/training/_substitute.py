"""Papernot's substitute training: a local model learnt from a black-box victim's labels alone.

Papernot, McDaniel, Goodfellow, Jha, Celik & Swami, "Practical Black-Box Attacks against Machine
Learning", AsiaCCS 2017, Algorithm 1. The victim (the "oracle" Õ) is only asked for its top-1
label. Each substitute epoch ρ trains the substitute F on the labelled set S_ρ, then grows the
set by Jacobian-based dataset augmentation,

    S_{ρ+1} = S_ρ ∪ {x + λ_ρ · sign(J_F(x)[Õ(x)]) : x ∈ S_ρ},

one label query per new point: the new points step to where F's output for the oracle's label
changes fastest, i.e. towards the decision boundaries that F has yet to learn. The substitute is
then attacked white-box and its adversarial examples transferred to the victim
(:func:`jaxadv.metrics.transfer_success`).

The host loop over rounds, epochs and mini-batches is the classifier trainer's
(``_classifier.py``; same compiled Adam step), with the parameters and the optimiser state
carried from one round to the next. With ``checkpoint_dir`` every finished round is an orbax step
(parameters, optimiser state, the labelled set and the record), and a resumed run ends with the
same bits as an uninterrupted one: the data order of (round, epoch) is drawn from the key alone.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxadv import _checks, _compile
from jaxadv.models import (
    TRAINING_REMEDY,
    Victim,
    cache_lock,
    describe_module,
    from_flax,
    hard_label,
    is_black_box,
    restore_step_meta,
    restore_step_tree,
    save_step,
    step_item_metadata,
    tree_differences,
)
from jaxadv.training._classifier import _make_train_step, _num_classes
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_checkpoint import _describe, _manager, checkpoint_path
from jaxadv.training._saliency_train import _digest

JACOBIANS = ("probabilities", "logits")
_CHUNK = 256  # examples per compiled labelling / augmentation call (the last one zero-padded)


class SubstituteRecord(NamedTuple):
    """What a substitute training spent and reached, one entry per substitute epoch ρ = 0..rounds.

    Attributes:
      set_sizes: |S_ρ|, the number of labelled points the substitute was trained on in round ρ.
      queries: label queries spent in round ρ: the seeds in round 0, then one per new point.
      agreement: after round ρ, the fraction of ``holdout`` images on which the substitute's top-1
        class equals the victim's (empty without ``holdout``).
      step_sizes: λ_ρ of each augmentation (``rounds`` entries; the periodic option flips signs).
      holdout_queries: label queries spent on ``holdout`` (evaluation, not part of the attack).
      images: the final labelled set S, ``f32[|S|, *input_shape]``.
      labels: the victim's labels of ``images``, ``int32[|S|]``.
    """

    set_sizes: tuple[int, ...]
    queries: tuple[int, ...]
    agreement: tuple[float, ...]
    step_sizes: tuple[float, ...]
    holdout_queries: int
    images: np.ndarray
    labels: np.ndarray

    @property
    def total_queries(self) -> int:
        """Label queries the attack spent (holdout evaluation excluded)."""
        return int(sum(self.queries))


class SubstituteTraining(NamedTuple):
    """What :func:`train_substitute` returns: the substitute (a white-box :class:`Victim` with the
    victim's input shape, classes and bounds) and its :class:`SubstituteRecord`."""

    victim: Victim
    record: SubstituteRecord


def periodic_step_size(lam: float, rho: int, tau: int | None) -> float:
    """λ_ρ = λ·(−1)^⌊ρ/τ⌋ (the paper's periodic step size, §6); ``tau`` None: λ every round."""
    return float(lam) if tau is None else float(lam) * (-1.0) ** (rho // tau)


@functools.cache
def _compiled():
    # Built on first use: choosing the compiler options initialises the JAX backend.
    def labels(oracle, x):
        return jnp.argmax(oracle.batch(x), axis=-1).astype(jnp.int32)

    def augment(substitute, x, y, lam, jacobian, clip):
        def output(xi, yi):  # F(x)[y]: the substitute's output for the oracle's label
            z = substitute(xi)
            return (jax.nn.softmax(z) if jacobian == "probabilities" else z)[yi]

        new = x + lam * jnp.sign(jax.vmap(jax.grad(output))(x, y))
        return jnp.clip(new, *substitute.bounds) if clip else new

    return (
        _compile.jit(labels),
        _compile.jit(augment, static_argnames=("jacobian", "clip")),
    )


def _chunked(fn, *arrays) -> np.ndarray:
    """``fn`` over fixed-size chunks of ``arrays`` (the last zero-padded): one compilation."""
    n, out = len(arrays[0]), []
    for start in range(0, n, _CHUNK):
        parts = [a[start : start + _CHUNK] for a in arrays]
        m = len(parts[0])
        parts = [np.concatenate([p, np.zeros((_CHUNK - m,) + p.shape[1:], p.dtype)]) for p in parts]
        out.append(np.asarray(fn(*parts))[:m])
    return np.concatenate(out)


def jacobian_augmentation(
    substitute: Victim,
    images: Any,
    labels: Any,
    lam: float,
    *,
    jacobian: str = "probabilities",
    clip: bool = False,
) -> np.ndarray:
    """The new points ``x + λ·sign(J_F(x)[y])`` of one augmentation (the paper's Eq. 4).

    Args:
      substitute: the substitute F (white-box).
      images: ``f32[n, *input_shape]``, the points to augment.
      labels: ``int[n]``, the oracle's label of each.
      lam: the signed step λ_ρ.
      jacobian: differentiate F's ``"probabilities"`` (softmax output, the paper's F) or its
        ``"logits"``.
      clip: clip the new points to the substitute's pixel bounds (the paper does not).

    Returns:
      ``f32[n, *input_shape]``, in the order of ``images``.
    """
    _checks.check_choice("jacobian", jacobian, JACOBIANS)
    augment = _compiled()[1]
    lam = np.float32(lam)
    return _chunked(
        lambda x, y: augment(substitute, x, y, lam, jacobian=jacobian, clip=bool(clip)),
        np.asarray(images, np.float32),
        np.asarray(labels, np.int32),
    )


def _check_victim(victim: Any) -> Victim:
    if not isinstance(victim, Victim):
        raise ValueError(
            "`black_box_victim` must be a classifier (a jaxadv Victim, or its `score_only` / "
            f"`hard_label` view); got {type(victim).__name__}."
        )
    return victim if is_black_box(victim) else hard_label(victim)


def _check_images(name: str, images: Any, victim: Victim) -> np.ndarray:
    _checks.check_batch_shape(name, np.shape(images), victim.input_shape)
    if np.shape(images)[0] == 0:
        raise ValueError(f"`{name}` must hold at least one image; got 0.")
    if not np.issubdtype(np.asarray(images).dtype, np.floating):
        raise ValueError(f"`{name}` must hold floats; got dtype {np.asarray(images).dtype}.")
    _checks.check_in_bounds(name, images, victim.bounds)
    return np.asarray(images, np.float32)


def _check_options(rounds, lam, epochs, batch_size, learning_rate, tau, reservoir, jacobian):
    _checks.check_positive_int("rounds", rounds)
    _checks.check_positive("lam", lam)
    _checks.check_positive_int("epochs", epochs)
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_positive("learning_rate", learning_rate)
    if tau is not None:
        _checks.check_positive_int("tau", tau)
    if reservoir is not None:
        ok = isinstance(reservoir, (tuple, list)) and len(reservoir) == 2
        if not ok or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in reservoir
        ):
            raise ValueError(
                "`reservoir` must be None or (sigma, kappa), two integers >= 1 (augment every "
                f"point for sigma rounds, then kappa new points per round); got {reservoir!r}."
            )
    _checks.check_choice("jacobian", jacobian, JACOBIANS)


def train_substitute(
    black_box_victim: Victim,
    seed_images: Any,
    module: nn.Module,
    *,
    key: jax.Array,
    rounds: int = 6,
    lam: float = 0.1,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    tau: int | None = None,
    reservoir: tuple[int, int] | None = None,
    jacobian: str = "probabilities",
    clip: bool = False,
    holdout: Any = None,
    checkpoint_dir: Any = None,
    resume: bool = False,
    progress: bool = False,
) -> SubstituteTraining:
    """Trains a substitute of a black-box classifier from its labels (Papernot et al. 2017).

    Substitute epochs ρ = 0, 1, …, ``rounds``: train F for ``epochs`` passes over S_ρ (S_0 the
    seeds), then, for ρ < ``rounds``, augment: S_{ρ+1} = S_ρ ∪ {x + λ_ρ·sign(J_F(x)[Õ(x)])} and
    ask the victim for the new points' labels. The set doubles each round, so the attack spends
    ``n·2^rounds`` label queries for ``n`` seeds (the paper: ρ = 0..6 on 100 seeds, 6,400
    queries against MetaMind; 150 MNIST test digits and λ = 0.1 in its Table 1).

    The victim is queried through :func:`jaxadv.models.hard_label` (a black-box view passed in is
    used as it is, only its top-1 class is read): no gradient and no score reaches the attacker.

    Differences from the paper: the substitute is trained with Adam at a constant step size
    (the library's classifier step) where the paper used SGD with momentum 0.9 at 10^-2, 10
    epochs per round; its parameters carry over from round to round (cleverhans' tutorial does
    the same). The final augmentation of Algorithm 1 after the last training is skipped: its
    points would be neither labelled nor used.

    Args:
      black_box_victim: the victim classifier (or a black-box view of it).
      seed_images: ``f32[n, *input_shape]`` within the victim's bounds: S_0 (the paper: a small
        set representative of the input domain, not the victim's training set).
      module: the substitute's Flax classifier, ``__call__(x, train)`` from ``[b, *input_shape]``
        to ``[b, num_classes]`` logits with the victim's number of classes.
      key: PRNG key of the initialisation, the data order, dropout and reservoir draws.
      rounds: augmentations ρ_max ≥ 1 (the paper's 6); the substitute is trained rounds + 1 times.
      lam: the augmentation step λ > 0 (the paper's 0.1 for pixels in [0, 1]).
      epochs: training passes over the set in each round.
      batch_size: examples per training step (capped at the set's size).
      learning_rate: Adam's constant step size.
      tau: periodic step size λ_ρ = λ·(−1)^⌊ρ/τ⌋ (the paper's §6 uses τ = 3); None: λ_ρ = λ.
      reservoir: ``(sigma, kappa)``: reservoir sampling (the paper's §6, σ = 3, κ = 400): the
        first ``sigma`` augmentations double the set, each later one augments only ``kappa``
        points drawn uniformly from those added by the previous round, so the queries are
        ``n·2^σ + κ·(rounds − σ)`` instead of ``n·2^rounds``. None: always double.
      jacobian: ``"probabilities"`` (the paper's F is the softmax output) or ``"logits"``.
      clip: clip new points to the victim's bounds (the paper does not; an API that takes only
        images would need it).
      holdout: optional ``f32[m, *input_shape]``: after every round the substitute's agreement
        with the victim's labels on these is recorded (their ``m`` queries are counted apart).
      checkpoint_dir: orbax checkpoints, one step per finished round (the last two kept); None:
        none.
      resume: continue from the latest round in ``checkpoint_dir``; without it a directory that
        holds checkpoints is refused.
      progress: print one line per round to stderr.

    Returns:
      :class:`SubstituteTraining` ``(victim, record)``.

    Raises:
      ValueError: a bad argument (named), or a checkpoint of another configuration.
    """
    check_key(key)
    _check_options(rounds, lam, epochs, batch_size, learning_rate, tau, reservoir, jacobian)
    oracle = _check_victim(black_box_victim)
    seeds = _check_images("seed_images", seed_images, oracle)
    held = None if holdout is None else _check_images("holdout", holdout, oracle)
    classes = _num_classes(module, oracle.input_shape)
    if classes != oracle.num_classes:
        raise ValueError(
            f"`module` {type(module).__name__} returns {classes} logits but the victim has "
            f"{oracle.num_classes} classes."
        )
    label_fn = _compiled()[0]

    def ask(x):  # the oracle's top-1 labels
        return _chunked(lambda xb: label_fn(oracle, xb), x)

    try:
        init, step = _make_train_step(module, None)
    except TypeError:  # an unhashable module: build an uncached step
        init, step = _make_train_step.__wrapped__(module, None)
    words = seed_words(key)
    with _compile.fast_threefry():
        params, other, opt_state = init(key, seeds[:1])
    substitute = from_flax(
        module,
        {"params": params, **other},
        input_shape=oracle.input_shape,
        num_classes=oracle.num_classes,
        bounds=oracle.bounds,
    )
    config = {
        "model": describe_module(module),
        "input_shape": list(oracle.input_shape),
        "oracle": f"sha256:{_digest(oracle.variables)}",
        "seeds": f"n={len(seeds)} sha256:{_digest(seeds)}",
        "holdout": None if held is None else f"n={len(held)} sha256:{_digest(held)}",
        "key": words,
        "rounds": int(rounds),
        "lam": float(lam),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "tau": None if tau is None else int(tau),
        "reservoir": None if reservoir is None else [int(v) for v in reservoir],
        "jacobian": jacobian,
        "clip": bool(clip),
    }
    held_labels = None if held is None else ask(held)
    meta = {"set_sizes": [], "queries": [], "agreement": [], "step_sizes": []}
    state = {"params": params, "collections": other, "opt_state": opt_state}

    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        checkpoint_path(checkpoint_dir)
    )
    with lock:
        manager, first = None, 0
        if checkpoint_dir is not None:
            manager, restored = _open(checkpoint_dir, resume, config, state, progress)
            if restored is not None:
                state, images, labels, meta = restored
                first = len(meta["set_sizes"])
        if first == 0:
            images, labels = seeds, ask(seeds)
            meta["queries"].append(len(seeds))
        try:
            for rho in range(first, rounds + 1):
                began = time.perf_counter()
                state = _train_round(step, state, images, labels, words, rho, config)
                substitute = substitute.replace(
                    variables={"params": state["params"], **state["collections"]}
                )
                meta["set_sizes"].append(len(images))
                if held is not None:
                    pred = _chunked(lambda xb: label_fn(substitute, xb), held)
                    meta["agreement"].append(float(np.mean(pred == held_labels)))
                if rho < rounds:
                    lam_rho = periodic_step_size(lam, rho, tau)
                    pick = _augmented(len(images), meta, rho, reservoir, words)
                    new = jacobian_augmentation(
                        substitute, images[pick], labels[pick], lam_rho, jacobian=jacobian,
                        clip=clip,
                    )  # fmt: skip
                    images = np.concatenate([images, new])
                    labels = np.concatenate([labels, ask(new)])
                    meta["step_sizes"].append(lam_rho)
                    meta["queries"].append(len(new))
                if manager is not None:
                    tree = {**state, "images": images, "labels": labels}
                    save_step(manager, rho + 1, "state", tree, {"config": config, **meta})
                if progress:
                    agree = f"  agreement {meta['agreement'][-1]:.2%}" if held is not None else ""
                    print(
                        f"substitute epoch {rho}/{rounds}  set {meta['set_sizes'][-1]}  queries "
                        f"{sum(meta['queries'])}{agree}  {time.perf_counter() - began:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    record = SubstituteRecord(
        set_sizes=tuple(int(v) for v in meta["set_sizes"]),
        queries=tuple(int(v) for v in meta["queries"]),
        agreement=tuple(float(v) for v in meta["agreement"]),
        step_sizes=tuple(float(v) for v in meta["step_sizes"]),
        holdout_queries=0 if held is None else len(held),
        images=images,
        labels=labels,
    )
    return SubstituteTraining(substitute, record)


def _augmented(size: int, meta: dict, rho: int, reservoir, words) -> np.ndarray:
    """Indices of S_ρ to augment: all of it, or (reservoir sampling, from round σ on) κ points
    drawn uniformly without replacement from those the previous round added."""
    if reservoir is None or rho < reservoir[0]:
        return np.arange(size)
    newest = int(meta["queries"][-1]) if rho > 0 else size
    kappa = min(int(reservoir[1]), newest)
    rng = np.random.default_rng([*words, rho, 1])
    return np.sort(size - newest + rng.choice(newest, size=kappa, replace=False))


def _train_round(step, state, images, labels, words, rho, config) -> dict:
    """``epochs`` passes over the labelled set. The data order and the dropout keys (raw
    ``uint32[2]``) of (ρ, epoch) are numpy draws (PCG64) from the key alone: a resumed run sees
    the same batches, and no step waits for an eager key derivation."""
    n = len(images)
    batch = min(config["batch_size"], n)
    lr = np.float32(config["learning_rate"])
    params, other, opt_state = state["params"], state["collections"], state["opt_state"]
    for epoch in range(config["epochs"]):
        rng = np.random.default_rng([*words, rho, epoch])
        order = rng.permutation(n)
        keys = rng.integers(0, 2**32, size=(n // batch, 2), dtype=np.uint32)
        for i in range(n // batch):
            idx = order[i * batch : (i + 1) * batch]
            params, other, opt_state, _, _ = step(
                params, other, opt_state, images[idx], labels[idx], keys[i], lr
            )
    return {"params": params, "collections": other, "opt_state": opt_state}


def _open(checkpoint_dir, resume: bool, config: dict, state: dict, progress: bool):
    """``(manager, restored)``: ``restored`` is None for a fresh run, else ``(state, images,
    labels, meta)`` of the latest finished round."""
    directory = checkpoint_path(checkpoint_dir)
    manager = _manager(directory, keep=2)
    try:
        latest = manager.latest_step()
        if latest is None:
            return manager, None
        if not resume:
            raise ValueError(
                f"`checkpoint_dir` {str(directory)!r} already holds checkpoints (latest: round "
                f"{latest}); pass resume=True to continue that run, or use another directory."
            )
        meta = restore_step_meta(manager, latest, TRAINING_REMEDY)
        saved = meta.get("config", {})
        differing = [
            f"{f} is {_describe(saved, f)} in the checkpoint but {_describe(config, f)} here"
            for f in sorted(set(saved) | set(config))
            if saved.get(f) != config.get(f)
        ]
        where = f"The checkpoint in `checkpoint_dir` {str(directory)!r} (round {latest})"
        if differing:
            raise ValueError(
                f"{where} was written by another substitute training: " + "; ".join(differing)
                + ". Resume with the original configuration or use another directory."
            )
        tree = step_item_metadata(manager, latest, "state", TRAINING_REMEDY)
        problems = []
        for part in ("params", "collections"):
            problems += tree_differences(tree.get(part) or {}, state[part])
        if problems:
            raise ValueError(f"{where} does not match the module's variables: " + "; ".join(problems))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        for name in ("images", "labels"):  # the labelled set grows: read its saved shape
            abstract[name] = jax.ShapeDtypeStruct(tuple(tree[name].shape), tree[name].dtype)
        restored = restore_step_tree(manager, latest, "state", abstract, meta, TRAINING_REMEDY)
    except Exception:
        manager.close()
        raise
    if progress:
        print(f"resumed after round {latest} in {directory}", file=sys.stderr, flush=True)
    images = np.asarray(restored.pop("images"), np.float32)
    labels = np.asarray(restored.pop("labels"), np.int32)
    lists = {k: list(meta[k]) for k in ("set_sizes", "queries", "agreement", "step_sizes")}
    return manager, (restored, images, labels, lists)
