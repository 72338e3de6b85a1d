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
import optax

from jaxadv import _checks

# Guards against 0/0 on an all-zero gradient (a saturated victim): the step is then zero.
_TINY = 1e-12


def sign() -> optax.GradientTransformation:
    """``g ↦ sign(g)``: the steepest direction under the ℓ∞ norm (FGSM, BIM, PGD-ℓ∞).

    Same as ``optax.scale_by_sign``, re-exported under the name the attack literature uses.
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
    """``g ↦ g / ‖g‖₂``: the steepest direction under the ℓ2 norm (FGM-ℓ2, PGD-ℓ2)."""
    return _scale_by_norm(2)


def normalize_by_l1_norm() -> optax.GradientTransformation:
    """``g ↦ g / ‖g‖₁``: the normalisation MI-FGSM applies before accumulating momentum."""
    return _scale_by_norm(1)


def l1_steepest(sparsity: jax.Array | float = 0.99) -> optax.GradientTransformation:
    """Sparse ℓ1 steepest direction: ``sign(g)`` on the coordinates with the largest ``|g|``.

    Keeps the coordinates whose ``|g|`` is at or above the ``sparsity`` quantile of ``|g|``, sets
    the rest to zero, and divides by their count so the direction has unit ℓ1 norm. As
    ``sparsity → 1`` this is the exact ℓ1 steepest direction (one coordinate, the largest |g|);
    lower values move more coordinates per step, which converges faster in practice
    (Tramèr & Boneh, NeurIPS 2019, "Adversarial training and robustness for multiple
    perturbations", SLIDE; default quantile 99%). ``sparsity`` may be traced (swept).
    """
    _checks.check_nonnegative("sparsity", sparsity)

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree.leaves(updates)
        flat = jnp.concatenate([jnp.abs(g).ravel() for g in leaves])
        threshold = jnp.quantile(flat, sparsity)
        count = jnp.maximum(jnp.sum(flat >= threshold), 1).astype(flat.dtype)
        # On an all-zero gradient every coordinate ties at 0: keep none rather than all.
        threshold = jnp.maximum(threshold, _TINY)

        def select(g):
            return (jnp.where(jnp.abs(g) >= threshold, jnp.sign(g), 0.0) / count).astype(g.dtype)

        return jax.tree.map(select, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
