"""Saving and restoring model variables with orbax-checkpoint.

A checkpoint is restored against the abstract variables of the module it is meant for
(``jax.eval_shape(module.init, ...)``), after comparing the two trees: a checkpoint written for
another architecture, width or number of classes raises a ``ValueError`` that says which entries
are missing, extra or of another shape, instead of an orbax traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

_MAX_LISTED = 6  # differences named in an error message


def default_cache_dir() -> Path:
    """Where jaxadv caches trained victims: ``$JAXADV_CACHE_DIR``, else ``~/.cache/jaxadv``."""
    path = os.environ.get("JAXADV_CACHE_DIR") or os.path.join("~", ".cache", "jaxadv")
    return Path(path).expanduser().resolve()


@contextlib.contextmanager
def cache_lock(path: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (a cache entry) across processes while the body runs.

    Callers that restore-or-train a cached victim take it so that parallel jobs (pytest workers,
    a sweep's processes, notebooks) train once and the others wait and restore, instead of all
    training the same weights. The lock is an ``flock`` on a ``.lock`` file beside the entry; on a
    platform without ``fcntl`` it is a no-op (the atomic rename of the save still keeps the cache
    consistent).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _absolute(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a non-empty str or os.PathLike; got {path!r}.")
    return Path(path).expanduser().resolve()  # orbax needs absolute paths


def save_variables(path: str | os.PathLike, variables: Any, *, overwrite: bool = False) -> Path:
    """Writes ``variables`` (a pytree of arrays, e.g. Flax variables) to the directory ``path``.

    Args:
      path: checkpoint directory; relative paths are made absolute. Its parent is created.
      variables: the pytree to save.
      overwrite: replace an existing checkpoint at ``path`` instead of raising.

    Returns:
      The absolute path written.

    Raises:
      ValueError: if ``path`` exists and ``overwrite`` is False.
    """
    path = _absolute(path)
    if path.exists() and not overwrite:
        raise ValueError(f"`path` {str(path)!r} already exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, variables, force=overwrite)
        checkpointer.wait_until_finished()
    return path


def abstract_variables(module: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """Shapes and dtypes of ``module``'s variables for examples of ``input_shape`` (no compute)."""
    x = jax.ShapeDtypeStruct((1,) + tuple(int(s) for s in input_shape), jnp.float32)
    return jax.eval_shape(lambda key, x: module.init(key, x, train=False), jax.random.key(0), x)


def _entries(tree: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys): (
            tuple(leaf.shape),
            np.dtype(leaf.dtype),
        )
        for keys, leaf in flat
    }


def _differences(saved: dict, expected: dict) -> list[str]:
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    lines = []
    if missing:
        lines.append(f"missing from the checkpoint: {_listing(missing)}")
    if extra:
        lines.append(f"not in the module: {_listing(extra)}")
    mismatched = [
        f"{name} is {saved[name][0]} {saved[name][1]} in the checkpoint but "
        f"{expected[name][0]} {expected[name][1]} in the module"
        for name in sorted(set(saved) & set(expected))
        if saved[name] != expected[name]
    ]
    if mismatched:
        more = f"; ... ({len(mismatched)} in all)" if len(mismatched) > _MAX_LISTED else ""
        lines.append("shape/dtype mismatch: " + "; ".join(mismatched[:_MAX_LISTED]) + more)
    return lines


def tree_differences(saved: Any, expected: Any) -> list[str]:
    """What differs between two variable trees (abstract or concrete): entries missing from
    ``saved``, extra in it, or of another shape or dtype; one line per kind, empty if none."""
    return _differences(_entries(saved), _entries(expected))


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def describe_module(module: nn.Module) -> str:
    """One-line ``Name(field=value, ...)`` of a linen module (its repr spans many lines)."""
    fields = [
        f"{f.name}={getattr(module, f.name)!r}"
        for f in dataclasses.fields(module)
        if f.name not in ("parent", "name")
    ]
    return f"{type(module).__name__}({', '.join(fields)})"


def restore_variables(
    path: str | os.PathLike, module: nn.Module, input_shape: tuple[int, ...]
) -> dict[str, Any]:
    """Reads the variables of ``module`` (for examples of ``input_shape``) saved at ``path``.

    Args:
      path: checkpoint directory written by :func:`save_variables`.
      module: the Flax module the variables belong to.
      input_shape: shape of ONE example, e.g. ``(28, 28, 1)`` (it fixes the shapes of layers that
        follow a flatten).

    Returns:
      The variables as a dict of ``jax.Array`` leaves, bit-identical to those saved.

    Raises:
      ValueError: if there is no checkpoint at ``path``, or its tree, shapes or dtypes differ from
        ``module``'s; the message names the path, the module and the differences.
    """
    path = _absolute(path)
    if not path.is_dir():
        raise ValueError(f"`path` {str(path)!r} holds no checkpoint (no such directory).")
    target = abstract_variables(module, input_shape)
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            saved = checkpointer.metadata(path).item_metadata
        except Exception as err:  # orbax raises several types for unreadable directories
            raise ValueError(f"`path` {str(path)!r} is not a readable checkpoint: {err}") from err
        if saved is None:
            raise ValueError(f"`path` {str(path)!r} is not a readable checkpoint (no metadata).")
        problems = tree_differences(saved, target)
        if problems:
            raise ValueError(
                f"The checkpoint at `path` {str(path)!r} does not match `module` "
                f"{describe_module(module)} with `input_shape` {tuple(input_shape)}: "
                + "; ".join(problems)
                + "."
            )
        restored = checkpointer.restore(path, target)
    return jax.tree.map(jnp.asarray, restored)
