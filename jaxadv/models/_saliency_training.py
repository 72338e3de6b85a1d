"""Training saliency models on fixation data, resumable bit for bit, and their benchmark scores.

A jitted train step driven by a host loop over mini-batches, as for the classifiers
(``_training.py``). What is new here:

* **The papers' content losses** on ONE map (``jaxadv.losses``), vmapped over the batch and
  averaged: SAM's ``10·KL − 2·CC − NSS`` (Cornia et al., TIP 2018) for maps in [0, 1] or
  [−1, 1], GazeGAN's ``10·KL − 10·CC − NSS + L1`` (Che et al., TIP 2019) on request, and the
  negative log-likelihood of the fixations (DeepGaze, Kümmerer et al. 2017) for log densities.
  The adversarial terms of SalGAN and GazeGAN are not trained here (content losses only).
* **Maps of another size than the data** (a model with a coarse head) are upsampled bilinearly
  to the data's grid before the loss; a log density is renormalised after the resize. The
  targets stay as they are: the density keeps its resolution and each fixation its pixel.
* **Frozen parts**: parameters that ``trainable_mask`` marks (top-level ``frozen_*``
  submodules, e.g. DeepGaze's feature extractor) get zero updates through ``optax.partition``.
* **Resumable runs**: every ``checkpoint_every`` epochs an orbax ``CheckpointManager`` step holds
  the parameters, the other collections (BatchNorm statistics, constants), the optimiser state,
  the epoch and the loss history, next to a JSON record of the configuration. The data order of
  epoch ``e`` is a permutation drawn from ``(key, e)`` alone and the step size is constant, so a
  run resumed from any checkpoint ends with the same bits as an uninterrupted one, and a finished
  run can be extended to more epochs. A checkpoint of another configuration is refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from jaxadv import _checks, _compile
from jaxadv.data.saliency._record import SaliencyDataset
from jaxadv.data.saliency._scenes import scene_center_bias
from jaxadv.losses._saliency import (
    GAZEGAN_LOSS,
    OUTPUT_KINDS,
    SALIENCY_LOSSES,
    SAM_LOSS,
    to_saliency_map,
)
from jaxadv.metrics import saliency as metrics
from jaxadv.models import _checkpoint as ckpt
from jaxadv.models._checkpoint import _differences, _entries, cache_lock, describe_module
from jaxadv.models._training import check_key
from jaxadv.models.saliency._deepgaze import trainable_mask, with_log_center_bias
from jaxadv.models.saliency._victim import SaliencyVictim, from_flax_saliency
from jaxadv.models.saliency._zoo import saliency_model

LOSS_PRESETS = {
    "sam": dict(SAM_LOSS),  # Cornia et al., TIP 2018
    "gazegan": dict(GAZEGAN_LOSS),  # Che et al., TIP 2019, without the GAN term
    "unisal": {"kl": 1.0, "nss": 0.1, "cc": 0.1},  # Droste et al., ECCV 2020
    "nll": {"nll": 1.0},  # DeepGaze (Kümmerer et al. 2017): NLL of the fixations
}
LOSS_TERMS = tuple(SALIENCY_LOSSES) + ("nll",)
METRIC_NAMES = ("cc", "nss", "sauc", "kl", "sim")
_EPS = 1e-7
_INIT_ATTEMPTS = 8


class SaliencyTraining(NamedTuple):
    """What :func:`train_saliency` returns.

    Attributes:
      variables: the trained Flax variables (``params`` and the other collections).
      losses: the mean training loss of every epoch so far (epochs read back from a checkpoint
        included), one float per epoch.
    """

    variables: dict[str, Any]
    losses: tuple[float, ...]


# --------------------------------------------------------------------------------------------
# losses


def resolve_loss(loss: str | Mapping[str, float] | None, output_kind: str) -> dict[str, float]:
    """The loss weights for a model whose maps are ``output_kind``.

    Args:
      loss: a preset name (``"sam"``, ``"gazegan"``, ``"unisal"``, ``"nll"``), a mapping from
        term (``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``, ``"acs"``, ``"nll"``) to weight,
        or None: ``"nll"`` for log densities, ``"sam"`` for [0, 1] and [−1, 1] maps.
      output_kind: one of ``"log_density"``, ``"unit"``, ``"signed"``.

    Returns:
      ``{term: weight}`` with float weights.

    Raises:
      ValueError: for an unknown preset or term, a non-finite weight, or ``"l1"`` on a log
        density (L1 compares maps in [0, 1], a density is far smaller).
    """
    _checks.check_choice("output_kind", output_kind, OUTPUT_KINDS)
    if loss is None:
        loss = "nll" if output_kind == "log_density" else "sam"
    if isinstance(loss, str):
        _checks.check_choice("loss", loss, LOSS_PRESETS)
        weights = dict(LOSS_PRESETS[loss])
    elif isinstance(loss, Mapping) and loss:
        weights = {}
        for term, weight in loss.items():
            _checks.check_choice("loss", term, LOSS_TERMS)
            if not isinstance(weight, (int, float, np.number)) or not math.isfinite(weight):
                raise ValueError(f"`loss` weights must be finite numbers; got {term}={weight!r}.")
            weights[term] = float(weight)
    else:
        raise ValueError(
            f"`loss` must be None, a preset ({', '.join(map(repr, LOSS_PRESETS))}) or a non-empty "
            f"mapping from term to weight; got {loss!r}."
        )
    if output_kind == "log_density" and "l1" in weights:
        raise ValueError(
            "`loss` term 'l1' compares a map in [0, 1] with the target scaled to max 1; it is "
            "meaningless for a 'log_density' model. Use 'kl', 'cc', 'nss', 'sim' or 'nll'."
        )
    return weights


def _to_data_grid(output: jax.Array, shape: tuple[int, int], kind: str) -> jax.Array:
    """Bilinear upsampling of one raw map to the data grid; a log density stays normalised."""
    if output.shape == shape:
        return output
    resized = jax.image.resize(output, shape, method="linear")
    if kind == "log_density":
        resized = resized - jax.nn.logsumexp(resized)
    return resized


def _log_density(output: jax.Array, kind: str) -> jax.Array:
    if kind == "log_density":
        return output
    s = to_saliency_map(output, kind)
    return jnp.log(s / (jnp.sum(s) + _EPS) + _EPS)


def image_loss(
    output: jax.Array,
    density: jax.Array,
    counts: jax.Array,
    *,
    kind: str,
    weights: Mapping[str, float],
) -> jax.Array:
    """The training loss of ONE raw model output against one image's ground truth (minimised).

    Args:
      output: the model's raw map ``[h', w']`` (a log density, a [0, 1] or a [−1, 1] map).
      density: the ground-truth fixation density ``[h, w]`` (any positive scale).
      counts: the fixation counts ``[h, w]`` (NSS and NLL weigh every fixation).
      kind: the model's output kind.
      weights: ``{term: weight}`` (see :func:`resolve_loss`). KL, CC, SIM and ACS compare
        ``to_saliency_map(output)`` with ``density``; NSS with ``counts``; L1 with ``density``
        divided by its maximum (the [0, 1] scale of the published ground-truth maps); NLL is
        ``−mean log p`` over the fixations, ``p`` the output as a density over the pixels.
    """
    output = _to_data_grid(output, density.shape, kind)
    s = to_saliency_map(output, kind)
    total = jnp.zeros((), output.dtype)
    for term, weight in weights.items():
        if term == "nll":
            value = -jnp.sum(counts * _log_density(output, kind)) / jnp.maximum(jnp.sum(counts), 1)
        elif term == "nss":
            value = SALIENCY_LOSSES["nss"](s, counts)
        elif term == "l1":
            value = SALIENCY_LOSSES["l1"](s, density / (jnp.max(density) + _EPS))
        else:
            value = SALIENCY_LOSSES[term](s, density)
        total = total + weight * value
    return total


# --------------------------------------------------------------------------------------------
# the compiled step


def _labels(params: Any) -> Any:
    return jax.tree.map(lambda keep: "train" if keep else "frozen", trainable_mask(params))


def _optimizer(factory: Callable[..., optax.GradientTransformation], learning_rate: float):
    """``factory`` (e.g. ``optax.adam``) with its step size in the state, frozen parts zeroed."""
    inner = optax.inject_hyperparams(factory)(learning_rate=learning_rate)
    return optax.partition({"train": inner, "frozen": optax.set_to_zero()}, _labels)


@functools.lru_cache(maxsize=16)
def _make_step(module: nn.Module, weights: tuple, mutable: tuple, factory: Callable):
    """The compiled train step, cached: repeated trainings of a module compile once.

    The step size lives in the optimiser state (``inject_hyperparams`` reads it from there), so
    the step is built with a placeholder value and no step size is compiled in.
    """
    tx = _optimizer(factory, 0.0)
    kind = module.output_kind
    loss_weights = dict(weights)

    def loss_fn(params, collections, x, density, counts):
        variables = {"params": params, **collections}
        if mutable:
            out, updates = module.apply(variables, x, train=True, mutable=list(mutable))
            collections = {**collections, **updates}
        else:
            out = module.apply(variables, x, train=True)
        per_image = jax.vmap(functools.partial(image_loss, kind=kind, weights=loss_weights))
        return jnp.mean(per_image(out, density, counts)), collections

    # CPU: XLA's own convolution kernels (the option the classifier trainer uses too).
    @_compile.jit
    def step(params, collections, opt_state, x, density, counts):
        (loss, collections), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, collections, x, density, counts
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), collections, opt_state, loss

    return step


# --------------------------------------------------------------------------------------------
# data and configuration


def _check_dataset(name: str, data: Any) -> SaliencyDataset:
    if not isinstance(data, SaliencyDataset):
        raise ValueError(f"`{name}` must be a SaliencyDataset; got {type(data).__name__}.")
    if not data.stacked:
        raise ValueError(
            f"`{name}` must be stacked (one image size); got {data!r}. Load it with "
            "`size=(h, w)` or call `.resized((h, w))`."
        )
    if len(data) == 0:
        raise ValueError(f"`{name}` must hold at least one image; got 0.")
    return data


def fixation_counts(data: SaliencyDataset) -> np.ndarray:
    """``float32[n, h, w]``: how many fixations of each (stacked) item fell on each pixel."""
    return np.stack([data.fixation_map(i, counts=True) for i in range(len(data))]).astype(
        np.float32
    )


def _densities(data: SaliencyDataset) -> np.ndarray:
    """The ground-truth maps scaled to sum 1 (all-zero maps stay 0)."""
    maps = np.asarray(data.maps, np.float64)
    sums = maps.sum(axis=(1, 2), keepdims=True)
    return (maps / np.where(sums > 0, sums, 1.0)).astype(np.float32)


def _digest(arrays: Any) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(arrays):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _key_words(key: jax.Array) -> list[int]:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(w) for w in np.asarray(key).ravel()]


def _epoch_order(key_words: list[int], epoch: int, n: int) -> np.ndarray:
    """The data order of ``epoch``: a function of the key and the epoch alone (numpy's PCG64,
    independent of JAX's PRNG flags), so a resumed run sees the same batches."""
    return np.random.default_rng([*key_words, epoch]).permutation(n)


def _factory_name(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"


def _describe(config: Mapping[str, Any], field: str) -> str:
    return json.dumps(config.get(field, "(absent)"), sort_keys=True)


# --------------------------------------------------------------------------------------------
# checkpoints


def _manager(directory: Path, keep: int) -> ocp.CheckpointManager:
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _restore(manager, epoch: int, directory: Path, config: dict, state: dict):
    meta = ckpt.restore_step_meta(manager, epoch, ckpt.TRAINING_REMEDY)
    saved = meta.get("config", {})
    differing = [
        f"{field} is {_describe(saved, field)} in the checkpoint but "
        f"{_describe(config, field)} here"
        for field in sorted(set(saved) | set(config))
        if saved.get(field) != config.get(field)
    ]
    where = f"The checkpoint in `checkpoint_dir` {str(directory)!r} (epoch {epoch})"
    if differing:
        raise ValueError(
            f"{where} was written by another training configuration: "
            + "; ".join(differing)
            + ". Resume with the original configuration or use another directory."
        )
    tree = ckpt.step_item_metadata(manager, epoch, "state", ckpt.TRAINING_REMEDY)
    problems = []
    for part in ("params", "collections"):
        problems += _differences(_entries(tree.get(part) or {}), _entries(state[part]))
    if problems:
        raise ValueError(f"{where} does not match the module's variables: " + "; ".join(problems))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = ckpt.restore_step_tree(manager, epoch, "state", abstract, meta, ckpt.TRAINING_REMEDY)
    return restored, [float(v) for v in meta["losses"]]


def _open_run(checkpoint_dir, resume: bool, epochs: int, config: dict, state: dict, progress: bool):
    """``(manager, state, losses, first epoch)`` of a run: fresh, or resumed from the latest
    checkpoint in ``checkpoint_dir``."""
    directory = _checkpoint_path(checkpoint_dir)
    manager = _manager(directory, keep=2)
    try:
        latest = manager.latest_step()
        if latest is None:
            return manager, state, [], 0
        if not resume:
            raise ValueError(
                f"`checkpoint_dir` {str(directory)!r} already holds checkpoints (latest: epoch "
                f"{latest}); pass resume=True to continue that run, or use another directory."
            )
        if latest > epochs:
            raise ValueError(
                f"`epochs` must be at least the checkpoint's epoch {latest} in "
                f"{str(directory)!r}; got {epochs}."
            )
        state, losses = _restore(manager, latest, directory, config, state)
    except Exception:
        manager.close()
        raise
    if progress:
        print(f"resumed from epoch {latest} in {directory}", file=sys.stderr, flush=True)
    return manager, state, losses, latest


# --------------------------------------------------------------------------------------------
# training


def train_saliency(
    module: nn.Module,
    variables: Mapping[str, Any],
    data: SaliencyDataset,
    *,
    key: jax.Array,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    loss: str | Mapping[str, float] | None = None,
    optimizer: Callable[..., optax.GradientTransformation] = optax.adam,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> SaliencyTraining:
    """Trains a saliency model on fixation data and returns its variables and loss history.

    Each epoch visits a permutation of the data drawn from ``(key, epoch)`` in mini-batches of
    ``batch_size`` (the remainder that does not fill a batch is skipped that epoch, so one
    program is compiled). The step size is constant, as in the papers (SAM: RMSprop 1e-4,
    GazeGAN: Adam 2e-4), so stopping after ``k`` epochs and resuming to ``n`` equals an
    ``n``-epoch run.

    Args:
      module: a Flax saliency module, ``apply(variables, x[b, h, w, 3], train=...)`` →
        ``[b, h', w']``, with an ``output_kind`` attribute (every zoo model has one). BatchNorm
        statistics (``batch_stats``) are updated in training; other collections (e.g.
        DeepGaze's ``constants``) are kept as they are.
      variables: its initial variables (e.g. from ``saliency_model``).
      data: a stacked ``SaliencyDataset`` whose images the module accepts.
      key: PRNG key of the data order.
      epochs: total epochs, counting those already in a resumed checkpoint.
      batch_size: images per step (capped at the number of images).
      learning_rate: the optimiser's constant step size.
      loss: see :func:`resolve_loss` (default: NLL for log densities, SAM's loss otherwise).
      optimizer: an optax factory taking ``learning_rate`` (``optax.adam``, ``optax.rmsprop``,
        ...). Parameters under top-level ``frozen_*`` submodules are never updated.
      checkpoint_dir: directory of the orbax checkpoints (one step per saved epoch, the last
        two kept); None trains without checkpoints.
      checkpoint_every: save every this many epochs (the last epoch is always saved).
      resume: continue from the latest checkpoint in ``checkpoint_dir`` (start afresh when there
        is none). Without it a directory that holds checkpoints is refused, so that a run never
        overwrites another by accident.
      progress: print one line per epoch (loss, epoch time, elapsed, ETA) to stderr.

    Returns:
      :class:`SaliencyTraining` ``(variables, losses)``.

    Raises:
      ValueError: for a bad argument; a checkpoint written with another module, data, key,
        loss, optimiser, step size, batch size or initial variables (the message lists what
        differs); a checkpoint beyond ``epochs``.
    """
    check_key(key)
    _checks.check_positive_int("epochs", epochs)
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_positive("learning_rate", learning_rate)
    _checks.check_positive_int("checkpoint_every", checkpoint_every)
    if not callable(optimizer):
        raise ValueError(
            f"`optimizer` must be an optax factory such as optax.adam; got {optimizer!r}."
        )
    data = _check_dataset("data", data)
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError(
            "`variables` must be a Flax variables dict with a 'params' collection; got "
            f"{type(variables).__name__}."
        )
    kind = getattr(module, "output_kind", None)
    if kind not in OUTPUT_KINDS:
        raise ValueError(
            f"`module` must have an `output_kind` in {OUTPUT_KINDS}; {type(module).__name__} has "
            f"{kind!r}."
        )
    weights = resolve_loss(loss, kind)
    images = np.asarray(data.images, np.float32)
    n, h, w, _ = images.shape
    out = jax.eval_shape(
        lambda v, x: module.apply(v, x, train=False),
        variables,
        jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32),
    )
    if len(out.shape) != 3:
        raise ValueError(
            f"`module` {type(module).__name__} must map a batch to maps [b, h', w']; on "
            f"{h}x{w} images it returned shape {tuple(out.shape)}."
        )
    density, counts = _densities(data), fixation_counts(data)
    batch_size = min(int(batch_size), n)
    steps = n // batch_size

    params = variables["params"]
    collections = {k: v for k, v in variables.items() if k not in ("params", "intermediates")}
    mutable = ("batch_stats",) if "batch_stats" in collections else ()
    try:
        step = _make_step(module, tuple(weights.items()), mutable, optimizer)
    except TypeError:  # an unhashable module: build an uncached step
        step = _make_step.__wrapped__(module, tuple(weights.items()), mutable, optimizer)
    opt_state = _optimizer(optimizer, learning_rate).init(params)
    state = {"params": params, "collections": collections, "opt_state": opt_state}
    key_words = _key_words(key)
    config = {
        "model": describe_module(module),
        "input_shape": [h, w, 3],
        "loss": weights,
        "optimizer": _factory_name(optimizer),
        "learning_rate": float(learning_rate),
        "batch_size": batch_size,
        "key": key_words,
        "data": f"{data.name} n={n} sha256:{_digest((images, density, counts))}",
        "initial_variables": f"sha256:{_digest(dict(variables))}",
    }

    # One process at a time per checkpoint folder: a parallel run of the same training waits,
    # then resumes (restores) the finished run instead of writing beside it.
    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        _checkpoint_path(checkpoint_dir)
    )
    with lock:
        manager, losses, start_epoch = None, [], 0
        if checkpoint_dir is not None:
            manager, state, losses, start_epoch = _open_run(
                checkpoint_dir, resume, epochs, config, state, progress
            )

        began = time.perf_counter()
        try:
            for epoch in range(start_epoch, epochs):
                start = time.perf_counter()
                order = _epoch_order(key_words, epoch, n)
                step_losses = []  # device scalars: read once per epoch, no per-step sync
                for i in range(steps):
                    idx = order[i * batch_size : (i + 1) * batch_size]
                    p, c, o, value = step(
                        state["params"],
                        state["collections"],
                        state["opt_state"],
                        images[idx],
                        density[idx],
                        counts[idx],
                    )
                    state = {"params": p, "collections": c, "opt_state": o}
                    step_losses.append(value)
                losses.append(float(np.mean(np.asarray(jax.device_get(step_losses)))))
                done = epoch + 1
                if manager is not None and (done % checkpoint_every == 0 or done == epochs):
                    meta = {"config": config, "epoch": done, "losses": losses}
                    ckpt.save_step(manager, done, "state", state, meta)
                if progress:
                    elapsed = time.perf_counter() - began
                    eta = elapsed / (done - start_epoch) * (epochs - done)
                    print(
                        f"epoch {done}/{epochs}  loss {losses[-1]:.4f}  "
                        f"{time.perf_counter() - start:.1f} s  elapsed {elapsed:.1f} s  "
                        f"ETA {eta:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    trained = {"params": state["params"], **state["collections"]}
    return SaliencyTraining(jax.tree.map(jnp.asarray, trained), tuple(losses))


def _checkpoint_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`checkpoint_dir` must be a non-empty str or os.PathLike; got {path!r}.")
    return Path(path).expanduser().resolve()  # orbax needs absolute paths


# --------------------------------------------------------------------------------------------
# the zoo by name


def train_zoo_saliency(
    name: str,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    width: int = 8,
    **train_kwargs: Any,
) -> tuple[SaliencyVictim, SaliencyTraining]:
    """Initialises the zoo model ``name`` for ``data``'s images and trains it.

    The key is split into an initialisation key and the data-order key of
    :func:`train_saliency`. An initialisation whose maps are all exactly 0 on the first 32
    training images is redrawn (``fold_in(init_key, attempt)``): such a model gets no gradient
    and never learns (SAM's ReLU head is off everywhere for some draws). DeepGaze's log centre
    bias is set to the log of the training data's mean fixation density (with a floor of 1% of
    the uniform density), as DeepGaze fits its centre bias to its training fixations.

    Args:
      name: one of ``SALIENCY_MODEL_NAMES``.
      data: stacked training data (its image size must suit the model, see ``saliency_model``).
      key: PRNG key.
      width: the model's base width.
      **train_kwargs: the keyword arguments of :func:`train_saliency` (``epochs``,
        ``batch_size``, ``learning_rate``, ``loss``, ``checkpoint_dir``, ``resume``, ...).

    Returns:
      ``(victim, training)``: the trained model as a ``SaliencyVictim`` (inference mode) and
      the :class:`SaliencyTraining` record.
    """
    check_key(key)
    data = _check_dataset("data", data)
    init_key, train_key = jax.random.split(key)
    shape = tuple(data.images.shape[1:])
    for attempt in range(_INIT_ATTEMPTS):
        module, variables = saliency_model(
            name, key=jax.random.fold_in(init_key, attempt), input_shape=shape, width=width
        )
        if "log_center_bias" in variables.get("constants", {}):
            prior = mean_density(data)
            variables = with_log_center_bias(variables, np.log(prior + 0.01 / prior.size))
        if not _dead(module, variables, data):
            break
    else:
        raise ValueError(
            f"`name` {name!r}: every one of {_INIT_ATTEMPTS} initialisations gives all-zero maps "
            "on the training images (no gradient); try another `key` or `width`."
        )
    training = train_saliency(module, variables, data, key=train_key, **train_kwargs)
    victim = from_flax_saliency(module, training.variables, input_shape=shape)
    return victim, training


def _dead(module: nn.Module, variables: Any, data: SaliencyDataset) -> bool:
    """True when the maps of the first (up to) 32 images are all exactly 0: a ReLU head that is
    off everywhere, or a saturated tanh, passes no gradient."""
    victim = from_flax_saliency(module, variables, input_shape=data.images.shape[1:])
    return not np.any(predict_saliency(victim, data.images[:32]))


# --------------------------------------------------------------------------------------------
# evaluation


def mean_density(data: SaliencyDataset) -> np.ndarray:
    """The mean of the (sum-normalised) ground-truth maps of stacked ``data``: ``float32[h, w]``,
    the data set's own centre bias, a stronger content-blind baseline than a fixed Gaussian."""
    data = _check_dataset("data", data)
    return _densities(data).mean(axis=0, dtype=np.float64).astype(np.float32)


@functools.partial(jax.jit, static_argnames="variant")
def _dense_scores(saliency_map, density, counts, *, variant):
    return {
        "cc": metrics.cc(saliency_map, density, variant=variant),
        "nss": metrics.nss(saliency_map, counts, variant=variant),
        "kl": metrics.kl_div(saliency_map, density, variant=variant),
        "sim": metrics.sim(saliency_map, density, variant=variant),
    }


def _shuffled_auc(saliency_map, counts, other, rng, *, variant, splits):
    """sAUC; MIT's negatives drawn here (``AUC_shuffled.m``: per split a random subset, without
    replacement, of ``min(#fixated, #other-fixated)`` other-fixated pixels), so that the metric
    compiles for a handful of sample counts instead of sorting the whole grid once per split."""
    if variant == "pysaliency":
        return metrics.auc_shuffled(saliency_map, counts, other, variant=variant)
    candidates = np.flatnonzero(other.ravel() > 0)
    m = min(int(np.count_nonzero(counts)), candidates.size)
    if m == 0:
        return float("nan")
    samples = np.stack([rng.permutation(candidates)[:m] for _ in range(splits)]).astype(np.int32)
    return metrics.auc_shuffled(saliency_map, counts, other, samples=samples, variant=variant)


def _other_counts(data: SaliencyDataset, i: int, others: np.ndarray) -> np.ndarray:
    """Counts, on item ``i``'s grid, of the fixations of items ``others`` (coordinates rescaled
    as the loaders do: the pixel each fixation's centre falls into)."""
    h, w = data.images[i].shape[:2]
    tally = np.zeros((h, w), np.float32)
    for j in others:
        hj, wj = data.images[j].shape[:2]
        xy = np.floor((data.fixations[j] + 0.5) * np.array([w / wj, h / hj])).astype(np.int64)
        xy = np.minimum(xy, [w - 1, h - 1])
        np.add.at(tally, (xy[:, 1], xy[:, 0]), 1.0)
    return tally


def evaluate_saliency_maps(
    maps: Any,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    n_other: int = 10,
    splits: int = 100,
    variant: str = "mit",
) -> dict[str, float]:
    """Benchmark metrics of saliency maps against ``data``'s ground truth, averaged over images.

    Per image (``jaxadv.metrics.saliency``, MIT conventions by default): CC and KL and SIM
    against the ground-truth map, NSS and shuffled AUC against the fixations. sAUC's negatives
    are the fixations of ``n_other`` other images of ``data`` drawn at random per image (the MIT
    benchmark's practice; with all other images the union of their fixated pixels would cover
    the grid and the negatives would no longer carry the centre bias). The draws (other images,
    MIT's negatives of each split) come from numpy generators seeded by ``(key, image index)``:
    the same key gives the same scores.

    Args:
      maps: non-negative saliency maps, ``[n, h', w']`` (or a list of per-item maps), or ONE
        ``[h', w']`` map scored on every image (a baseline). Maps of another size than an item
        are resized by the metrics (MATLAB's ``imresize``).
      data: the ground truth; at least 2 items.
      key: PRNG key of the sAUC draws.
      n_other: other images whose fixations are sAUC's negatives.
      splits: MIT sAUC's random splits (100 in ``AUC_shuffled.m``).
      variant: ``"mit"`` or ``"pysaliency"`` (see ``jaxadv.metrics.saliency``).

    Returns:
      ``{"cc", "nss", "sauc", "kl", "sim"}``: means over the images where the metric is defined
      (the MIT code gives NaN e.g. for a constant map), plus ``"n"`` (images) and
      ``"undefined"`` (images where some metric is NaN).
    """
    check_key(key)
    _checks.check_positive_int("n_other", n_other)
    _checks.check_positive_int("splits", splits)
    _checks.check_choice("variant", variant, metrics.VARIANTS)
    if not isinstance(data, SaliencyDataset):
        raise ValueError(f"`data` must be a SaliencyDataset; got {type(data).__name__}.")
    n = len(data)
    if n < 2:
        raise ValueError(f"`data` must hold at least 2 images (sAUC needs other images); got {n}.")
    single = not isinstance(maps, (list, tuple)) and np.ndim(maps) == 2
    if not single and len(maps) != n:
        raise ValueError(
            f"`maps` must be one [h, w] map or one map per image ({n}); got "
            f"{np.shape(maps) if not isinstance(maps, (list, tuple)) else len(maps)} maps."
        )
    key_words = _key_words(key)
    n_other = min(int(n_other), n - 1)
    rows = []
    for i in range(n):
        s = np.asarray(maps if single else maps[i], np.float32)
        _checks.check_nonnegative(f"maps[{i}]" if not single else "maps", s)
        if s.ndim != 2:
            raise ValueError(f"`maps[{i}]` must be one [h, w] map; got shape {s.shape}.")
        rest = np.delete(np.arange(n), i)
        rng = np.random.default_rng([*key_words, i])
        others = rng.choice(rest, n_other, replace=False)
        density = np.asarray(data.maps[i], np.float32)
        counts = data.fixation_map(i, counts=True).astype(np.float32)
        row = _dense_scores(s, density, counts, variant=variant)
        other = _other_counts(data, i, others)
        row["sauc"] = _shuffled_auc(s, counts, other, rng, variant=variant, splits=splits)
        rows.append(row)
    table = {name: np.asarray([float(r[name]) for r in rows]) for name in METRIC_NAMES}
    undefined = np.zeros(n, bool)
    for values in table.values():
        undefined |= ~np.isfinite(values)
    result = {
        name: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")
        for name, v in table.items()
    }
    return {**result, "n": n, "undefined": int(undefined.sum())}


@functools.cache
def _batch_maps():
    return _compile.jit(lambda victim, x: to_saliency_map(victim.batch(x), victim.output))


def predict_saliency(victim: SaliencyVictim, images: Any, batch_size: int = 32) -> np.ndarray:
    """Non-negative saliency maps ``float32[n, h', w']`` of ``images`` (``to_saliency_map`` of
    the victim's output: a density for log-density models). Batches are zero-padded to
    ``batch_size``, so one program is compiled per victim and batch size."""
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_batch_shape("images", np.shape(images), victim.input_shape)
    images = np.asarray(images, np.float32)
    n = images.shape[0]
    batch_size = min(int(batch_size), n)
    out = []
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        m = x.shape[0]
        if m < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - m,) + x.shape[1:], x.dtype)])
        out.append(np.asarray(_batch_maps()(victim, x))[:m])
    return np.concatenate(out)


