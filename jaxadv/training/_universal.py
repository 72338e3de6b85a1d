"""Universal adversarial perturbations: ONE ``delta`` for a whole data set.

Two forms:

* ``"deepfool"``: Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, "Universal adversarial
  perturbations", CVPR 2017, Algorithm 1. Passes over the data (shuffled each pass); for each
  image ``x_i`` that ``v`` does not fool yet, DeepFool (:func:`jaxadv.attacks.deepfool`, run by
  the driver on ``clip(x_i + v)`` with the clean prediction as its label) finds the minimal
  ``Δv_i`` that sends it across the boundary, and ``v ← P_{p,ξ}(v + Δv_i)``. A DeepFool that
  does not fool within its steps leaves ``v`` as it is (as the published code does). The paper
  stops once the fooling rate on the data reaches ``1 − δ`` (``target_fooling``, 0.8 there);
  here also after ``epochs`` passes. Classifiers only (DeepFool needs class boundaries).
* ``"sgd"``: Shafahi, Najibi, Xu, Dickerson, Davis & Goldstein, "Universal adversarial
  training", AAAI 2020, Algorithm 1: mini-batch steps on the mean loss of ``clip(x + delta)``,
  ``delta ← P(delta − step·sign(∇))`` (ℓ∞) or along ``∇/‖∇‖₂`` (ℓ2). The loss is minimised
  (library convention): classifiers ``−min(CE(f(x + δ), k(x)), loss_cap)`` (their clipped
  cross-entropy; no cap by default); saliency victims ``KL(guide ‖ s(x + δ))`` towards one guide
  map (Che et al.'s universal guide) or, without a guide, ``CC(s(x + δ), s(x))`` (pushes the map
  away from the clean one).

``P`` is the projection onto the ℓ∞ or ℓ2 ball of radius ``eps``; ``delta`` is applied as
``clip(x + delta)``, so every image's perturbation is within the budget
(:mod:`jaxadv.metrics`' ``fooling_rate``). The loop checkpoints and resumes like
:func:`~jaxadv.training.train_adversarial` (``_epochs.py``): the data order of an epoch is a
function of ``(key, epoch)``, so a resumed run ends with the same bits.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks
from jaxadv.attacks import deepfool
from jaxadv.losses import kl_loss, to_saliency_map
from jaxadv.metrics import (
    apply_universal,
    check_universal_inputs,
    is_saliency,
    map_similarity,
    universal_fooled,
)
from jaxadv.training._epochs import run_epochs
from jaxadv.transforms import normalize_by_l2_norm, sign
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_train import _digest, _epoch_order

METHODS = ("deepfool", "sgd")
NORMS = ("linf", "l2")


class UniversalPerturbation(NamedTuple):
    """What :func:`universal_perturbation` returns; histories hold one float per epoch run.

    Attributes:
      delta: the perturbation, the shape of one example, inside the ``eps`` ball.
      fooling_rate: the fooling rate on the training images after each epoch.
      losses: per epoch: the number of images whose DeepFool step moved ``delta`` (deepfool) or
        the mean loss over the mini-batches (sgd).
    """

    delta: jax.Array
    fooling_rate: tuple[float, ...]
    losses: tuple[float, ...]


def project(delta: jax.Array, norm: str, eps: jax.Array) -> jax.Array:
    """``P_{p,ξ}``: the nearest point of the ℓ∞ / ℓ2 ball of radius ``eps``."""
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    size = jnp.sqrt(jnp.sum(delta**2))
    return delta * jnp.minimum(1.0, eps / jnp.maximum(size, 1e-30))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _deepfool_epoch(attack, norm, victim, hp, delta, images, predictions, keys, eps):
    """One pass of Algorithm 1 over ``images`` (in the given order), as one scan."""

    def visit(v, example):
        x, y, key = example
        x0 = apply_universal(x, v, victim.bounds)
        result = attack.run(victim, hp, x0, y, y, key)  # DeepFool from x + v; label k(x)
        moved = jnp.any(result.delta != 0) & result.success  # fooled by v already: delta 0
        return jnp.where(moved, project(v + result.delta, norm, eps), v), moved

    delta, moved = jax.lax.scan(visit, delta, (images, predictions, keys))
    return delta, jnp.sum(moved)


@jax.jit
def _reference(victim, images):
    """What each image's loss refers to: the clean prediction k(x), or the clean map."""
    out = victim.batch(images)
    if is_saliency(victim):
        return jax.vmap(lambda m: to_saliency_map(m, victim.output))(out)
    return jnp.argmax(out, axis=-1).astype(jnp.int32)


