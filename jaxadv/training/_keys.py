"""PRNG keys as the trainers take them: checked, and read as words that seed numpy generators."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def check_key(key: Any) -> None:
    """Raises unless ``key`` is one PRNG key: typed (``jax.random.key``) or raw ``uint32[2]``."""
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if typed and np.shape(key) == ():
        return
    if not typed and dtype == np.uint32 and np.shape(key) == (2,):
        return
    raise ValueError(
        "`key` must be one PRNG key, e.g. jax.random.key(0); got "
        + (
            f"an array of dtype {dtype} and shape {np.shape(key)}."
            if dtype is not None
            else f"{type(key).__name__} {key!r}."
        )
    )


def seed_words(key: jax.Array) -> list[int]:
    """The key's raw words, to seed numpy generators (independent of JAX's PRNG flags)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(w) for w in np.asarray(key).ravel()]
