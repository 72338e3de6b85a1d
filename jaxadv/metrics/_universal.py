"""Metrics of image-agnostic perturbations: the fooling rate of a universal perturbation
(Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, "Universal adversarial perturbations", CVPR 2017)
and the targeted success of an adversarial patch (Brown et al., "Adversarial Patch", 2017).

A universal ``delta`` is applied as ``clip(x + delta, low, high)`` to every image: clipping only
moves a pixel towards ``x``, so the perturbation each image receives is no larger than
``delta`` in any ℓp norm.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.image import apply_patch, check_placement_ranges, sample_placement
from jaxadv.losses import cc_loss, to_saliency_map

_CHUNK = 256  # images per compiled evaluation


def is_saliency(victim: Any) -> bool:
    """Whether ``victim`` returns maps (a saliency victim) rather than logits.

    Args:
      victim: any victim.

    Returns:
      True when it has a ``map_shape`` (a saliency victim), False for a classifier.
    """
    return hasattr(victim, "map_shape")


def apply_universal(images: jax.Array, delta: jax.Array, bounds: tuple[float, float]):
    """``clip(x + delta)`` for every image of ``images[n, ...]`` (module docstring).

    Args:
      images: ``f32[n, *shape]``.
      delta: ``f32[*shape]``, the universal perturbation.
      bounds: ``(low, high)``, the victim's pixel box.

    Returns:
      ``f32[n, *shape]``, the perturbed images inside the box.
    """
    return jnp.clip(images + delta, bounds[0], bounds[1])


def map_similarity(victim: Any, a: jax.Array, b: jax.Array) -> jax.Array:
    """Pearson's CC between the saliency maps of a batch ``a`` and the maps ``b``.

    Args:
      victim: a saliency victim (its ``output`` kind turns raw outputs into maps).
      a: ``[n, ...]`` raw outputs of the victim.
      b: ``[n, ...]`` saliency maps to compare with.

    Returns:
      ``f32[n]``, the CC of each pair.
    """
    maps = jax.vmap(lambda m: to_saliency_map(m, victim.output))(a)
    return -jax.vmap(cc_loss)(maps, b)


@functools.partial(jax.jit, static_argnums=(3,))
def _fooled(victim, delta, images, threshold_kind, threshold):
    adversarial = apply_universal(images, delta, victim.bounds)
    clean, adv = victim.batch(images), victim.batch(adversarial)
    if threshold_kind == "cc":
        clean_maps = jax.vmap(lambda m: to_saliency_map(m, victim.output))(clean)
        return map_similarity(victim, adv, clean_maps) < threshold
    return jnp.argmax(adv, axis=-1) != jnp.argmax(clean, axis=-1)


def check_universal_inputs(victim: Any, delta: Any, images: Any) -> np.ndarray:
    """``images`` as a float32 array, after checking it against the victim and ``delta``.

    Args:
      victim: the victim whose ``input_shape`` one image must have.
      delta: a perturbation of that shape, or None (not checked).
      images: ``[n, *input_shape]`` with n >= 1, finite.

    Returns:
      ``images`` as a float32 numpy array.

    Raises:
      ValueError: naming the argument, for a wrong shape, an empty set or non-finite values.
    """
    shape = tuple(victim.input_shape)
    images = np.asarray(images, np.float32)
    if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
        raise ValueError(
            f"`images` must be a batch of the victim's examples (n, {', '.join(map(str, shape))})"
            f"; got shape {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError("`images` must hold at least one image; got an empty data set.")
    if delta is not None and tuple(np.shape(delta)) != shape:
        raise ValueError(f"`delta` must have the victim's example shape {shape}; got "
                         f"{np.shape(delta)}.")  # fmt: skip
    _checks.check_finite("images", images)
    return images


def fooled(victim: Any, delta: Any, images: Any, *, cc_threshold: float = 0.5) -> np.ndarray:
    """Which images the universal ``delta`` fools (see :func:`fooling_rate`).

    Args:
      victim: a classifier or a saliency victim.
      delta: the perturbation, the shape of one example.
      images: ``f32[n, *input_shape]`` (n >= 1).
      cc_threshold: saliency victims only: the CC below which a map counts as fooled.

    Returns:
      ``bool[n]``, one verdict per image.
    """
    images = check_universal_inputs(victim, delta, images)
    if not (isinstance(cc_threshold, (int, float, np.floating)) and -1 <= cc_threshold <= 1):
        raise ValueError(f"`cc_threshold` must be a number in [-1, 1]; got {cc_threshold!r}.")
    kind = "cc" if is_saliency(victim) else "label"
    delta = jnp.asarray(delta, jnp.float32)
    out = [
        np.asarray(_fooled(victim, delta, images[i : i + _CHUNK], kind, np.float32(cc_threshold)))
        for i in range(0, images.shape[0], _CHUNK)
    ]
    return np.concatenate(out)


def fooling_rate(victim: Any, delta: Any, images: Any, *, cc_threshold: float = 0.5) -> float:
    """The fraction of ``images`` a universal perturbation ``delta`` fools.

    Classifier (Moosavi-Dezfooli et al. 2017, §2): the predicted label changes,
    ``argmax f(clip(x + delta)) != argmax f(x)`` (the clean prediction, not the true label, is
    the reference, so no labels are needed). Saliency victim (our definition; the paper has
    none): the correlation coefficient between the adversarial and the clean saliency map falls
    below ``cc_threshold``.

    Args:
      victim: a classifier :class:`~jaxadv.models.Victim` or a saliency victim.
      delta: the perturbation, the shape of one example.
      images: ``f32[n, *input_shape]`` held-out images (n >= 1).
      cc_threshold: saliency victims only: the CC below which a map counts as fooled.

    Returns:
      The fraction in [0, 1].
    """
    return float(np.mean(fooled(victim, delta, images, cc_threshold=cc_threshold)))


@functools.partial(jax.jit, static_argnums=(6, 7))
def _patch_hits(victim, patch, images, target, keys, mask, scale_range, max_angle):
    def one(x, key):
        where = sample_placement(key, x.shape, patch.shape, scale_range, max_angle)
        return apply_patch(x, patch, center=where.center, scale=where.scale, angle=where.angle,
                           mask=mask)  # fmt: skip

    logits = victim.batch(jax.vmap(one)(images, keys))
    return jnp.argmax(logits, axis=-1) == target


def patch_success(
    victim: Any,
    patch: Any,
    images: Any,
    target: int,
    key: jax.Array,
    *,
    labels: Any = None,
    scale_range: tuple[float, float] = (1.0, 1.0),
    max_angle: float = 0.0,
    mask: Any = None,
) -> float:
    """Targeted success of an adversarial patch: the fraction of ``images`` classified as
    ``target`` once the patch is pasted at a random placement
    (:func:`jaxadv.image.sample_placement`, one draw per image from ``key``).

    With ``labels``, images whose true class is already ``target`` are left out (Brown et al.
    report success on images of other classes).

    Args:
      victim: a classifier.
      patch: ``f32[ph, pw, c]`` inside the victim's bounds.
      images: ``f32[n, *input_shape]`` held-out images (n >= 1).
      target: the class the patch aims for.
      key: PRNG key of the placements.
      labels: optional ``int[n]`` true classes (images of class ``target`` are left out).
      scale_range: ``(low, high)`` of the uniform scale, as in training.
      max_angle: rotations are uniform in ``[-max_angle, max_angle]`` radians.
      mask: optional ``[ph, pw]`` mask of the patch (None: square).

    Returns:
      The fraction of the kept images classified as ``target``; NaN when none is kept.
    """
    images = check_universal_inputs(victim, None, images)
    if is_saliency(victim):
        raise ValueError("`victim` must be a classifier: a patch's success is a target class.")
    _checks.check_key("key", key)
    _checks.check_labels("target", np.asarray([target]), victim.num_classes)
    patch = jnp.asarray(patch, jnp.float32)
    check_placement_ranges(scale_range, max_angle, patch.shape, images.shape[1:])
    scale_range = tuple(float(s) for s in scale_range)
    keep = np.ones(images.shape[0], bool)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != images.shape[:1]:
            raise ValueError(f"`labels` must have shape ({images.shape[0]},); got "
                             f"{labels.shape}.")  # fmt: skip
        keep = labels != target
    keys = jax.random.split(key, images.shape[0])
    mask = None if mask is None else jnp.asarray(mask, jnp.float32)
    hits = np.concatenate([
        np.asarray(_patch_hits(victim, patch, images[i : i + _CHUNK], jnp.int32(target),
                               keys[i : i + _CHUNK], mask, scale_range, float(max_angle)))
        for i in range(0, images.shape[0], _CHUNK)
    ])  # fmt: skip
    return float(np.mean(hits[keep])) if keep.any() else float("nan")
