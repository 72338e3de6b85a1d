"""Running one grid on one victim: chunks through one compiled program, checkpointed, tabulated.

The flattened grid (``_grid.py``) runs in chunks of ``chunk_size`` entries. Each chunk's inputs
are gathered on the host (the entry's hyper-parameter leaves, image, label, target and key), laid
over all devices of all processes (``_sharding.py``) and run by the one program of this victim and
attack structure (``_program.py``), ``devices × micro_batch`` entries per call; the last chunk is
padded with copies of the first entry to full size and the padding dropped, so it compiles
nothing new. After every chunk the columns so
far are checkpointed (``_checkpoint.py``), and a resumed sweep starts at the first chunk not saved.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxadv import _checks
from jaxadv.sweeps import _sharding
from jaxadv.sweeps._checkpoint import SweepCheckpoint, describe, digest
from jaxadv.sweeps._grid import Entries, Grid, check_restarts_differ
from jaxadv.sweeps._program import OUTPUTS, run_calls, used_fields
from jaxadv.sweeps._progress import Progress

_DTYPES = {"clean_correct": bool, "success": bool, "queries": np.int32, "steps": np.int32}


class SweepRun(NamedTuple):
    """What :func:`run_grid` returns.

    Attributes:
      table: one row per grid entry (see :func:`run_grid`).
      chunks: number of chunks of the flattened grid.
      chunks_run: chunks computed by this call (fewer than ``chunks`` after a resume).
      chunk_size: entries per chunk as run (rounded up to the device layout).
    """

    table: dict[str, np.ndarray]
    chunks: int
    chunks_run: int
    chunk_size: int


def fingerprint(victim, grid: Grid, entries: Entries, chunk_size: int, micro: int) -> dict:
    """Digests of everything that decides a sweep's numbers, part by part."""
    return {
        "attack": digest(describe(grid.attack)),
        "grid": digest(list(grid.hparams), entries.setting, entries.target, entries.restart),
        "images": digest(grid.images, grid.labels),
        "victim": _victim_digest(grid.attack, victim),
        "key": digest(entries.keys, str(jax.random.key_impl(grid.key))),
        "chunk_layout": f"{chunk_size} entries, micro-batch {micro}",
    }


def _victim_digest(attack, victim) -> str:
    if hasattr(victim, "apply_fn"):  # a Victim (as before: its checkpoints still match)
        return digest(
            describe(victim.apply_fn),
            str((victim.input_shape, victim.num_classes, victim.bounds)),
            victim.variables,
        )
    # any other victim pytree (e.g. SMBEA's mini-batches of ensembles): structure and leaves
    structure = describe(jax.tree.structure(victim))
    return digest(structure, str((attack.input_shape(victim), attack.bounds(victim))), victim)


def _progress(total: int, per_chunk: int, done: int, progress: Any, label: str):
    """The sweep's progress display (``_progress.py``), on process 0 only."""
    enabled = None if progress is None else bool(progress)
    if jax.process_index() != 0:
        enabled = False  # one display per sweep
    return Progress(total, per_chunk, done=done, enabled=enabled, label=label)


