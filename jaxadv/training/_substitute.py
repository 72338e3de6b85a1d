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

A saliency victim answers maps instead of labels: ``_substitute_maps.py`` has that variant.
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
    restore_step_tree,
    save_step,
    score_only,
)
from jaxadv.models.saliency import SaliencyVictim, from_flax_saliency
from jaxadv.training._classifier import _make_train_step, _num_classes
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_checkpoint import _manager, check_resumable, checkpoint_path
from jaxadv.training._saliency_train import _digest
from jaxadv.training._substitute_maps import augment_maps, make_map_step, map_agreement, map_answers

JACOBIANS = ("probabilities", "logits")
_CHUNK = 256  # examples per compiled labelling / augmentation call (the last one zero-padded)


class SubstituteRecord(NamedTuple):
    """What a substitute training spent and reached, one entry per substitute epoch ρ = 0..rounds.

    Attributes:
      set_sizes: ``|S_ρ|``, the number of labelled points the substitute was trained on in round ρ.
      queries: label (or map) queries spent in round ρ: the seeds in round 0, then one per new
        point.
      agreement: after round ρ, the substitute's agreement with the victim on ``holdout`` (empty
        without it): the fraction of images where their top-1 classes agree, or for saliency
        models the mean correlation coefficient (CC) of their maps.
      step_sizes: λ_ρ of each augmentation (``rounds`` entries; the periodic option flips signs).
      holdout_queries: label queries spent on ``holdout`` (evaluation, not part of the attack).
      images: the final labelled set S, ``f32[|S|, *input_shape]``.
      answers: the victim's answers for ``images``: labels ``int32[|S|]``, or maps
        ``f32[|S|, h', w']`` of a saliency victim.
    """

    set_sizes: tuple[int, ...]
    queries: tuple[int, ...]
    agreement: tuple[float, ...]
    step_sizes: tuple[float, ...]
    holdout_queries: int
    images: np.ndarray
    answers: np.ndarray

    @property
    def total_queries(self) -> int:
        """Label queries the attack spent (holdout evaluation excluded)."""
        return int(sum(self.queries))


class SubstituteTraining(NamedTuple):
    """What :func:`train_substitute` returns: the substitute, white-box, with the victim's input
    shape, classes (or map shape and output kind) and bounds (a :class:`Victim`, or a
    ``SaliencyVictim`` for a saliency victim), and its :class:`SubstituteRecord`.

    Attributes:
      victim: the trained substitute (:class:`~jaxadv.models.Victim` or ``SaliencyVictim``).
      record: its :class:`SubstituteRecord` (the run's history).
    """

    victim: Any
    record: SubstituteRecord


