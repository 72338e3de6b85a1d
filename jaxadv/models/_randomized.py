"""Randomized victims: models whose outputs depend on fresh randomness at every call.

A randomized defence (noise injected into the input, random resizing, dropout left on at test
time) is not a function of ``x`` alone, so it is not a :class:`~jaxadv.models.Victim`. A
``RandomizedVictim`` takes the randomness as an explicit key: ``victim(x, key)``. Attacks see it
in one of two ways:

* ``victim.with_key(key)`` fixes one draw and returns an ordinary ``Victim`` (the key travels in
  its variables), which every attack accepts — the attack then targets that one draw;
* attacks that average over the randomness (expectation over transformation, EOT) take the
  ``RandomizedVictim`` itself and draw keys inside the compiled program: every descent attack
  (fgsm, bim, pgd, mi_fgsm, … and ``Attack`` subclasses) through
  ``jaxadv.attacks.with_eot(attack, samples=n)``, which averages the loss and its gradient over
  ``n`` draws per step and judges success on the draws' vote; APGD through ``eot_iter``,
  AutoAttack through ``version="rand"``.

Attacks without EOT refuse a ``RandomizedVictim`` with a clear error rather than silently
attacking whatever draw they happen to see (and an attack given EOT refuses a deterministic
victim, where the draws would all be the same).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxadv import _checks
from jaxadv.models._victim import Victim


@struct.dataclass
class _KeyedApply:
    """A randomized apply with its key taken from the variables: a plain victim's apply."""

    apply_fn: Callable[[Any, jax.Array, jax.Array], jax.Array] = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        return self.apply_fn(variables["victim"], x, variables["key"])


@struct.dataclass
class RandomizedVictim:
    """A classifier whose outputs depend on a PRNG key, called on one example.

    Attributes:
      variables: the model's variables (any pytree).
      apply_fn: ``(variables, x_batch, key) -> logits_batch``; different keys give different
        draws of the randomness (each example of the batch its own). Static.
      input_shape: shape of ONE example. Static.
      num_classes: number of output classes. Static.
      bounds: the closed pixel interval inputs live in. Static.
    """

    variables: Any
    apply_fn: Callable[[Any, jax.Array, jax.Array], jax.Array] = struct.field(pytree_node=False)
    input_shape: tuple[int, ...] = struct.field(pytree_node=False)
    num_classes: int = struct.field(pytree_node=False)
    bounds: tuple[float, float] = struct.field(pytree_node=False, default=(0.0, 1.0))

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """Logits of ONE example ``x`` under the draw of ``key``."""
        _checks.check_example_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x[None], key)[0]

    def batch(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """Logits of a batch ``x`` (``(batch, *input_shape)``) under the draw of ``key``."""
        _checks.check_batch_shape("x", jnp.shape(x), self.input_shape)
        return self.apply_fn(self.variables, x, key)

    def with_key(self, key: jax.Array) -> Victim:
        """The deterministic victim of one draw: every call of it reuses ``key``."""
        return Victim(
            variables={"victim": self.variables, "key": key},
            apply_fn=_KeyedApply(self.apply_fn),
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            bounds=self.bounds,
        )


@struct.dataclass
class _NoisyApply:
    """Gaussian noise of std ``variables["sigma"]`` added to each input before the network."""

    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, jnp.shape(x), jnp.result_type(x))
        return self.apply_fn(variables["victim"], x + variables["sigma"] * noise)


def with_input_noise(victim: Victim, sigma: float) -> RandomizedVictim:
    """``victim`` behind Gaussian input noise of std ``sigma``: a randomized defence (the base
    classifier of randomized smoothing, Cohen et al. 2019, evaluated on single draws).

    ``sigma`` is a dynamic leaf of the new victim's variables (sweepable without recompiling).

    Args:
      victim: the deterministic :class:`Victim` to put behind the noise.
      sigma: the noise's standard deviation in pixel-value units, >= 0 (0: no noise, though
        the result still takes a key).

    Returns:
      A :class:`RandomizedVictim` with ``victim``'s input shape, classes and bounds: a call
      under ``key`` adds ``sigma`` times standard normal noise drawn from ``key`` to the input
      (not clipped to the bounds) before ``victim``'s network.

    Raises:
      ValueError: if ``victim`` is not a :class:`Victim` or ``sigma`` is negative.
    """
    if not isinstance(victim, Victim):
        raise ValueError(f"`victim` must be a jaxadv.models.Victim; got {type(victim).__name__}.")
    _checks.check_nonnegative("sigma", sigma)
    return RandomizedVictim(
        variables={"victim": victim.variables, "sigma": jnp.asarray(sigma, jnp.float32)},
        apply_fn=_NoisyApply(victim.apply_fn),
        input_shape=victim.input_shape,
        num_classes=victim.num_classes,
        bounds=victim.bounds,
    )
