"""Training an adversarial patch (Brown, Mané, Roy, Abadi & Gilmer, "Adversarial Patch", 2017).

The patch ``p`` maximises the expected log-probability of the target class over images and
transformations, ``E_{x, t}[log Pr(ŷ | A(p, x, t))]`` (their Eq. 2): here minimised as the mean
targeted cross-entropy over a mini-batch, each image with its own random placement, scale and
rotation (:func:`jaxadv.image.sample_placement`, pasted by :func:`jaxadv.image.apply_patch`).
Each step is ``p ← clip(p + Adam(∇))`` into the pixel box (the optimiser and its step size are
ours: the paper does not give them). Epochs visit the images in an order drawn from ``(key,
epoch)`` and every placement key is ``fold_in(key, epoch, step)``, so a run resumed from a
checkpoint (``_epochs.py``) ends with the same bits as an uninterrupted one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks
from jaxadv.image import apply_patch, check_placement_ranges, sample_placement
from jaxadv.metrics import check_universal_inputs, is_saliency
from jaxadv.training._epochs import run_epochs
from jaxadv.training._keys import check_key, seed_words
from jaxadv.training._saliency_train import _digest, _epoch_order
from jaxadv.training._universal import _victim_digest


class PatchTraining(NamedTuple):
    """What :func:`adversarial_patch` returns; one float per epoch run.

    Attributes:
      patch: ``f32[ph, pw, c]`` inside the victim's bounds.
      losses: mean targeted cross-entropy of each epoch.
      success: fraction of the epoch's patched training images classified as the target.
    """

    patch: jax.Array
    losses: tuple[float, ...]
    success: tuple[float, ...]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _patch_epoch(scale_range, max_angle, learning_rate, victim, patch, opt_state, batches,
                 target, key, mask):  # fmt: skip
    """Adam steps over ``batches[steps, b, ...]`` as one scan; ``(patch, opt_state, loss,
    hits)``."""
    tx = optax.adam(learning_rate)
    low, high = victim.bounds

    def batch_loss(p, x, keys):
        def one(xi, k):
            where = sample_placement(k, xi.shape, p.shape, scale_range, max_angle)
            return apply_patch(xi, p, center=where.center, scale=where.scale,
                               angle=where.angle, mask=mask)  # fmt: skip

        logits = victim.batch(jax.vmap(one)(x, keys))
        labels = jnp.full(x.shape[:1], target)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, jnp.sum(jnp.argmax(logits, axis=-1) == target)

    def visit(carry, batch):
        p, state = carry
        x, step = batch
        keys = jax.random.split(jax.random.fold_in(key, step), x.shape[0])
        (loss, hits), grad = jax.value_and_grad(batch_loss, has_aux=True)(p, x, keys)
        updates, state = tx.update(grad, state, p)
        return (jnp.clip(optax.apply_updates(p, updates), low, high), state), (loss, hits)

    steps = jnp.arange(batches.shape[0])
    (patch, opt_state), (losses, hits) = jax.lax.scan(visit, (patch, opt_state), (batches, steps))
    return patch, opt_state, jnp.mean(losses), jnp.sum(hits)


def adversarial_patch(
    victim: Any,
    images: Any,
    *,
    target: int,
    key: jax.Array,
    patch_shape: tuple[int, int] = (8, 8),
    scale_range: tuple[float, float] = (1.0, 1.0),
    max_angle: float = 0.0,
    mask: Any = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    checkpoint_dir: Any = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> PatchTraining:
    """Trains a targeted adversarial patch with expectation over placement, scale and rotation.

    Args:
      victim: a classifier (``Victim``, ``Ensemble``).
      images: ``f32[n, h, w, c]`` inside the victim's bounds, n >= 1.
      target: the class every patched image should be given.
      key: PRNG key of the patch's initialisation (uniform in the bounds), the data order and
        the placements.
      patch_shape: ``(ph, pw)``; the patch at the largest scale must fit in the image.
      scale_range: ``(low, high)`` of the uniform scale (pasted side / patch side).
      max_angle: rotations are uniform in ``[-max_angle, max_angle]`` radians (Brown et al.:
        up to 22.5° = π/8 in their whitebox experiments).
      mask: optional ``[ph, pw]`` mask of the patch's shape (e.g. a disc); None: square.
      epochs: passes over the data.
      batch_size: images per step (capped at n; the remainder of an epoch is skipped).
      learning_rate: Adam's step size on pixels in the bounds.
      checkpoint_dir, checkpoint_every, resume, progress: as
        :func:`~jaxadv.training.train_adversarial`.

    Returns:
      :class:`PatchTraining` ``(patch, losses, success)``.

    Raises:
      ValueError: naming the argument, for a patch that does not fit the image at the largest
        scale, bad ranges, an empty data set, a target that is not a class, or a checkpoint of
        another configuration.
    """
    check_key(key)
    if is_saliency(victim):
        raise ValueError("`victim` must be a classifier: the patch is trained towards a class.")
    images = check_universal_inputs(victim, None, images)
    _checks.check_in_bounds("images", images, victim.bounds)
    _checks.check_labels("target", np.asarray([target]), victim.num_classes)
    shape = tuple(int(s) for s in patch_shape) + (images.shape[-1],)
    if len(shape) != 3:
        raise ValueError(f"`patch_shape` must be (height, width); got {patch_shape!r}.")
    check_placement_ranges(scale_range, max_angle, shape, images.shape[1:])
    _checks.check_positive("learning_rate", learning_rate)
    _checks.check_positive_int("batch_size", batch_size)
    if mask is not None:
        mask = np.asarray(mask, np.float32)
        if mask.shape != shape[:2]:
            raise ValueError(f"`mask` must have shape {shape[:2]}; got {mask.shape}.")
    n = images.shape[0]
    batch_size = min(int(batch_size), n)
    steps = n // batch_size
    scale_range = tuple(float(s) for s in scale_range)
    key_words = seed_words(key)
    init_key, step_key = jax.random.split(key)
    low, high = victim.bounds
    patch = jax.random.uniform(init_key, shape, jnp.float32, low, high)
    opt_state = optax.adam(learning_rate).init(patch)
    # The optimiser state is checkpointed as its list of leaves (orbax keeps no NamedTuples).
    opt_leaves, opt_def = jax.tree.flatten(opt_state)

    def epoch_fn(state, epoch):
        order = _epoch_order(key_words, epoch, n)[: steps * batch_size]
        batches = images[order.reshape(steps, batch_size)]
        patch, opt_state, loss, hits = _patch_epoch(
            scale_range, float(max_angle), float(learning_rate), victim,
            state["params"]["patch"], jax.tree.unflatten(opt_def, state["params"]["opt_state"]),
            batches,
            jnp.int32(target), jax.random.fold_in(step_key, epoch), mask,
        )  # fmt: skip
        new = {"params": {"patch": patch, "opt_state": jax.tree.leaves(opt_state)},
               "collections": {}}  # fmt: skip
        return new, float(loss), {"success": float(hits) / (steps * batch_size)}

    config = {
        "victim": _victim_digest(victim),
        "data": f"n={n} sha256:{_digest((images,))}",
        "target": int(target), "key": key_words, "patch_shape": list(shape),
        "scale_range": list(scale_range), "max_angle": float(max_angle),
        "mask": None if mask is None else _digest((mask,)),
        "batch_size": batch_size, "learning_rate": float(learning_rate), "optimizer": "optax.adam",
    }  # fmt: skip
    state = {"params": {"patch": patch, "opt_state": opt_leaves}, "collections": {}}
    state, losses, history = run_epochs(
        config, state, epochs, epoch_fn, checkpoint_dir=checkpoint_dir, resume=resume,
        checkpoint_every=checkpoint_every, progress=progress, writer="adversarial patch run",
    )  # fmt: skip
    return PatchTraining(
        jnp.asarray(state["params"]["patch"]), tuple(losses), tuple(history.get("success", ()))
    )
