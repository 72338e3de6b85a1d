"""A small ReLU victim on the native 8×8 digits, for exact (mixed-integer) robustness checks."""

from __future__ import annotations

import os
from typing import Any

import jax

from jaxadv import _checks
from jaxadv.models import ReluMLP, Victim
from jaxadv.training._default import cached_victim
from jaxadv.training._keys import check_key

# Adam, no augmentation (shifting 8x8 digits by a pixel changes them too much). Measured on the
# 2-core CPU: trains in a few seconds.
_SETTINGS = {"epochs": 60, "batch_size": 64, "learning_rate": 3e-3, "shift": 0}


def small_relu_victim(
    hidden: int = 16,
    *,
    cache_dir: str | os.PathLike | None = None,
    key: jax.Array | None = None,
    progress: bool = False,
) -> tuple[Victim, dict[str, Any]]:
    """A one-hidden-layer ReLU network on scikit-learn's 8×8 digits (64 pixels in [0, 1]).

    Small enough that :func:`jaxadv.metrics.exact_min_norm` computes each image's exact minimum
    adversarial perturbation in about a second, so attacks can be scored against the truth. Trained
    once and cached exactly as :func:`default_victim` (same cache directory, fingerprint and
    checksums).

    Args:
      hidden: width of the hidden layer.
      cache_dir: where trained variables are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      key: PRNG key of the training run; default ``jax.random.key(0)``.
      progress: print training progress to stderr.

    Returns:
      ``(victim, info)`` as :func:`default_victim`; ``jaxadv.models.relu_mlp_layers(
      victim.variables)`` gives the weights as ``(W, b)`` pairs.
    """
    from jaxadv.data import load_digits  # lazily: reading the digits needs scikit-learn

    _checks.check_positive_int("hidden", hidden)
    key = jax.random.key(0) if key is None else key
    check_key(key)
    module = ReluMLP(hidden=(int(hidden),), num_classes=10)
    data = load_digits(size=8)
    name = f"relu{int(hidden)}"
    return cached_victim(name, module, dict(_SETTINGS), data, "digits8", key, cache_dir, progress)
