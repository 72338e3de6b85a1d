"""Substitute training for a saliency victim: the oracle answers maps and the substitute regresses
them (Che et al., Table 2's "Papernot's substitute attack" row against saliency models).

Papernot et al.'s augmentation steps along the substitute's Jacobian row of the oracle's label,
``J_F(x)[y] = J_F(x)ᵀ e_y``. For a map the answer is no class but a vector, so the row becomes the
vector–Jacobian product with the oracle's (centred) map,

    x + λ · sign(J_F(x)ᵀ (O(x) − mean O(x))) = x + λ · sign(∇_x ⟨F(x), O(x) − mean O(x)⟩),

the direction that raises the substitute's map where the victim's is above its mean and lowers it
elsewhere (centring makes it blind to a constant offset, e.g. a log-density's normaliser). With a
one-hot answer and softmax outputs it is the paper's row exactly. This generalisation is ours:
neither paper spells out the augmentation for maps.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxadv import _compile


@functools.lru_cache(maxsize=8)
def make_map_step(module: nn.Module):
    """``(init, step)`` as the classifier trainer's, with the mean squared error between the
    substitute's maps and the oracle's as the loss (Adam; step size an argument of the step)."""
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    def loss_fn(params, other, x, target, dropout_key):
        out, updates = module.apply(
            {"params": params, **other},
            x,
            train=True,
            rngs={"dropout": dropout_key},
            mutable=list(other),  # BatchNorm's running statistics, if any
        )
        return jnp.mean(jnp.square(out - target)), updates

    @_compile.jit
    def step(params, other, opt_state, x, target, dropout_key, learning_rate):
        (loss, other), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, other, x, target, dropout_key
        )
        opt_state.hyperparams["learning_rate"] = learning_rate
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), other, opt_state, loss, jnp.int32(0)

    @jax.jit
    def init(key, x):
        variables = module.init(key, x, train=False)
        params = variables.pop("params")
        variables.pop("intermediates", None)  # sown layers are outputs, not state
        return params, variables, tx.init(params)

    return init, step


def map_answers(oracle, x):
    """The oracle's maps ``f32[b, h', w']`` (a score query)."""
    return oracle.batch(x).astype(jnp.float32)


def augment_maps(substitute, x, maps, lam, clip):
    """``x + λ·sign(∇_x ⟨F(x), O(x) − mean O(x)⟩)`` for a batch (see the module docstring)."""

    def inner(xi, oi):
        return jnp.sum(substitute(xi) * (oi - jnp.mean(oi)))

    new = x + lam * jnp.sign(jax.vmap(jax.grad(inner))(x, maps))
    return jnp.clip(new, *substitute.bounds) if clip else new


def map_agreement(a, b):
    """Pearson correlation (CC) of each pair of maps ``[b, h', w']``; 0 for a constant map."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    norm = jnp.sqrt(jnp.sum(a * a, 1) * jnp.sum(b * b, 1))
    return jnp.where(norm > 0, jnp.sum(a * b, 1) / jnp.where(norm > 0, norm, 1.0), 0.0)
