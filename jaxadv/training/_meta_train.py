"""Meta-training a meta attacker on gradient tasks: Reptile (default) or first-order MAML.

Du, Zhang, Zhou, Yang & Feng, "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020,
Sec. 3.2 / Algorithm 1 (thesis Sec. 2.3.2). Each meta-step samples ``tasks_per_step`` tasks
(surrogates) and a batch of ``(image, gradient)`` pairs from each; per task, ``inner_steps`` steps
of the inner optimiser (Adam, step ``inner_lr``, a fresh state per task) on the MSE between the
meta attacker's output and the gradients adapt ``θ`` to ``θ_i``. The inner loop is one jitted
``fori_loop``, vmapped over the sampled tasks. The outer update:

* ``"reptile"`` (Nichol, Achiam & Schulman 2018; the published code's default):
  ``θ ← θ + ε·mean_i(θ_i − θ)`` with ``ε = outer_lr`` (the code's 1: ``θ ← mean_i θ_i``).
* ``"maml"``: **first-order** MAML (Finn, Abbeel & Levine 2017, Sec. 5.2): the batch is split
  into a support half (the inner steps) and a query half; the meta-gradient is the query loss's
  gradient at ``θ_i`` (the second-order term through the inner steps is dropped), and
  ``θ ← θ − outer_lr·mean_i ∇L_query(θ_i)``.

Only ``params`` are trained; other collections (BatchNorm statistics) are kept as given.
Resumable bit for bit: the tasks and batches of step ``s`` are drawn from ``(key, s)`` alone and
no optimiser state outlives a step, so a run resumed from any checkpoint equals an uninterrupted
one. A checkpoint of another configuration is refused (``check_resumable``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks
from jaxadv.models import cache_lock, describe_module, save_step
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._meta_data import GradientTask, check_tasks
from jaxadv.training._saliency_checkpoint import checkpoint_path, open_run

META_METHODS = ("reptile", "maml")


class MetaTraining(NamedTuple):
    """What :func:`meta_train` returns.

    Attributes:
      variables: the meta-trained Flax variables.
      losses: per meta-step, the mean over the sampled tasks of the MSE at ``θ`` before the inner
        steps (Reptile: on the task's batch; MAML: on its query half), steps read back from a
        checkpoint included.
    """

    variables: dict[str, Any]
    losses: tuple[float, ...]


def predict_gradients(module: nn.Module, variables: Any, images: jax.Array) -> jax.Array:
    """The meta attacker's output for a batch ``[b, h, w, c]``: ``module`` maps ONE image.

    Args:
      module: the meta attacker (e.g. :class:`~jaxadv.models.MetaAttacker`), applied per image.
      variables: its variables dict.
      images: ``[b, h, w, c]`` images.

    Returns:
      ``[b, ...]``: the module's output (a predicted gradient) for each image, vmapped.
    """
    return jax.vmap(lambda x: module.apply(variables, x))(images)


def _mse(module, params, collections, x, g):
    return jnp.mean((predict_gradients(module, {"params": params, **collections}, x) - g) ** 2)


@functools.lru_cache(maxsize=8)
def _make_meta_step(module: nn.Module, method: str, inner_steps: int, factory: Callable):
    """The jitted meta-step ``(params, collections, x, g, inner_lr, outer_lr) -> (params, loss)``
    for ``x, g`` of shape ``[tasks, batch, h, w, c]``."""
    grad_fn = jax.value_and_grad(lambda p, c, x, g: _mse(module, p, c, x, g))

    def adapt(params, collections, x, g, inner_lr):
        tx = factory(learning_rate=inner_lr)

        def body(_, carry):
            p, state = carry
            _, grads = grad_fn(p, collections, x, g)
            updates, state = tx.update(grads, state, p)
            return optax.apply_updates(p, updates), state

        return jax.lax.fori_loop(0, inner_steps, body, (params, tx.init(params)))[0]

    def step(params, collections, x, g, inner_lr, outer_lr):
        if method == "reptile":
            adapted = jax.vmap(adapt, in_axes=(None, None, 0, 0, None))(
                params, collections, x, g, inner_lr
            )
            loss = jnp.mean(jax.vmap(lambda x, g: _mse(module, params, collections, x, g))(x, g))
            new = jax.tree.map(lambda p, a: p + outer_lr * jnp.mean(a - p, axis=0), params, adapted)
            return new, loss
        half = x.shape[1] // 2
        support, query = (x[:, :half], g[:, :half]), (x[:, half:], g[:, half:])
        adapted = jax.vmap(adapt, in_axes=(None, None, 0, 0, None))(
            params, collections, *support, inner_lr
        )
        loss = jnp.mean(jax.vmap(lambda x, g: _mse(module, params, collections, x, g))(*query))
        meta_grads = jax.vmap(lambda p, x, g: grad_fn(p, collections, x, g)[1])(adapted, *query)
        new = jax.tree.map(lambda p, m: p - outer_lr * jnp.mean(m, axis=0), params, meta_grads)
        return new, loss

    return jax.jit(step)


def _draw(key_words: list[int], step: int, sizes: list[int], tasks_per_step: int, batch: int):
    """The task indices and per-task example indices of meta-step ``step`` (from the key only)."""
    rng = np.random.default_rng([*key_words, step])
    chosen = rng.choice(len(sizes), tasks_per_step, replace=tasks_per_step > len(sizes))
    rows = [rng.choice(sizes[t], batch, replace=batch > sizes[t]) for t in chosen]
    return chosen, rows


def _digest(tasks: list[GradientTask]) -> str:
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(task.name.encode())
        for array in (task.images, task.gradients):
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()[:16]


def meta_train(
    module: nn.Module,
    variables: Any,
    tasks: list[GradientTask],
    *,
    key: jax.Array,
    steps: int,
    batch_size: int = 16,
    method: str = "reptile",
    inner_steps: int = 5,
    inner_lr: float = 1e-2,
    outer_lr: float = 1.0,
    tasks_per_step: int = 3,
    inner_optimizer: Callable[..., optax.GradientTransformation] = optax.adam,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool = True,
) -> MetaTraining:
    """Meta-trains a meta attacker (module docstring) on gradient tasks.

    Args:
      module: a Flax module mapping ONE image ``[h, w, c]`` to a gradient estimate of the same
        shape (``jaxadv.models.MetaAttacker``).
      variables: its initial variables (a dict with ``params``).
      tasks: :class:`GradientTask` list (one per surrogate), all of one image shape.
      key: PRNG key of the task and batch draws.
      steps: total meta-steps, counting those already in a resumed checkpoint.
      batch_size: pairs drawn per task and meta-step (MAML: support and query halves; >= 2).
      method: ``"reptile"`` or ``"maml"`` (first-order).
      inner_steps: inner optimiser steps per task (the paper's 5).
      inner_lr: the inner optimiser's step size (the paper's Adam 1e-2).
      outer_lr: Reptile's ε (the published 1) or MAML's outer SGD step.
      tasks_per_step: tasks sampled per meta-step (the paper's 3; with replacement only when
        there are fewer tasks).
      inner_optimizer: an optax factory taking ``learning_rate`` (``optax.adam``; ``optax.sgd``).
      checkpoint_dir: orbax checkpoints of the run (the last two kept); None: none.
      checkpoint_every: save every this many steps (the last step is always saved).
      resume: continue from the latest checkpoint in ``checkpoint_dir``; without it a directory
        holding checkpoints is refused.
      progress: print about ten progress lines (loss, elapsed, ETA) to stderr.

    Returns:
      :class:`MetaTraining` ``(variables, losses)``.
    """
    check_key(key)
    _checks.check_choice("method", method, META_METHODS)
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("inner_steps", inner_steps), ("tasks_per_step", tasks_per_step),
                        ("checkpoint_every", checkpoint_every)):  # fmt: skip
        _checks.check_positive_int(name, value)
    _checks.check_positive("inner_lr", inner_lr)
    _checks.check_positive("outer_lr", outer_lr)
    if method == "maml" and batch_size < 2:
        raise ValueError(f"`batch_size` must be >= 2 for MAML (support and query); got {batch_size}.")
    if not callable(inner_optimizer):
        raise ValueError(f"`inner_optimizer` must be an optax factory; got {inner_optimizer!r}.")
    tasks = check_tasks("tasks", tasks)
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError("`variables` must be a Flax variables dict with a 'params' collection; "
                         f"got {type(variables).__name__}.")  # fmt: skip
    shape = tuple(tasks[0].images.shape[1:])
    out = jax.eval_shape(lambda v, x: predict_gradients(module, v, x), dict(variables),
                         jax.ShapeDtypeStruct((1, *shape), jnp.float32))  # fmt: skip
    if tuple(out.shape[1:]) != shape:
        raise ValueError(f"`module` must map an image {shape} to a gradient of the same shape; "
                         f"it returns {tuple(out.shape[1:])}.")  # fmt: skip

    params = variables["params"]
    collections = {k: v for k, v in variables.items() if k != "params"}
    state = {"params": params, "collections": collections}
    try:
        step_fn = _make_meta_step(module, method, int(inner_steps), inner_optimizer)
    except TypeError:  # an unhashable module
        step_fn = _make_meta_step.__wrapped__(module, method, int(inner_steps), inner_optimizer)
    key_words = seed_words(key)
    config = {
        "model": describe_module(module), "method": method, "inner_steps": int(inner_steps),
        "inner_lr": float(inner_lr), "outer_lr": float(outer_lr),
        "tasks_per_step": int(tasks_per_step), "batch_size": int(batch_size),
        "inner_optimizer": f"{getattr(inner_optimizer, '__module__', '?')}."
                           f"{getattr(inner_optimizer, '__qualname__', repr(inner_optimizer))}",
        "key": key_words, "tasks": [t.name for t in tasks], "data": f"sha256:{_digest(tasks)}",
    }  # fmt: skip
    sizes = [len(t.images) for t in tasks]
    lrs = (np.float32(inner_lr), np.float32(outer_lr))

    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        checkpoint_path(checkpoint_dir)
    )
    with lock:
        manager, losses, first = None, [], 0
        if checkpoint_dir is not None:
            manager, state, losses, first = open_run(
                checkpoint_dir, resume, steps, config, state, progress,
                unit="step", writer="meta-training",
            )  # fmt: skip
        report = max(1, steps // 10)
        began, pending = time.perf_counter(), []
        try:
            for s in range(first, steps):
                chosen, rows = _draw(key_words, s, sizes, tasks_per_step, batch_size)
                x = np.stack([tasks[t].images[r] for t, r in zip(chosen, rows)])
                g = np.stack([tasks[t].gradients[r] for t, r in zip(chosen, rows)])
                p, loss = step_fn(state["params"], state["collections"], x, g, *lrs)
                state = {"params": p, "collections": state["collections"]}
                pending.append(loss)  # device scalars: read at the next report
                done = s + 1
                if done % checkpoint_every == 0 or done == steps or done % report == 0:
                    losses += [float(v) for v in jax.device_get(pending)]
                    pending = []
                if manager is not None and (done % checkpoint_every == 0 or done == steps):
                    save_step(manager, done, "state", state,
                              {"config": config, "step": done, "losses": losses})  # fmt: skip
                if progress and (done % report == 0 or done == steps):
                    elapsed = time.perf_counter() - began
                    eta = elapsed / (done - first) * (steps - done)
                    print(f"meta-step {done}/{steps}  loss {losses[-1]:.4f}  elapsed "
                          f"{elapsed:.1f} s  ETA {eta:.1f} s", file=sys.stderr, flush=True)
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    trained = {"params": state["params"], **state["collections"]}
    return MetaTraining(jax.tree.map(jnp.asarray, trained), tuple(losses))
