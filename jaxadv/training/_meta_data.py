"""Gradient data for meta-training a meta attacker: one task per surrogate classifier.

Du, Zhang, Zhou, Yang & Feng, "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020,
Sec. 3.2 (thesis Sec. 2.3.2): a task ``T_i`` is a classifier ``M_i`` with pairs ``(x, g)`` of an
image and the gradient of the attack's loss at it; the meta attacker learns ``x → g`` over many
classifiers so that it adapts to an unseen one with few queries. The loss is the attack's: the
C&W margin of the log-probabilities (``use_log`` of the published code; ZOO's ``f``),
``max(log p_y − max_{j≠y} log p_j, −κ)`` at the clean image.

**Which gradient.** The paper collects gradients with ZOO's coordinate-wise symmetric differences
because its tasks stand for black-box victims. On the surrogates we own the exact gradient is
available, so ``estimator="white-box"`` (the default) differentiates the loss: the same quantity
that the ZOO estimate approximates (up to an ``O(h²)`` error per coordinate and float32 round-off,
which for ``h = 1e-4`` is larger than the difference itself on flat pixels), at one backward pass
instead of ``2·d`` forward passes. ``estimator="zoo"`` computes the paper's estimate over every
coordinate (one vmapped batch of ``2·d`` probes per image) for a faithful replay.

Each gradient is then standardised (divided by its standard deviation over the image, as the
published attack does before fine-tuning the meta attacker), so that tasks of different scale
weigh alike in the MSE; ``standardize=False`` keeps the raw values.

A task is stored as a one-step orbax checkpoint (``save_step``: the arrays, and a JSON record with
the surrogate's name and the arrays' checksum) and read back verified: altered or truncated files
raise :class:`~jaxadv.models.CheckpointCorruptedError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxadv import _checks
from jaxadv.losses import cw_margin
from jaxadv.models import (
    CheckpointCorruptedError,
    Victim,
    restore_step_meta,
    restore_step_tree,
    save_step,
    step_item_metadata,
)

ESTIMATORS = ("white-box", "zoo")
_TASK_REMEDY = "Collect the task's gradients again (collect_gradients, save_gradient_task)."
_FORMAT = "jaxadv-gradient-task-1"


class GradientTask(NamedTuple):
    """One meta-training task: a surrogate's loss gradients at images.

    Attributes:
      images: ``f32[n, h, w, c]``.
      gradients: ``f32[n, h, w, c]``, the gradient of the attack's loss at each image.
      labels: ``int32[n]``, the labels the loss was taken at.
      name: the surrogate's name (e.g. ``"c4"``).
    """

    images: np.ndarray
    gradients: np.ndarray
    labels: np.ndarray
    name: str


def margin_loss(victim: Victim, kappa: float = 0.0):
    """The attack's loss of ONE image: the C&W margin of the victim's log-probabilities."""

    def loss(x, label):
        return cw_margin(jax.nn.log_softmax(victim(x)), label, kappa=kappa)

    return loss


def _zoo_gradient(loss, x, label, h):
    """ZOO's symmetric difference on every coordinate: ``[f(x + h e_i) − f(x − h e_i)] / 2h``."""
    d = x.size
    basis = jnp.eye(d, dtype=x.dtype).reshape((d,) + x.shape) * h
    probes = jnp.concatenate([x + basis, x - basis])
    values = jax.vmap(loss, in_axes=(0, None))(probes, label)
    return ((values[:d] - values[d:]) / (2 * h)).reshape(x.shape)


def _standardize(g: np.ndarray) -> np.ndarray:
    """Each gradient divided by its standard deviation (an all-zero one is kept), on the host."""
    std = g.reshape(len(g), -1).std(axis=1).reshape((-1,) + (1,) * (g.ndim - 1))
    return np.where(std > 0, g / np.where(std > 0, std, 1), g).astype(np.float32)


def collect_gradients(
    victim: Victim,
    images: Any,
    labels: Any,
    *,
    name: str,
    estimator: str = "white-box",
    standardize: bool = True,
    kappa: float = 0.0,
    h: float = 1e-4,
) -> GradientTask:
    """The task of one surrogate: the loss gradient at every image, as ONE vmapped program.

    Args:
      victim: the surrogate (white-box: its gradients are read).
      images: ``f32[n, *victim.input_shape]``.
      labels: ``int[n]``, the classes the margin is taken at (the true labels).
      name: the surrogate's name, stored with the task.
      estimator: ``"white-box"`` (exact gradient) or ``"zoo"`` (symmetric differences on every
        coordinate, the paper's data; ``2·d`` forward passes per image, mapped over the images
        16 at a time to bound memory).
      standardize: divide each gradient by its standard deviation (module docstring).
      kappa: the margin's confidence κ.
      h: ZOO's difference step (the paper's 1e-4).

    Returns:
      A :class:`GradientTask`.
    """
    if not isinstance(victim, Victim):
        raise ValueError(f"`victim` must be a jaxadv.models.Victim; got {type(victim).__name__}.")
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str; got {name!r}.")
    _checks.check_choice("estimator", estimator, ESTIMATORS)
    _checks.check_positive("h", h)
    images = np.asarray(images, np.float32)
    if images.ndim < 2 or tuple(images.shape[1:]) != tuple(victim.input_shape):
        raise ValueError(
            f"`images` must have shape (n, {', '.join(map(str, victim.input_shape))}) for this "
            f"victim; got {images.shape}."
        )
    _checks.check_labels("labels", labels, victim.num_classes)
    labels = np.asarray(labels, np.int32)
    if labels.shape != images.shape[:1]:
        raise ValueError(f"`labels` must have shape ({len(images)},); got {labels.shape}.")
    grads = _PROGRAMS[estimator](victim, images, labels, np.float32(kappa), np.float32(h))
    grads = np.asarray(grads, np.float32)
    return GradientTask(images, _standardize(grads) if standardize else grads, labels, name)