def evaluate_saliency(
    victim: SaliencyVictim,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    batch_size: int = 32,
    **kwargs: Any,
) -> dict[str, float]:
    """Benchmark metrics of ``victim``'s maps on stacked ``data``: :func:`predict_saliency`'s
    maps scored by :func:`evaluate_saliency_maps` (``kwargs``: ``n_other``, ``splits``,
    ``variant``)."""
    data = _check_dataset("data", data)
    maps = predict_saliency(victim, data.images, batch_size)
    return evaluate_saliency_maps(maps, data, key=key, **kwargs)


def center_bias_baselines(
    train: SaliencyDataset, test: SaliencyDataset, *, key: jax.Array, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """The content-blind baselines scored on ``test``: the scenes' Gaussian centre bias
    (``scene_center_bias``) and the mean training density (:func:`mean_density`)."""
    test = _check_dataset("test", test)
    size = tuple(test.images.shape[1:3])
    return {
        "centre bias": evaluate_saliency_maps(scene_center_bias(size), test, key=key, **kwargs),
        "mean train density": evaluate_saliency_maps(mean_density(train), test, key=key, **kwargs),
    }


def format_saliency_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table ``model | CC ↑ | NSS ↑ | sAUC ↑ | KL ↓ | SIM ↑`` of metric rows."""
    header = "| model | CC ↑ | NSS ↑ | sAUC ↑ | KL ↓ | SIM ↑ |"
    lines = [header, "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        cells = " | ".join(f"{row[m]:.3f}" for m in METRIC_NAMES)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
