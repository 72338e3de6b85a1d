"""Training saliency models on fixation data, resumable bit for bit.

A jitted train step driven by a host loop over mini-batches, as for the classifiers
(``_classifier.py``); the losses are in ``_saliency_loss.py``. What is new here:

* **Frozen parts**: parameters that ``trainable_mask`` marks (top-level ``frozen_*``
  submodules, e.g. DeepGaze's feature extractor) get zero updates through ``optax.partition``.
* **Adversarial training** (``attack=``): the loss is taken on adversarial images only, made
  by a saliency attack of the library run inside the compiled step against the model's current
  parameters (in inference mode) and cut from the gradient, Madry et al.'s min-max (ICLR 2018)
  on saliency losses. Che et al. list such adversarially trained members (GazeGAN₂ and
  SAM-ResNet "with AT") in the library of source models of their SMBEA paper (AAAI 2020).
* **Resumable runs**: every ``checkpoint_every`` epochs a checkpoint is written
  (``_saliency_checkpoint.py``). The data order of epoch ``e`` is a permutation drawn from
  ``(key, e)`` alone and the step size is constant, so a run resumed from any checkpoint ends with
  the same bits as an uninterrupted one, and a finished run can be extended to more epochs. A
  checkpoint of another configuration is refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks, _compile
from jaxadv.attacks import AttackBase
from jaxadv.data.saliency import SaliencyDataset
from jaxadv.losses import OUTPUT_KINDS
from jaxadv.models import cache_lock, describe_module, save_step
from jaxadv.models.saliency import from_flax_saliency, trainable_mask
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_checkpoint import checkpoint_path, open_run
from jaxadv.training._saliency_data import check_dataset, densities, fixation_counts
from jaxadv.training._saliency_loss import saliency_image_loss, resolve_saliency_loss


class SaliencyTraining(NamedTuple):
    """What :func:`train_saliency` returns.

    Attributes:
      variables: the trained Flax variables (``params`` and the other collections).
      losses: the mean training loss of every epoch so far (epochs read back from a checkpoint
        included), one float per epoch.
    """

    variables: dict[str, Any]
    losses: tuple[float, ...]

def _labels(params: Any) -> Any:
    return jax.tree.map(lambda keep: "train" if keep else "frozen", trainable_mask(params))

def _optimizer(factory: Callable[..., optax.GradientTransformation], learning_rate: float):
    """``factory`` (e.g. ``optax.adam``) with its step size in the state, frozen parts zeroed."""
    inner = optax.inject_hyperparams(factory)(learning_rate=learning_rate)
    return optax.partition({"train": inner, "frozen": optax.set_to_zero()}, _labels)

@functools.lru_cache(maxsize=16)
def _make_step(
    module: nn.Module,
    weights: tuple,
    mutable: tuple,
    factory: Callable,
    attack: Any = None,
    input_shape: tuple[int, ...] | None = None,
):
    """The compiled train step, cached: repeated trainings of a module compile once.

    The step size lives in the optimiser state (``inject_hyperparams`` reads it from there), so
    the step is built with a placeholder value and no step size is compiled in. With an
    ``attack`` the step first replaces the images by the attack's output against the current
    parameters (``hp`` and ``key`` are then its arguments; without one they are ignored).
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
        per_image = jax.vmap(functools.partial(saliency_image_loss, kind=kind, weights=loss_weights))
        return jnp.mean(per_image(out, density, counts)), collections

    # CPU: XLA's own convolution kernels (the option the classifier trainer uses too).
    def adversarial(params, collections, x, hp, key):
        if attack is None:
            return x
        victim = from_flax_saliency(
            module, {"params": params, **collections}, input_shape=input_shape
        )
        return jax.lax.stop_gradient(attack.batch(victim, hp, x, None, key).x_adv)

    @_compile.jit
    def step(params, collections, opt_state, x, density, counts, hp=None, key=None):
        x = adversarial(params, collections, x, hp, key)
        (loss, collections), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, collections, x, density, counts
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), collections, opt_state, loss

    return step

def _digest(arrays: Any) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(arrays):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]

