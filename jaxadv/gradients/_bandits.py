"""Bandits-TD: a gradient estimate learned online, with a time prior and a tiled data prior.

Ilyas, Engstrom & Madry, "Prior Convictions: Black-box Adversarial Attacks with Bandits and
Priors", ICLR 2019 (Algorithms 1-3; published code: MadryLab/blackbox-bandits, ``src/main.py``).
Successive gradients of an attack are correlated (the *time* prior) and neighbouring pixels have
similar gradients (the *data* prior), so instead of a fresh estimate per step the estimator keeps
a running estimate ``v`` (its state) at a lower resolution (one entry per ``tile × tile`` block of
pixels and channel) and improves it with two queries per step:

    u ~ N(0, I/d)                              exploration at the prior's resolution (d entries)
    q1, q2 = up(v + δu), up(v − δu)            up: nearest-neighbour tiling to the image
    Δ = [L(θ + η q1/‖q1‖) − L(θ + η q2/‖q2‖)] / (δη) · u
    ℓ2:  v ← v + lr·Δ                          (a gradient step on the bandit's loss)
    ℓ∞:  p = (v+1)/2,  v ← 2·p e^{lr Δ} / (p e^{lr Δ} + (1−p) e^{−lr Δ}) − 1
                                               (exponentiated gradients, keeping v in [−1, 1])

and returns ``up(v)`` as the gradient; the attack then steps along ``sign(up(v))`` (ℓ∞) or
``up(v)/‖up(v)‖`` (ℓ2) with its ``SteepestStep``. ``L`` is the attack's objective, which jaxadv
MINIMISES (the paper maximises the attacker's loss): ``Δ`` estimates a (scaled) projection of
``∇L`` on ``u``, so ``v`` tracks the gradient of the minimised loss and the descent step needs no
sign flip. (The paper's ``v`` tracks the gradient of its maximised loss, ``−∇L`` here; the EG and
gradient updates are odd in ``(v, Δ)``, so the two are mirror images step by step.)

Numbers (read from a query attack's hyper-parameters by :meth:`Bandits.with_params`):
``η = hp.fd_step`` (the code's ``fd_eta``), ``δ = hp.exploration``, ``lr = hp.prior_lr`` (the
code's ``online_lr``). One call spends 3 queries: the two probes (one batched pass) and the loss at
``θ``, which the attack records as its current iterate (the published code's bookkeeping counts 2
per step and evaluates the iterate outside its count).

Paper and published code: the code draws ``u`` as ``randn/√d`` (``N(0, I/d)``, as here) and
forms its estimate as ``(L1 − L2)/(δη) · δu``, i.e. ``δ`` times the ``Δ`` above (Algorithm 2's
``(ℓ(q1) − ℓ(q2))/δ · u``); its ``online_lr`` values (100 for ℓ∞ with δ = 1, 0.1 for ℓ2 with
δ = 0.01) were tuned with that scaling, so ``lr`` on ``δ·Δ`` is ``δ·lr`` on ``Δ``.
``published_code=True`` reproduces the code's estimate (for ℓ∞ with δ = 1 the two agree); the
default is the paper's ``Δ``. The code's probes are not clipped to the pixel box (nor are they
here: ``loss_fn`` decides what a probe outside the box means). The code's "tile size" (50) is
the *prior's* side, upsampled to the 299-pixel image (blocks of ~6 pixels); here ``tile`` is the
block side in pixels and must divide the image.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.gradients._nes import probe_losses

PRIOR_UPDATES = ("eg", "gd")  # exponentiated gradients (ℓ∞), gradient step (ℓ2)


def check_tile(tile: int, shape: tuple[int, ...]) -> None:
    """Raises a ValueError unless ``tile`` blocks of pixels tile an image of ``shape``."""
    _checks.check_positive_int("tile", tile)
    if tile == 1:
        return
    if len(shape) != 3:
        raise ValueError(
            f"`tile` > 1 tiles an image of shape [height, width, channels]; got tile={tile} for "
            f"an input of shape {tuple(shape)} (use tile=1)."
        )
    if shape[0] % tile or shape[1] % tile:
        raise ValueError(
            f"`tile` must divide the image's height and width; got tile={tile} for an image of "
            f"shape {tuple(shape)}."
        )


def prior_shape(tile: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the data prior for an input of ``shape``: one entry per tile and channel."""
    check_tile(tile, shape)
    if tile == 1:
        return tuple(shape)
    return (shape[0] // tile, shape[1] // tile) + tuple(shape[2:])


def upsample(prior: jax.Array, tile: int) -> jax.Array:
    """Nearest-neighbour upsampling: each prior entry fills a ``tile × tile`` block of pixels."""
    if tile == 1:
        return prior
    return jnp.repeat(jnp.repeat(prior, tile, axis=0), tile, axis=1)


def _unit(q: jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(q)))
    return q / jnp.where(norm > 0, norm, 1.0)  # q = 0 only with δ = 0: then the probe is θ


