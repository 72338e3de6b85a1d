"""Momentum accumulators for iterative attacks, as optax transformations."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from jaxadv import _checks
from jaxadv.transforms._normalize import normalize_by_l1_norm


class MIMomentumState(NamedTuple):
    """State of :func:`mi_momentum`: the accumulated, normalised gradient (same tree as params)."""

    momentum: optax.Updates


def mi_momentum(decay: jax.Array | float = 1.0) -> optax.GradientTransformation:
    """MI-FGSM momentum: ``m ← decay·m + g/‖g‖₁``; emits ``m`` (Dong et al., CVPR 2018, Eq. 6).

    Chain it with :func:`jaxadv.transforms.sign` and ``optax.scale(-step_size)`` for the MI-FGSM
    step ``x ← x − α·sign(m)`` on the minimised objective. The paper's default decay is 1.0.
    ``decay`` may be traced (swept).
    """
    _checks.check_nonnegative("decay", decay)
    normalize = normalize_by_l1_norm()

    def init_fn(params):
        return MIMomentumState(momentum=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        normalized, _ = normalize.update(updates, optax.EmptyState())
        momentum = jax.tree.map(
            lambda m, g: (decay * m + g).astype(m.dtype), state.momentum, normalized
        )
        return momentum, MIMomentumState(momentum=momentum)

    return optax.GradientTransformation(init_fn, update_fn)
