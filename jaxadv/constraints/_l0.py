"""ℓ0 budgets: keep at most ``k`` perturbed units, optionally inside an ℓ∞ cube and the pixel box.

A unit is either one entry of the example (``unit="element"``) or one pixel, i.e. all channels at
the same spatial position of a channels-last example (``unit="pixel"``; ``k`` then counts pixels
as Croce & Hein and Carlini & Wagner do, while SAPF's published code counts elements).

Both projections are exact Euclidean projections. With a per-entry box ``[lo, hi] ∋ 0`` for
``delta`` (the ℓ∞ cube ∩ the pixel box), the nearest point with support ``S`` is ``clip(delta)`` on
``S`` and 0 elsewhere, which is ``‖delta − clip(delta)‖²`` closer on each kept entry than zero is;
so the best ``S`` keeps the ``k`` units of largest gain ``Σ delta² − (delta − clip(delta))²``
(Croce & Hein, "Sparse and imperceivable adversarial attacks", ICCV 2019, §3.1).

``k`` may be traced: the top-k selection is a rank mask (one sort), not ``lax.top_k`` (which needs
a static ``k``), so a sweep over budgets is one ``vmap`` and compiles once. Ties are broken by
position (lower flat index first), so exactly ``min(k, units)`` units are kept.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.constraints._constraint import Constraint

UNITS = ("pixel", "element")


def check_budget(name: str, k) -> None:
    """Raises unless a concrete budget is a finite whole number ``>= 1`` (traced: skipped).

    Args:
      name: the argument's name, for the message.
      k: the budget (a number or an array; a tracer is not checked).

    Raises:
      ValueError: naming ``name`` and the value received.
    """
    if not _checks.is_concrete(k):
        return
    arr = np.asarray(k, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise ValueError(f"`{name}` must be a whole number >= 1; got {_checks._show(arr)}.")


def maskable_units(shape: Sequence[int], unit: str) -> int:
    """How many units an example of ``shape`` has: its pixels (channels last) or its entries.

    Args:
      shape: one example's shape, channels last.
      unit: ``"pixel"`` or ``"element"``.

    Returns:
      The number of units, an int.
    """
    _checks.check_choice("unit", unit, UNITS)
    shape = tuple(shape)
    if unit == "pixel":
        if len(shape) < 2:
            raise ValueError(
                "`unit='pixel'` needs a channels-last example of rank >= 2 (e.g. (h, w, c)); got "
                f"shape {shape}. Use `unit='element'` for flat inputs."
            )
        return math.prod(shape[:-1])
    return math.prod(shape)


def check_budget_fits(name: str, k, shape: Sequence[int], unit: str) -> None:
    """Raises if a concrete budget exceeds the units of an example of ``shape``.

    Args:
      name: the argument's name, for the message.
      k: the budget (a tracer is not checked).
      shape: one example's shape, channels last.
      unit: ``"pixel"`` or ``"element"``.

    Raises:
      ValueError: ``k`` is larger than :func:`maskable_units`.
    """
    units = maskable_units(shape, unit)
    if _checks.is_concrete(k) and np.any(np.asarray(k) > units):
        raise ValueError(
            f"`{name}` must be at most the number of maskable {unit}s of an example of shape "
            f"{tuple(shape)}, {units}; got {_checks._show(np.asarray(k, np.float64))}."
        )


def top_k_mask(scores: jax.Array, k: jax.Array | float) -> jax.Array:
    """Boolean mask of the ``k`` largest ``scores`` (ties: lower flat index first); ``k`` may be
    traced.

    Args:
      scores: any shape.
      k: how many entries to keep (may be traced).

    Returns:
      A bool array of the shape of ``scores``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.constraints import top_k_mask
      >>> top_k_mask(jnp.array([0.5, 2.0, 0.5, 1.0]), 2)
      Array([False,  True, False,  True], dtype=bool)
    """
    flat = jnp.ravel(scores)
    order = jnp.argsort(-flat, stable=True)
    rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
    return (rank < k).reshape(scores.shape)


def project_l0_box(
    delta: jax.Array,
    k: jax.Array | float,
    lower: jax.Array | float,
    upper: jax.Array | float,
    unit: str = "element",
) -> jax.Array:
    """The Euclidean projection of ``delta`` onto ``{≤ k non-zero units} ∩ [lower, upper]``.

    ``lower <= 0 <= upper`` entry-wise (``±inf`` for no box). Exact (see the module docstring).

    Args:
      delta: one example's perturbation.
      k: the number of units kept (may be traced).
      lower: entry-wise lower bounds on ``delta`` (≤ 0).
      upper: entry-wise upper bounds on ``delta`` (≥ 0).
      unit: ``"element"`` or ``"pixel"`` (channels last).

    Returns:
      The projected perturbation, of the shape of ``delta``.

    References:
      Croce & Hein, "Sparse and Imperceivable Adversarial Attacks", ICCV 2019.
    """
    clipped = jnp.clip(delta, lower, upper)
    gain = jnp.square(delta) - jnp.square(delta - clipped)
    if unit == "pixel":
        return jnp.where(top_k_mask(jnp.sum(gain, axis=-1), k)[..., None], clipped, 0.0)
    return jnp.where(top_k_mask(gain, k), clipped, 0.0)


def _box(x0, bounds, eps):
    """Entry-wise bounds on ``delta``: the pixel box around ``x0`` ∩ the cube ``[−eps, eps]``."""
    lower = jnp.full_like(x0, -jnp.inf) if bounds is None else bounds[0] - x0
    upper = jnp.full_like(x0, jnp.inf) if bounds is None else bounds[1] - x0
    if eps is not None:
        lower, upper = jnp.maximum(lower, -eps), jnp.minimum(upper, eps)
    return lower, upper


def _l0_constraint(k, eps, unit, bounds) -> Constraint:
    check_budget("k", k)
    _checks.check_choice("unit", unit, UNITS)

    def project(delta, x0):
        check_budget_fits("k", k, x0.shape, unit)
        return project_l0_box(delta, k, *_box(x0, bounds, eps), unit)

    def sample(key, x0):
        # Croce & Hein's random start: uniform in the entry-wise box, then projected.
        if bounds is None and eps is None:
            return jnp.zeros_like(x0)  # no finite box to sample from
        lower, upper = _box(x0, bounds, eps)
        lower = jnp.where(jnp.isfinite(lower), lower, 0.0)
        upper = jnp.where(jnp.isfinite(upper), upper, 0.0)
        u = jax.random.uniform(key, x0.shape, x0.dtype)
        return project(lower + u * (upper - lower), x0)

    return Constraint(project=project, sample=sample)


def l0_ball(
    k: jax.Array | float,
    *,
    unit: str = "pixel",
    bounds: tuple[float, float] | None = None,
) -> Constraint:
    """At most ``k`` perturbed units (pixels or elements), inside the pixel box when given.

    Args:
      k: the budget, a whole number ``>= 1`` (may be traced, e.g. swept).
      unit: ``"pixel"`` (all channels of a channels-last position count once) or ``"element"``.
      bounds: the pixel box ``(low, high)`` that ``x0 + delta`` must stay in; with it the
        projection is exact for the intersection (Croce & Hein's ℓ0 + box projection), without it
        it keeps the ``k`` units of largest ``‖delta‖₂``. Random starts are uniform in the box,
        then projected (zero without a box).

    Returns:
      A :class:`Constraint`.

    References:
      Croce & Hein, "Sparse and Imperceivable Adversarial Attacks", ICCV 2019.
    """
    return _l0_constraint(k, None, unit, bounds)


def l0_linf_ball(
    k: jax.Array | float,
    eps: jax.Array | float,
    *,
    unit: str = "pixel",
    bounds: tuple[float, float] | None = None,
) -> Constraint:
    """At most ``k`` perturbed units with ``‖delta‖∞ ≤ eps``, inside the pixel box when given.

    The exact projection of Croce & Hein ("Sparse and imperceivable adversarial attacks", ICCV
    2019) onto ℓ0 ∩ ℓ∞ ∩ box: clip every entry to ``[max(−eps, low − x0), min(eps, high − x0)]``,
    then keep the ``k`` units whose clipping brings them closest to ``delta``. Random starts are
    uniform in that box, then projected (the paper's). ``k`` and ``eps`` may be traced.

    Args:
      k: the budget, a whole number ``>= 1``.
      eps: the ℓ∞ radius, ``> 0``.
      unit: ``"pixel"`` or ``"element"`` (see :func:`l0_ball`).
      bounds: the pixel box ``(low, high)``; None for none.

    Returns:
      A :class:`Constraint`.

    References:
      Croce & Hein, "Sparse and Imperceivable Adversarial Attacks", ICCV 2019.
    """
    _checks.check_positive("eps", eps)
    return _l0_constraint(k, eps, unit, bounds)