def _sgd_loss(victim, delta, x, reference, guide, loss_cap):
    """The minimised loss of one image (module docstring)."""
    out = victim(apply_universal(x, delta, victim.bounds))
    if not is_saliency(victim):
        ce = optax.softmax_cross_entropy_with_integer_labels(out, reference)
        return -jnp.minimum(ce, loss_cap)
    if guide is not None:
        return kl_loss(to_saliency_map(out, victim.output), guide)
    return map_similarity(victim, out[None], reference[None])[0]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _sgd_epoch(norm, has_guide, victim, delta, batches, references, guide, eps, step, loss_cap):
    """Mini-batch steps over ``batches[steps, b, ...]`` as one scan; ``(delta, mean loss)``."""
    tx = optax.chain(sign() if norm == "linf" else normalize_by_l2_norm(), optax.scale(-step))

    def mean_loss(d, x, ref):
        losses = jax.vmap(lambda xi, ri: _sgd_loss(victim, d, xi, ri,
                                                   guide if has_guide else None, loss_cap))(x, ref)
        return jnp.mean(losses)

    def visit(d, batch):
        x, ref = batch
        loss, grad = jax.value_and_grad(mean_loss)(d, x, ref)
        updates, _ = tx.update(grad, tx.init(d))  # stateless: a fresh state each step
        return project(d + updates, norm, eps), loss

    delta, losses = jax.lax.scan(visit, delta, (batches, references))
    return delta, jnp.mean(losses)


def _check_budget(name: str, value: Any) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)
            and value > 0):  # fmt: skip
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")
    return float(value)


def _victim_digest(victim: Any) -> str:
    """The victim's kind, static apply and every dynamic leaf (weights), for run records."""
    apply_fn = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(getattr(victim, "apply_fn", None)))[:200]
    return f"{type(victim).__name__} {apply_fn} sha256:{_digest(victim)}"


