"""SMBEA's long-term gradient memory, as an optax transformation with a "next mini-batch" step.

Che, Borji, Zhai, Ling, Li, Le Callet, "A new ensemble adversarial attack powered by long-term
gradient memories", AAAI 2020 (SMBEA: serial mini-batch ensemble attack). Inside mini-batch ``i``
(Algorithm 1 for ``i = 1``, Algorithm 2 for ``i > 1``) every step sees the normalised gradient
``ĝ_t`` and computes::

    m_t = μ1·m_{t−1} + (1 − μ1)·ĝ_t                       short-term first momentum
    v_t = μ2·v_{t−1} + (1 − μ2)·ĝ_t²                      short-term second momentum
    m̂_t = m_t/(1 − μ1^t) + β1·m_X^(i−1)                    inter-batch bias corrections
    v̂_t = v_t/(1 − μ2^t) + β2·v_X^(i−1)
    step = m̂_t/(√v̂_t + ε)                                 (the attack descends: x ← x − α·step)

and between mini-batches (Algorithm 2, step 1) the memory is carried::

    m_0^(i) = β1·m_X^(i−1),   v_0^(i) = β2·v_X^(i−1),   t ← 0

where ``m_X^(i−1)``, ``v_X^(i−1)`` are the momenta at the end of the previous mini-batch. For the
first mini-batch the carried terms are zero and the step is Algorithm 1's (Adam with bias
correction on ℓ1-normalised gradients). :func:`next_minibatch` performs the carry; it finds the
memory anywhere inside a chain's state, so the attack calls it on its whole optimiser state.

The momenta are computed by the shared pieces of ``_momenta.py`` (:func:`first_momentum`,
:func:`second_momentum` with Adam's EMA and bias correction); this module only adds the carried
terms and the batch boundary. Algorithm 1 writes ``ε`` outside the root (``√v̂ + ε``), the
subspace paper's Algorithm 1 inside; both are available (``eps``, ``eps_root``). With
``eps = eps_root = 0`` the step is exactly invariant to scaling the raw gradient (Property 1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.transforms._momenta import (
    FirstMomentumState,
    SecondMomentumState,
    _divide,
    check_unit_interval,
    first_momentum,
    normalize_gradient,
    second_momentum,
)

Number = jax.Array | float


class LongTermMemoryState(NamedTuple):
    """State of :func:`scale_by_long_term_memory` (everything explicit).

    Attributes:
      count: steps taken in the current mini-batch, ``t`` (int32 scalar; 0 after a carry).
      m: the first momentum ``m_t^(i)`` (before bias correction).
      v: the second momentum ``v_t^(i)`` (before bias correction).
      m_carry: ``β1·m_X^(i−1)``, the first-momentum term of the inter-batch bias correction
        (zeros in the first mini-batch).
      v_carry: ``β2·v_X^(i−1)`` (zeros in the first mini-batch).
      minibatch: the mini-batch number ``i`` (int32 scalar, 1 in the first).
    """

    count: jax.Array
    m: optax.Updates
    v: optax.Updates
    m_carry: optax.Updates
    v_carry: optax.Updates
    minibatch: jax.Array


class MemoryHParams(NamedTuple):
    """The two numbers of the carry (any object with ``beta1``/``beta2`` fields will do).

    Attributes:
      beta1: weight β1 ∈ [0, 1] of the long-term first momentum.
      beta2: weight β2 ∈ [0, 1] of the long-term second momentum.
    """

    beta1: jax.Array | float
    beta2: jax.Array | float


def scale_by_long_term_memory(
    mu1: Number = 0.9,
    mu2: Number = 0.999,
    *,
    eps: Number = 1e-8,
    eps_root: Number = 0.0,
) -> optax.GradientTransformation:
    """SMBEA's step direction ``m̂_t/(√(v̂_t + eps_root) + eps)`` on normalised updates.

    See the module docstring for the equations; the state is :class:`LongTermMemoryState`. Chain
    it after :func:`normalize_gradient` and before ``optax.scale(−α)`` (or use :func:`smbea_step`).
    ``mu1``, ``mu2`` ∈ [0, 1], ``eps`` and ``eps_root`` may be traced (swept); the carry weights
    β1, β2 enter through :func:`next_minibatch`.

    Args:
      mu1: μ1 in ``[0, 1]``, the decay of the short-term first momentum (an EMA); default 0.9.
      mu2: μ2 in ``[0, 1]``, the decay of the short-term second momentum (an EMA); default 0.999.
      eps: ε >= 0 added after the square root; default 1e-8 (SMBEA's Algorithm 1).
      eps_root: ε >= 0 added under the square root; default 0.

    Returns:
      An ``optax.GradientTransformation`` with :class:`LongTermMemoryState` that emits the step
      direction (zero where the denominator is zero; not yet scaled by ``−α``).
    """
    check_unit_interval("mu1", mu1)
    check_unit_interval("mu2", mu2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    first = first_momentum(mu1, ema=True, debias=True)
    second = second_momentum("plus", mu2, debias=True)

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return LongTermMemoryState(
            count=jnp.zeros((), jnp.int32),
            m=zeros,
            v=zeros,
            m_carry=zeros,
            v_carry=zeros,
            minibatch=jnp.ones((), jnp.int32),
        )

    def update_fn(updates, state, params=None):
        del params
        # The shared pieces compute m_t, v_t and their corrections m_t/(1 − μ^t) from t − 1.
        m_hat, first_state = first.update(
            updates, FirstMomentumState(state.count, state.m, jax.random.key(0))
        )
        v_hat, second_state = second.update(updates, SecondMomentumState(state.count, state.v, ()))
        m_hat = jax.tree.map(jnp.add, m_hat, state.m_carry)
        v_hat = jax.tree.map(jnp.add, v_hat, state.v_carry)
        out = jax.tree.map(lambda a, b: _divide(a, jnp.sqrt(b + eps_root) + eps), m_hat, v_hat)
        new_state = state._replace(count=first_state.count, m=first_state.m, v=second_state.v)
        return out, new_state

    return optax.GradientTransformation(init_fn, update_fn)


def _carry(state: LongTermMemoryState, beta1, beta2) -> LongTermMemoryState:
    scale = lambda tree, b: jax.tree.map(lambda a: (b * a).astype(a.dtype), tree)  # noqa: E731
    m_carry, v_carry = scale(state.m, beta1), scale(state.v, beta2)
    return LongTermMemoryState(
        count=jnp.zeros_like(state.count),
        m=m_carry,
        v=v_carry,
        m_carry=m_carry,
        v_carry=v_carry,
        minibatch=state.minibatch + 1,
    )


def next_minibatch(state: Any, hp: Any) -> Any:
    """Carries the long-term memory into the next mini-batch (Algorithm 2, step 1).

    ``m_0 ← β1·m_X``, ``v_0 ← β2·v_X``, the inter-batch correction terms become the same
    ``β1·m_X``, ``β2·v_X``, ``t ← 0`` and the mini-batch number grows by one.

    Args:
      state: a :class:`LongTermMemoryState`, or any optimiser state holding one or more (a
        chain's tuple state); every memory found is carried, everything else is returned as is.
      hp: anything with ``beta1`` and ``beta2`` fields (:class:`MemoryHParams`, the SMBEA
        attack's hyper-parameters), each in [0, 1]; they may be traced.

    Returns:
      ``state`` with every :class:`LongTermMemoryState` in it replaced by its carried memory.

    Raises:
      ValueError: when ``state`` holds no :class:`LongTermMemoryState`, or a concrete β lies
        outside [0, 1].
    """
    beta1, beta2 = getattr(hp, "beta1", None), getattr(hp, "beta2", None)
    if beta1 is None or beta2 is None:
        raise ValueError(
            f"`hp` must have `beta1` and `beta2` fields (e.g. MemoryHParams); got "
            f"{type(hp).__name__}."
        )
    check_unit_interval("beta1", beta1)
    check_unit_interval("beta2", beta2)
    is_memory = lambda node: isinstance(node, LongTermMemoryState)  # noqa: E731
    if not any(is_memory(n) for n in jax.tree.leaves(state, is_leaf=is_memory)):
        raise ValueError(
            "`state` must be (or contain) a LongTermMemoryState from scale_by_long_term_memory; "
            f"got {type(state).__name__} without one."
        )
    return jax.tree.map(
        lambda n: _carry(n, beta1, beta2) if is_memory(n) else n, state, is_leaf=is_memory
    )


def smbea_step(
    step_size: Number,
    mu1: Number = 0.9,
    mu2: Number = 0.999,
    *,
    eps: Number = 1e-8,
    eps_root: Number = 0.0,
    normalizer: str = "l1",
) -> optax.GradientTransformation:
    """SMBEA's whole step rule: ``ĝ = g/‖g‖₁`` (Algorithm 1, step 5; any normaliser of
    :func:`normalize_gradient`), then :func:`scale_by_long_term_memory`, then ``−α``: the
    emitted updates are ADDED to the adversarial example. Call :func:`next_minibatch` on its
    state between mini-batches.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum; default 0.9.
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.999.
      eps: ε >= 0 added after the square root; default 1e-8.
      eps_root: ε >= 0 added under the square root; default 0.
      normalizer: the normaliser, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain`` of the normaliser,
      :func:`scale_by_long_term_memory` and ``optax.scale(−α)``).
    """
    _checks.check_nonnegative("step_size", step_size)
    return optax.chain(
        normalize_gradient(normalizer),
        scale_by_long_term_memory(mu1, mu2, eps=eps, eps_root=eps_root),
        optax.scale(-step_size),
    )


def constraint_schedule(t1: jax.Array | float, beta3: jax.Array | float, n: int) -> jax.Array:
    """The perceptual budgets ``T^(1..n)`` of Algorithm 2: ``T^(i) = T^(i−1) + β3^i·T^(1)``.

    Returns ``f32[n]``; ``T^(1) = t1``. ``t1`` and ``beta3`` ∈ [0, 1] may be traced.

    Args:
      t1: the first mini-batch's budget ``T^(1)`` (>= 0).
      beta3: β3 in ``[0, 1]``, how fast the budget loosens.
      n: the number of mini-batches, a positive integer.

    Returns:
      ``f32[n]``, the budgets ``T^(1), …, T^(n)``.
    """
    _checks.check_positive_int("n", n)
    _checks.check_nonnegative("t1", t1)
    check_unit_interval("beta3", beta3)
    i = jnp.arange(1, n + 1, dtype=jnp.float32)
    loose = jnp.where(i > 1, jnp.asarray(beta3, jnp.float32) ** i, 0.0)
    return jnp.asarray(t1, jnp.float32) * (1.0 + jnp.cumsum(loose))
