"""Checkpoints of a saliency training run: an orbax ``CheckpointManager`` step per saved epoch.

A step holds the parameters, the other collections (BatchNorm statistics, constants), the
optimiser state, the epoch and the loss history, next to a JSON record of the configuration. A
checkpoint of another configuration, or whose variables do not fit the module, is refused with a
message that says what differs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxadv.models import (
    TRAINING_REMEDY,
    restore_step_meta,
    restore_step_tree,
    step_item_metadata,
    tree_differences,
)


def _describe(config: Mapping[str, Any], field: str) -> str:
    return json.dumps(config.get(field, "(absent)"), sort_keys=True)

def _manager(directory: Path, keep: int) -> ocp.CheckpointManager:
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)

def check_resumable(manager, step: int, where: str, config: dict, state: dict, writer: str):
    """The record and the state's metadata of checkpoint ``step``, after checking that it was
    written with ``config`` and that its variables fit ``state``'s (else a ValueError that says
    what differs). ``where`` names the checkpoint in messages, ``writer`` the kind of run."""
    meta = restore_step_meta(manager, step, TRAINING_REMEDY)
    saved = meta.get("config", {})
    differing = [
        f"{field} is {_describe(saved, field)} in the checkpoint but "
        f"{_describe(config, field)} here"
        for field in sorted(set(saved) | set(config))
        if saved.get(field) != config.get(field)
    ]
    if differing:
        raise ValueError(
            f"{where} was written by another {writer}: "
            + "; ".join(differing)
            + ". Resume with the original configuration or use another directory."
        )
    tree = step_item_metadata(manager, step, "state", TRAINING_REMEDY)
    problems = []
    for part in ("params", "collections"):
        problems += tree_differences(tree.get(part) or {}, state[part])
    if problems:
        raise ValueError(f"{where} does not match the module's variables: " + "; ".join(problems))
    return meta, tree


def _restore(manager, step: int, directory: Path, config: dict, state: dict, unit: str,
             writer: str):
    where = f"The checkpoint in `checkpoint_dir` {str(directory)!r} ({unit} {step})"
    meta, _ = check_resumable(manager, step, where, config, state, writer)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = restore_step_tree(manager, step, "state", abstract, meta, TRAINING_REMEDY)
    return restored, [float(v) for v in meta["losses"]]


def open_run(checkpoint_dir, resume: bool, total: int, config: dict, state: dict, progress: bool,
             *, unit: str = "epoch", writer: str = "training configuration"):
    """``(manager, state, losses, first epoch)`` of a run: fresh, or resumed from the latest
    checkpoint in ``checkpoint_dir``. A run checkpointed by steps (meta-training) passes
    ``unit="step"``: ``total`` is then its number of steps."""
    directory = checkpoint_path(checkpoint_dir)
    manager = _manager(directory, keep=2)
    try:
        latest = manager.latest_step()
        if latest is None:
            return manager, state, [], 0
        if not resume:
            raise ValueError(
                f"`checkpoint_dir` {str(directory)!r} already holds checkpoints (latest: {unit} "
                f"{latest}); pass resume=True to continue that run, or use another directory."
            )
        if latest > total:
            raise ValueError(
                f"`{unit}s` must be at least the checkpoint's {unit} {latest} in "
                f"{str(directory)!r}; got {total}."
            )
        state, losses = _restore(manager, latest, directory, config, state, unit, writer)
    except Exception:
        manager.close()
        raise
    if progress:
        print(f"resumed from {unit} {latest} in {directory}", file=sys.stderr, flush=True)
    return manager, state, losses, latest


def checkpoint_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`checkpoint_dir` must be a non-empty str or os.PathLike; got {path!r}.")
    return Path(path).expanduser().resolve()  # orbax needs absolute paths