def universal_perturbation(
    victim: Any,
    images: Any,
    *,
    eps: float,
    key: jax.Array,
    norm: str = "linf",
    method: str = "deepfool",
    epochs: int = 10,
    target_fooling: float = 0.8,
    overshoot: float = 0.02,
    deepfool_steps: int = 10,
    deepfool_norm: str = "l2",
    step_size: float | None = None,
    batch_size: int = 32,
    loss_cap: float | None = None,
    guide: Any = None,
    cc_threshold: float = 0.5,
    checkpoint_dir: Any = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> UniversalPerturbation:
    """One perturbation ``delta`` (``‖delta‖_p ≤ eps``) that fools ``victim`` on most of
    ``images`` (module docstring).

    Args:
      victim: a classifier (``Victim``, ``Ensemble``) or, for ``method="sgd"``, a saliency
        victim.
      images: ``f32[n, *input_shape]`` inside the victim's bounds, n >= 1.
      eps: the budget ξ (> 0) in ``norm``.
      key: PRNG key of the data order (and of DeepFool's, unused, keys).
      norm: ``"linf"`` or ``"l2"``, the ball ``delta`` is projected onto.
      method: ``"deepfool"`` (Algorithm 1 of Moosavi-Dezfooli et al.) or ``"sgd"`` (Shafahi et
        al.).
      epochs: the most passes over the data.
      target_fooling: stop once the fooling rate on ``images`` reaches it (the paper's
        ``1 − δ``, 0.8); 1.0 runs every epoch unless all are fooled.
      overshoot, deepfool_steps, deepfool_norm: DeepFool's ``overshoot`` (0.02), steps (10, the
        published code's ``max_iter_df``) and norm (ℓ2, the paper's ``argmin ‖r‖₂`` for both
        budgets).
      step_size: sgd's step (default ``eps / 10``).
      batch_size: sgd's mini-batch (capped at n; the remainder of an epoch is skipped).
      loss_cap: sgd on classifiers: Shafahi et al.'s clip β of the cross-entropy (None: none).
      guide: sgd on saliency victims: ONE target map ``[h', w']`` for every image (the
        universal guide); None: push every map away from its clean map.
      cc_threshold: saliency victims: a map is fooled when its CC with the clean map is below.
      checkpoint_dir, checkpoint_every, resume, progress: as
        :func:`~jaxadv.training.train_adversarial`.

    Returns:
      :class:`UniversalPerturbation` ``(delta, fooling_rate, losses)``.

    Raises:
      ValueError: naming the argument, for an empty data set, a budget that is not a finite
        positive number, an unknown norm or method, DeepFool on a saliency victim, or a
        checkpoint of another configuration.
    """
    check_key(key)
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_choice("method", method, METHODS)
    eps = _check_budget("eps", eps)
    if not (isinstance(target_fooling, (int, float)) and 0 < target_fooling <= 1):
        raise ValueError(f"`target_fooling` must lie in (0, 1]; got {target_fooling!r}.")
    images = check_universal_inputs(victim, None, images)
    _checks.check_in_bounds("images", images, victim.bounds)
    n = images.shape[0]
    saliency = is_saliency(victim)
    if method == "deepfool" and saliency:
        raise ValueError("`method` 'deepfool' needs a classifier (class boundaries); use "
                         "method='sgd' for a saliency victim.")  # fmt: skip
    step = eps / 10 if step_size is None else _check_budget("step_size", step_size)
    cap = np.inf if loss_cap is None else _check_budget("loss_cap", loss_cap)
    _checks.check_positive_int("batch_size", batch_size)
    batch_size = min(int(batch_size), n)
    if guide is not None:
        if not saliency:
            raise ValueError("`guide` is a saliency map: it needs a saliency victim.")
        guide = np.asarray(guide, np.float32)
        if guide.shape != tuple(victim.map_shape):
            raise ValueError(f"`guide` must be one map of shape {tuple(victim.map_shape)}; got "
                             f"{guide.shape}.")  # fmt: skip
    reference = _reference(victim, images)
    reference = np.asarray(reference)
    attack = None
    if method == "deepfool":
        attack = deepfool(norm=deepfool_norm, steps=deepfool_steps)
        hp = attack.hparams(overshoot=overshoot)
    key_words = seed_words(key)
    step_key = jax.random.split(key)[1]
    eps32, step32, cap32 = np.float32(eps), np.float32(step), np.float32(cap)

    def epoch_fn(state, epoch):
        delta = state["params"]["delta"]
        order = _epoch_order(key_words, epoch, n)
        if method == "deepfool":
            keys = jax.random.split(jax.random.fold_in(step_key, epoch), n)
            delta, moved = _deepfool_epoch(attack, norm, victim, hp, delta, images[order],
                                           reference[order], keys, eps32)  # fmt: skip
            loss = float(moved)
        else:
            steps = n // batch_size
            idx = order[: steps * batch_size].reshape(steps, batch_size)
            delta, loss = _sgd_epoch(norm, guide is not None, victim, delta, images[idx],
                                     reference[idx], guide, eps32, step32, cap32)  # fmt: skip
        rate = float(np.mean(universal_fooled(victim, delta, images, cc_threshold=cc_threshold)))
        return {"params": {"delta": delta}, "collections": {}}, float(loss), {"fooling": rate}

    config = {
        "victim": _victim_digest(victim),
        "data": f"n={n} sha256:{_digest((images,))}",
        "method": method, "norm": norm, "eps": eps, "key": key_words,
        "target_fooling": float(target_fooling),
        "deepfool": [float(overshoot), int(deepfool_steps), deepfool_norm],
        "sgd": [step, batch_size, None if loss_cap is None else float(cap)],
        "guide": None if guide is None else _digest((guide,)),
        "cc_threshold": float(cc_threshold),
    }  # fmt: skip
    state = {"params": {"delta": jnp.zeros(victim.input_shape, jnp.float32)}, "collections": {}}
    state, losses, history = run_epochs(
        config, state, epochs, epoch_fn, checkpoint_dir=checkpoint_dir, resume=resume,
        checkpoint_every=checkpoint_every, progress=progress,
        stop=lambda h: h["fooling"][-1] >= target_fooling, writer="universal perturbation run",
    )  # fmt: skip
    return UniversalPerturbation(
        jnp.asarray(state["params"]["delta"]), tuple(history.get("fooling", ())), tuple(losses)
    )
