"""Argument checks shared by the whole library.

Every check raises a ``ValueError`` whose message names the argument, what was expected and what
was received. Checks on array *values* (finite, in bounds, non-negative) only run on concrete
arrays: inside ``jit``/``vmap`` the values are tracers and the check is skipped, so validate at the
outermost call (the batch entry points do) and keep traced code branch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when every leaf of ``x`` holds a known value (not a tracer)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")


def check_restarts(restarts: Any, random_start: bool) -> None:
    """``restarts`` is a whole number >= 1, and more than one needs random starts to differ."""
    check_positive_int("restarts", restarts)
    if restarts > 1 and not random_start:
        raise ValueError(
            f"`restarts={restarts}` repeats identical runs without `random_start=True`."
        )


def check_nonnegative(name: str, value: Any) -> None:
    """Raises if a concrete number (or any entry of a concrete array) is negative or not finite."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; got {_show(arr)}.")
    if np.any(arr < 0):
        raise ValueError(f"`{name}` must be >= 0; got {_show(arr)}.")


def check_positive(name: str, value: Any) -> None:
    """Raises if a concrete number (or any entry of a concrete array) is not strictly positive."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"`{name}` must be finite and > 0; got {_show(arr)}.")


def check_finite(name: str, x: Any) -> None:
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` must be finite; got {bad} NaN/inf entries of {arr.size}.")


def check_in_bounds(name: str, x: Any, bounds: Sequence[float]) -> None:
    """Raises if concrete ``x`` has NaN/inf or values outside the closed interval ``bounds``."""
    check_finite(name, x)
    if not is_concrete(x):
        return
    lo, hi = bounds
    arr = np.asarray(x)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(
            f"`{name}` must lie within the pixel bounds [{lo}, {hi}]; got values in "
            f"[{arr.min():.6g}, {arr.max():.6g}]."
        )


def check_example_shape(name: str, shape: Sequence[int], expected: Sequence[int]) -> None:
    """Checks that one example (no batch axis) has the expected shape, naming a stray batch axis."""
    shape, expected = tuple(shape), tuple(expected)
    if shape == expected:
        return
    if len(shape) == len(expected) + 1 and shape[1:] == expected:
        raise ValueError(
            f"`{name}` must be ONE example of shape {expected}; got shape {shape}, which has a "
            "leading batch axis. Use the batch entry point or `jax.vmap` over examples."
        )
    if len(shape) + 1 == len(expected) and shape == expected[1:]:
        raise ValueError(
            f"`{name}` must be ONE example of shape {expected}; got shape {shape}, which lacks "
            f"the leading axis of size {expected[0]}."
        )
    raise ValueError(f"`{name}` must have shape {expected}; got shape {shape}.")


def check_batch_shape(name: str, shape: Sequence[int], example_shape: Sequence[int]) -> None:
    """Checks a batch of examples: shape must be ``(batch,) + example_shape``."""
    shape, example_shape = tuple(shape), tuple(example_shape)
    if len(shape) == len(example_shape) + 1 and shape[1:] == example_shape:
        return
    if shape == example_shape:
        raise ValueError(
            f"`{name}` must be a BATCH of shape (batch, {', '.join(map(str, example_shape))}); "
            f"got one example of shape {shape}. Add a leading axis (x[None])."
        )
    raise ValueError(
        f"`{name}` must have shape (batch, {', '.join(map(str, example_shape))}); got {shape}."
    )


def check_labels(name: str, labels: Any, num_classes: int) -> None:
    """Raises if concrete integer labels fall outside ``[0, num_classes)``."""
    if not is_concrete(labels):
        return
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integer class indices; got dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes - 1}] for {num_classes} classes; got values in "
            f"[{arr.min()}, {arr.max()}]."
        )


def check_unit_interval(name: str, value: Any) -> None:
    """Raises if a concrete number (a decay μ or β, a quantile) lies outside [0, 1]."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"`{name}` must lie in [0, 1]; got {show(arr)}.")


