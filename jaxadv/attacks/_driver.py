"""The one driver: runs an attack's per-example ``Program`` (one example, a batch, a grid, the
calls of a sharded sweep), and the only place that asks ``jaxadv/_compile.py`` for the loop form.

The loop form is picked per backend and length: one ``jit`` holding a ``lax.scan`` of all steps
(rolled on accelerators, unrolled on CPU), or, on CPU for attacks longer than a chunk (the
attack's ``cpu_chunk`` hint, else ``MAX_CPU_UNROLL`` steps), a host loop over a jitted chunk of
unrolled steps. On XLA CPU a rolled loop around a convolution's gradient runs about 5× slower than
the same steps unrolled (measured on the C&W net; README, "Performance notes"), while fully
unrolling hundreds of steps would take minutes to compile. The carry stays on the device between
chunks, and both forms give the same results (tests/test_conformance.py).

A phase is ``WHOLE`` (the whole program), ``INIT``, ``("advance", n)`` (n unrolled steps) or
``FINISH``. :func:`per_example` gives a phase as a function of one example;
:func:`run_calls` runs a list of calls through the phases with a caller's compiled phase
functions (``attack.batch`` compiles them with ``vmap``, ``jaxadv.sweeps`` with ``shard_map``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _compile
from jaxadv.attacks._runner import Program

WHOLE, INIT, FINISH = "whole", "init", "finish"


def chunk(attack) -> int:
    """Steps per compiled chunk on CPU (the attack's ``cpu_chunk`` hint, else the default)."""
    return getattr(attack, "cpu_chunk", None) or _compile.MAX_CPU_UNROLL


def unroll(attack) -> int:
    """The ``unroll`` of the scan over the attack's steps inside one program on this backend."""
    return _compile.loop_unroll(attack.length, chunk(attack))


def run_program(program: Program, key: jax.Array, unroll: int = 1):
    """Runs a program as one ``lax.scan`` with the given ``unroll``; returns its result.

    Args:
      program: the attack on one example (:class:`~jaxadv.attacks.Program`).
      key: the JAX PRNG key passed to ``program.init``.
      unroll: the ``unroll`` of the ``lax.scan`` over its ``program.length`` steps (1: rolled).

    Returns:
      What ``program.finish`` returns on the last carry and the stacked per-step losses (an
      :class:`~jaxadv.results.AttackResult` for every attack of the library).
    """
    carry, trace = jax.lax.scan(
        lambda c, _: program.step(c), program.init(key), length=program.length, unroll=unroll
    )
    return program.finish(carry, trace)


def run_one(attack, victim, hp, x0, label, target, key):
    """The traced attack on one example as one scan, in the backend's loop form."""
    program = attack.program(victim, attack.derive(hp), x0, label, target)
    return run_program(program, key, unroll(attack))


def plan(attack) -> list[Any]:
    """The phases of a driven run: ``[WHOLE]``, or on CPU for long attacks ``[INIT, ("advance",
    n), ..., FINISH]``.

    Args:
      attack: an attack (its ``length`` and ``cpu_chunk`` decide the loop form on this backend).

    Returns:
      The list of phases: ``[WHOLE]`` for one scan; else ``INIT``, one ``("advance", n)`` per
      chunk (``n`` the chunk's steps; the last may be shorter) and ``FINISH``.
    """
    if not _compile.host_loop(attack.length, chunk(attack)):
        return [WHOLE]
    full, rest = divmod(attack.length, chunk(attack))
    advances = [("advance", chunk(attack))] * full + ([("advance", rest)] if rest else [])
    return [INIT] + advances + [FINISH]


def per_example(attack, phase) -> Callable:
    """``phase`` of the attack on one example: ``fn(victim, hp, x0, label, target, key, carry,
    trace)`` (``carry``/``trace`` None where the phase takes none).

    Args:
      attack: the attack whose ``program`` is built (``hp`` goes through ``attack.derive``).
      phase: ``WHOLE``, ``INIT``, ``("advance", n)`` or ``FINISH`` (module docstring).

    Returns:
      The function of one example. It returns, per phase: ``WHOLE`` and ``FINISH`` the
      :class:`~jaxadv.results.AttackResult`; ``INIT`` the initial carry; ``("advance", n)``
      ``(carry, trace)`` after ``n`` unrolled steps, ``trace`` their ``[n]`` losses.
    """

    def fn(victim, hp, x0, label, target, key, carry, trace):
        program = attack.program(victim, attack.derive(hp), x0, label, target)
        if phase == WHOLE:
            return run_program(program, key, unroll(attack))
        if phase == INIT:
            return program.init(key)
        if phase == FINISH:
            return program.finish(carry, trace)
        _, steps = phase
        return jax.lax.scan(lambda c, _: program.step(c), carry, length=steps, unroll=True)

    return fn


def run_calls(attack, calls: list, run_phase: Callable, join_steps: Callable) -> list:
    """Runs each call through the phases of :func:`plan`, the calls in lock-step.

    ``run_phase(phase, inputs, carry, trace)`` runs one compiled phase on one call's inputs;
    ``join_steps(traces)`` joins the per-chunk traces of one call along the step axis. Nothing
    here waits for a result except the joins.

    Args:
      attack: the attack whose :func:`plan` gives the phases.
      calls: per call, the inputs that ``run_phase`` takes (e.g. one shard of a sweep).
      run_phase: ``(phase, inputs, carry, trace) -> output`` of one compiled phase (``INIT``:
        the carry; an advance: ``(carry, trace)``; ``WHOLE``/``FINISH``: the result).
      join_steps: ``traces -> trace``, the chunks' traces of one call joined on the step axis.

    Returns:
      One result per call, in the order of ``calls`` (what ``run_phase`` returns for ``WHOLE``
      or ``FINISH``).
    """
    phases = plan(attack)
    if phases == [WHOLE]:
        return [run_phase(WHOLE, inputs, None, None) for inputs in calls]
    carries = [run_phase(INIT, inputs, None, None) for inputs in calls]
    traces: list[list] = [[] for _ in calls]
    for phase in phases[1:-1]:
        for i, inputs in enumerate(calls):  # calls in lock-step keep the devices' queues full
            carries[i], trace = run_phase(phase, inputs, carries[i], None)
            traces[i].append(trace)
    return [
        run_phase(FINISH, inputs, carry, join_steps(trace))
        for inputs, carry, trace in zip(calls, carries, traces)
    ]


# The host loop's carries are not donated to the next chunk: measured on CPU (PGD-ℓ∞, 30 steps
# as 3 chunks, C&W net, batch 512 in 4 calls), donating raised the peak resident memory (197, 211
# MB against 174, 173 MB; benchmarks/README.md, "Donating the host loop's carry").
@_compile.jit_static(0, 1, 2)
def _batched_phase(attack, hp_axes, phase, victim, hp, images, labels, targets, keys, carry, trace):
    """One phase, vmapped over examples and, when ``hp_axes`` is given, over the grid."""
    carry_axis = None if carry is None else 0
    trace_axis = None if trace is None else 0
    fn = jax.vmap(
        per_example(attack, phase), in_axes=(None, None, 0, 0, 0, 0, carry_axis, trace_axis)
    )
    if hp_axes is not None:
        # Keys are shared by all grid points; carries and traces have a grid axis.
        fn = jax.vmap(fn, in_axes=(None, hp_axes, None, None, None, None, carry_axis, trace_axis))
    return fn(victim, hp, images, labels, targets, keys, carry, trace)


def batch_layout(size: int, max_batch: int | None) -> tuple[int, int]:
    """``(calls, per_call)``: how a batch of ``size`` examples is split into compiled calls.

    The fewest calls of at most ``max_batch`` examples, all of one size (one program compiles);
    the last call is padded with repeats of the batch's last example, whose results are dropped.

    Args:
      size: examples in the batch.
      max_batch: most examples per call; None: one call.

    Returns:
      ``(1, size)`` when the batch fits one call, else ``(n, ceil(size / n))`` with
      ``n = ceil(size / max_batch)``.
    """
    if max_batch is None or size <= max_batch:
        return 1, size
    calls = -(-size // max_batch)
    return calls, -(-size // calls)


def check_max_batch(max_batch) -> None:
    """``max_batch`` must be None or a positive int (ValueError otherwise)."""
    if max_batch is None:
        return
    if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
        raise ValueError(
            f"`max_batch` must be None (the backend's default) or a positive int; got {max_batch!r}."
        )


def _resolve_max_batch(max_batch):
    check_max_batch(max_batch)
    return _compile.max_batch() if max_batch is None else int(max_batch)


def _split(batched: tuple, size: int, calls: int, per_call: int) -> list[tuple]:
    """The per-call slices of the batched inputs (the last call padded, see :func:`batch_layout`)."""
    out = []
    for i in range(calls):
        start = i * per_call
        if start + per_call <= size:
            take = lambda a, s=start: a[s : s + per_call]  # noqa: E731
        else:
            idx = np.minimum(np.arange(start, start + per_call), size - 1)
            take = lambda a, idx=idx: a[idx]  # noqa: E731
        out.append(jax.tree.map(take, batched))
    return out


def _join_calls(results: list, size: int, axis: int):
    """The calls' results joined on the batch ``axis``, the padding dropped."""

    def join(*parts):
        lib = np if all(isinstance(p, np.ndarray) for p in parts) else jnp
        whole = lib.concatenate(parts, axis=axis)
        return whole if whole.shape[axis] == size else lib.take(whole, np.arange(size), axis=axis)

    return jax.tree.map(join, *results)


def drive(
    attack, hp_axes, victim, hp, images, labels, targets, keys, executables=None, max_batch=None
):
    """Runs ``attack`` on every example (and grid point); returns the stacked ``AttackResult``.

    ``executables`` (from :func:`compile_drive`, with the same ``max_batch``) maps each phase to
    an ahead-of-time compiled program; without it the phases go through the jit cache. A batch
    of more than ``max_batch`` examples (None: ``_compile.max_batch()``, the backend's default)
    runs as several calls of one program (:func:`batch_layout`), one after the other, so that
    only one call's buffers are live at a time; the results are the same as one call's.
    """
    if _compile.inside_a_trace((hp, images, keys)):  # a user's jit: one program, one scan
        return _batched_phase(attack, hp_axes, WHOLE, victim, hp, images, labels, targets, keys,
                              None, None)
    size = jnp.shape(images)[0]
    calls, per_call = batch_layout(size, _resolve_max_batch(max_batch))
    batched = (images, labels, targets, keys)
    parts = [batched] if calls == 1 else _split(batched, size, calls, per_call)
    results = []
    for i, part in enumerate(parts):
        if i:  # one call's buffers at a time: the previous call finishes first, and the heap
            # its buffers were freed to goes back to the OS (glibc would otherwise keep much of it
            # resident beside the next call's fresh allocations: measured 126-206 MB at batch 512)
            jax.block_until_ready(results[-1])
            _compile.release_freed_heap()
        results.append(_drive_call(attack, hp_axes, victim, hp, *part, executables))
    if calls == 1:
        return results[0]
    return _join_calls(results, size, axis=0 if hp_axes is None else 1)


def _drive_call(attack, hp_axes, victim, hp, images, labels, targets, keys, executables):
    inputs = (victim, hp, images, labels, targets, keys)

    def run_phase(phase, inputs, carry, trace):
        if executables is not None:
            return executables[phase](*inputs, carry, trace)  # static arguments are baked in
        return _batched_phase(attack, hp_axes, phase, *inputs, carry, trace)

    prefix = 1 if hp_axes is None else 2  # (batch,) or (grid, batch) before the step axis
    # Compiled here on first use: the compiler's freed heap goes back before the program runs.
    with _compile.release_heap_after_compiles():
        return run_calls(attack, [inputs], run_phase, lambda t: _join_on_host(t, prefix))[0]


def _join_on_host(traces: list, axis: int) -> np.ndarray:
    # Host loops run on CPU, where the traces already live in host memory; one XLA concatenate of
    # thousands of chunks compiles for minutes (2250 chunks: 3.6 min), numpy's takes milliseconds.
    return np.concatenate([np.asarray(t) for t in traces], axis=axis)


def compile_drive(
    attack, hp_axes, victim, hp, images, labels, targets, keys, max_batch=None
) -> dict:
    """Compiles every phase :func:`drive` needs for these shapes ahead of time (for timing).

    With a batch of more than ``max_batch`` examples, the phases are compiled for one call's
    share (:func:`batch_layout`); pass :func:`drive` the same ``max_batch``.
    """
    static = (attack, hp_axes)
    size = jnp.shape(images)[0]
    calls, per_call = batch_layout(size, _resolve_max_batch(max_batch))
    batched = (images, labels, targets, keys)
    if calls > 1:
        batched = _split(batched, size, 1, per_call)[0]
    inputs = (victim, hp, *batched)

    def lower(phase, carry, trace):
        return _batched_phase.lower(*static, phase, *inputs, carry, trace)

    def shape(phase, carry, trace):
        return jax.eval_shape(
            lambda c, t: _batched_phase.__wrapped__(*static, phase, *inputs, c, t), carry, trace
        )

    with _compile.release_heap_after_compiles():
        return _compile_phases(plan(attack), lower, shape, hp_axes)


def _compile_phases(phases, lower, shape, hp_axes) -> dict:
    if phases == [WHOLE]:
        return {WHOLE: lower(WHOLE, None, None).compile()}
    executables = {INIT: lower(INIT, None, None).compile()}
    carry = shape(INIT, None, None)
    traces = []
    for phase in phases[1:-1]:
        if phase not in executables:
            executables[phase] = lower(phase, carry, None).compile()
        traces.append(shape(phase, carry, None)[1])
    prefix = 1 if hp_axes is None else 2
    trace = jax.eval_shape(lambda *t: jnp.concatenate(t, axis=prefix), *traces)
    executables[FINISH] = lower(FINISH, carry, trace).compile()
    return executables
