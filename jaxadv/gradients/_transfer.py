"""The transfer oracle: the gradient of a surrogate taken the way transfer attacks take it.

Transfer boosters change how each step's GRADIENT is computed, not the step rule:

* input transformations — the gradient of the mean loss over transformed copies of the input:
  scale copies ``x/2^i`` (SI, Lin et al. 2020), mixes ``x + η·x'`` with images ``x'`` of a
  pool (Admix, Wang et al. 2021; each mix is then scale-copied), a random resize-and-pad of each
  copy with probability ``p`` (DI, Xie et al. 2019; ``_diversity``);
* a Nesterov look-ahead (NI, Lin et al. 2020): the gradient at ``θ − c·m_t``, ``m_t`` the
  momentum after the last step;
* variance tuning (VMI/VNI, Wang & He 2021): the returned gradient is ``ĝ_t + v_{t−1}``, where
  ``v_t = mean_i G(θ_t + r_i) − ĝ_t`` over ``N`` neighbours ``r_i ~ U[−ρ, ρ]^d`` of the current
  iterate (``ĝ`` the gradient of this step, possibly at the look-ahead point; ``G`` the same
  transformed gradient at the neighbour).

Randomness comes from the per-step key the runner passes (the same key, the same gradient).
``m_t`` and ``v_t`` are the oracle's state. The look-ahead needs the step rule's momentum: the
oracle keeps a SHADOW of it, ``momentum`` (an optax transform emitting ``m``, the same
transform the step rule applies to the returned gradient, so the same numbers), updated with
every gradient it returns.

The loss, aux and success the runner records are those of the plain loss at ``θ`` (one extra
forward pass): boosters change the direction, never what an iterate is judged on.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv.gradients._diversity import diverse_from_uniforms


class TransferState(NamedTuple):
    """State of :class:`Transfer`.

    Attributes:
      variance: ``v_t`` of variance tuning (zeros without it).
      momentum: the shadow momentum's optax state (``()`` without a look-ahead).
      last: ``m_t``, the momentum after the last step (zeros without a look-ahead).
    """

    variance: jax.Array
    momentum: Any
    last: jax.Array


@dataclasses.dataclass(frozen=True)
class Transfer:
    """The transfer gradient oracle of one example (module docstring); built by the attack.

    Attributes:
      loss_of_input: ``x -> scalar``, the attack's loss of an input (victim included).
      x0: the clean example; the latent is additive, ``x = x0 + θ``.
      diversity: DI's probability ``p`` (None: no DI; ``0`` runs DI's code and never resizes).
      resize_rate: DI's smallest size as a fraction of the image side, in (0, 1].
      scales: SI's number of scale copies ``x/2^i``, ``i < scales`` (1: the input itself).
      pool: Admix's images ``[P, *x0.shape]`` (None: no Admix).
      mix_strength: Admix's ``η``.
      mix_copies: Admix's number of pool images drawn per step (``m2``).
      neighbours: variance tuning's ``N`` (0: none; ``v`` stays zero).
      radius: the neighbours' ℓ∞ radius ``ρ = β·eps`` (may be traced).
      lookahead: NI's ``c`` (None: no look-ahead); the gradient is taken at ``θ − c·m_t``.
      momentum: the shadow of the step rule's momentum (needed with ``lookahead``).
    """

    loss_of_input: Callable[[jax.Array], jax.Array]
    x0: jax.Array
    diversity: float | None = None
    resize_rate: float = 0.9
    scales: int = 1
    pool: jax.Array | None = None
    mix_strength: float = 0.2
    mix_copies: int = 1
    neighbours: int = 0
    radius: Any = 0.0
    lookahead: Any = None
    momentum: optax.GradientTransformation | None = None
    forward_query: ClassVar[int] = 0

    @property
    def copies(self) -> int:
        """Transformed copies per gradient: ``scales`` (× ``mix_copies`` with Admix)."""
        return self.scales * (1 if self.pool is None else self.mix_copies)

    @property
    def queries_per_call(self) -> int:
        """Forward+backward passes per step: every copy at the iterate and at each neighbour."""
        return self.copies * (1 + self.neighbours)

    def init(self, theta):
        zeros = jnp.zeros_like(theta)
        momentum = () if self.momentum is None else self.momentum.init(theta)
        return TransferState(variance=zeros, momentum=momentum, last=zeros)

    def inputs(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """The transformed copies ``[copies, *x.shape]`` of one input (one draw of uniforms:
        Admix's picks, then four per copy for DI)."""
        mixing = 0 if self.pool is None else self.mix_copies
        size = mixing + (0 if self.diversity is None else 4 * self.copies)
        u = jax.random.uniform(key, (size,)) if size else None
        if self.pool is None:
            mixes = x[None]
        else:
            pool = jnp.asarray(self.pool)
            idx = jnp.floor(u[:mixing] * pool.shape[0]).astype(jnp.int32)
            mixes = x[None] + self.mix_strength * pool[idx]
        copies = jnp.concatenate([mixes / 2.0**i for i in range(self.scales)])
        if self.diversity is not None:
            draws = u[mixing:].reshape(self.copies, 4)
            diverse = lambda d, c: diverse_from_uniforms(d, c, self.diversity, self.resize_rate)  # noqa: E731
            copies = jax.vmap(diverse)(draws, copies)
        return copies

    def loss(self, theta: jax.Array, key: jax.Array) -> jax.Array:
        """The mean loss over the transformed copies of ``x0 + θ``."""
        copies = self.inputs(self.x0 + theta, key)
        if copies.shape[0] == 1:  # no vmap over one copy: the plain loss, bit for bit
            return self.loss_of_input(copies[0])
        return jnp.mean(jax.vmap(self.loss_of_input)(copies))

    def __call__(self, loss_fn, theta, key, state: TransferState):
        record = loss_fn(theta)  # the iterate's own loss and aux, on the untransformed input
        if self.neighbours:  # offsets, the iterate, the neighbours
            keys = jax.random.split(key, 2 + self.neighbours)
        else:  # one draw at most (threefry compiles slowly on CPU: no split unless needed)
            keys = (None, key)
        grad_of = jax.grad(self.loss)
        point = theta if self.lookahead is None else theta - self.lookahead * state.last
        g_hat = grad_of(point, keys[1])
        grad = g_hat + state.variance
        variance = state.variance
        if self.neighbours:
            shape = (self.neighbours,) + theta.shape
            offsets = self.radius * jax.random.uniform(keys[0], shape, minval=-1.0, maxval=1.0)
            around = jax.vmap(lambda r, k: grad_of(theta + r, k))(offsets, keys[2:])
            variance = jnp.mean(around, axis=0) - g_hat
        momentum, last = state.momentum, state.last
        if self.momentum is not None:
            last, momentum = self.momentum.update(grad, state.momentum, theta)
        queries = jnp.asarray(self.queries_per_call, jnp.int32)
        return record, grad, TransferState(variance, momentum, last), queries
