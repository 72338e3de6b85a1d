"""Monte-Carlo counts of a base classifier under Gaussian noise: the expensive half of randomized
smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified adversarial robustness via randomized
smoothing", ICML; the ``sample_noise`` step of their PREDICT and CERTIFY).

For each image ``x`` and draw ``j`` the base classifier ``f`` labels ``x + σ·η_j`` with
``η_j ~ N(0, I)``, and the counts tally the labels. Everything runs as one compiled program:
images are mapped in groups (``lax.map``), each group's draws in chunks of a ``fori_loop`` whose
body is one network call on a batch of noisy copies (the noise vmapped over images and draws), so
``n = 100,000`` draws need the memory of one chunk, not of ``n`` copies.

Keys: draw ``j`` of image ``i`` uses ``fold_in(fold_in(key, i), j)``. An image's counts therefore
depend on ``key``, its index ``i``, ``n``, ``σ`` and the weights only: not on the other images nor
on ``batch_size`` (how the draws are chunked), up to the float rounding of the network on batches
of other shapes, which can flip the label of a draw that lands within rounding of a decision
boundary.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks, _compile
from jaxadv.models import RandomizedVictim, Victim

DEFAULT_BATCH_SIZE = 1000


def check_victim(victim: Any) -> None:
    """Randomized smoothing needs a deterministic classifier with logits: ``argmax`` of its
    outputs is the base classifier's label."""
    if isinstance(victim, RandomizedVictim):
        raise ValueError(
            "`victim` is a RandomizedVictim; randomized smoothing adds its own Gaussian noise to a "
            "deterministic base classifier: pass that classifier (a jaxadv.models.Victim)."
        )
    if not isinstance(victim, Victim):
        raise ValueError(
            "`victim` must be a classifier with logits (a jaxadv.models.Victim); got "
            f"{type(victim).__name__}"
            + (", whose outputs are saliency maps." if hasattr(victim, "map_shape") else ".")
        )
    x = jax.ShapeDtypeStruct((1,) + tuple(victim.input_shape), jnp.float32)
    out = jax.eval_shape(victim.apply_fn, victim.variables, x)
    shape = tuple(getattr(out, "shape", ()))
    if shape != (1, victim.num_classes):
        raise ValueError(
            f"`victim` must return logits [batch, {victim.num_classes}]; on a batch of one "
            f"example it returned shape {shape}."
        )


def check_images(victim: Victim, images: Any) -> None:
    _checks.check_batch_shape("images", np.shape(images), victim.input_shape)
    if np.shape(images)[0] == 0:
        raise ValueError("`images` must hold at least one example; got 0.")
    _checks.check_in_bounds("images", images, victim.bounds)


def check_sigma(sigma: Any) -> None:
    if np.ndim(sigma) != 0:
        raise ValueError(f"`sigma` must be one number; got shape {np.shape(sigma)}.")
    _checks.check_positive("sigma", sigma)


def plan(count: int, most: int) -> tuple[int, int]:
    """``(size, steps)``: ``count`` items in ``steps`` equal chunks of ``size <= most`` items,
    ``size * steps >= count`` with fewer than ``steps`` items to spare (one loop body to compile,
    no ragged last chunk)."""
    steps = -(-count // most)
    return -(-count // steps), steps


def _group_counts(victim: Victim, xs, keys, sigma, n: int, batch_size: int) -> jax.Array:
    """Counts of a group of images ``xs`` (``[g, *shape]``, keys ``[g]``): each network call
    labels ``chunk`` draws of every image of the group, in one batch of ``g * chunk`` inputs."""
    g, shape, num_classes = xs.shape[0], xs.shape[1:], victim.num_classes
    chunk, steps = plan(n, batch_size)
    draw = jax.vmap(jax.vmap(lambda k: jax.random.normal(k, shape, xs.dtype)))
    fold = jax.vmap(jax.vmap(jax.random.fold_in, (None, 0)), (0, None))

    def body(i, counts):
        index = i * chunk + jnp.arange(chunk)
        noise = draw(fold(keys, index))  # [g, chunk, *shape]: draw j of image i from its key
        noisy = (xs[:, None] + sigma * noise).reshape((g * chunk,) + shape)
        labels = jnp.argmax(victim.apply_fn(victim.variables, noisy), axis=-1).reshape(g, chunk)
        labels = jnp.where(index < n, labels, num_classes)  # the spare draws count nowhere
        return counts + jnp.sum(jax.nn.one_hot(labels, num_classes, dtype=jnp.int32), axis=1)

    return jax.lax.fori_loop(0, steps, body, jnp.zeros((g, num_classes), jnp.int32))


@_compile.jit_static(4, 5)
def _sample_counts(victim, images, key, sigma, n, batch_size):
    num, shape = images.shape[0], images.shape[1:]
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(num))
    # Images per network call: with few draws per image (PREDICT's n = 100), several images
    # share a call, so that it still sees about batch_size inputs.
    group, groups = plan(num, max(1, batch_size // plan(n, batch_size)[0]))
    pad = group * groups - num  # a few repeats of the last image make the groups equal
    images = jnp.concatenate([images, jnp.repeat(images[-1:], pad, axis=0)])
    keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
    images = images.reshape((groups, group) + shape)
    keys = keys.reshape(groups, group)
    # The network sees one plain batch per call: vmapping it over images instead makes XLA:CPU
    # fuse its convolutions into slower loops (measured ~1.5x on the C&W net).
    counts = jax.lax.map(lambda a: _group_counts(victim, *a, sigma, n, batch_size), (images, keys))
    return counts.reshape(groups * group, victim.num_classes)[:num]


def sample_counts(
    victim: Victim,
    images: Any,
    key: jax.Array,
    *,
    sigma: float,
    n: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> jax.Array:
    """Counts of the base classifier's labels on ``n`` Gaussian-noised copies of each image.

    ``counts[i, c] = #{j < n : argmax f(images[i] + σ·η_ij) = c}``, ``η_ij ~ N(0, I)`` i.i.d.
    The noisy copies are not clipped to the pixel bounds (as in Cohen et al.'s code). See the
    module docstring for which draws an image gets.

    Args:
      victim: the base classifier (a :class:`~jaxadv.models.Victim` with logits; a black-box or
        hard-label view works, only ``argmax`` is read).
      images: ``f32[num_images, *victim.input_shape]`` within ``victim.bounds``.
      key: ONE PRNG key.
      sigma: the noise's standard deviation σ > 0 (a traced value: sweeping it does not
        recompile).
      n: draws per image, >= 1 (static: a new ``n`` compiles a new program).
      batch_size: the most noisy copies one network call sees (the memory knob): each image's
        draws run in equal chunks of at most ``batch_size``, and when a chunk holds all ``n``,
        up to ``batch_size // n`` images share a call. It changes the speed, not the draws.

    Returns:
      ``int32[num_images, num_classes]``; each row sums to ``n``.
    """
    check_victim(victim)
    check_images(victim, images)
    _checks.check_key("key", key)
    check_sigma(sigma)
    _checks.check_positive_int("n", n)
    _checks.check_positive_int("batch_size", batch_size)
    images = jnp.asarray(images, jnp.float32)
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # raw uint32[2] key data: the same key, typed
    return _sample_counts(victim, images, key, jnp.float32(sigma), int(n), int(batch_size))