def periodic_step_size(lam: float, rho: int, tau: int | None) -> float:
    """λ_ρ = λ·(−1)^⌊ρ/τ⌋ (the paper's periodic step size); ``tau`` None: λ every round.

    Args:
      lam: the step size λ of the Jacobian augmentation.
      rho: the substitute round ρ (the first is 0).
      tau: the period τ in rounds after which the sign flips; None: no flipping.

    Returns:
      λ_ρ as a float: ``lam`` or ``-lam``.
    """
    return float(lam) if tau is None else float(lam) * (-1.0) ** (rho // tau)


@functools.cache
def _compiled():
    # Built on first use: choosing the compiler options initialises the JAX backend.
    def labels(oracle, x):
        return jnp.argmax(oracle.batch(x), axis=-1).astype(jnp.int32)

    def agreement(substitute, oracle_answers, x):  # per example
        if isinstance(substitute, SaliencyVictim):
            return map_agreement(substitute.batch(x), oracle_answers)
        return (labels(substitute, x) == oracle_answers).astype(jnp.float32)

    def augment(substitute, x, y, lam, jacobian, clip):
        def output(xi, yi):  # F(x)[y]: the substitute's output for the oracle's label
            z = substitute(xi)
            return (jax.nn.softmax(z) if jacobian == "probabilities" else z)[yi]

        new = x + lam * jnp.sign(jax.vmap(jax.grad(output))(x, y))
        return jnp.clip(new, *substitute.bounds) if clip else new

    return {
        "labels": _compile.jit(labels),
        "maps": _compile.jit(map_answers),
        "augment": _compile.jit(augment, static_argnames=("jacobian", "clip")),
        "augment_maps": _compile.jit(augment_maps, static_argnames=("clip",)),
        "agreement": _compile.jit(agreement),
    }


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
    substitute: Any,
    images: Any,
    answers: Any,
    lam: float,
    *,
    jacobian: str = "probabilities",
    clip: bool = False,
) -> np.ndarray:
    """The new points ``x + λ·sign(J_F(x)[y])`` of one augmentation (the paper's S_{ρ+1} step).

    Args:
      substitute: the substitute F (white-box): a classifier :class:`Victim`, or a
        ``SaliencyVictim`` (then the step is ``λ·sign(J_F(x)ᵀ(O(x) − mean O(x)))``, see
        ``_substitute_maps.py``).
      images: ``f32[n, *input_shape]``, the points to augment.
      answers: the oracle's answer for each: ``int[n]`` labels, or ``f32[n, h', w']`` maps.
      lam: the signed step λ_ρ.
      jacobian: differentiate F's ``"probabilities"`` (softmax output, the paper's F) or its
        ``"logits"`` (classifiers only).
      clip: clip the new points to the substitute's pixel bounds (the paper does not).

    Returns:
      ``f32[n, *input_shape]``, in the order of ``images``.
    """
    _checks.check_choice("jacobian", jacobian, JACOBIANS)
    _checks.check_batch_shape("images", np.shape(images), substitute.input_shape)
    n = np.shape(images)[0]
    want = (n, *substitute.map_shape) if isinstance(substitute, SaliencyVictim) else (n,)
    if n == 0 or np.shape(answers) != want:
        raise ValueError(
            f"`answers` must have shape {want}, one answer per image of `images` (at least one); "
            f"got {np.shape(answers)}."
        )
    lam, clip = np.float32(lam), bool(clip)
    if isinstance(substitute, SaliencyVictim):
        augment = _compiled()["augment_maps"]
        answers = np.asarray(answers, np.float32)
        fn = functools.partial(augment, substitute, lam=lam, clip=clip)
    else:
        augment = _compiled()["augment"]
        answers = np.asarray(answers, np.int32)
        fn = functools.partial(augment, substitute, lam=lam, jacobian=jacobian, clip=clip)
    return _chunked(fn, np.asarray(images, np.float32), answers)


def _oracle(victim: Any) -> Any:
    """The black-box view the attack queries: top-1 labels of a classifier, maps of a saliency
    model (a view passed in is kept as it is)."""
    if isinstance(victim, SaliencyVictim):
        return victim if is_black_box(victim) else score_only(victim)
    if isinstance(victim, Victim):
        return victim if is_black_box(victim) else hard_label(victim)
    raise ValueError(
        "`black_box_victim` must be a classifier (a jaxadv Victim, or its `hard_label` / "
        f"`score_only` view) or a SaliencyVictim; got {type(victim).__name__}."
    )


