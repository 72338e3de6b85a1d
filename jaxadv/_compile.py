"""How attacks are compiled: the loop form and the compiler options, chosen per backend.

Measured on a 2-core x86 CPU: a rolled ``lax.scan`` around a convolutional victim's gradient runs
~5× slower than the same steps fully unrolled — even a loop unrolled by 10 inside a rolled outer
loop is as slow (PGD-ℓ∞, 20 steps, C&W net on 128 digits: 4.6 s unrolled, 22–26 s with any
``while`` loop; cf. jax-ml/jax#12868) — and XLA CPU's YNNPACK fusion of convolutions ~1.85× slower
than XLA's own kernels for these small nets (``benchmarks/README.md``). Unrolling costs compile
time, though (0.2–0.5 s per unrolled step of the C&W net). So on CPU attacks of up to
``MAX_CPU_UNROLL`` steps compile as one unrolled program, longer ones run as a host loop over a
compiled chunk of that many unrolled steps (``attacks/_driver.py``, the only caller), and all compile with the ynn
option; on accelerators the loop stays rolled (one body, fast compile) with default options.
``benchmarks/`` keeps it honest.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from typing import Any, Callable

import jax

# Steps unrolled into one CPU program; longer attacks are driven in chunks of this many steps.
MAX_CPU_UNROLL = 10

# Examples per compiled call of a batch driver on CPU; larger batches run as several calls of
# one program. XLA's buffers for an unrolled program grow with the batch (PGD-ℓ∞ on the C&W net at
# batch 512: 560 MB of temporaries, four times batch 128's); the calls give the same results
# (benchmarks/README.md, "Measured: peak memory ... batch chunking").
MAX_CPU_BATCH = 128

_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def loop_unroll(length: int, chunk: int = MAX_CPU_UNROLL) -> int:
    """The ``unroll`` argument for a ``lax.scan`` of ``length`` attack steps on this backend.

    On CPU, loops up to ``chunk`` steps are unrolled fully; a longer loop that must stay inside
    one program (under a user's ``jit``) is unrolled by that factor. Batch drivers run long CPU
    loops from the host instead (:func:`host_loop`).
    """
    if jax.default_backend() == "cpu":
        return max(1, min(length, chunk))
    return 1


def max_batch() -> int | None:
    """Examples per compiled call of a batch driver on this backend by default (None: no limit).

    On CPU the program's buffers live in the process's memory beside everything else, and
    splitting a larger batch into calls of ``MAX_CPU_BATCH`` cost no throughput that could be
    told from the noise of the measurement; on accelerators the batch stays whole.
    """
    return MAX_CPU_BATCH if jax.default_backend() == "cpu" else None


def compiler_options() -> dict[str, Any] | None:
    """Compiler options for an attack program on the default backend (None: XLA's defaults)."""
    return dict(_CPU_OPTIONS) if jax.default_backend() == "cpu" else None


_tracing = threading.local()


@contextlib.contextmanager
def _thread_flag(state: threading.local):
    """Sets ``state.on`` on this thread for the block; restored after, so the blocks nest."""
    saved = getattr(state, "on", False)
    state.on = True
    try:
        yield
    finally:
        state.on = saved


def traced_with_options() -> bool:
    """Whether the function being traced now will be compiled with this module's (CPU) options
    (by :func:`jit`), not under a user's ``jit`` or with XLA's defaults.

    Code whose best form depends on the options reads it at trace time: with the ynn option XLA
    CPU rewrites a large reduction into a windowed tree and no longer fuses its elementwise
    producer into it, so CG's inner products are summed in blocks there
    (``jaxadv/image/_smoothing.py``, issue 19)."""
    return getattr(_tracing, "on", False)


def jit(fun: Callable, **kwargs: Any) -> Callable:
    """``jax.jit`` with the attack compiler options of the default backend.

    Called inside another trace (a user's ``jit``/``vmap``/``grad``), the function is traced into
    the outer program, which compiles with the outer caller's options: there the trace is not
    marked as compiled with this module's options (:func:`traced_with_options`) unless an outer
    :func:`jit` marked it.
    """
    options = compiler_options()
    if options is None:
        return jax.jit(fun, compiler_options=None, **kwargs)

    @functools.wraps(fun)
    def traced(*args, **kw):
        with _thread_flag(_tracing):
            return fun(*args, **kw)

    return _OptionsJit(jax.jit(traced, compiler_options=options, **kwargs),
                       jax.jit(traced, **kwargs), jax.jit(fun, **kwargs))


class _OptionsJit:
    """A function jitted with the options (``top_level``) when called with concrete arguments;
    inside another trace, jitted without them, its trace marked (``nested_marked``) or not
    (``nested``) as the outer trace is. Two nested jits, because a jit reuses its cached trace
    whatever the mark was when it traced."""

    def __init__(self, top_level: Callable, nested_marked: Callable, nested: Callable):
        self.top_level, self.nested_marked, self.nested = top_level, nested_marked, nested
        functools.update_wrapper(self, top_level)

    def __call__(self, *args, **kwargs):
        if not inside_a_trace((args, kwargs)):
            return self.top_level(*args, **kwargs)
        fn = self.nested_marked if traced_with_options() else self.nested
        return fn(*args, **kwargs)

    def lower(self, *args, **kwargs):
        """The top-level program's ahead-of-time lowering (``.compile()`` it)."""
        return self.top_level.lower(*args, **kwargs)


def host_loop(length: int, chunk: int = MAX_CPU_UNROLL) -> bool:
    """Whether a batch driver should loop over unrolled chunks of ``chunk`` steps from the host
    (CPU, loops longer than a chunk)."""
    return jax.default_backend() == "cpu" and length > chunk


def inside_a_trace(tree: Any) -> bool:
    """True when any leaf is a tracer: we are inside a user's jit/vmap/grad."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


class _LazyJit:
    """A :func:`jit` built on first use, so that importing jaxadv initialises no JAX backend and
    the options are those of the backend in force when the attack first runs."""

    def __init__(self, fun: Callable, static_argnums: tuple[int, ...]):
        self.__wrapped__ = fun
        self.__doc__ = fun.__doc__
        self._static_argnums = static_argnums
        self._jitted: Callable | None = None

    def _get(self):
        if self._jitted is None:
            self._jitted = jit(self.__wrapped__, static_argnums=self._static_argnums)
        return self._jitted

    def __call__(self, *args, **kwargs):
        if inside_a_trace((args, kwargs)):
            # Under a user's jit/vmap/grad: inline into their program (compiler options may only
            # be given to a top-level jit, and the outer program decides them).
            return self.__wrapped__(*args, **kwargs)
        return self._get()(*args, **kwargs)

    def lower(self, *args, **kwargs):
        """Ahead-of-time lowering (``.compile()`` it), e.g. to time compilation apart."""
        return self._get().lower(*args, **kwargs)


def jit_static(*static_argnums: int) -> Callable[[Callable], _LazyJit]:
    """Decorator: :func:`jit` with static arguments, built lazily on first call."""
    return lambda fun: _LazyJit(fun, static_argnums)


def fast_threefry():
    """Context in which threefry draws compile ~3× faster on XLA CPU.

    The default, sharding-friendly ("partitionable") threefry lowering takes seconds of XLA CPU
    compile time per model init (measured: C&W net 8.6 s vs 2.9 s of CPU time, ResNet 10.7 s vs
    4.0 s). Model initialisation and training run on one device, where partitionability buys
    nothing. The flag changes which bits a key draws, not their distribution; training stays
    reproducible per key.
    """
    flag = getattr(jax, "threefry_partitionable", None)
    return flag(False) if flag is not None else contextlib.nullcontext()


# -- host memory after compiling ---------------------------------------------------------------
#
# Compiling an unrolled attack program on XLA CPU takes tens of MB of heap (the C&W net's 10-step
# PGD at batch 128: ~90 MB) that glibc frees but keeps mapped, so the process's resident memory
# holds it while the program then runs and allocates its own buffers: measured peak RSS 194 MB
# against 102 MB when the freed heap is handed back between compiling and running
# (benchmarks/README.md, "Memory"). ``malloc_trim(0)`` hands it back; it is a no-op elsewhere.

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_trim_state = threading.local()
_listener_lock = threading.Lock()
_listener_on = False


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def release_freed_heap() -> bool:
    """Returns the heap that was freed (e.g. by a finished compilation) to the OS.

    glibc's ``malloc_trim(0)``; a no-op returning False where it is unavailable.

    Returns:
      Whether anything was handed back.
    """
    return bool(_TRIM(0)) if _TRIM is not None else False


def _after_compile(event: str, duration: float, **kwargs: Any) -> None:
    if event == _BACKEND_COMPILE_EVENT and getattr(_trim_state, "on", False):
        release_freed_heap()


@contextlib.contextmanager
def release_heap_after_compiles():
    """Context in which every XLA compilation on this thread is followed by
    :func:`release_freed_heap`, before the compiled program first runs (on CPU only; elsewhere
    the program's buffers live on the device and the context does nothing)."""
    global _listener_on
    if _TRIM is None or jax.default_backend() != "cpu":
        yield
        return
    with _listener_lock:
        if not _listener_on:
            jax.monitoring.register_event_duration_secs_listener(_after_compile)
            _listener_on = True
    with _thread_flag(_trim_state):
        yield
