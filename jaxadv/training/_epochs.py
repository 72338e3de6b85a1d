"""A resumable host loop over epochs for the data-set attacks (universal perturbation, patch).

The state is ``{"params": {...arrays...}, "collections": {}}`` (the layout of the trainers'
checkpoints, ``_saliency_checkpoint.py``), saved with the run's configuration and per-epoch
history after every ``checkpoint_every`` epochs. Each epoch is a function of the state, the key
and the epoch number alone, so a run resumed from a checkpoint ends with the same bits as an
uninterrupted one; a directory written by another configuration is refused.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from jaxadv import _checks, _compile
from jaxadv.models import TRAINING_REMEDY, cache_lock, restore_step_meta, save_step
from jaxadv.training._saliency_checkpoint import checkpoint_path, open_run


def run_epochs(
    config: dict,
    state: dict,
    epochs: int,
    epoch_fn: Callable[[dict, int], tuple[dict, float, dict]],
    *,
    checkpoint_dir: Any,
    resume: bool,
    checkpoint_every: int,
    progress: bool,
    stop: Callable[[dict], bool] | None = None,
    writer: str = "run",
) -> tuple[dict, list[float], dict]:
    """Runs ``epoch_fn(state, epoch) -> (state, loss, stats)`` for the remaining epochs.

    ``stats`` is a dict of floats appended to the history; ``stop(history)`` ends the run early
    (checked before each epoch, so a resumed run stops where the original did). Returns
    ``(state, losses, history)``.
    """
    _checks.check_positive_int("epochs", epochs)
    _checks.check_positive_int("checkpoint_every", checkpoint_every)
    lock = contextlib.nullcontext() if checkpoint_dir is None else cache_lock(
        checkpoint_path(checkpoint_dir)
    )
    with lock, _compile.fast_threefry():
        manager, losses, start, history = None, [], 0, {}
        if checkpoint_dir is not None:
            manager, state, losses, start = open_run(
                checkpoint_dir, resume, epochs, config, state, progress, writer=writer
            )
            if start:
                history = restore_step_meta(manager, start, TRAINING_REMEDY)["history"]
        try:
            for epoch in range(start, epochs):
                if stop is not None and history and stop(history):
                    break
                began = time.perf_counter()
                state, loss, stats = epoch_fn(state, epoch)
                losses.append(float(loss))
                for name, value in stats.items():
                    history.setdefault(name, []).append(float(value))
                done = epoch + 1
                if manager is not None and (done % checkpoint_every == 0 or done == epochs):
                    meta = {"config": config, "epoch": done, "losses": losses, "history": history}
                    save_step(manager, done, "state", state, meta)
                if progress:
                    shown = "  ".join(f"{k} {v[-1]:.4f}" for k, v in history.items())
                    print(f"epoch {done}/{epochs}  loss {losses[-1]:.4f}  {shown}  "
                          f"{time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        finally:
            if manager is not None:
                manager.wait_until_finished()
                manager.close()
    return state, losses, history
