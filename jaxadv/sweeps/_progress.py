"""Progress of a sweep: chunks done out of the total, attacks per second, time left.

A sweep runs as a sequence of equal chunks of attacks; the engine calls :meth:`Progress.advance`
after each. The rate counts only the chunks finished by this process: a resumed sweep starts
with ``done`` chunks already on disk, which took no time here and must not inflate it. The first
chunk a process runs also pays for compilation, so once a later chunk has finished the rate is
measured from the end of the first one (until then it includes it).

On a terminal the status is one line redrawn in place (``\\r``); elsewhere (a log file, CI) the
display stays quiet unless forced with ``enabled=True``, which prints one line per update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (``d+h:mm:ss`` past a day) for a non-negative number of seconds."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d+{text}" if days else text


class Progress:
    """A progress display for a sweep of ``total_chunks`` chunks of ``attacks_per_chunk`` attacks.

    Args:
      total_chunks: the number of chunks in the whole sweep (including those already done).
      attacks_per_chunk: attacks (rows of the result table) per chunk; sets the rate's unit.
      done: chunks already finished before this process started (a resumed sweep).
      stream: where to write; default ``sys.stderr`` (looked up when the display is made).
      enabled: ``None`` shows the display only when ``stream.isatty()``; ``True`` always shows it
        (one plain line per update off a terminal); ``False`` never does.
      label: the line's prefix.
      clock: a function returning seconds (default ``time.monotonic``); inject one for tests.

    Use as a context manager, or call :meth:`close` at the end.
    """

    def __init__(
        self,
        total_chunks: int,
        attacks_per_chunk: int,
        *,
        done: int = 0,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        label: str = "sweep",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = _check_count("total_chunks", total_chunks, 0)
        self.per_chunk = _check_count("attacks_per_chunk", attacks_per_chunk, 1)
        self.done = _check_count("done", done, 0)
        if self.done > self.total:
            raise ValueError(
                f"`done` must be <= total_chunks ({self.total}); got {self.done}."
            )
        if enabled not in (None, True, False):
            raise ValueError(f"`enabled` must be None, True or False; got {enabled!r}.")
        if not callable(clock):
            raise ValueError(f"`clock` must be a callable returning seconds; got {clock!r}.")
        self.stream = sys.stderr if stream is None else stream
        self.label = str(label)
        self._clock = clock
        self._start = clock()
        self._resumed = self.done
        self._warm: tuple[int, float] | None = None  # (chunks done, time) after the first call
        self._closed = False
        self._width = 0
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._redraw = tty if enabled is None else bool(enabled) and tty
        self._show = tty if enabled is None else bool(enabled)
        if self._show:
            self._emit()

    # ---- measurements

    @property
    def elapsed(self) -> float:
        """Seconds since this display was made."""
        return max(self._clock() - self._start, 0.0)

    @property
    def rate(self) -> float | None:
        """Attacks per second over the chunks finished in this process (None before the first).

        Chunks resumed from disk never count; the first chunk run here (compilation) counts only
        until a later one has finished.
        """
        now = self._clock()
        if self._warm is not None and self.done > self._warm[0] and now > self._warm[1]:
            return (self.done - self._warm[0]) * self.per_chunk / (now - self._warm[1])
        ran = self.done - self._resumed
        elapsed = now - self._start
        if ran == 0 or elapsed <= 0:
            return None
        return ran * self.per_chunk / elapsed

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None while the rate is unknown)."""
        rate = self.rate
        if self.done >= self.total:
            return 0.0
        if rate is None:
            return None
        return (self.total - self.done) * self.per_chunk / rate

    def format(self) -> str:
        """The status line, e.g. ``sweep: 12/40 chunks (30%) | 512.0 attacks/s | ETA 0:00:31``."""
        share = 100.0 * self.done / self.total if self.total else 100.0
        rate, eta = self.rate, self.eta
        rate_text = "-- attacks/s" if rate is None else f"{rate:.4g} attacks/s"
        eta_text = "--" if eta is None else format_duration(eta)
        return (
            f"{self.label}: {self.done}/{self.total} chunks ({share:.0f}%) | {rate_text} | "
            f"ETA {eta_text}"
        )

    # ---- updates

    def advance(self, n: int = 1) -> None:
        """Records ``n`` more finished chunks and refreshes the display."""
        if self._closed:
            raise ValueError("`advance` was called on a closed Progress.")
        n = _check_count("n", n, 0)
        if self.done + n > self.total:
            raise ValueError(
                f"`n` must keep the chunks done within total_chunks ({self.total}); got n={n} with "
                f"{self.done} already done."
            )
        self.done += n
        if self._warm is None and n:
            self._warm = (self.done, self._clock())
        if self._show:
            self._emit()

    def close(self) -> None:
        """Ends the display (a newline after the redrawn terminal line). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._show and self._redraw:
            self.stream.write("\n")
            self.stream.flush()

    def _emit(self) -> None:
        line = self.format()
        if self._redraw:
            pad = " " * max(self._width - len(line), 0)  # wipe the end of a longer previous line
            self.stream.write("\r" + line + pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Progress({self.format()!r})"
