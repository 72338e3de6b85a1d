"""A whole configured sweep: every victim × every grid, one table, its summary and figure.

Each (victim, grid) pair runs through :func:`run_grid` with its own checkpoint directory
(``OUT/checkpoints/<victim>/<grid>``), so a resumed sweep skips the pairs already finished and
resumes the one in flight at its last chunk. The tables are stacked into one (columns of
hyper-parameters another attack family lacks are NaN there); process 0 writes ``table.csv``,
``summary.md`` and, when the config asks for one, ``robust_accuracy.png``.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxadv import _checks
from jaxadv.sweeps._config import SweepConfig, as_config, load_data, load_victim
from jaxadv.sweeps._grid import Grid
from jaxadv.sweeps._run import run_grid
from jaxadv.sweeps._table import markdown_summary, summarize, write_table

_FIRST = ("victim", "attack", "norm")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def concat_tables(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks tables row-wise; a column missing from a table is NaN there ("" for text), as
    a hyper-parameter of one attack family is on the rows of another.

    Args:
      tables: tables from :func:`run_grid` (or any dicts of 1-D columns).

    Returns:
      One table, columns in first-seen order with ``victim``, ``attack``, ``norm`` first.
    """
    names: list[str] = []
    for table in tables:
        names += [k for k in table if k not in names]
    out = {}
    for name in names:
        text = any(np.asarray(t[name]).dtype.kind in "USO" for t in tables if name in t)
        parts = []
        for table in tables:
            n = len(next(iter(table.values())))
            blank = np.full(n, "") if text else np.full(n, np.nan, np.float32)
            parts.append(table[name] if name in table else blank)
        out[name] = np.concatenate(parts)
    order = [k for k in _FIRST if k in out] + [k for k in out if k not in _FIRST]
    return {k: out[k] for k in order}


def run_sweep(
    config: SweepConfig | dict,
    out_dir: Any,
    *,
    resume: bool = True,
    chunk_size: int | None = None,
    micro_batch: int | None = None,
    cache_dir: Any = None,
    progress: Any = None,
) -> dict[str, np.ndarray]:
    """Runs ``config`` and writes its outputs under ``out_dir``; returns the full table.

    Args:
      config: a :class:`SweepConfig` (or a dict of its fields).
      out_dir: the output directory: ``table.csv``, ``summary.md``, ``robust_accuracy.png``
        (if ``config.figure``) and ``checkpoints/``.
      resume: continue from the checkpoints in ``out_dir``; False starts afresh.
      chunk_size, micro_batch: override the config's.
      cache_dir: where default victims are cached (default: jaxadv's cache).
      progress: None (on terminals), True or False.

    Returns:
      The table of every run of every (victim, grid) pair, as :func:`concat_tables` stacks them.
    """
    config = as_config(config, default_name="sweep")
    _checks.check_directory("out_dir", out_dir)  # before any victim is trained or chunk run
    out = Path(out_dir).expanduser().resolve()
    _checks.check_directory("out_dir", out / "checkpoints")
    images, labels = load_data(config.data)
    tables = []
    for victim_name, spec in config.victims.items():
        victim = load_victim(spec, cache_dir=cache_dir, epochs=config.victim_epochs)
        for grid_spec in config.grids:
            grid = Grid(
                grid_spec.attack,
                images,
                labels,
                params=grid_spec.params,
                targets=grid_spec.targets,
                restarts=grid_spec.restarts,
                key=config.seed,
                name=grid_spec.name,
            )
            run = run_grid(
                victim,
                grid,
                victim_name=victim_name,
                chunk_size=chunk_size or config.chunk_size,
                micro_batch=micro_batch or config.micro_batch,
                checkpoint_dir=out / "checkpoints" / _slug(victim_name) / _slug(grid.name),
                resume=resume,
                progress=progress,
            )
            tables.append(run.table)
    table = concat_tables(tables)
    if jax.process_index() == 0:
        _write_outputs(config, table, out)
    return table


def _write_outputs(config: SweepConfig, table: dict[str, np.ndarray], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, out / "table.csv")
    summary = summarize(table)
    title = f"# Sweep {config.name}\n\n{len(table['image'])} attack runs.\n\n"
    (out / "summary.md").write_text(title + markdown_summary(summary) + "\n")
    if config.figure:
        try:
            from jaxadv.sweeps._figures import plot_robust_accuracy

            plot_robust_accuracy(summary, path=out / "robust_accuracy.png", **dict(config.figure))
        except (ImportError, ValueError) as err:  # a figure is a convenience, never fatal
            warnings.warn(f"no figure for sweep {config.name!r}: {err}", stacklevel=2)
    print(f"sweep {config.name}: {len(table['image'])} runs -> {out}", file=sys.stderr)