def _epoch_order(key_words: list[int], epoch: int, n: int) -> np.ndarray:
    """The data order of ``epoch``: a function of the key and the epoch alone (numpy's PCG64,
    independent of JAX's PRNG flags), so a resumed run sees the same batches."""
    return np.random.default_rng([*key_words, epoch]).permutation(n)

def _factory_name(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"

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
    attack: AttackBase | None = None,
    attack_hparams: Any = None,
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
      loss: see :func:`resolve_saliency_loss` (default: NLL for log densities, SAM's loss otherwise).
      optimizer: an optax factory taking ``learning_rate`` (``optax.adam``, ``optax.rmsprop``,
        ...). Parameters under top-level ``frozen_*`` submodules are never updated.
      checkpoint_dir: directory of the orbax checkpoints (one step per saved epoch, the last
        two kept); None trains without checkpoints.
      checkpoint_every: save every this many epochs (the last epoch is always saved).
      resume: continue from the latest checkpoint in ``checkpoint_dir`` (start afresh when there
        is none). Without it a directory that holds checkpoints is refused, so that a run never
        overwrites another by accident.
      progress: print one line per epoch (loss, epoch time, elapsed, ETA) to stderr.
      attack: adversarial training (module docstring): an untargeted saliency attack of the
        library (e.g. ``saliency_pgd()``) run on every mini-batch inside the step against the
        current parameters; the loss is taken on its outputs. None: plain training.
      attack_hparams: the attack's hyper-parameters (``attack.hparams(...)``); None: its
        defaults. Step ``i`` of epoch ``e`` draws the attack's key from ``(key, e, i)``.

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
    data = check_dataset("data", data)
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
    weights = resolve_saliency_loss(loss, kind)
    if attack is not None:
        if not isinstance(attack, AttackBase) or getattr(attack, "targeted", False):
            raise ValueError(
                "`attack` must be an untargeted attack of the library (e.g. "
                f"jaxadv.attacks.saliency_pgd()); got {attack!r}."
            )
        attack_hparams = attack.hparams() if attack_hparams is None else attack_hparams
        attack.check_params(attack_hparams)
    elif attack_hparams is not None:
        raise ValueError("`attack_hparams` must be None without an `attack`; got a value.")
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
    density, counts = densities(data), fixation_counts(data)
    batch_size = min(int(batch_size), n)
    steps = n // batch_size

    params = variables["params"]
    collections = {k: v for k, v in variables.items() if k not in ("params", "intermediates")}
    mutable = ("batch_stats",) if "batch_stats" in collections else ()
    step_args = (module, tuple(weights.items()), mutable, optimizer, attack, (h, w, 3))
    try:
        step = _make_step(*step_args)
    except TypeError:  # an unhashable module: build an uncached step
        step = _make_step.__wrapped__(*step_args)
    opt_state = _optimizer(optimizer, learning_rate).init(params)
    state = {"params": params, "collections": collections, "opt_state": opt_state}
    key_words = seed_words(key)
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
    if attack is not None:  # (absent for plain runs: their checkpoints stay valid)
        config["attack"] = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(attack))
        config["attack_hparams"] = [float(v) for v in jax.tree.leaves(attack_hparams)]

    # One process at a time per checkpoint folder: a parallel run of the same training waits,
    # then resumes (restores) the finished run instead of writing beside it.
    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        checkpoint_path(checkpoint_dir)
    )
    with lock:
        manager, losses, start_epoch = None, [], 0
        if checkpoint_dir is not None:
            manager, state, losses, start_epoch = open_run(
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
                    extra = ()
                    if attack is not None:
                        extra = (attack_hparams, jax.random.fold_in(key, epoch * steps + i))
                    p, c, o, value = step(
                        state["params"],
                        state["collections"],
                        state["opt_state"],
                        images[idx],
                        density[idx],
                        counts[idx],
                        *extra,
                    )
                    state = {"params": p, "collections": c, "opt_state": o}
                    step_losses.append(value)
                losses.append(float(np.mean(np.asarray(jax.device_get(step_losses)))))
                done = epoch + 1
                if manager is not None and (done % checkpoint_every == 0 or done == epochs):
                    meta = {"config": config, "epoch": done, "losses": losses}
                    save_step(manager, done, "state", state, meta)
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
