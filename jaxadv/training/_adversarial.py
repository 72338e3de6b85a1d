"""Adversarial training with any attack of the library, the attack run inside the train step.

Three methods:

* ``"madry"``: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant
  to adversarial attacks", ICLR 2018: the loss is the cross-entropy on adversarial examples only
  (the inner maximisation by the attack, the outer minimisation by the optimiser). With
  :func:`~jaxadv.attacks.pgd` this is AT-PGD; with the dual-perturbation attack (labels passed as
  ``DualLabels(label, mask)`` through ``attack_labels``) it is AT-Dual of Tian, Zhou, Xu &
  Vorobeychik (the "dual-perturbation" paper, appendix C).
* ``"goodfellow"``: Goodfellow, Shlens & Szegedy, "Explaining and harnessing adversarial
  examples", ICLR 2015 (§6): ``α·CE(f(x), y) + (1 − α)·CE(f(x'), y)``, clean and adversarial
  examples mixed with α = ``clean_weight`` (their 0.5). With FGSM this is the "adversarially
  trained against FGSM" network of the smooth-adversarial-examples paper's Table 2, whose clean
  accuracy stays near the plain network's.
* ``"trades"``: Zhang et al. 2019 (``_trades.py``): ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))`` with
  ``x'`` from an attack maximising that KL (:func:`trades_attack`).

Each step is ONE compiled program: the victim is built from the current parameters, the attack
runs as ``attack.batch(victim, hp, x, attack_labels, key)`` inside the trace (the driver compiles
its fixed-trip loop into the step), its result is cut from the gradient (``stop_gradient``), and
Adam updates the parameters. The host loop over mini-batches and epochs is the classifier
trainer's (``_classifier.py``); the checkpoints are those of the saliency trainer
(``_saliency_checkpoint.py``): the data order of an epoch and every key are functions of
``(key, epoch, step)`` alone and the step size of the epoch alone, so a run resumed from a
checkpoint ends with the same bits as an uninterrupted one, and a directory written by another
configuration is refused.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks, _compile
from jaxadv.attacks import AttackBase
from jaxadv.models import TRAINING_REMEDY, cache_lock, describe_module, from_flax, save_step
from jaxadv.models import tree_differences
from jaxadv.models import restore_step_meta
from jaxadv.training._classifier import _num_classes, _validate_data, init_fn
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_checkpoint import checkpoint_path, open_run
from jaxadv.training._saliency_train import _digest, _epoch_order
from jaxadv.training._trades import trades_loss

METHODS = ("madry", "goodfellow", "trades")
# The dual-perturbation paper's budgets (appendix C): attack steps in training and in evaluation.
TRAIN_STEPS = {"linf": 10, "l2": 50}
EVAL_STEPS = {"linf": 20, "l2": 100}


class AdversarialTraining(NamedTuple):
    """What :func:`train_adversarial` returns; the histories hold one float per epoch so far
    (epochs read back from a checkpoint included).

    Attributes:
      variables: the trained Flax variables.
      losses: mean training loss of each epoch.
      clean_accuracy: training accuracy on the clean mini-batches (inference mode).
      adversarial_accuracy: training accuracy on the attack's outputs (inference mode).
    """

    variables: dict[str, Any]
    losses: tuple[float, ...]
    clean_accuracy: tuple[float, ...]
    adversarial_accuracy: tuple[float, ...]


def _start_from(variables: Any, params: Any, collections: Any) -> tuple[Any, Any]:
    """``(params, collections)`` of the given ``variables``, checked against a fresh
    initialisation's structure and shapes (a mismatch names the first difference)."""
    if not isinstance(variables, dict) or "params" not in variables:
        raise ValueError(
            "`variables` must be the module's variables, a dict with 'params' (and its other "
            f"collections); got {type(variables).__name__}."
        )
    given = {k: v for k, v in variables.items() if k != "params"}
    problems = tree_differences(
        {"params": variables["params"], **given}, {"params": params, **collections}
    )
    if problems:
        raise ValueError(
            "`variables` do not match the module's: " + "; ".join(problems[:3])
        )
    cast = lambda tree: jax.tree.map(jnp.asarray, tree)  # noqa: E731
    return cast(variables["params"]), cast(given)