def _make_program(estimator: str):
    def one(victim, x, label, kappa, h):
        loss = margin_loss(victim, kappa)
        if estimator == "white-box":
            return jax.grad(loss)(x, label)
        return _zoo_gradient(loss, x, label, h)

    if estimator == "white-box":
        return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, None, None)))

    def zoo(victim, images, labels, kappa, h):  # 2·d probes per image: 16 images at a time
        return jax.lax.map(lambda xy: one(victim, *xy, kappa, h), (images, labels), batch_size=16)

    return jax.jit(zoo)


_PROGRAMS = {estimator: _make_program(estimator) for estimator in ESTIMATORS}


def _manager(path: Path) -> ocp.CheckpointManager:
    handlers = {"task": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(
        path, options=ocp.CheckpointManagerOptions(create=True), item_handlers=handlers
    )


def _task_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a non-empty str or os.PathLike; got {path!r}.")
    return Path(path).expanduser().resolve()


def save_gradient_task(path: str | os.PathLike, task: GradientTask) -> Path:
    """Writes ``task`` to the directory ``path`` (which must not exist); returns its path.

    Args:
      path: the directory to create (``~`` expanded); ``ValueError`` if it exists.
      task: a :class:`GradientTask` (checked as :func:`check_tasks` does).

    Returns:
      The absolute, resolved :class:`~pathlib.Path` written.
    """
    check_tasks("task", [task])
    path = _task_path(path)
    if path.exists():
        raise ValueError(f"`path` {str(path)!r} already exists; choose another or delete it.")
    tree = {"images": task.images, "gradients": task.gradients, "labels": task.labels}
    with _manager(path) as manager:
        save_step(manager, 0, "task", tree, {"format": _FORMAT, "name": task.name})
        manager.wait_until_finished()
    return path


def load_gradient_task(path: str | os.PathLike) -> GradientTask:
    """Reads a task written by :func:`save_gradient_task`, verified against its checksum.

    Args:
      path: the task's directory (``~`` expanded).

    Returns:
      The :class:`GradientTask`, its arrays as numpy arrays.

    Raises:
      ValueError: no task at ``path``.
      CheckpointCorruptedError: (a ``ValueError``) a file of it is altered, truncated or missing.
    """
    path = _task_path(path)
    if not path.is_dir():
        raise ValueError(f"`path` {str(path)!r} holds no gradient task (no such directory).")
    with _manager(path) as manager:
        if manager.latest_step() != 0:
            raise CheckpointCorruptedError(path, "it holds no step 0 (not a gradient task)",
                                           _TASK_REMEDY)  # fmt: skip
        meta = restore_step_meta(manager, 0, _TASK_REMEDY)
        if meta.get("format") != _FORMAT or not isinstance(meta.get("name"), str):
            raise CheckpointCorruptedError(path, f"its record is not a gradient task's ({meta!r:.80})",
                                           _TASK_REMEDY)  # fmt: skip
        saved = step_item_metadata(manager, 0, "task", _TASK_REMEDY)
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(saved))
        tree = restore_step_tree(manager, 0, "task", abstract, meta, _TASK_REMEDY)
    task = GradientTask(*(np.asarray(tree[k]) for k in ("images", "gradients", "labels")),
                        meta["name"])  # fmt: skip
    return task


def check_tasks(argument: str, tasks: Any) -> list[GradientTask]:
    """``tasks`` as a list, after checking that there is at least one and that their images and
    gradients have one shape per example (a ValueError naming ``argument`` otherwise)."""
    if isinstance(tasks, GradientTask) or not isinstance(tasks, (list, tuple)):
        raise ValueError(
            f"`{argument}` must be a list of GradientTask; got {type(tasks).__name__}."
        )
    if not tasks:
        raise ValueError(f"`{argument}` must hold at least one GradientTask; got an empty list.")
    shape = None
    for i, task in enumerate(tasks):
        if not isinstance(task, GradientTask):
            raise ValueError(f"`{argument}[{i}]` must be a GradientTask; got {type(task).__name__}.")
        x, g = np.shape(task.images), np.shape(task.gradients)
        if len(x) < 2 or x != g or np.shape(task.labels) != x[:1] or x[0] == 0:
            raise ValueError(
                f"`{argument}[{i}]` ({task.name!r}) must hold n >= 1 images, gradients of the same "
                f"shape and n labels; got images {x}, gradients {g}, labels "
                f"{np.shape(task.labels)}."
            )
        if shape is None:
            shape = x[1:]
        elif x[1:] != shape:
            raise ValueError(
                f"`{argument}` must hold tasks of one image shape; `{argument}[0]` has {shape} "
                f"but `{argument}[{i}]` ({task.name!r}) has {x[1:]}."
            )
    return list(tasks)
