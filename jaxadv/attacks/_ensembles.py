"""The victims of SMBEA and the subspace attack: mini-batches of ensembles, their feature losses,
and the lock-step counter that picks a mini-batch inside a vmapped program."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxadv.losses import SALIENCY_LOSSES
from jaxadv.models import Ensemble

FEATURE_LOSSES = ("mse", "l1", "cc", "kl")


def feature_loss(kind: str, a: jax.Array, b: jax.Array) -> jax.Array:
    if kind == "mse":
        return jnp.mean((a - b) ** 2)
    if kind == "l1":
        return jnp.mean(jnp.abs(a - b))
    if kind == "cc":
        return SALIENCY_LOSSES["cc"](a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))
    p = a / (jnp.sum(a) + 1e-12)  # kl: the features as one distribution (use a softmax strategy)
    q = b / (jnp.sum(b) + 1e-12)
    return jnp.sum(q * jnp.log(1e-12 + q / (p + 1e-12)))


def check_ensembles(ensembles: Any) -> tuple[Ensemble, ...]:
    if isinstance(ensembles, Ensemble):
        return (ensembles,)
    ensembles = tuple(ensembles) if isinstance(ensembles, Sequence) else ()
    if not ensembles or not all(isinstance(e, Ensemble) for e in ensembles):
        raise ValueError(
            "`ensembles` must be an Ensemble (jaxadv.models._ensemble.ensemble) or a non-empty "
            "sequence of them, one per mini-batch; got "
            f"{[type(e).__name__ for e in ensembles] or ensembles!r}."
        )
    first = ensembles[0]
    for i, e in enumerate(ensembles[1:], 1):
        for field in ("input_shape", "bounds", "output", "map_kind", "output_shape"):
            if getattr(e, field) != getattr(first, field):
                raise ValueError(
                    f"`ensembles` (the mini-batches) must agree on {field}; mini-batch 0 has "
                    f"{getattr(first, field)!r}, mini-batch {i} has {getattr(e, field)!r}."
                )
    return ensembles


def as_tuple(victim: Any) -> tuple[Ensemble, ...]:
    return (victim,) if isinstance(victim, Ensemble) else tuple(victim)


@jax.custom_batching.custom_vmap
def lockstep(t: jax.Array) -> jax.Array:
    """The step counter of a program whose examples all move in lock-step, unbatched.

    Under ``vmap`` (the driver's over examples and grid points) every example's counter holds the
    same number, so the first one stands for all: the mini-batch index stays a scalar, the
    mini-batch's weights are sliced once (not gathered per example, which would turn each
    convolution into a per-example one) and ``lax.switch`` stays a branch (a batched index would
    run every mini-batch's ensemble at every step).
    """
    return t


@lockstep.def_vmap
def _lockstep_vmap(axis_size, in_batched, t):
    (batched,) = in_batched
    return (t[0] if batched else t), False


def stack(ensembles: tuple[Ensemble, ...]) -> Ensemble | None:
    """The ensembles stacked leaf-wise on a leading mini-batch axis when they share one
    structure (same architectures, layers and static fields; weights may differ), else None."""
    structure = jax.tree.structure(ensembles[0])
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(ensembles[0])]
    for e in ensembles[1:]:
        if jax.tree.structure(e) != structure:
            return None
        if [jnp.shape(leaf) for leaf in jax.tree.leaves(e)] != shapes:
            return None
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *ensembles)
