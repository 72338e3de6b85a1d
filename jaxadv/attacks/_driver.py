"""Drivers: run an attack's per-example ``Program`` over a batch (and a hyper-parameter grid).

The loop form is picked per backend and length (``jaxadv/_compile.py``): one ``jit`` holding a
``lax.scan`` of all steps, or, on CPU for attacks longer than ``MAX_CPU_UNROLL`` steps, a host loop
over a jitted chunk of unrolled steps. On XLA CPU a rolled loop around a convolution's gradient
runs about 5× slower than the same steps unrolled (measured on the C&W net; README, "Performance
notes"), while fully unrolling hundreds of steps would take minutes to compile. The carry stays on
the device between chunks, and both forms give the same results (tests/test_conformance.py).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _compile
from jaxadv.attacks._runner import run_program

# Phases of a driven run; ("advance", n) runs n unrolled steps.
WHOLE, INIT, FINISH = "whole", "init", "finish"


def _per_example(attack, phase):
    def fn(victim, hp, x0, label, target, arg, trace):
        program = attack.program(victim, hp, x0, label, target)
        if phase == WHOLE:
            return run_program(program, arg)
        if phase == INIT:
            return program.init(arg)
        if phase == FINISH:
            return program.finish(arg, trace)
        _, steps = phase
        return jax.lax.scan(lambda c, _: program.step(c), arg, length=steps, unroll=True)

    return fn


@_compile.jit_static(0, 1, 2)
def _run_phase(attack, hp_axes, phase, victim, hp, images, labels, targets, arg, trace):
    """One phase, vmapped over examples and, when ``hp_axes`` is given, over the grid."""
    trace_axis = None if trace is None else 0
    fn = jax.vmap(_per_example(attack, phase), in_axes=(None, None, 0, 0, 0, 0, trace_axis))
    if hp_axes is not None:
        # Keys are shared by all grid points; carries and traces have a grid axis.
        arg_axis = None if phase in (WHOLE, INIT) else 0
        fn = jax.vmap(fn, in_axes=(None, hp_axes, None, None, None, arg_axis, trace_axis))
    return fn(victim, hp, images, labels, targets, arg, trace)


def _phases(attack) -> list[Any]:
    # An attack whose step compiles slowly may ask for shorter chunks (``cpu_chunk``).
    chunk = getattr(attack, "cpu_chunk", None) or _compile.MAX_CPU_UNROLL
    full, rest = divmod(attack.length, chunk)
    return [("advance", chunk)] * full + ([("advance", rest)] if rest else [])


def drive(attack, hp_axes, victim, hp, images, labels, targets, keys, executables=None):
    """Runs ``attack`` on every example (and grid point); returns the stacked ``AttackResult``.

    ``executables`` (from :func:`compile_drive`) maps each phase to an ahead-of-time compiled
    program; without it the phases go through the jit cache.
    """

    def run_phase(phase, arg, trace):
        dynamic = (victim, hp, images, labels, targets, arg, trace)
        if executables is not None:
            return executables[phase](*dynamic)  # static arguments are baked in
        return _run_phase(attack, hp_axes, phase, *dynamic)

    if not _compile.host_loop(attack.length) or _compile.inside_a_trace((hp, images, keys)):
        return run_phase(WHOLE, keys, None)
    carry = run_phase(INIT, keys, None)
    traces = []
    for phase in _phases(attack):
        carry, trace = run_phase(phase, carry, None)
        traces.append(trace)
    prefix = 1 if hp_axes is None else 2  # (batch,) or (grid, batch) before the step axis
    # Host loops run on CPU, where the traces already live in host memory; one XLA concatenate of
    # thousands of chunks compiles for minutes (2250 chunks: 3.6 min), numpy's takes milliseconds.
    trace = np.concatenate([np.asarray(t) for t in traces], axis=prefix)
    return run_phase(FINISH, carry, trace)


def compile_drive(attack, hp_axes, victim, hp, images, labels, targets, keys) -> dict:
    """Compiles every phase :func:`drive` needs for these shapes ahead of time (for timing)."""
    static = (attack, hp_axes)

    def lower(phase, arg, trace):
        return _run_phase.lower(*static, phase, victim, hp, images, labels, targets, arg, trace)

    def shape(phase, arg, trace):
        return jax.eval_shape(
            lambda a, t: _run_phase.__wrapped__(
                *static, phase, victim, hp, images, labels, targets, a, t
            ),
            arg,
            trace,
        )

    if not _compile.host_loop(attack.length):
        return {WHOLE: lower(WHOLE, keys, None).compile()}
    executables = {INIT: lower(INIT, keys, None).compile()}
    carry = shape(INIT, keys, None)
    traces = []
    for phase in _phases(attack):
        if phase not in executables:
            executables[phase] = lower(phase, carry, None).compile()
        traces.append(shape(phase, carry, None)[1])
    prefix = 1 if hp_axes is None else 2
    trace = jax.eval_shape(lambda *t: jnp.concatenate(t, axis=prefix), *traces)
    executables[FINISH] = lower(FINISH, carry, trace).compile()
    return executables
