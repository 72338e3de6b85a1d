"""Saving and restoring model variables with orbax-checkpoint.

A checkpoint is restored against the abstract variables of the module it is meant for
(``jax.eval_shape(module.init, ...)``), after comparing the two trees: a checkpoint written for
another architecture, width or number of classes raises a ``ValueError`` that says which entries
are missing, extra or of another shape, instead of an orbax traceback.

Every saved tree carries a checksum (:func:`tree_checksum`: the sha256 of each leaf's bytes, with
its path, shape and dtype), written beside the orbax files (``jaxadv_checksum.json`` inside the
checkpoint directory; the sweep and training checkpoints keep it in their step's JSON record), and
is verified on restore: flipped bytes in a data file (which orbax itself restores without a word)
or a truncated file (a bare ``Exception`` from tensorstore) raise a
:class:`CheckpointCorruptedError` that names the checkpoint, the entries that differ and what to
do. A checkpoint written before checksums existed is restored with a warning that it was not
verified.
"""

from __future__ import annotations

import copy

import contextlib
import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

_MAX_LISTED = 6  # differences named in an error message
CHECKSUM_FILE = "jaxadv_checksum.json"  # beside the orbax files of a ``save_variables`` checkpoint
_CHECKSUM_FORMAT = 1


class CheckpointCorruptedError(ValueError):
    """A checkpoint on disk does not read back as it was written: a data or metadata file is
    truncated, altered or missing, or the restored arrays differ from their saved checksum.

    Attributes:
      path: the checkpoint (directory, or the file at fault when one is known).
      detail: what is wrong.
      remedy: what to do about it.
    """

    def __init__(self, path: str | os.PathLike, detail: str, remedy: str) -> None:
        self.path, self.detail, self.remedy = Path(path), detail, remedy
        super().__init__(f"The checkpoint {str(path)!r} is corrupted: {detail}. {remedy}")