def _learning_rate(base: float, drop_every: int | None, epoch: int) -> np.float32:
    """The step size of ``epoch``: ``base``, times 0.1 every ``drop_every`` epochs (the paper's
    schedule on Segment-6: 1e-3 dropped by 0.1 every 20 epochs)."""
    drops = 0 if drop_every is None else epoch // drop_every
    return np.float32(base * 0.1**drops)


@functools.lru_cache(maxsize=8)
def _make_step(module: nn.Module, attack: AttackBase, method: str, input_shape, num_classes,
               bounds, mutable: tuple):
    """The compiled train step, cached by (module, attack, method, shapes)."""
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    def apply_train(params, collections, x, dropout_key):
        variables = {"params": params, **collections}
        if not mutable:
            return module.apply(variables, x, train=True, rngs={"dropout": dropout_key}), {}
        return module.apply(
            variables, x, train=True, rngs={"dropout": dropout_key}, mutable=list(mutable)
        )

    def loss_fn(params, collections, x, x_adv, y, beta, dropout_key):
        adv_logits, updates = apply_train(params, collections, x_adv, dropout_key)
        if method == "madry":
            loss = optax.softmax_cross_entropy_with_integer_labels(adv_logits, y).mean()
        elif method == "goodfellow":  # ``beta`` carries the clean weight α
            collections = {**collections, **updates}
            clean_logits, updates = apply_train(params, collections, x, dropout_key)
            ce = optax.softmax_cross_entropy_with_integer_labels
            loss = beta * ce(clean_logits, y).mean() + (1.0 - beta) * ce(adv_logits, y).mean()
        else:
            collections = {**collections, **updates}
            clean_logits, updates = apply_train(params, collections, x, dropout_key)
            loss = trades_loss(clean_logits, adv_logits, y, beta)
        return loss, {**collections, **updates}

    @_compile.jit
    def step(params, collections, opt_state, hp, x, y, attack_labels, key, beta, learning_rate):
        attack_key, dropout_key = jax.random.split(key)
        victim = from_flax(
            module, {"params": params, **collections},
            input_shape=input_shape, num_classes=num_classes, bounds=bounds,
        )  # fmt: skip
        result = attack.batch(victim, hp, x, attack_labels, attack_key)
        x_adv = jax.lax.stop_gradient(result.x_adv)
        clean_correct = jnp.sum(jnp.argmax(victim.batch(x), axis=-1) == y)
        adv_correct = jnp.sum(jnp.argmax(result.logits, axis=-1) == y)
        (loss, collections), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, collections, x, x_adv, y, beta, dropout_key
        )
        opt_state.hyperparams["learning_rate"] = learning_rate
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, collections, opt_state, loss, clean_correct, adv_correct

    return init_fn(module, tx), step


def _check_attack(attack: Any, hp: Any) -> None:
    if not isinstance(attack, AttackBase):
        raise ValueError(
            "`attack` must be an attack of the library (a jaxadv.attacks.AttackBase, e.g. "
            f"jaxadv.attacks.pgd()); got {type(attack).__name__}."
        )
    attack.check_params(hp)  # a negative budget, say, names its field


def _check_attack_labels(attack_labels: Any, n: int) -> None:
    leaves = jax.tree.leaves(attack_labels)
    if not leaves:
        raise ValueError("`attack_labels` must hold at least one array; got an empty pytree.")
    for path, leaf in jax.tree_util.tree_flatten_with_path(attack_labels)[0]:
        shape = np.shape(leaf)
        if not shape or shape[0] != n:
            raise ValueError(
                f"`attack_labels` must have a leading example axis of length {n} (one entry "
                f"per image) in every leaf; leaf {jax.tree_util.keystr(path) or '(root)'} has "
                f"shape {shape}."
            )


def _describe_attack(attack: AttackBase) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(attack))  # no memory addresses