def eg_step(prior: jax.Array, estimate: jax.Array, lr: jax.Array) -> jax.Array:
    """One exponentiated-gradient step on ``[−1, 1]`` entries (the paper's ℓ∞ prior update):
    ``p = (v+1)/2`` is moved multiplicatively by ``e^{±lr Δ}`` and mapped back to ``2p − 1``.

    Written as ``tanh(atanh(v) + lr Δ)``, its closed form, which neither overflows for large
    ``lr Δ`` nor leaves ``[−1, 1]`` (with ``v = ±1`` kept at ``±1``, as ``p ∈ {0, 1}`` is).
    """
    pos = jnp.log1p(prior)  # log(2p)
    neg = jnp.log1p(-prior)  # log(2(1 − p))
    # 2p e^{a} / (p e^{a} + (1−p) e^{−a}) − 1 = tanh((log p − log(1−p))/2 + a)
    return jnp.tanh(0.5 * (pos - neg) + lr * estimate)


def gd_step(prior: jax.Array, estimate: jax.Array, lr: jax.Array) -> jax.Array:
    """One gradient step ``v + lr·Δ`` (the paper's ℓ2 prior update)."""
    return prior + lr * estimate


@dataclasses.dataclass(frozen=True)
class Bandits:
    """The Bandits-TD estimator (module docstring).

    Attributes:
      prior_update: ``"eg"`` (exponentiated gradients, for ℓ∞ attacks) or ``"gd"`` (a gradient
        step, for ℓ2 attacks). Static.
      tile: side in pixels of the data prior's blocks (1: no data prior). Must divide the image's
        height and width. Static.
      published_code: form the estimate as the published code does (``δ`` times the paper's
        ``Δ``; module docstring). Static.
      fd_eta: the finite-difference radius η of the probes (a query attack sets ``hp.fd_step``).
      exploration: the exploration scale δ (``hp.exploration``).
      prior_lr: the prior's online learning rate (``hp.prior_lr``).
    """

    prior_update: str = "eg"
    tile: int = 1
    published_code: bool = False
    fd_eta: float = 0.1
    exploration: float = 1.0
    prior_lr: float = 100.0
    forward_query = 1

    def __post_init__(self):
        _checks.check_choice("prior_update", self.prior_update, PRIOR_UPDATES)
        _checks.check_positive_int("tile", self.tile)

    @property
    def queries_per_call(self) -> int:
        return 2 + self.forward_query

    def with_params(self, hp) -> Bandits:
        return dataclasses.replace(
            self, fd_eta=hp.fd_step, exploration=hp.exploration, prior_lr=hp.prior_lr
        )

    def init(self, theta):
        """The prior before the first call: zero (no direction preferred)."""
        return jnp.zeros(prior_shape(self.tile, theta.shape), theta.dtype)

    def estimate(self, loss_fn, theta, u, prior):
        """``Δ`` for the exploration draw ``u`` (at the prior's resolution) and the prior ``v``."""
        delta = jnp.asarray(self.exploration, theta.dtype)
        q1 = _unit(upsample(prior + delta * u, self.tile))
        q2 = _unit(upsample(prior - delta * u, self.tile))
        l1, l2 = probe_losses(loss_fn, theta + self.fd_eta * jnp.stack([q1, q2]))
        scale = (l1 - l2) / self.fd_eta
        return scale * u if self.published_code else scale / delta * u

    def __call__(self, loss_fn, theta, key, state):
        (loss, aux) = loss_fn(theta)
        d = state.size
        u = jax.random.normal(key, state.shape, theta.dtype) / jnp.sqrt(jnp.asarray(d, theta.dtype))
        estimate = self.estimate(loss_fn, theta, u, state)
        step = eg_step if self.prior_update == "eg" else gd_step
        prior = step(state, estimate, self.prior_lr)
        grad = upsample(prior, self.tile)
        return (loss, aux), grad, prior, jnp.asarray(self.queries_per_call, jnp.int32)


def bandits(
    prior_update: str = "eg",
    tile: int = 1,
    *,
    published_code: bool = False,
    fd_eta: float = 0.1,
    exploration: float = 1.0,
    prior_lr: float = 100.0,
) -> Bandits:
    """The Bandits-TD estimator: ``"eg"`` prior updates for ℓ∞ attacks, ``"gd"`` for ℓ2; a data
    prior of ``tile × tile`` blocks (1: none). In a query attack the numbers come from its
    hyper-parameters (``fd_step``, ``exploration``, ``prior_lr``).

    Args:
      prior_update: ``"eg"`` (exponentiated gradients, ℓ∞) or ``"gd"`` (gradient step, ℓ2).
      tile: side in pixels of the data prior's blocks; must divide the image's height and width
        (1: no data prior).
      published_code: form the estimate as the published code does (``δ`` times the paper's
        ``Δ``); False: the paper's ``Δ``.
      fd_eta: the probes' finite-difference radius η (replaced by ``hp.fd_step`` in an attack).
      exploration: the exploration scale δ (replaced by ``hp.exploration``).
      prior_lr: the prior's online learning rate (replaced by ``hp.prior_lr``).

    Returns:
      A :class:`Bandits` oracle.
    """
    return Bandits(prior_update, tile, published_code, fd_eta, exploration, prior_lr)