def _leaf_bytes(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.ascontiguousarray(np.asarray(jax.device_get(leaf)))


def _leaf_name(keys: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in keys)


def tree_checksum(tree: Any) -> dict[str, Any]:
    """A JSON-able checksum of a pytree of arrays: per leaf (named by its path) its shape, dtype
    and the sha256 of its bytes, and one sha256 over them all."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    leaves = {}
    for keys, leaf in flat:
        arr = _leaf_bytes(leaf)
        leaves[_leaf_name(keys)] = {
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
        }
    whole = hashlib.sha256(json.dumps(leaves, sort_keys=True).encode()).hexdigest()
    return {"format": _CHECKSUM_FORMAT, "algorithm": "sha256", "tree": whole, "leaves": leaves}


def verify_checksum(tree: Any, record: Any, *, path: str | os.PathLike, remedy: str) -> None:
    """Compares a restored ``tree`` with the checksum ``record`` saved with it.

    ``record`` None (a checkpoint written before checksums existed) warns that the restore is not
    verified. Raises :class:`CheckpointCorruptedError` naming the differing entries otherwise.
    """
    if record is None:
        warnings.warn(
            f"The checkpoint {str(path)!r} has no checksum (written by an older jaxadv): it is "
            "restored without verification. Save it again to add one.",
            stacklevel=3,
        )
        return
    saved = record.get("leaves") if isinstance(record, dict) else None
    if not isinstance(saved, dict) or record.get("algorithm") != "sha256":
        raise CheckpointCorruptedError(path, f"its checksum record is unreadable ({record!r:.80})",
                                       remedy)
    actual = tree_checksum(tree)["leaves"]
    problems = []
    missing, extra = sorted(set(saved) - set(actual)), sorted(set(actual) - set(saved))
    if missing:
        problems.append(f"entries in the checksum but not restored: {_listing(missing)}")
    if extra:
        problems.append(f"entries restored but not in the checksum: {_listing(extra)}")
    changed = [name for name in sorted(set(saved) & set(actual)) if saved[name] != actual[name]]
    if changed:
        problems.append(
            f"{len(changed)} of {len(actual)} arrays differ from their saved checksum: "
            + _listing(changed)
        )
    if problems:
        raise CheckpointCorruptedError(path, "; ".join(problems), remedy)


def read_failure(path: str | os.PathLike, err: BaseException, remedy: str) -> Exception:
    """The error to raise when orbax or tensorstore cannot read a checkpoint (truncated or
    altered file): a :class:`CheckpointCorruptedError` quoting theirs (first line)."""
    if isinstance(err, CheckpointCorruptedError):
        return err
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    first = first if len(first) <= 300 else first[:300] + " ..."
    return CheckpointCorruptedError(
        path, f"orbax cannot read it ({type(err).__name__}: {first})", remedy
    )


def save_step(manager: ocp.CheckpointManager, step: int, item: str, tree: Any, meta: dict) -> None:
    """Saves ``tree`` (as the ``item`` of a ``StandardSave``) and the JSON record ``meta`` as
    one step of an orbax ``CheckpointManager`` whose handlers are ``{item: Standard, "meta":
    Json}``, with the checksum of ``tree`` added to the record (key ``"checksum"``).

    Args:
      manager: the orbax ``CheckpointManager`` to save into.
      step: the step number (the step's folder name).
      item: the name of the tree's item in the step (a handler of ``manager``).
      tree: the pytree of arrays to save.
      meta: a JSON-able dict, the step's record; deep-copied (the caller may go on changing
        it while the save runs asynchronously), and its copy gets ``"checksum"``.
    """
    # A deep copy: the save is asynchronous, and a caller that goes on appending to the lists of
    # its record would otherwise change what is written (a resumed run then reads a later record).
    meta = {**copy.deepcopy(meta), "checksum": tree_checksum(tree)}
    manager.save(
        step,
        args=ocp.args.Composite(
            **{item: ocp.args.StandardSave(tree), "meta": ocp.args.JsonSave(meta)}
        ),
    )


def read_every_value(directory: Path, where: str | os.PathLike, remedy: str) -> None:
    """Reads and decodes every array of an orbax (OCDBT) item once, one after another, before
    orbax restores it.

    orbax reads the arrays of a tree concurrently on an asyncio loop that it closes as soon as
    one read fails; the reads still in flight then finish on the closed loop, and tensorstore
    prints "RuntimeError: Event loop is closed" tracebacks after the named error (at random, as
    the reads race). A sequential pass over the same arrays meets the damage first and raises
    :class:`CheckpointCorruptedError` with nothing left in flight. Another layout: skipped.
    """
    if not (directory / "manifest.ocdbt").is_file():
        return
    import tensorstore as ts  # orbax's own storage layer

    store = {"driver": "ocdbt", "base": {"driver": "file", "path": str(directory) + os.sep}}
    drivers = {".zarray": "zarr", "zarr.json": "zarr3"}
    try:
        for key in ts.KvStore.open(store).result().list().result():
            key = key.decode()
            for suffix, driver in drivers.items():
                if key.endswith(suffix):
                    spec = {"driver": driver, "kvstore": {**store, "path": key[: -len(suffix)]}}
                    ts.open(spec, open=True).result().read().result()
    except Exception as err:  # tensorstore reports damage as ValueError or a bare Exception
        raise read_failure(where, err, remedy) from err


def restore_step_meta(manager: ocp.CheckpointManager, step: int, remedy: str) -> dict:
    """The JSON record of a step saved by :func:`save_step`; an unreadable or missing record
    raises :class:`CheckpointCorruptedError` naming the step's folder.

    Args:
      manager: the orbax ``CheckpointManager`` the step was saved in.
      step: the step number.
      remedy: what to do about a corrupted step, appended to the error's message.

    Returns:
      The record as a dict (with its ``"checksum"``).

    Raises:
      CheckpointCorruptedError: if the record is missing, unreadable or not a JSON object.
    """
    where = Path(manager.directory) / str(step)
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as err:  # a missing, truncated or altered JSON file
        raise read_failure(where, err, remedy) from err
    if not isinstance(meta, dict):
        raise CheckpointCorruptedError(where, "its JSON record is not an object", remedy)
    return meta


def restore_step_tree(
    manager: ocp.CheckpointManager, step: int, item: str, abstract: Any, meta: dict, remedy: str
) -> Any:
    """The tree of a step saved by :func:`save_step`, read against ``abstract`` (shapes and
    dtypes) and verified against the checksum in its record ``meta``.

    Args:
      manager: the orbax ``CheckpointManager`` the step was saved in.
      step: the step number.
      item: the name of the tree's item in the step.
      abstract: a pytree of the expected shapes and dtypes (e.g. ``jax.ShapeDtypeStruct``
        leaves) to restore into.
      meta: the step's record (:func:`restore_step_meta`); its ``"checksum"`` is verified, and
        a record without one warns that the restore is unverified.
      remedy: what to do about a corrupted step, appended to the error's message.

    Returns:
      The restored pytree.

    Raises:
      CheckpointCorruptedError: if a file cannot be read or the arrays differ from the
        checksum.
    """
    where = Path(manager.directory) / str(step)
    read_every_value(where / item, where, remedy)
    try:
        tree = manager.restore(
            step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)})
        )[item]
    except Exception as err:  # tensorstore raises a bare Exception for a truncated file
        raise read_failure(where, err, remedy) from err
    verify_checksum(tree, meta.get("checksum"), path=where, remedy=remedy)
    return tree


def step_item_metadata(manager: ocp.CheckpointManager, step: int, item: str, remedy: str) -> Any:
    """The saved shapes and dtypes of ``item`` in a step (orbax's metadata), or a
    :class:`CheckpointCorruptedError` when they cannot be read.

    Args:
      manager: the orbax ``CheckpointManager`` the step was saved in.
      step: the step number.
      item: the name of the tree's item in the step.
      remedy: what to do about a corrupted step, appended to the error's message.

    Returns:
      The item's metadata tree (orbax's, with shape and dtype per leaf).

    Raises:
      CheckpointCorruptedError: if the item's arrays or metadata cannot be read or are missing.
    """
    where = Path(manager.directory) / str(step)
    read_every_value(where / item, where, remedy)  # before orbax's concurrent reads
    try:
        tree = manager.item_metadata(step)[item]
    except Exception as err:
        raise read_failure(where, err, remedy) from err
    if tree is None:
        raise CheckpointCorruptedError(where, f"its {item!r} metadata is missing", remedy)
    return getattr(tree, "tree", tree)


TRAINING_REMEDY = (
    "Delete that step's folder to resume from the checkpoint before it, or train afresh in "
    "another `checkpoint_dir` (CLI: another --checkpoint-dir)."
)

_VARIABLES_REMEDY = (
    "Delete the directory and save the variables again (a default victim's cache entry is "
    "retrained once deleted)."
)


def default_cache_dir() -> Path:
    """Where jaxadv caches trained victims: ``$JAXADV_CACHE_DIR``, else ``~/.cache/jaxadv``.

    Returns:
      That directory as an absolute, user-expanded ``Path`` (not created here).
    """
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

    Args:
      path: the cache entry; the lock file is ``.<name>.lock`` in its parent, which is created.

    Yields:
      None, once the lock is held; it is released when the body exits.
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
    if path.exists() and not path.is_dir():
        raise ValueError(f"`path` {str(path)!r} is a file, not a checkpoint directory.")
    path.parent.mkdir(parents=True, exist_ok=True)
    checksum = tree_checksum(variables)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, variables, force=overwrite)
        checkpointer.wait_until_finished()
    (path / CHECKSUM_FILE).write_text(json.dumps(checksum, indent=1, sort_keys=True))
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
    ``saved``, extra in it, or of another shape or dtype; one line per kind, empty if none.

    Args:
      saved: the tree found (e.g. a checkpoint's metadata); leaves need ``shape`` and ``dtype``.
      expected: the tree wanted (e.g. :func:`abstract_variables` of the module).

    Returns:
      A list of at most three strings (missing entries, extra entries, shape/dtype mismatches),
      each naming the entries by their ``/``-joined paths.
    """
    return _differences(_entries(saved), _entries(expected))


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def describe_module(module: nn.Module) -> str:
    """One-line ``Name(field=value, ...)`` of a linen module (its repr spans many lines).

    Args:
      module: a Flax linen module.

    Returns:
      Its class name and every dataclass field but ``parent``, ``name`` and those the class lists in
      ``form_fields`` (fields that choose how, not what, it computes: a cached checkpoint of the
      module serves every form), with their reprs.
    """
    skip = ("parent", "name", *getattr(type(module), "form_fields", ()))
    fields = [
        f"{f.name}={getattr(module, f.name)!r}" for f in dataclasses.fields(module) if f.name not in skip
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
      The variables as a dict of ``jax.Array`` leaves, bit-identical to those saved (verified
      against the checksum saved with them).

    Raises:
      ValueError: if there is no checkpoint at ``path``, or its tree, shapes or dtypes differ from
        ``module``'s; the message names the path, the module and the differences.
      CheckpointCorruptedError: (a ``ValueError``) if a file of the checkpoint is unreadable,
        truncated or altered, or the arrays read differ from the saved checksum.
    """
    what = f"`module` {describe_module(module)} with `input_shape` {tuple(input_shape)}"
    return restore_tree(path, abstract_variables(module, input_shape), what=what)


def restore_tree(path: str | os.PathLike, target: Any, *, what: str = "the expected tree") -> Any:
    """Reads a tree saved by :func:`save_variables` at ``path`` against ``target`` (its shapes and
    dtypes, e.g. from ``jax.eval_shape``), verified against the checksum saved with it.

    Args:
      path: checkpoint directory written by :func:`save_variables`.
      target: the abstract (or concrete) tree the checkpoint must hold.
      what: how an error message names ``target``.

    Returns:
      The tree with ``jax.Array`` leaves, bit-identical to the one saved.

    Raises:
      ValueError: if there is no checkpoint at ``path`` or its tree, shapes or dtypes differ from
        ``target``'s.
      CheckpointCorruptedError: (a ``ValueError``) if a file is unreadable, truncated or altered.
    """
    path = _absolute(path)
    if not path.is_dir():
        raise ValueError(f"`path` {str(path)!r} holds no checkpoint (no such directory).")
    record = _read_checksum_file(path)
    read_every_value(path, path, _VARIABLES_REMEDY)  # before orbax's concurrent reads
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            saved = checkpointer.metadata(path).item_metadata
        except Exception as err:  # orbax raises several types for unreadable directories
            raise read_failure(path, err, _VARIABLES_REMEDY) from err
        if saved is None:
            raise CheckpointCorruptedError(
                path,
                "it has no readable orbax metadata (_METADATA): its files are damaged or missing, "
                "or it is not a checkpoint written by save_variables",
                _VARIABLES_REMEDY,
            )
        problems = tree_differences(saved, target)
        if problems:
            raise ValueError(
                f"The checkpoint at `path` {str(path)!r} does not match {what}: "
                + "; ".join(problems)
                + "."
            )
        try:
            restored = checkpointer.restore(path, target)
        except Exception as err:  # tensorstore raises a bare Exception for a truncated file
            raise read_failure(path, err, _VARIABLES_REMEDY) from err
    verify_checksum(restored, record, path=path, remedy=_VARIABLES_REMEDY)
    return jax.tree.map(jnp.asarray, restored)


def _read_checksum_file(path: Path) -> dict | None:
    """The checksum record saved with the checkpoint at ``path`` (None: an older checkpoint)."""
    file = path / CHECKSUM_FILE
    if not file.exists():
        return None
    try:
        record = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointCorruptedError(
            file, f"its checksum file is unreadable ({err})", _VARIABLES_REMEDY
        ) from err
    if not isinstance(record, dict):
        raise CheckpointCorruptedError(file, "its checksum file is not a JSON object",
                                       _VARIABLES_REMEDY)
    return record