def train_adversarial(
    module: nn.Module,
    images: Any,
    labels: Any,
    *,
    attack: AttackBase,
    hp: Any,
    key: jax.Array,
    method: str = "madry",
    beta: float = 6.0,
    clean_weight: float = 0.5,
    attack_labels: Any = None,
    variables: Any = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    lr_drop_every: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> AdversarialTraining:
    """Trains a classifier on adversarial examples made by ``attack`` inside each train step.

    Each epoch visits a permutation of the data drawn from ``(key, epoch)`` in mini-batches of
    ``batch_size`` (the remainder that does not fill a batch is skipped that epoch, so one
    program is compiled). The attack sees the model in inference mode (``from_flax``), as an
    evaluation does; the loss is computed in training mode. The adversarial input is the
    attack's ``x_adv``: for the library's attacks the best iterate (PGD: a fooling one of highest
    loss if any, else the highest loss), where Madry et al.'s code takes the last. The optimiser
    is Adam, as in the dual-perturbation paper (1e-3 for AT-PGD and AT-Dual); its attacks take
    10 steps (ℓ∞) or 50 (ℓ2) in training.

    Args:
      module: a Flax linen classifier, ``__call__(x, train)`` from ``[b, h, w, c]`` to logits
        (as :func:`train_classifier` takes).
      images: ``f32[n, h, w, c]`` inside ``bounds``.
      labels: ``int[n]`` class indices: the targets of the training loss.
      attack: any attack of the library (an :class:`~jaxadv.attacks.AttackBase`), e.g.
        ``pgd(steps=10)`` for AT-PGD, :func:`trades_attack` for TRADES, the dual attack for
        AT-Dual.
      hp: its hyper-parameters (``attack.hparams(eps=...)``), one setting.
      key: PRNG key of the initialisation, the data order, the attacks' and dropout's keys.
      method: ``"madry"`` (loss on the attack's outputs), ``"goodfellow"`` (clean and
        adversarial losses mixed) or ``"trades"``.
      beta: TRADES' weight β of the KL term (>= 0; the paper's 6 by default); unused by the
        other methods.
      clean_weight: goodfellow's weight α in [0, 1] of the clean loss (their 0.5); unused by
        the other methods.
      attack_labels: what the attack takes as labels, a pytree whose every leaf has a leading
        example axis of length ``n``, sliced per batch like the images (e.g. ``DualLabels(labels,
        masks)``); None: ``labels``.
      variables: the module's variables to start from (fine-tuning a trained model, as the
        dual-perturbation paper fine-tunes a pretrained network); None: a fresh initialisation
        from ``key``. The optimiser state starts fresh either way.
      bounds: the pixel box of the victim the attack sees.
      epochs: total epochs, counting those already in a resumed checkpoint.
      batch_size: examples per step (capped at ``n``).
      learning_rate: Adam's step size.
      lr_drop_every: multiply the step size by 0.1 every this many epochs (None: constant).
      checkpoint_dir: directory of the orbax checkpoints (the last two saved epochs are kept);
        None trains without checkpoints.
      checkpoint_every: save every this many epochs (the last epoch is always saved).
      resume: continue from the latest checkpoint in ``checkpoint_dir``; without it a directory
        that holds checkpoints is refused.
      progress: print one line per epoch (loss, clean and adversarial training accuracy,
        seconds) to stderr.

    Returns:
      :class:`AdversarialTraining` ``(variables, losses, clean_accuracy, adversarial_accuracy)``.

    Raises:
      ValueError: for a bad argument (the message names it), or a checkpoint written by another
        configuration (the message lists what differs).
    """
    check_key(key)
    _check_attack(attack, hp)
    _checks.check_choice("method", method, METHODS)
    if not (isinstance(beta, (int, float, np.floating)) and beta >= 0):
        raise ValueError(f"`beta` must be a number >= 0; got {beta!r}.")
    if not (isinstance(clean_weight, (int, float, np.floating)) and 0 <= clean_weight <= 1):
        raise ValueError(f"`clean_weight` must be a number in [0, 1]; got {clean_weight!r}.")
    weight = {"trades": beta, "goodfellow": clean_weight}.get(method, 0.0)
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("checkpoint_every", checkpoint_every)):  # fmt: skip
        _checks.check_positive_int(name, value)
    if lr_drop_every is not None:
        _checks.check_positive_int("lr_drop_every", lr_drop_every)
    _checks.check_positive("learning_rate", learning_rate)
    _validate_data(images, labels)
    images = np.asarray(images, np.float32)
    n = images.shape[0]
    num_classes = _num_classes(module, images.shape[1:])
    _checks.check_labels("labels", labels, num_classes)
    labels = np.asarray(labels, np.int32)
    attack_labels = labels if attack_labels is None else jax.tree.map(np.asarray, attack_labels)
    _check_attack_labels(attack_labels, n)
    batch_size = min(int(batch_size), n)
    steps = n // batch_size
    bounds = (float(bounds[0]), float(bounds[1]))
    input_shape = tuple(images.shape[1:])

    key_words = seed_words(key)
    init_key, step_key = jax.random.split(key)
    abstract = jax.eval_shape(lambda k, x: module.init(k, x, train=False), init_key, images[:1])
    mutable = ("batch_stats",) if "batch_stats" in abstract else ()
    build = (module, attack, method, input_shape, num_classes, bounds, mutable)
    try:
        init, step = _make_step(*build)
    except TypeError:  # an unhashable module or attack: an uncached step
        init, step = _make_step.__wrapped__(*build)
    params, collections, opt_state = init(init_key, images[:1])
    if variables is not None:
        params, collections = _start_from(variables, params, collections)  # Adam's state: fresh
    # The attack's own checks, once, on concrete values (inside the step they see tracers).
    victim = from_flax(module, {"params": params, **collections}, input_shape=input_shape,
                       num_classes=num_classes, bounds=bounds)  # fmt: skip
    attack.check_victim(victim, hp)
    attack.check_inputs(victim, images[:batch_size],
                        jax.tree.map(lambda a: a[:batch_size], attack_labels), None)  # fmt: skip
    state = {"params": params, "collections": collections, "opt_state": opt_state}
    config = {
        "model": describe_module(module),
        "input_shape": list(input_shape),
        "bounds": list(bounds),
        "attack": _describe_attack(attack),
        "hp": {f: np.asarray(v).tolist() for f, v in zip(hp._fields, hp)},
        "method": method,
        "beta": float(beta) if method == "trades" else None,
        "optimizer": "optax.adam",
        "learning_rate": float(learning_rate),
        "lr_drop_every": lr_drop_every,
        "batch_size": batch_size,
        "key": key_words,
        "data": f"n={n} sha256:{_digest((images, labels, attack_labels))}",
        "start": None if variables is None else f"sha256:{_digest((params, collections))}",
    }
    if method == "goodfellow":  # only here, so that earlier runs' checkpoints still resume
        config["clean_weight"] = float(clean_weight)

    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        checkpoint_path(checkpoint_dir)
    )
    with lock, _compile.fast_threefry():
        manager, losses, start_epoch = None, [], 0
        history = {"clean": [], "adversarial": []}
        if checkpoint_dir is not None:
            manager, state, losses, start_epoch = open_run(
                checkpoint_dir, resume, epochs, config, state, progress
            )
            if start_epoch:
                history = restore_step_meta(manager, start_epoch, TRAINING_REMEDY)["history"]
        try:
            for epoch in range(start_epoch, epochs):
                start = time.perf_counter()
                order = _epoch_order(key_words, epoch, n)
                lr = _learning_rate(learning_rate, lr_drop_every, epoch)
                epoch_key = jax.random.fold_in(step_key, epoch)
                outs = []  # device scalars: read once per epoch, no per-step sync
                for i in range(steps):
                    idx = order[i * batch_size : (i + 1) * batch_size]
                    p, c, o, *stats = step(
                        state["params"], state["collections"], state["opt_state"], hp,
                        images[idx], labels[idx], jax.tree.map(lambda a: a[idx], attack_labels),
                        jax.random.fold_in(epoch_key, i), np.float32(weight), lr,
                    )  # fmt: skip
                    state = {"params": p, "collections": c, "opt_state": o}
                    outs.append(stats)
                loss, clean, adv = np.asarray(jax.device_get(outs), np.float64).T
                losses.append(float(np.mean(loss)))
                history["clean"].append(float(np.sum(clean)) / (steps * batch_size))
                history["adversarial"].append(float(np.sum(adv)) / (steps * batch_size))
                done = epoch + 1
                if manager is not None and (done % checkpoint_every == 0 or done == epochs):
                    meta = {"config": config, "epoch": done, "losses": losses, "history": history}
                    save_step(manager, done, "state", state, meta)
                if progress:
                    print(
                        f"epoch {done}/{epochs}  loss {losses[-1]:.4f}  "
                        f"clean acc {history['clean'][-1]:.2%}  "
                        f"adv acc {history['adversarial'][-1]:.2%}  "
                        f"{time.perf_counter() - start:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    trained = {"params": state["params"], **state["collections"]}
    return AdversarialTraining(
        jax.tree.map(jnp.asarray, trained),
        tuple(losses),
        tuple(history["clean"]),
        tuple(history["adversarial"]),
    )