def _check_module(module: nn.Module, oracle: Any) -> None:
    """The substitute's outputs must have the shape of the oracle's answers."""
    if isinstance(oracle, SaliencyVictim):
        x = jax.ShapeDtypeStruct((1,) + tuple(oracle.input_shape), jnp.float32)
        variables = jax.eval_shape(module.init, jax.random.key(0), x)
        out = jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, x)
        shape, want = tuple(getattr(out, "shape", ())), (1, *oracle.map_shape)
        if shape != want:
            raise ValueError(
                f"`module` {type(module).__name__} must map a batch of images to maps like the "
                f"victim's, {want} for one image; it returned {shape or type(out).__name__}."
            )
        return
    classes = _num_classes(module, oracle.input_shape)
    if classes != oracle.num_classes:
        raise ValueError(
            f"`module` {type(module).__name__} returns {classes} logits but the victim has "
            f"{oracle.num_classes} classes."
        )


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
    black_box_victim: Any,
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
    queries against MetaMind; 150 MNIST test digits and λ = 0.1 in its MNIST experiments).

    The victim is queried through :func:`jaxadv.models.hard_label` (a black-box view passed in is
    used as it is, only its top-1 class is read): no gradient and no score reaches the attacker.

    A saliency victim (``SaliencyVictim``; Che et al.'s Table 2 row "Papernot's substitute
    attack" against saliency models) is queried for its maps through
    :func:`jaxadv.models.score_only`; the substitute (a saliency module with maps of the same
    shape) regresses them by mean squared error, and the augmentation steps along
    ``sign(J_F(x)ᵀ(O(x) − mean O(x)))``, the map analogue of the label's Jacobian row (ours; see
    ``_substitute_maps.py``). ``jacobian`` does not apply; ``agreement`` is the mean CC.

    Differences from the paper: the substitute is trained with Adam at a constant step size
    (the library's classifier step) where the paper used SGD with momentum 0.9 at 10^-2, 10
    epochs per round; its parameters carry over from round to round (cleverhans' tutorial does
    the same). The final augmentation of Algorithm 1 after the last training is skipped: its
    points would be neither labelled nor used.

    Args:
      black_box_victim: the victim: a classifier or a saliency model (or a black-box view).
      seed_images: ``f32[n, *input_shape]`` within the victim's bounds: S_0 (the paper: a small
        set representative of the input domain, not the victim's training set).
      module: the substitute's Flax module, ``__call__(x, train)`` from ``[b, *input_shape]`` to
        ``[b, num_classes]`` logits with the victim's number of classes (or, for a saliency
        victim, to maps ``[b, h', w']`` of the victim's map shape).
      key: PRNG key of the initialisation, the data order, dropout and reservoir draws.
      rounds: augmentations ρ_max ≥ 1 (the paper's 6); the substitute is trained rounds + 1 times.
      lam: the augmentation step λ > 0 (the paper's 0.1 for pixels in [0, 1]).
      epochs: training passes over the set in each round.
      batch_size: examples per training step (capped at the set's size).
      learning_rate: Adam's constant step size.
      tau: periodic step size λ_ρ = λ·(−1)^⌊ρ/τ⌋ (the paper's experiments: τ = 3); None: λ_ρ = λ.
      reservoir: ``(sigma, kappa)``: reservoir sampling (the paper's experiments: σ = 3, κ = 400): the
        first ``sigma`` augmentations double the set, each later one augments only ``kappa``
        points drawn uniformly from those added by the previous round, so the queries are
        ``n·2^σ + κ·(rounds − σ)`` instead of ``n·2^rounds``. None: always double.
      jacobian: ``"probabilities"`` (the paper's F is the softmax output) or ``"logits"``.
      clip: clip new points to the victim's bounds (the paper does not; an API that takes only
        images would need it).
      holdout: optional ``f32[m, *input_shape]``: after every round the substitute's agreement
        with the victim on these is recorded (their ``m`` queries are counted apart).
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
    oracle = _oracle(black_box_victim)
    seeds = _check_images("seed_images", seed_images, oracle)
    held = None if holdout is None else _check_images("holdout", holdout, oracle)
    _check_module(module, oracle)
    step, substitute, state = _start(module, oracle, seeds, key)
    compiled = _compiled()
    answer = compiled["maps" if isinstance(oracle, SaliencyVictim) else "labels"]

    def ask(x):  # one query per image: the oracle's top-1 labels, or its maps
        return _chunked(functools.partial(answer, oracle), x)

    words = seed_words(key)
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
    held_answers = None if held is None else ask(held)
    meta = {"set_sizes": [], "queries": [], "agreement": [], "step_sizes": []}

    lock = (
        contextlib.nullcontext()
        if checkpoint_dir is None
        else cache_lock(checkpoint_path(checkpoint_dir))
    )
    with lock:
        manager, first = None, 0
        if checkpoint_dir is not None:
            manager, restored = _open(checkpoint_dir, resume, config, state, progress)
            if restored is not None:
                state, images, answers, meta = restored
                first = len(meta["set_sizes"])
        if first == 0:
            images, answers = seeds, ask(seeds)
            meta["queries"].append(len(seeds))
        try:
            for rho in range(first, rounds + 1):
                began = time.perf_counter()
                state = _train_round(step, state, images, answers, words, rho, config)
                substitute = _with_state(substitute, state)
                meta["set_sizes"].append(len(images))
                if held is not None:
                    agree = functools.partial(compiled["agreement"], substitute)
                    meta["agreement"].append(float(np.mean(_chunked(agree, held_answers, held))))
                if rho < rounds:
                    lam_rho = periodic_step_size(lam, rho, tau)
                    pick = _augmented(len(images), meta, rho, reservoir, words)
                    new = jacobian_augmentation(
                        substitute, images[pick], answers[pick], lam_rho, jacobian=jacobian,
                        clip=clip,
                    )  # fmt: skip
                    images = np.concatenate([images, new])
                    answers = np.concatenate([answers, ask(new)])
                    meta["step_sizes"].append(lam_rho)
                    meta["queries"].append(len(new))
                if manager is not None:
                    tree = {**state, "images": images, "answers": answers}
                    save_step(manager, rho + 1, "state", tree, {"config": config, **meta})
                if progress:
                    _report(rho, rounds, meta, held is not None, time.perf_counter() - began)
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    substitute = _with_state(substitute, state)  # also when a finished run was restored
    record = SubstituteRecord(
        set_sizes=tuple(int(v) for v in meta["set_sizes"]),
        queries=tuple(int(v) for v in meta["queries"]),
        agreement=tuple(float(v) for v in meta["agreement"]),
        step_sizes=tuple(float(v) for v in meta["step_sizes"]),
        holdout_queries=0 if held is None else len(held),
        images=images,
        answers=answers,
    )
    return SubstituteTraining(substitute, record)


def _start(module: nn.Module, oracle: Any, seeds: np.ndarray, key: jax.Array):
    """``(step, substitute, state)``: the compiled train step (cross-entropy on labels, or the
    squared error on maps), the initial substitute victim and its training state."""
    factory = make_map_step if isinstance(oracle, SaliencyVictim) else _make_train_step
    args = (module,) if isinstance(oracle, SaliencyVictim) else (module, None)
    try:
        init, step = factory(*args)
    except TypeError:  # an unhashable module: build an uncached step
        init, step = factory.__wrapped__(*args)
    with _compile.fast_threefry():
        params, other, opt_state = init(key, seeds[:1])
    variables = {"params": params, **other}
    if isinstance(oracle, SaliencyVictim):
        substitute = from_flax_saliency(
            module, variables, input_shape=oracle.input_shape, output=oracle.output,
            bounds=oracle.bounds,
        )  # fmt: skip
    else:
        substitute = from_flax(
            module, variables, input_shape=oracle.input_shape, num_classes=oracle.num_classes,
            bounds=oracle.bounds,
        )  # fmt: skip
    return step, substitute, {"params": params, "collections": other, "opt_state": opt_state}


def _with_state(substitute: Any, state: dict) -> Any:
    return substitute.replace(variables={"params": state["params"], **state["collections"]})


def _report(rho: int, rounds: int, meta: dict, agreement: bool, seconds: float) -> None:
    agree = f"  agreement {meta['agreement'][-1]:.3f}" if agreement else ""
    print(
        f"substitute epoch {rho}/{rounds}  set {meta['set_sizes'][-1]}  queries "
        f"{sum(meta['queries'])}{agree}  {seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def _augmented(size: int, meta: dict, rho: int, reservoir, words) -> np.ndarray:
    """Indices of S_ρ to augment: all of it, or (reservoir sampling, from round σ on) κ points
    drawn uniformly without replacement from those the previous round added."""
    if reservoir is None or rho < reservoir[0]:
        return np.arange(size)
    newest = int(meta["queries"][-1]) if rho > 0 else size
    kappa = min(int(reservoir[1]), newest)
    rng = np.random.default_rng([*words, rho, 1])
    return np.sort(size - newest + rng.choice(newest, size=kappa, replace=False))


def _train_round(step, state, images, answers, words, rho, config) -> dict:
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
                params, other, opt_state, images[idx], answers[idx], keys[i], lr
            )
    return {"params": params, "collections": other, "opt_state": opt_state}


def _open(checkpoint_dir, resume: bool, config: dict, state: dict, progress: bool):
    """``(manager, restored)``: ``restored`` is None for a fresh run, else ``(state, images,
    answers, meta)`` of the latest finished round."""
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
        where = f"The checkpoint in `checkpoint_dir` {str(directory)!r} (round {latest})"
        meta, tree = check_resumable(
            manager, latest, where, config, state, "substitute training"
        )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        for name in ("images", "answers"):  # the labelled set grows: read its saved shape
            abstract[name] = jax.ShapeDtypeStruct(tuple(tree[name].shape), tree[name].dtype)
        restored = restore_step_tree(manager, latest, "state", abstract, meta, TRAINING_REMEDY)
    except Exception:
        manager.close()
        raise
    if progress:
        print(f"resumed after round {latest} in {directory}", file=sys.stderr, flush=True)
    images = np.asarray(restored.pop("images"))
    answers = np.asarray(restored.pop("answers"))
    lists = {k: list(meta[k]) for k in ("set_sizes", "queries", "agreement", "step_sizes")}
    return manager, (restored, images, answers, lists)
