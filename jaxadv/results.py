"""What every attack returns: data, never an exception for an attack that failed.

A leaf module (it imports nothing else of jaxadv): attacks build results, metrics and sweeps read
them, and neither has to import the other for the type."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# The norms of ``delta`` that every result records (fields of ``AttackResult``), in this order.
NORM_NAMES = ("l0", "l1", "l2", "linf")


class AttackResult(NamedTuple):
    """The outcome of an attack on ONE example (``vmap`` adds leading axes to every field).

    Attributes:
      x_adv: the best adversarial input found, inside the pixel bounds.
      delta: the perturbation: for additive models the iterate itself (so norm balls hold on it
        exactly; ``x_adv = clip(x0 + delta)`` up to float rounding), otherwise ``x_adv − x0``.
      success: whether ``x_adv`` fools the victim (targeted: is classified as the target).
      loss: the attack objective at ``x_adv`` (the minimised quantity).
      logits: the victim's logits at ``x_adv``.
      l0, l1, l2, linf: norms of ``delta`` (ℓ0 counts non-zero entries).
      steps: gradient steps used until success (all of them when the attack never stopped early).
      queries: model queries spent by the gradient oracle (forward+backward passes for white-box).
      trace: the objective at each step's iterate, ``f32[steps]``.
      converged: whether every inner solver behind ``x_adv`` met its tolerance (e.g. the CG of
        Laplacian smoothing); True for attacks without one.
      finite: whether the victim's outputs and the objective at ``x_adv`` are finite. False
        when no iterate had finite outputs (a victim that returns NaN): then ``x_adv`` is the
        clean input and ``success`` is False.
      zero_gradient: whether every gradient the attack saw was exactly zero (e.g. a victim with
        ``stop_gradient`` inside, or saturated outputs): it could not move, and its failure says
        nothing about robustness (AutoAttack's zero-gradient check). Reported by the attacks
        built on ``descent``; False elsewhere.
      extras: what a family reports beyond these, as a dict of arrays (e.g. SMBEA's example
        after each mini-batch); None for families with nothing more.
    """

    x_adv: jax.Array
    delta: jax.Array
    success: jax.Array
    loss: jax.Array
    logits: jax.Array
    l0: jax.Array
    l1: jax.Array
    l2: jax.Array
    linf: jax.Array
    steps: jax.Array
    queries: jax.Array
    trace: jax.Array
    converged: jax.Array = True
    finite: jax.Array = True
    zero_gradient: jax.Array = False
    extras: Any = None


def perturbation_norms(delta: jax.Array) -> dict[str, jax.Array]:
    """ℓ0 (count of non-zero entries), ℓ1, ℓ2 and ℓ∞ norms of one example's perturbation; all
    four NaN when it holds NaN/inf (a NaN counted as one non-zero entry would look plausible).

    Args:
      delta: one example's perturbation, any shape.

    Returns:
      ``{"l0", "l1", "l2", "linf"}``, each a 0-d float32 array.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.results import perturbation_norms
      >>> {k: float(v) for k, v in perturbation_norms(jnp.array([3.0, 0.0, -4.0])).items()}
      {'l0': 2.0, 'l1': 7.0, 'l2': 5.0, 'linf': 4.0}
    """
    flat = jnp.ravel(delta)
    count = jnp.sum(flat != 0).astype(jnp.float32)
    return {
        "l0": jnp.where(jnp.all(jnp.isfinite(flat)), count, jnp.nan),
        "l1": jnp.sum(jnp.abs(flat)),
        "l2": jnp.sqrt(jnp.sum(flat * flat)),
        "linf": jnp.max(jnp.abs(flat)) if flat.size else jnp.zeros((), flat.dtype),
    }
