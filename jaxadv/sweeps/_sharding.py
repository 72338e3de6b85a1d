"""Laying a chunk of grid entries over every device of every process, and gathering it back.

The chunk axis is split over a one-axis ``Mesh`` of all global devices (``jax.devices()``, which
spans every process after ``jax.distributed.initialize``). Each process builds the chunk's inputs
on its host and hands JAX only the rows its own devices hold (``jax.make_array_from_callback``);
the results come back to every process with ``multihost_utils.process_allgather``.

Each call gives every device a micro-batch of a fixed size, so every example is computed by the
same per-device program whatever the number of devices: results are bit for bit the same on one
device, on several, and across processes (``vmap`` over another batch size may round differently).
A chunk must therefore split into calls of ``devices × micro_batch`` rows; other sizes are
rounded up (with a warning).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxadv import _checks

AXIS = "entries"


def entry_mesh() -> Mesh:
    """A one-axis mesh over all global devices (every process's)."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def chunk_layout(chunk_size: int, micro_batch: int, num_devices: int) -> tuple[int, int]:
    """``(chunk_size, micro_batch)`` as run: the chunk rounded up to a multiple of
    ``num_devices × micro_batch`` (warning when it changes), the micro-batch capped at the chunk.

    Raises:
      ValueError: for a chunk size or micro-batch that is not a positive integer.
    """
    _checks.check_positive_int("chunk_size", chunk_size)
    _checks.check_positive_int("micro_batch", micro_batch)
    micro = min(int(micro_batch), int(chunk_size))
    unit = num_devices * micro
    rounded = -(-int(chunk_size) // unit) * unit
    if rounded != chunk_size:
        warnings.warn(
            f"chunk_size {chunk_size} is not a multiple of {num_devices} device(s) × micro-batch "
            f"{micro}; running chunks of {rounded} entries instead.",
            stacklevel=3,
        )
    return rounded, micro


def feed(mesh: Mesh, tree: Any, spec: P) -> Any:
    """Global arrays from host arrays that every process holds in full; each process hands over
    only the rows (``spec`` = ``P(AXIS)``) or copies (``P()``) its own devices need."""
    sharding = NamedSharding(mesh, spec)

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def gather(tree: Any) -> Any:
    """Host numpy copies of globally sharded arrays, on every process."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
