"""Timing helpers for the benchmarks: first calls, interleaved rounds, paired ratios.

The machines these run on are shared and noisy, so every row is timed once per round, rows are
visited in a shuffled order, and comparisons are ratios paired within a round (both timings saw the
same background load), summarised by their median and range.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


@dataclasses.dataclass
class Row:
    """One timed program.

    Attributes:
      name: the label printed in the table.
      call: runs the program once and returns its outputs (a pytree of arrays).
      trace_context: entered while the program is traced (where monkeypatched knobs such as the
        unroll policy take effect).
      lower: traces and lowers the program ahead of time, if it can be (see :func:`jitted_row`);
        otherwise its compile time is estimated as its first call minus its second.
      executable: the compiled program, once compiled ahead of time.
    """

    name: str
    call: Callable[[], Any]
    trace_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    lower: Callable[[], Any] | None = None
    executable: Any = None


def jitted_row(
    name: str,
    jitted: Any,
    *args: Any,
    output: Callable[[Any], Any] = lambda out: out,
    **row_kwargs: Any,
) -> Row:
    """A row that compiles ``jitted`` for ``args`` ahead of time, then calls the executable.

    ``output`` picks what the row returns from the program's outputs (all are computed).
    """
    row = Row(
        name,
        lambda: output(row.executable(*args)),
        lower=lambda: jitted.lower(*args),
        **row_kwargs,
    )
    return row


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds for one call, waiting for its results, and the results."""
    start = time.perf_counter()
    out = jax.block_until_ready(call())
    return time.perf_counter() - start, out


def _compile(lowered: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    executable = lowered.compile()
    return time.perf_counter() - start, executable


def first_calls(
    rows: list[Row], warmup: int = 1, compile_threads: int = 1
) -> tuple[dict[str, float], dict[str, Any]]:
    """Compiles every row, runs it once, then ``warmup`` more times.

    ``compile_threads > 1`` compiles the ahead-of-time rows concurrently (XLA releases the GIL):
    faster, but then each row's compile seconds include the contention.
    Returns the compile seconds and the outputs (of the first run) of each row.
    """
    seconds, outputs, lowered = {}, {}, {}
    ahead = [row for row in rows if row.lower is not None]
    for row in ahead:  # tracing and lowering hold the GIL and read the trace context: serial
        start = time.perf_counter()
        with row.trace_context():
            lowered[row.name] = row.lower()
        seconds[row.name] = time.perf_counter() - start
    with concurrent.futures.ThreadPoolExecutor(compile_threads) as pool:
        compiled = pool.map(_compile, [lowered[row.name] for row in ahead])
        for row, (compile_s, executable) in zip(ahead, compiled):
            seconds[row.name] += compile_s
            row.executable = executable
    for row in rows:
        if row.lower is None:
            with row.trace_context():
                first, outputs[row.name] = timed(row.call)
            seconds[row.name] = first - timed(row.call)[0]
        else:
            outputs[row.name] = timed(row.call)[1]
        for _ in range(warmup):
            timed(row.call)
    return seconds, outputs


def interleaved(rows: list[Row], rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per call of every row, one call per row per round, in a fresh random order each
    round (so no row always follows the same neighbour, e.g. a long, cache-thrashing one)."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {row.name: [] for row in rows}
    for _ in range(rounds):
        for row in rng.sample(rows, len(rows)):
            times[row.name].append(timed(row.call)[0])
    return times


def paired_speed_ratio(times: dict[str, list[float]], a: str, b: str) -> list[float]:
    """Per-round throughput of ``a`` over that of ``b`` (= time of b / time of a); > 1: a faster."""
    return [tb / ta for ta, tb in zip(times[a], times[b])]


def summary(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)