def check_key(name: str, key: Any) -> None:
    """Raises unless ``key`` is ONE PRNG key: a typed ``jax.random.key(seed)`` of shape () or raw
    ``uint32[2]`` key data (``jax.random.PRNGKey``)."""
    if isinstance(key, jax.core.Tracer) and not hasattr(key, "dtype"):
        return
    dtype = getattr(key, "dtype", None)
    shape = tuple(np.shape(key)) if dtype is not None else None
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype is not None and dtype == np.uint32 and shape == (2,):
        return
    got = (
        f"{type(key).__name__} {key!r}"
        if dtype is None
        else f"an array of dtype {dtype} and shape {shape}"
    )
    raise ValueError(
        f"`{name}` must be ONE PRNG key, `jax.random.key(seed)`; got {got}. Entry points that "
        "take a batch split this one key per example themselves (`attack.batch`, `.sweep`); to "
        "run with your own batch of keys, `jax.vmap(attack.run)` over them."
    )


def show(arr: np.ndarray) -> str:
    """A short printout of an array's values for an error message."""
    return _show(np.asarray(arr))


def _show(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(float(arr))
    flat = arr.ravel()
    text = np.array2string(flat[:8], precision=6, separator=", ")
    return text if flat.size <= 8 else f"{text[:-1]}, ...] ({flat.size} values)"


def check_directory(name: str, path: Any) -> None:
    """Refuses a directory argument that is an existing file or lies under one (before any work
    is done)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`{name}` must be a non-empty str or os.PathLike; got {path!r}.")
    path = Path(path).expanduser().resolve()
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == path else f"lies under the file {str(place)!r}"
                raise ValueError(f"`{name}` {str(path)!r} {where}; it must be a directory.")
            return


def check_masks(name: str, masks: Any, images_shape: Sequence[int]) -> None:
    """Raises a ``ValueError`` naming ``name`` unless ``masks`` are foreground masks of images of
    shape ``images_shape``.

    Checked: the shape is ``images_shape[:-1] + (1,)`` (one image ``(h, w, c)`` → ``(h, w, 1)``,
    a batch ``(n, h, w, c)`` → ``(n, h, w, 1)``); the dtype is real (bool, integer or float);
    and, when the values are concrete (not tracers inside ``jit``/``vmap``), every value is
    finite and either 0 or 1. Returns nothing.

    Example: ``check_masks("masks", masks, images.shape)``.

    Args:
      name: the argument's name, for the message.
      masks: the masks to check.
      images_shape: the shape of the images they belong to (one image or a batch).
    """
    images_shape = tuple(int(s) for s in images_shape)
    if len(images_shape) < 3:
        raise ValueError(f"`images_shape` must be (h, w, c) or (n, h, w, c); got {images_shape}.")
    expected = images_shape[:-1] + (1,)
    shape = tuple(np.shape(masks))
    if shape != expected:
        hint = ""
        if shape == images_shape[:-1]:
            hint = " Add the trailing channel axis: `masks[..., None]`."
        elif shape == images_shape:
            hint = " A mask has ONE channel, shared by all colour channels."
        raise ValueError(
            f"`{name}` must have shape {expected} (that of the images {images_shape} with one "
            f"channel); got {shape}.{hint}"
        )
    dtype = np.dtype(masks.dtype) if hasattr(masks, "dtype") else np.asarray(masks).dtype
    if dtype.kind not in "biuf":  # bool, signed, unsigned, float
        raise ValueError(f"`{name}` must hold real numbers 0 and 1; got dtype {dtype}.")
    if not is_concrete(masks):
        return
    values = np.asarray(masks)
    check_finite(name, values)
    off = (values != 0) & (values != 1)
    if np.any(off):
        bad = np.unique(values[off])
        raise ValueError(
            f"`{name}` must hold only 0 (background) and 1 (foreground); got {int(off.sum())} "
            f"other entries of {values.size}, e.g. {show(bad[:8])}. Threshold soft masks "
            "first (e.g. `jaxadv.image.foreground_from_saliency`)."
        )
