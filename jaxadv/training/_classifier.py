"""Training small classifier victims, and measuring their accuracy.

A jitted train step driven by a host loop over mini-batches: each step is one compiled program and
the loop around it costs nothing next to the model's forward+backward pass. (The attacks' compiled
loops are a different matter: see ``jaxadv/_compile.py``.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks, _compile
from jaxadv.models import Victim
from jaxadv.training._keys import check_key


def _validate_data(images: Any, labels: Any, num_classes: int | None = None) -> None:
    shape = np.shape(images)
    if len(shape) not in (4, 5):
        raise ValueError(
            "`images` must be a batch of images (n, height, width, channels) or of videos "
            f"(n, frames, height, width, channels); got shape {shape}."
        )
    if not np.issubdtype(np.asarray(images).dtype, np.floating):
        raise ValueError(f"`images` must hold floats; got dtype {np.asarray(images).dtype}.")
    if np.shape(labels) != shape[:1]:
        raise ValueError(
            f"`labels` must have shape ({shape[0]},), one class index per image; got shape "
            f"{np.shape(labels)}."
        )
    if shape[0] == 0:
        raise ValueError("`images` must hold at least one example; got 0.")
    _checks.check_finite("images", images)
    if num_classes is not None:
        _checks.check_labels("labels", labels, num_classes)

def _num_classes(module: nn.Module, example_shape: tuple[int, ...]) -> int:
    x = jax.ShapeDtypeStruct((1,) + tuple(example_shape), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    logits = jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, x)
    if len(logits.shape) != 2:
        raise ValueError(
            f"`module` must map a batch (b, h, w, c) to logits (b, num_classes); "
            f"{type(module).__name__} returned shape {logits.shape}."
        )
    return int(logits.shape[1])

@dataclasses.dataclass(frozen=True)
class random_shift:
    """Augmentation: translate each image by up to ``max_pixels`` along each axis, zero-filled.

    ``random_shift(m)`` is a function ``(key, images[b, h, w, c]) -> images`` for
    ``train_classifier(augment=)``. Small shifts are the classic augmentation for digits (LeCun et
    al. 1998, "Gradient-based learning applied to document recognition"): they keep the class and
    curb overfitting of a few thousand training images. It compares equal to another
    ``random_shift`` of the same size, so repeated trainings reuse one compiled step.

    Attributes:
      max_pixels: largest shift, an integer >= 1.
    """

    max_pixels: int

    def __post_init__(self):
        _checks.check_positive_int("max_pixels", self.max_pixels)

    def __call__(self, key: jax.Array, images: jax.Array) -> jax.Array:
        b, h, w, c = images.shape
        m = self.max_pixels
        padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
        offsets = jax.random.randint(key, (b, 2), 0, 2 * m + 1)

        def crop(image, offset):
            return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

        return jax.vmap(crop)(padded, offsets)

@functools.lru_cache(maxsize=8)
def _make_train_step(module: nn.Module, augment):
    """The compiled init and step, cached: repeated trainings of a module compile once.

    The step size is an argument of the step (``inject_hyperparams``), so neither its value nor
    its schedule is compiled in.
    """
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    def loss_fn(params, other, x, y, dropout_key):
        if augment is not None:
            dropout_key, augment_key = jax.random.split(dropout_key)
            x = augment(augment_key, x)
        out, updates = module.apply(
            {"params": params, **other},
            x,
            train=True,
            rngs={"dropout": dropout_key},
            mutable=list(other),  # BatchNorm's running statistics, if any
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
        correct = jnp.sum(jnp.argmax(out, axis=-1) == y)
        return loss, (updates, correct)

    # CPU: XLA's own convolution kernels (2-4x faster gradients of these nets than YNNPACK's).
    @_compile.jit
    def step(params, other, opt_state, x, y, dropout_key, learning_rate):
        (loss, (other, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, other, x, y, dropout_key
        )
        opt_state.hyperparams["learning_rate"] = learning_rate
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), other, opt_state, loss, correct

    return init_fn(module, tx), step


def init_fn(module: nn.Module, tx: optax.GradientTransformation):
    """``init(key, x) -> (params, other collections, optimiser state)``, jitted: an eager init
    compiles each initializer op on its own (seconds on CPU)."""

    @jax.jit
    def init(key, x):
        variables = module.init(key, x, train=False)
        params = variables.pop("params")
        return params, variables, tx.init(params)

    return init

def train_classifier(
    module: nn.Module,
    images: Any,
    labels: Any,
    *,
    key: jax.Array,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    cosine_decay: bool = True,
    progress: bool = True,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> dict[str, Any]:
    """Trains a classifier with Adam on softmax cross-entropy and returns its variables.

    Each epoch visits a fresh permutation of the data in mini-batches of ``batch_size`` (the
    remainder that does not fill a batch is skipped that epoch, so one program is compiled). The
    same ``key`` gives bit-identical variables.

    Args:
      module: a Flax linen classifier, ``__call__(x, train)`` from ``[b, h, w, c]`` (or videos
        ``[b, T, h, w, c]``) to logits.
        Modules with ``batch_stats`` (BatchNorm) are trained with ``mutable=["batch_stats"]``;
        modules with dropout get a fresh ``"dropout"`` rng each step.
      images: ``f32[n, h, w, c]``, or a batch of videos ``f32[n, T, h, w, c]``, finite.
      labels: ``int[n]`` class indices in ``[0, num_classes)``.
      key: PRNG key for the initialisation, the shuffles and dropout.
      epochs: passes over the data.
      batch_size: examples per step (capped at ``n``).
      learning_rate: Adam's step size (the peak, with ``cosine_decay``).
      cosine_decay: decay the step size to 0 over the run along a half cosine (Loshchilov &
        Hutter 2017, "SGDR"), which steadies the final weights; else keep it constant.
      progress: print one line per epoch (loss, training accuracy, seconds) to stderr.
      augment: optional ``(key, images) -> images`` applied to each mini-batch inside the
        compiled step (e.g. :func:`random_shift`); it gets a fresh key every step.

    Returns:
      The variables dict, ``{"params": ...}`` plus ``"batch_stats"`` for BatchNorm models.
    """
    check_key(key)
    _checks.check_positive_int("epochs", epochs)
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_positive("learning_rate", learning_rate)
    _validate_data(images, labels)
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    n = images.shape[0]
    _checks.check_labels("labels", labels, _num_classes(module, images.shape[1:]))
    labels = labels.astype(np.int32)
    batch_size = min(int(batch_size), n)
    steps = n // batch_size
    total_steps = epochs * steps

    def step_size(t: int) -> np.float32:
        if not cosine_decay:
            return np.float32(learning_rate)
        return np.float32(0.5 * learning_rate * (1.0 + math.cos(math.pi * t / total_steps)))

    try:
        init, step = _make_train_step(module, augment)
    except TypeError:  # an unhashable module or augmentation: build an uncached step
        init, step = _make_train_step.__wrapped__(module, augment)
    with _compile.fast_threefry():
        init_key, shuffle_key, dropout_key = jax.random.split(key, 3)
        params, other, opt_state = init(init_key, images[:1])

        for epoch in range(epochs):
            start = time.perf_counter()
            order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
            epoch_dropout = jax.random.fold_in(dropout_key, epoch)
            losses, corrects = [], []  # device scalars: read once per epoch, no per-step sync
            for i in range(steps):
                idx = order[i * batch_size : (i + 1) * batch_size]
                params, other, opt_state, loss, correct = step(
                    params,
                    other,
                    opt_state,
                    images[idx],
                    labels[idx],
                    jax.random.fold_in(epoch_dropout, i),
                    step_size(epoch * steps + i),
                )
                losses.append(loss)
                corrects.append(correct)
            if progress:
                mean_loss = float(np.mean(jax.device_get(losses)))
                train_accuracy = int(np.sum(jax.device_get(corrects))) / (steps * batch_size)
                print(
                    f"epoch {epoch + 1}/{epochs}  loss {mean_loss:.4f}  "
                    f"train acc {train_accuracy:.2%}  "
                    f"{time.perf_counter() - start:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )

    return {"params": params, **other}

@functools.cache
def _batch_logits():
    # Built on first use: choosing the compiler options initialises the JAX backend.
    return _compile.jit(lambda victim, x: victim.batch(x))

def accuracy(victim: Victim, images: Any, labels: Any, batch_size: int = 512) -> float:
    """Fraction of ``images`` that ``victim`` classifies as ``labels`` (top-1, inference mode).

    Evaluates in batches of ``batch_size``; the last batch is zero-padded to the same size, so one
    program is compiled per victim and batch size.

    Args:
      victim: the classifier.
      images: ``f32[n, *victim.input_shape]``, finite.
      labels: ``int[n]`` class indices in ``[0, victim.num_classes)``.
      batch_size: examples per call.

    Returns:
      The accuracy as a Python float in [0, 1].
    """
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_batch_shape("images", np.shape(images), victim.input_shape)
    _validate_data(images, labels, victim.num_classes)
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    n = images.shape[0]
    batch_size = min(int(batch_size), n)
    correct = 0
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        m = x.shape[0]
        if m < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - m,) + x.shape[1:], x.dtype)])
        pred = np.asarray(jnp.argmax(_batch_logits()(victim, x), axis=-1))[:m]
        correct += int(np.sum(pred == labels[start : start + m]))
    return correct / n
