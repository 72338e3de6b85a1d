"""Checkpoints of a sweep with orbax-checkpoint: one step per finished chunk.

A step holds the result columns of every entry finished so far (``StandardSave`` of numpy arrays)
and a JSON record: the number of chunks done, the base key's words, and a fingerprint of the
configuration. The fingerprint is a dict of short digests, one per part (attack structure, grid
values, images, victim variables, base key, chunk layout), so a checkpoint written by another
configuration is refused with the parts that differ named. Saving is synchronous: once a chunk's
step returns, a kill loses at most the chunk in flight.

The JSON record also holds the checksum of the columns (``tree_checksum``), verified on restore:
a step whose files were altered, truncated or emptied raises a ``CheckpointCorruptedError`` (a
``ValueError``) that names the step's folder and offers ``resume=False`` (CLI: ``--fresh``).

Under ``jax.distributed`` every process calls the manager with the same (gathered) numbers and
orbax writes them once, from the primary process; the directory must be one that all processes
see (as orbax requires).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxadv import _checks
from jaxadv.models import (
    CheckpointCorruptedError,
    restore_step_meta,
    restore_step_tree,
    save_step,
)

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def digest(*parts: Any) -> str:
    """A short sha256 of arrays (dtype, shape and bytes) and strings."""
    h = hashlib.sha256()
    for part in parts:
        for leaf in jax.tree.leaves(part):
            if isinstance(leaf, str):
                h.update(leaf.encode())
                continue
            arr = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


def describe(obj: Any) -> str:
    """``repr`` without memory addresses (stable across processes and runs)."""
    return _ADDRESS.sub("", f"{type(obj).__module__}.{type(obj).__qualname__}: {obj!r}")


def _manager(directory: Path) -> ocp.CheckpointManager:
    handlers = {"columns": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


class SweepCheckpoint:
    """The checkpoints of one (victim, grid) sweep in ``directory``.

    Args:
      directory: where the orbax steps live (made absolute; created).
      fingerprint: ``{part: digest}`` of the configuration.
      resume: continue from a matching checkpoint; False deletes any checkpoint there first.
    """

    def __init__(self, directory: Any, fingerprint: Mapping[str, Any], *, resume: bool = True):
        _checks.check_directory("checkpoint_dir", directory)
        self.directory = Path(directory).expanduser().resolve()  # orbax needs absolute paths
        self.fingerprint = dict(fingerprint)
        self.manager = _manager(self.directory)
        if not resume:
            for step in self.manager.all_steps():
                self.manager.delete(step)

    def _corrupted(self, step: int, detail: str) -> CheckpointCorruptedError:
        return CheckpointCorruptedError(self.directory / str(step), detail, _REMEDY)

    def restore(self, columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        """``(columns, chunks_done)`` from the latest step, or the given ``columns`` and 0.

        Raises:
          ValueError: if the checkpoint was written by another configuration.
          CheckpointCorruptedError: (a ``ValueError``) if its files are unreadable, truncated or
            altered (the columns read differ from their saved checksum).
        """
        try:
            return self._restore(columns)
        except Exception:
            self.close()  # no orbax threads left behind the error
            raise

    def _restore(self, columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        step = self.manager.latest_step()
        if step is None:
            return columns, 0
        meta = restore_step_meta(self.manager, step, _REMEDY)
        if not isinstance(meta.get("fingerprint"), Mapping):
            raise self._corrupted(step, "its meta record has no fingerprint")
        chunks_done = meta.get("chunks_done")
        if isinstance(chunks_done, bool) or not isinstance(chunks_done, int) or chunks_done < 0:
            raise self._corrupted(step, f"its meta record has chunks_done={chunks_done!r}")
        if chunks_done != step:
            raise self._corrupted(step, f"its meta record has chunks_done={chunks_done}")
        saved = dict(meta["fingerprint"])
        differing = [
            f"{part} is {saved.get(part, '(absent)')} in the checkpoint but "
            f"{self.fingerprint.get(part, '(absent)')} here"
            for part in sorted(set(saved) | set(self.fingerprint))
            if saved.get(part) != self.fingerprint.get(part)
        ]
        if differing:
            raise ValueError(
                f"The sweep checkpoint in {str(self.directory)!r} (chunk {step}) was written by "
                "another configuration: " + "; ".join(differing) + ". Start afresh with "
                "resume=False (CLI: --fresh), or use another output directory."
            )
        abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in columns.items()}
        restored = restore_step_tree(self.manager, step, "columns", abstract, meta, _REMEDY)
        return {k: np.asarray(restored[k]) for k in columns}, chunks_done

    def save(self, chunks_done: int, columns: dict[str, np.ndarray]) -> None:
        """Writes the columns after ``chunks_done`` chunks (returns once on disk)."""
        meta = {"fingerprint": self.fingerprint, "chunks_done": int(chunks_done)}
        save_step(self.manager, int(chunks_done), "columns", columns, meta)
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


_REMEDY = (
    "Start the sweep afresh with resume=False (CLI: --fresh), which deletes its checkpoints, or "
    "use another output directory."
)
