"""The one compiled program of a sweep, per victim and attack structure.

Every entry carries its own hyper-parameter leaves (gathered from the grid's settings on the
host), its image, label, target and key, so a grid over numbers (eps, step sizes) is data, not
structure: one compilation serves every call and every setting. One call runs ``micro_batch``
entries on each device of the mesh (``vmap`` of ``attack.run``; ``shard_map`` places the rows),
so every example is computed by the same per-device program whatever the number of devices, and
a chunk of entries is a sequence of such calls queued from the host (``_run.py``). A loop over
micro-batches inside the program (``lax.map``) would save those dispatches, but XLA CPU runs an
attack inside a ``while`` loop about 5× slower (measured: PGD-ℓ∞, 10 steps, C&W net, 32 digits:
9.4 s with the loop, trip count 1, against 1.9 s without; see ``jaxadv/_compile.py``).

For the same reason, on CPU an attack longer than ``MAX_CPU_UNROLL`` steps that defines a
``Program`` runs as ``attack.batch`` runs it (``attacks/_driver.py``): compiled init, chunks of
unrolled steps and finish, driven from the host with the carry left on the devices. Either way,
the form depends on the backend and the attack alone, never on the device layout.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _compile
from jaxadv.attacks import FINISH, INIT, WHOLE
from jaxadv.attacks import AttackBase as _AttackBase
from jaxadv.attacks import driver_phases as _phases
from jaxadv.attacks import per_example_phase as _per_example
from jaxadv.sweeps._sharding import AXIS

# The per-entry outputs (the table's measurements).
OUTPUTS = ("clean_correct", "success", "loss", "l0", "l1", "l2", "linf", "queries", "steps")

_NORMS_AND_LOSS = ("loss", "l0", "l1", "l2", "linf")
_CACHE: dict[Any, Any] = {}


def outputs(victim, x0, label, result) -> dict[str, jax.Array]:
    """The table's measurements of one entry (``clean_correct`` costs one clean forward pass)."""
    return {
        "clean_correct": jnp.argmax(victim(x0)) == label,
        "success": jnp.asarray(result.success).astype(bool),
        **{k: jnp.asarray(getattr(result, k), jnp.float32) for k in _NORMS_AND_LOSS},
        "queries": jnp.asarray(result.queries).astype(jnp.int32),
        "steps": jnp.asarray(result.steps).astype(jnp.int32),
    }


def _whole(attack):
    def fn(victim, hp, x0, label, target, key_data):
        key = jax.random.wrap_key_data(key_data)
        return outputs(victim, x0, label, attack.run(victim, hp, x0, label, target, key))

    return fn


def _phase(attack, phase):
    """One phase of the attack's ``Program`` on one entry (as ``attack.batch`` drives it)."""
    per_example = _per_example(attack, phase)
    if phase == INIT:
        return lambda victim, hp, x0, label, target, key_data: per_example(
            victim, hp, x0, label, target, jax.random.wrap_key_data(key_data), None
        )
    if phase == FINISH:
        return lambda victim, hp, x0, label, target, carry, trace: outputs(
            victim, x0, label, per_example(victim, hp, x0, label, target, carry, trace)
        )
    return lambda victim, hp, x0, label, target, carry: per_example(
        victim, hp, x0, label, target, carry, None
    )


def _compiled(attack, mesh, micro_batch: int, phase: Any):
    """``phase`` of the attack (WHOLE, INIT, ("advance", n) or FINISH), vmapped over rows and
    placed on ``mesh``; jitted once per (attack, mesh, micro-batch, phase)."""
    cache_key = (attack, mesh, micro_batch, phase)
    if cache_key not in _CACHE:
        fn = _whole(attack) if phase == WHOLE else _phase(attack, phase)
        extra = 2 if phase == FINISH else 1  # the carry (and trace) after the five inputs
        rows, replicated = jax.sharding.PartitionSpec(AXIS), jax.sharding.PartitionSpec()
        in_axes = (None,) + (0,) * (4 + extra)
        sharded = jax.shard_map(
            jax.vmap(fn, in_axes=in_axes),
            mesh=mesh,
            in_specs=(replicated,) + (rows,) * (4 + extra),
            out_specs=rows,
            check_vma=False,
        )
        _CACHE[cache_key] = _compile.jit(sharded)
    return _CACHE[cache_key]


def host_driven(attack) -> bool:
    """Whether the attack runs as a host loop over compiled chunks of steps: on CPU, for attacks
    longer than ``MAX_CPU_UNROLL`` steps that define a ``Program`` (as ``attack.batch`` does)."""
    has_program = getattr(type(attack), "program", None) not in (None, _AttackBase.program)
    return has_program and _compile.host_loop(attack.length)


def run_calls(attack, mesh, micro_batch: int, victim, calls: list[tuple]) -> list[dict]:
    """Runs each call's inputs ``(hp, x0, label, target, keys)`` (global arrays of
    ``mesh.size × micro_batch`` rows); returns each call's outputs, still on the devices.

    Nothing waits for results here except, in the host-driven form, the per-step traces, which
    are joined shard by shard on the host (as ``attack.batch`` does) once every call has run.
    """
    if not host_driven(attack):
        whole = _compiled(attack, mesh, micro_batch, WHOLE)
        return [whole(victim, *inputs) for inputs in calls]
    init = _compiled(attack, mesh, micro_batch, INIT)
    carries = [init(victim, *inputs) for inputs in calls]
    traces: list[list] = [[] for _ in calls]
    for phase in _phases(attack):
        advance = _compiled(attack, mesh, micro_batch, phase)
        for i, inputs in enumerate(calls):  # calls in lock-step keep the devices' queues full
            carries[i], trace = advance(victim, *inputs[:4], carries[i])
            traces[i].append(trace)
    finish = _compiled(attack, mesh, micro_batch, FINISH)
    return [
        finish(victim, *inputs[:4], carry, _join_steps(trace))
        for inputs, carry, trace in zip(calls, carries, traces)
    ]


def _join_steps(arrays: list[jax.Array]) -> jax.Array:
    """Concatenates row-sharded traces along the step axis (1), each device's rows on the host:
    no collective, no compilation (one XLA concatenate of thousands of pieces compiles for
    minutes; ``attacks/_driver.py``)."""
    first = arrays[0]
    pieces = []
    for shards in zip(*(a.addressable_shards for a in arrays)):
        joined = np.concatenate([np.asarray(s.data) for s in shards], axis=1)
        pieces.append(jax.device_put(joined, shards[0].device))
    shape = (first.shape[0], sum(a.shape[1] for a in arrays)) + first.shape[2:]
    return jax.make_array_from_single_device_arrays(shape, first.sharding, pieces)
