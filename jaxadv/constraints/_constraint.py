"""The constraint seam: a projection of the perturbation and a sampler of random starts.

A ``Constraint`` is two pure functions of ONE example's perturbation ``delta`` and clean input
``x0``. Constraints are rebuilt inside the traced attack from the hyper-parameter pytree, so their
radii may be traced (swept with ``vmap``) while their kind stays static.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Constraint(NamedTuple):
    """``project(delta, x0) -> delta`` onto the set; ``sample(key, x0) -> delta`` inside it.

    Attributes:
      project: ``(delta, x0) -> delta``, the projection onto the feasible set.
      sample: ``(key, x0) -> delta``, a random start inside the set.
    """

    project: Callable[[jax.Array, jax.Array], jax.Array]
    sample: Callable[[jax.Array, jax.Array], jax.Array]


def unconstrained() -> Constraint:
    """No constraint: the identity projection; random starts at ``delta = 0``.

    Returns:
      A :class:`Constraint`.
    """
    return Constraint(
        project=lambda delta, x0: delta,
        sample=lambda key, x0: jnp.zeros_like(x0),
    )


def pixel_box(low: float | jax.Array, high: float | jax.Array) -> Constraint:
    """Keeps ``x0 + delta`` inside ``[low, high]``: ``delta ↦ clip(delta, low − x0, high − x0)``.

    Projecting onto the box only moves each coordinate of ``delta`` toward zero (when ``x0`` is
    inside the box), so it never takes a perturbation out of an ℓp ball it was in. Clipping
    ``delta`` itself (rather than ``x0 + delta``) leaves feasible coordinates bit-identical.

    Args:
      low: the smallest input value (scalar or broadcastable to the input).
      high: the largest input value.

    Returns:
      A :class:`Constraint` whose random start is ``delta = 0``.
    """

    def project(delta, x0):
        return jnp.clip(delta, low - x0, high - x0)

    return Constraint(project=project, sample=lambda key, x0: jnp.zeros_like(x0))


def intersect(*constraints: Constraint) -> Constraint:
    """Applies the projections in order; samples from the first and projects with the rest.

    Exact (the Euclidean projection onto the intersection) when all sets are coordinate-wise boxes
    (ℓ∞ ball ∩ pixel box). For an ℓ2 or ℓ1 ball followed by the pixel box it is the standard
    projected-gradient heuristic (Madry et al. 2018 and every peer library): the result is always
    feasible for both sets, though not always the nearest feasible point.

    Args:
      *constraints: one or more :class:`Constraint`, applied in the order given (put the pixel box
        last).

    Returns:
      A :class:`Constraint`.

    References:
      Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
      Adversarial Attacks", ICLR 2018.
    """
    if not constraints:
        raise ValueError("`intersect` needs at least one constraint; got none.")

    def project(delta, x0):
        for c in constraints:
            delta = c.project(delta, x0)
        return delta

    def sample(key, x0):
        return project(constraints[0].sample(key, x0), x0)

    return Constraint(project=project, sample=sample)
