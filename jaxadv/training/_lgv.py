"""LGV surrogates (Gubri, Cordy, Papadakis, Le Traon & Sen, "LGV: Boosting adversarial example
transferability from large geometric vicinity", ECCV 2022).

From a trained classifier, SGD continues with a high constant learning rate and the weights are
collected along the way: ``per_epoch`` times per epoch for ``epochs`` epochs (the paper: 10
epochs at learning rate 0.05, 4 per epoch, SGD with momentum 0.9 and weight decay 1e-4, batch
256, on ImageNet ResNet-50; here scaled to the digits: 10 epochs of batches of 64). The collected
models are the transfer source, in two forms:

* :func:`lgv_random_victim`, the paper's attack form (Gubri et al., Sec. 3: at each attack
  iteration ONE collected model is drawn at random): a
  :class:`~jaxadv.models.RandomizedVictim` whose key picks the member uniformly, attacked with
  ``attacks.with_eot(attack, samples=1)`` (each step draws a fresh key, hence a fresh member;
  one forward+backward pass per step). The paper's code cycles through the members in shuffled
  order; drawing with replacement is the paper's wording and the default here.
* :func:`lgv_victim` averages their logits (one victim, the members' variables stacked on a
  leading axis and vmapped, so K members compile as one): an ensemble alternative costing K
  forward passes per step.

Each SGD step is ``optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum))`` on the
mean cross-entropy of a mini-batch in training mode (dropout on, BatchNorm statistics updated,
as the paper's ``model.train()``), the data order of epoch ``e`` being
``np.random.default_rng([*key words, e]).permutation(n)`` and the dropout key of global step
``t`` ``fold_in(key, t)``: the run can be re-traced by hand.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxadv import _checks, _compile
from jaxadv.models import (
    RandomizedVictim,
    Victim,
    cache_lock,
    classifier,
    default_cache_dir,
    describe_module,
    restore_tree,
)
from jaxadv.training._classifier import _validate_data, accuracy
from jaxadv.training._default import _load_default_data, _save_atomically, default_victim
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_train import _epoch_order

_RECIPE_VERSION = 1


@functools.lru_cache(maxsize=8)
def _make_sgd_step(module: nn.Module, learning_rate: float, momentum: float, weight_decay: float,
                   mutable: tuple):  # fmt: skip
    tx = optax.chain(
        optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=momentum)
    )

    def loss_fn(params, other, x, y, dropout_key):
        # ``mutable`` a list, even empty: apply then returns (logits, updated collections).
        logits, updates = module.apply({"params": params, **other}, x, train=True,
                                       rngs={"dropout": dropout_key}, mutable=list(mutable))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, updates

    @_compile.jit
    def step(params, other, opt_state, x, y, dropout_key):
        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, other, x, y, dropout_key
        )
        new, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, new), {**other, **updates}, opt_state, loss

    return tx, step


def collect_lgv(
    module: nn.Module,
    variables: Any,
    images: Any,
    labels: Any,
    *,
    key: jax.Array,
    epochs: int = 10,
    per_epoch: int = 4,
    learning_rate: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """The LGV weights (module docstring): ``epochs · per_epoch`` variable sets collected along
    SGD from ``variables``, stacked on a leading axis.

    Within an epoch of ``s = n // batch_size`` steps, a copy is taken after every
    ``s // per_epoch`` steps (``per_epoch`` copies).

    Args:
      module: the classifier's flax module (called with ``train=True`` during SGD).
      variables: its trained variables (a dict with ``"params"``; other collections, e.g.
        BatchNorm statistics, are updated as mutable).
      images: ``[n, ...]`` training images.
      labels: ``[n]`` integer labels.
      key: PRNG key: the data order and the dropout keys (module docstring).
      epochs: SGD epochs.
      per_epoch: copies collected per epoch (at most the epoch's steps).
      learning_rate: SGD's constant learning rate.
      momentum: SGD's momentum, in ``[0, 1)``.
      weight_decay: ``wd``: ``wd · params`` is added to the gradient before SGD (non-negative).
      batch_size: mini-batch size (capped at ``n``; a last partial batch is dropped).
      progress: print one line per epoch to stderr.

    Returns:
      The module's variables dict with every leaf ``[K, ...]``, ``K = epochs · per_epoch``.
    """
    check_key(key)
    for name, value in (("epochs", epochs), ("per_epoch", per_epoch),
                        ("batch_size", batch_size)):  # fmt: skip
        _checks.check_positive_int(name, value)
    _checks.check_positive("learning_rate", learning_rate)
    _checks.check_nonnegative("weight_decay", weight_decay)
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ValueError(f"`momentum` must lie in [0, 1); got {momentum!r}.")
    if not isinstance(variables, dict) or "params" not in variables:
        raise ValueError("`variables` must be the trained module's variables (a dict with "
                         f"'params'); got {type(variables).__name__}.")  # fmt: skip
    _validate_data(images, labels)
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.int32)
    n = images.shape[0]
    batch_size = min(int(batch_size), n)
    steps = n // batch_size
    if steps < per_epoch:
        raise ValueError(f"`per_epoch` must be at most the {steps} steps of an epoch (n // "
                         f"batch_size); got {per_epoch}.")  # fmt: skip
    every = steps // per_epoch
    other = {k: v for k, v in variables.items() if k != "params"}
    mutable = tuple(sorted(other))
    tx, step = _make_sgd_step(module, float(learning_rate), float(momentum),
                              float(weight_decay), mutable)  # fmt: skip
    params = variables["params"]
    opt_state = tx.init(params)
    words = seed_words(key)
    members = []
    with _compile.fast_threefry():
        for epoch in range(epochs):
            start = time.perf_counter()
            order = _epoch_order(words, epoch, n)
            for i in range(steps):
                idx = order[i * batch_size : (i + 1) * batch_size]
                params, other, opt_state, _ = step(params, other, opt_state, images[idx],
                                                   labels[idx],
                                                   jax.random.fold_in(key, epoch * steps + i))
                if (i + 1) % every == 0 and (i + 1) // every <= per_epoch:
                    members.append({"params": params, **other})
            if progress:
                print(f"LGV epoch {epoch + 1}/{epochs}: {len(members)} models, "
                      f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    # Stacked on the host: one eager jnp.stack per leaf would compile a program each.
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack(jax.device_get(leaves))), *members)


@struct.dataclass
class _AveragedApply:
    """The mean logits of stacked variables (hashable by module, so jit caches stay warm)."""

    module: nn.Module = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        logits = jax.vmap(lambda v: self.module.apply(v, x, train=False))(variables)
        return jnp.mean(logits, axis=0)


def lgv_victim(module: nn.Module, stacked: Any, *, input_shape: tuple[int, ...],
               num_classes: int, bounds: tuple[float, float] = (0.0, 1.0)) -> Victim:  # fmt: skip
    """A victim whose logits are the mean of the members' (``stacked``: leaves ``[K, ...]``).

    Args:
      module: the members' flax module (applied with ``train=False``).
      stacked: the members' variables stacked on a leading axis (:func:`collect_lgv`'s result).
      input_shape: one input's shape.
      num_classes: the classes (checked against the members' output).
      bounds: the pixel box.

    Returns:
      A :class:`~jaxadv.models.Victim` whose logits are the mean over the ``K`` members.
    """
    leaves = jax.tree.leaves(stacked)
    if not leaves or len({np.shape(leaf)[0] for leaf in leaves if np.ndim(leaf)}) != 1:
        raise ValueError("`stacked` must hold the members' variables stacked on one leading axis.")
    victim = Victim(variables=stacked, apply_fn=_AveragedApply(module),
                    input_shape=tuple(input_shape), num_classes=int(num_classes),
                    bounds=(float(bounds[0]), float(bounds[1])))  # fmt: skip
    out = jax.eval_shape(victim.batch, jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    if out.shape != (1, num_classes):
        raise ValueError(f"`num_classes` is {num_classes} but the members return {out.shape}.")
    return victim


@struct.dataclass
class _MemberApply:
    """The logits of ONE member of stacked variables, the member drawn uniformly from ``key``."""

    module: nn.Module = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array, key: jax.Array) -> jax.Array:
        i = lgv_member_index(key, jax.tree.leaves(variables)[0].shape[0])
        member = jax.tree.map(lambda leaf: leaf[i], variables)
        return self.module.apply(member, x, train=False)


def lgv_member_index(key: jax.Array, members: int) -> jax.Array:
    """The member :func:`lgv_random_victim` applies under ``key`` (of ``members`` stacked).

    Args:
      key: the draw's key.
      members: ``K``, the number of stacked members.

    Returns:
      An ``int32[]`` in ``[0, K)``, uniform over the keys.
    """
    return jax.random.randint(key, (), 0, members)


def lgv_random_victim(module: nn.Module, stacked: Any, *, input_shape: tuple[int, ...],
                      num_classes: int,
                      bounds: tuple[float, float] = (0.0, 1.0)) -> RandomizedVictim:  # fmt: skip
    """LGV as the paper attacks with it: a randomized victim whose key draws ONE member.

    Attack it with ``attacks.with_eot(attack, samples=1)``: every step draws a fresh key, so the
    gradient of each iteration is that of one member picked uniformly at random (with
    replacement; module docstring). ``victim.with_key(key)`` is the member
    :func:`lgv_member_index` names, as a plain victim. A batch call applies one member to the
    whole batch.

    Args:
      module: the members' flax module (applied with ``train=False``).
      stacked: the members' variables stacked on a leading axis (:func:`collect_lgv`'s result).
      input_shape: one input's shape.
      num_classes: the classes (checked against the members' output).
      bounds: the pixel box.

    Returns:
      A :class:`~jaxadv.models.RandomizedVictim`.

    Raises:
      ValueError: if ``stacked`` has no common leading axis or the members do not return
        ``num_classes`` logits.
    """
    # The averaged victim's checks are the same (shapes, classes).
    lgv_victim(module, stacked, input_shape=input_shape, num_classes=num_classes, bounds=bounds)
    return RandomizedVictim(variables=stacked, apply_fn=_MemberApply(module),
                            input_shape=tuple(input_shape), num_classes=int(num_classes),
                            bounds=(float(bounds[0]), float(bounds[1])))  # fmt: skip


def lgv_surrogates(
    name: str = "cw",
    *,
    cache_dir: str | os.PathLike | None = None,
    key: jax.Array | None = None,
    epochs: int = 10,
    per_epoch: int = 4,
    learning_rate: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    base_epochs: int | None = None,
    progress: bool = True,
    form: str = "average",
) -> tuple[Victim | RandomizedVictim, dict[str, Any]]:
    """LGV surrogates of the default digits victim ``name`` (:func:`default_victim`), cached.

    SGD from the trained victim's weights on the embedded digits' training set (module
    docstring); the ``epochs · per_epoch`` collected models are returned as one averaged-logits
    victim (:func:`lgv_victim`). The first call collects (about as long as training the victim)
    and saves under the cache directory, in a folder whose name carries a fingerprint of the
    victim's checkpoint, the settings and the key; later calls restore.

    Args:
      name: the default victim's name (a :func:`default_victim` classifier).
      cache_dir: where the members are kept; default :func:`jaxadv.models.default_cache_dir`.
      key: PRNG key of the collection; default ``jax.random.key(1)``.
      epochs: SGD epochs of the collection.
      per_epoch: models collected per epoch.
      learning_rate: SGD's constant learning rate.
      momentum: SGD's momentum.
      weight_decay: SGD's weight decay.
      batch_size: mini-batch size.
      base_epochs: the training epochs of the default victim (None: its default).
      progress: print progress to stderr (of the victim's training too).
      form: ``"average"``: the averaged-logits :class:`Victim` (:func:`lgv_victim`);
        ``"random"``: the paper's one-member-per-step :class:`RandomizedVictim`
        (:func:`lgv_random_victim`, attack it with ``attacks.with_eot(attack, samples=1)``).

    Returns:
      ``(victim, info)``: info has ``name``, ``path``, ``restored``, ``seconds`` (None when
      restored), ``members``, ``test_accuracy`` (of the averaged victim, either form), ``base_path`` (the
      victim's checkpoint) and the ``settings``.
    """
    key = jax.random.key(1) if key is None else key
    check_key(key)
    if form not in ("average", "random"):
        raise ValueError(f"`form` must be 'average' or 'random'; got {form!r}.")
    base, base_info = default_victim(name, cache_dir=cache_dir, epochs=base_epochs,
                                     progress=progress)  # fmt: skip
    settings = {"epochs": epochs, "per_epoch": per_epoch, "learning_rate": learning_rate,
                "momentum": momentum, "weight_decay": weight_decay, "batch_size": batch_size}
    data = _load_default_data()
    module = classifier(name)
    digest = hashlib.sha256(json.dumps(
        {"recipe": _RECIPE_VERSION, "module": describe_module(module), "key": seed_words(key),
         "base": Path(base_info["path"]).name, **settings}, sort_keys=True).encode())
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser().resolve()
    path = root / f"lgv-{name}-e{epochs}x{per_epoch}-{digest.hexdigest()[:12]}"
    seconds = None
    with cache_lock(path):
        stacked = None
        if path.exists():
            abstract = jax.eval_shape(lambda v: collect_shape(v, epochs * per_epoch),
                                      base.variables)  # fmt: skip
            try:
                stacked = restore_tree(path, abstract, what="the LGV members of these settings")
            except ValueError as err:  # unreadable, corrupted or foreign: collect afresh below
                warnings.warn(f"jaxadv: recollecting, cannot restore {path}: {err}", stacklevel=2)
                shutil.rmtree(path, ignore_errors=True)
        if stacked is None:
            start = time.perf_counter()
            stacked = collect_lgv(module, base.variables, data.train_images, data.train_labels,
                                  key=key, progress=progress, **settings)  # fmt: skip
            seconds = time.perf_counter() - start
            _save_atomically(path, stacked)
    victim = lgv_victim(module, stacked, input_shape=base.input_shape,
                        num_classes=base.num_classes, bounds=base.bounds)  # fmt: skip
    info = {"name": name, "path": str(path), "restored": seconds is None, "seconds": seconds,
            "members": epochs * per_epoch, "base_path": base_info["path"],
            "test_accuracy": accuracy(victim, data.test_images, data.test_labels),
            "settings": settings}  # fmt: skip
    if form == "random":
        victim = lgv_random_victim(module, stacked, input_shape=base.input_shape,
                                   num_classes=base.num_classes, bounds=base.bounds)  # fmt: skip
    return victim, info


def collect_shape(variables: Any, k: int) -> Any:
    """``variables`` with every leaf repeated on a new leading axis of size ``k``."""
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (k, *np.shape(leaf))), variables)
