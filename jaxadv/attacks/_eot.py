"""Expectation over transformation (EOT): an attack's objective averaged over a randomized
victim's draws.

Athalye, Engstrom, Ilyas & Kwok, "Synthesizing robust adversarial examples", ICML 2018: against
a victim whose output depends on fresh randomness η, minimise ``E_η[L(h(x, η))]`` instead of the
loss of one draw, estimated with ``n`` draws per step. The dual-perturbation paper (Tong et al.,
appendix J, Eqs. 5–6) attacks randomized-smoothing classifiers this way, the expectation of loss
plus saliency penalty over Gaussian input noise.

The draws are a ``vmap`` over ``n`` keys of the :class:`~jaxadv.models.RandomizedVictim`, inside
the compiled step; the gradient of the mean loss is the mean of the draws' gradients. The helpers
here are shared by :func:`~jaxadv.attacks.descent` (every :class:`~jaxadv.attacks.Attack`,
``eot_samples``) and APGD (``eot_iter``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.models import RandomizedVictim


def refusal(name: str | None = None) -> str:
    """Why an attack without EOT refuses a randomized victim, and what to do instead."""
    who = "this attack" if name is None else f"attack {name!r}"
    return (
        f"The victim is a RandomizedVictim (its outputs change with a key), which {who} does not "
        "average over. Attack one fixed draw with `victim.with_key(key)`, or average over n draws "
        "per step (expectation over transformation): `jaxadv.attacks.with_eot(attack, samples=n)` "
        "for the descent attacks (fgsm, bim, pgd, mi_fgsm, ...), `apgd(eot_iter=n)`, AutoAttack's "
        "version='rand'."
    )


def check_samples(samples, name: str = "eot_samples") -> None:
    """``samples`` must be None (no EOT) or a whole number ≥ 1."""
    if samples is not None:
        _checks.check_positive_int(name, samples)


def check_randomness(victim, samples: int | None, name: str | None = None) -> None:
    """A randomized victim needs EOT (``samples`` given); EOT needs a randomized victim."""
    randomized = isinstance(victim, RandomizedVictim)
    if randomized and samples is None:
        raise ValueError(refusal(name))
    if not randomized and samples is not None:
        raise ValueError(
            f"`eot_samples={samples}` averages over a RandomizedVictim's draws, but the victim is "
            f"a deterministic {type(victim).__name__} (every draw would be the same, and the "
            "argument ignored). Drop it (the attack without `with_eot`), or attack a "
            "jaxadv.models.RandomizedVictim (e.g. `models.with_input_noise(victim, sigma)`)."
        )


def over_draws(
    victim: RandomizedVictim,
    x: jax.Array,
    keys: jax.Array,
    loss_of: Callable[[jax.Array], jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """The mean of ``loss_of(logits)`` over the draws of ``keys`` at ``x``, and each draw's logits
    (stacked on axis 0). One ``vmap`` over the keys; differentiate the mean for the mean gradient."""
    logits = jax.vmap(lambda key: victim(x, key))(keys)
    return jnp.mean(jax.vmap(loss_of)(logits)), logits


def vote(logits: jax.Array) -> jax.Array:
    """Per class, how many draws predict it (``logits``: draws on axis 0). Its argmax is the
    Monte-Carlo estimate of the smoothed classifier ``argmax_c P(h(x, η) = c)``."""
    hits = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=logits.dtype)
    return jnp.sum(hits, axis=0)
