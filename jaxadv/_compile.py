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
from typing import Any, Callable

import jax

# Steps unrolled into one CPU program; longer attacks are driven in chunks of this many steps.
MAX_CPU_UNROLL = 10

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


def compiler_options() -> dict[str, Any] | None:
    """Compiler options for an attack program on the default backend (None: XLA's defaults)."""
    return dict(_CPU_OPTIONS) if jax.default_backend() == "cpu" else None


def jit(fun: Callable, **kwargs: Any) -> Callable:
    """``jax.jit`` with the attack compiler options of the default backend."""
    return jax.jit(fun, compiler_options=compiler_options(), **kwargs)


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