def run_grid(
    victim,
    grid: Grid,
    *,
    victim_name: str = "victim",
    chunk_size: int = 64,
    micro_batch: int = 8,
    checkpoint_dir: Any = None,
    resume: bool = True,
    progress: Any = None,
    on_chunk: Callable[[int], None] | None = None,
) -> SweepRun:
    """Runs every entry of ``grid`` against ``victim``; returns the table of results.

    Args:
      victim: the model (``jaxadv.models.Victim``).
      grid: the sweep (:class:`Grid`).
      victim_name: the ``"victim"`` column.
      chunk_size: entries between checkpoints (their inputs and, for long attacks on CPU, their
        carries are on the devices at once); rounded up to a multiple of
        ``devices × micro_batch`` (with a warning).
      micro_batch: entries each device runs side by side (``vmap``) in one call. It fixes the
        numbers (vmap over another batch size may round differently): keep it when comparing.
      checkpoint_dir: save after every chunk there and resume from it (None: no checkpoints).
      resume: continue a matching checkpoint; False discards any checkpoint in the directory.
      progress: None (a bar on terminals), True, or False.
      on_chunk: called with the number of chunks done after each chunk is saved.

    Returns:
      A :class:`SweepRun` whose ``table`` has one row per entry, in the grid's order, with the
      columns: the fields of ``attack.params_type`` that the attack uses or the grid sweeps
      (:func:`jaxadv.sweeps.used_fields`), ``victim``, ``attack``, ``norm`` (of the budget,
      :func:`budget_norm`), ``image``, ``label``, ``target`` (= label when untargeted),
      ``restart``, ``clean_correct``, ``success``, ``loss``, ``l0``, ``l1``, ``l2``, ``linf``,
      ``queries``, ``steps``.
    """
    _checks.check_positive_int("chunk_size", chunk_size)
    _checks.check_positive_int("micro_batch", micro_batch)
    attack = grid.attack  # the attack says what its victim's shapes, bounds and classes are
    num_classes = attack.num_classes(victim)
    _checks.check_batch_shape("grid.images", grid.images.shape, attack.input_shape(victim))
    _checks.check_in_bounds("grid.images", grid.images, attack.bounds(victim))
    _checks.check_labels("grid.labels", grid.labels, num_classes)
    mesh = _sharding.entry_mesh()
    chunk, micro = _sharding.chunk_layout(chunk_size, micro_batch, mesh.size)
    entries = grid.entries(num_classes)
    check_restarts_differ(grid, victim, entries)
    n = len(entries.image)
    num_chunks = -(-n // chunk)
    columns = {
        k: np.zeros(n, _DTYPES.get(k, np.float32)) for k in OUTPUTS
    }
    done = 0
    store = None
    if checkpoint_dir is not None:
        store = SweepCheckpoint(
            checkpoint_dir, fingerprint(victim, grid, entries, chunk, micro), resume=resume
        )
        columns, done = store.restore(columns)
    step = mesh.size * micro  # rows per call
    replicated_victim = _sharding.feed(mesh, victim, jax.sharding.PartitionSpec())
    rows = jax.sharding.PartitionSpec(_sharding.AXIS)
    bar = _progress(num_chunks, chunk, done, progress, f"{victim_name}/{grid.name}")
    try:
        for c in range(done, num_chunks):
            start, stop = c * chunk, min((c + 1) * chunk, n)
            index = np.arange(start, start + chunk)
            index[stop - start :] = 0  # padding: copies of entry 0, dropped below
            inputs = (
                jax.tree.map(lambda leaf: leaf[entries.setting[index]], grid.hparams),
                grid.images[entries.image[index]],
                entries.label[index],
                entries.target[index],
                entries.keys[index],
            )
            calls = [_sharding.feed(mesh, part, rows) for part in _split(inputs, step)]
            results = run_calls(grid.attack, mesh, micro, replicated_victim, calls)
            out = {k: np.concatenate([o[k] for o in _sharding.gather(results)]) for k in OUTPUTS}
            for k in OUTPUTS:
                columns[k][start:stop] = out[k][: stop - start]
            if store is not None:
                store.save(c + 1, columns)
            bar.advance()
            if on_chunk is not None:
                on_chunk(c + 1)
    finally:
        bar.close()
        if store is not None:
            store.close()
    return SweepRun(
        _table(victim_name, victim, grid, entries, columns), num_chunks, num_chunks - done, chunk
    )


def _split(tree: Any, size: int) -> list[Any]:
    """Consecutive row blocks of ``size`` rows of every leaf."""
    n = len(jax.tree.leaves(tree)[0])
    return [jax.tree.map(lambda a: a[i : i + size], tree) for i in range(0, n, size)]


def _table(
    victim_name: str, victim: Any, grid: Grid, entries: Entries, columns: dict
) -> dict[str, np.ndarray]:
    n = len(entries.image)
    # The numbers each entry ran with: derived ones as the program derived them (a relative step
    # as the absolute step of that eps); ``rel_step_size`` itself as given. Only the fields the
    # attack uses, or that the grid sweeps, become columns (no C&W κ in a PGD table).
    derived = grid.attack.derive(grid.hparams)._asdict()
    derived.pop("rel_step_size", None)
    shown = {**grid.hparams._asdict(), **derived}
    keep = set(_used_fields(victim, grid, entries)) | {
        f for f, leaf in grid.hparams._asdict().items() if np.unique(np.asarray(leaf)).size > 1
    }
    table = {f: np.asarray(leaf)[entries.setting] for f, leaf in shown.items() if f in keep}
    table.update(
        victim=np.full(n, victim_name),
        attack=np.full(n, grid.name),
        norm=np.full(n, budget_norm(grid.attack)),
        image=entries.image.astype(np.int64),
        label=entries.label.astype(np.int64),
        target=entries.target.astype(np.int64),
        restart=entries.restart.astype(np.int64),
    )
    table.update({k: columns[k] for k in OUTPUTS})
    return table


def _used_fields(victim, grid: Grid, entries: Entries) -> tuple[str, ...]:
    if not len(entries.image):
        return tuple(grid.hparams._fields)
    return used_fields(
        grid.attack, victim, jax.tree.map(lambda leaf: leaf[0], grid.hparams),
        grid.images[entries.image[0]], entries.label[0], entries.target[0], entries.keys[0],
    )


_NORM_SUFFIXES = ("linf", "l2", "l1", "l0")


def budget_norm(attack: Any) -> str:
    """The norm of an attack's budget ``eps``, for tables and figures: the ``norm`` of the attack
    or of its constraint, else the suffix of its name (``"cw-l2"``), else ``""`` (unknown).

    Args:
      attack: any attack of the library.

    Returns:
      ``"linf"``, ``"l2"``, ``"l1"``, ``"l0"`` or ``""``.
    """
    for owner in (attack, getattr(attack, "constraint", None)):
        norm = getattr(owner, "norm", None)
        if isinstance(norm, str):
            return norm
    suffix = str(getattr(attack, "name", "")).rsplit("-", 1)[-1]
    return suffix if suffix in _NORM_SUFFIXES else ""
