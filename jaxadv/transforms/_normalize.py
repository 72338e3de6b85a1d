"""Steepest-descent normalizations of the raw gradient, as optax transformations.

Each works on the whole update tree; because jaxadv attacks ONE example and batches with
``vmap``, the tree norm is the per-example norm — no example can influence another's step.
The descent sign is not flipped here: chain with ``optax.scale(-step_size)`` (the objective is
minimised; ``jaxadv.losses`` is the one place that chooses signs).

Names say which normalization they apply: ``normalize_by_l1_norm`` divides by ‖g‖₁ (the MI-FGSM
accumulator input), while ``l1_steepest`` is the sparse steepest-descent direction for the ℓ1 ball.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks

# Guards against 0/0 on an all-zero gradient (a saturated victim): the step is then zero.
_TINY = 1e-12


def sign() -> optax.GradientTransformation:
    """``g ↦ sign(g)``: the steepest direction under the ℓ∞ norm (FGSM, BIM, PGD-ℓ∞).

    Same as ``optax.scale_by_sign``, re-exported under the name the attack literature uses.

    Returns:
      A stateless ``optax.GradientTransformation`` mapping each leaf to its elementwise sign.
    """
    return optax.scale_by_sign()


def _scale_by_norm(ord_: int | float) -> optax.GradientTransformation:
    def update_fn(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates, ord=ord_)
        scale = 1.0 / jnp.maximum(norm, _TINY)
        return jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def normalize_by_l2_norm() -> optax.GradientTransformation:
    """``g ↦ g / ‖g‖₂``: the steepest direction under the ℓ2 norm (FGM-ℓ2, PGD-ℓ2).

    Returns:
      A stateless ``optax.GradientTransformation`` dividing the update tree by its ℓ2 norm (the
      norm of the whole tree, floored at 1e-12 so an all-zero gradient gives a zero step).
    """
    return _scale_by_norm(2)


def normalize_by_l1_norm() -> optax.GradientTransformation:
    """``g ↦ g / ‖g‖₁``: the normalisation MI-FGSM applies before accumulating momentum.

    Returns:
      A stateless ``optax.GradientTransformation`` dividing the update tree by its ℓ1 norm (the
      norm of the whole tree, floored at 1e-12 so an all-zero gradient gives a zero step).
    """
    return _scale_by_norm(1)


def l1_steepest(sparsity: jax.Array | float = 0.99) -> optax.GradientTransformationExtraArgs:
    """Sparse ℓ1 steepest direction: ``sign(g)`` on the coordinates with the largest ``|g|``.

    Keeps the coordinates whose ``|g|`` is at or above the ``sparsity`` quantile of ``|g|``, sets
    the rest to zero, and divides by their count so the direction has unit ℓ1 norm. As
    ``sparsity → 1`` this is the exact ℓ1 steepest direction (one coordinate, the largest ``|g|``);
    lower values move more coordinates per step, which converges faster in practice
    (Tramèr & Boneh, NeurIPS 2019, "Adversarial training and robustness for multiple
    perturbations", SLIDE; default quantile 99%). ``sparsity`` may be traced (swept).

    SLIDE's box rule: when the update receives the extra argument ``box=(lower, upper)`` (bounds
    on ``params``, each a tree like ``params`` or one scalar/array for every leaf; the descent
    runner passes the latent's pixel box), the quantile and the selection are taken only over
    coordinates that can still move. The chain descends (a negative scale follows), so the
    iterate moves along ``−g``: a coordinate at its upper bound with ``g < 0``, or at its lower
    bound with ``g > 0``, is saturated and left out. Without this, the step keeps picking
    saturated pixels and stalls (the projection undoes each step). Without ``box`` the rule is
    the plain top-quantile step above.

    Args:
      sparsity: the quantile of ``|g|`` (in ``[0, 1]``; may be traced) at or above
        which a coordinate is kept; default 0.99, SLIDE's 99th percentile.

    Returns:
      A stateless ``optax.GradientTransformationExtraArgs`` whose update accepts the optional
      keyword ``box=(lower, upper)`` (requires ``params``) and returns the sparse direction, a
      tree like the update with unit ℓ1 norm (zero on an all-zero or fully saturated gradient).
    """
    _checks.check_nonnegative("sparsity", sparsity)

    def update_fn(updates, state, params=None, *, box=None, **extra_args):
        del extra_args
        leaves, treedef = jax.tree.flatten(updates)
        if box is None:
            movable = [jnp.ones(g.shape, bool) for g in leaves]
        else:
            if params is None:
                raise ValueError(
                    "`l1_steepest` needs `params` (the current iterate) when `box` is given."
                )
            movable = [
                ~(((p >= hi) & (g < 0)) | ((p <= lo) & (g > 0)))
                for g, p, lo, hi in zip(
                    leaves,
                    treedef.flatten_up_to(params),
                    _bound_leaves("box[0]", box[0], treedef),
                    _bound_leaves("box[1]", box[1], treedef),
                )
            ]
        flat = jnp.concatenate([jnp.abs(g).ravel() for g in leaves])
        free = jnp.concatenate([m.ravel() for m in movable])
        # NaN marks the saturated coordinates, which nanquantile ignores.
        threshold = jnp.nanquantile(jnp.where(free, flat, jnp.nan), sparsity)
        # On an all-zero (or fully saturated) gradient: keep none rather than all.
        threshold = jnp.maximum(jnp.nan_to_num(threshold, nan=jnp.inf), _TINY)
        count = jnp.maximum(jnp.sum(free & (flat >= threshold)), 1).astype(flat.dtype)

        def select(g, m):
            keep = m & (jnp.abs(g) >= threshold)
            return (jnp.where(keep, jnp.sign(g), 0.0) / count).astype(g.dtype)

        return jax.tree.unflatten(treedef, [select(g, m) for g, m in zip(leaves, movable)]), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


def _bound_leaves(name, bound, treedef):
    """``bound`` as one leaf per leaf of ``treedef``: a matching tree, or one value for all."""
    if jax.tree.structure(bound) == treedef:
        return jax.tree.leaves(bound)
    if isinstance(bound, (jax.Array, np.ndarray, float, int)):
        return [bound] * treedef.num_leaves
    raise ValueError(
        f"`{name}` must be a tree like `params` or one array for every leaf; got "
        f"{type(bound).__name__} with structure {jax.tree.structure(bound)}."
    )
