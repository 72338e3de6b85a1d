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

The loop form is the one driver's (``jaxadv.attacks.plan``): on CPU an attack longer than a
chunk runs as ``attack.batch`` runs it, compiled init, chunks of unrolled steps and finish, driven
from the host with the carry left on the devices. Either way, the form depends on the backend and
the attack alone, never on the device layout.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _compile
from jaxadv.attacks import FINISH, INIT, WHOLE, per_example, run_calls as drive_calls
from jaxadv.sweeps._sharding import AXIS

# The per-entry outputs (the table's measurements).
OUTPUTS = ("clean_correct", "success", "loss", "l0", "l1", "l2", "linf", "queries", "steps")

_NORMS_AND_LOSS = ("loss", "l0", "l1", "l2", "linf")
_CACHE: dict[Any, Any] = {}


def outputs(attack, victim, x0, label, result) -> dict[str, jax.Array]:
    """The table's measurements of one entry (``clean_correct`` costs one clean forward pass)."""
    return {
        "clean_correct": attack.clean_correct(victim, x0, label),
        "success": jnp.asarray(result.success).astype(bool),
        **{k: jnp.asarray(getattr(result, k), jnp.float32) for k in _NORMS_AND_LOSS},
        "queries": jnp.asarray(result.queries).astype(jnp.int32),
        "steps": jnp.asarray(result.steps).astype(jnp.int32),
    }


def _phase(attack, phase):
    """One phase of the attack on one entry, as the driver defines it; keys arrive as raw data
    (typed keys cannot cross ``shard_map``), WHOLE and FINISH end in the table's outputs."""
    per_entry = per_example(attack, phase)

    def fn(victim, hp, x0, label, target, key_data, *carry_and_trace):
        carry, trace = (tuple(carry_and_trace) + (None, None))[:2]
        key = jax.random.wrap_key_data(key_data)
        out = per_entry(victim, hp, x0, label, target, key, carry, trace)
        return outputs(attack, victim, x0, label, out) if phase in (WHOLE, FINISH) else out

    return fn


def _compiled(attack, mesh, micro_batch: int, phase: Any):
    """``phase`` of the attack (WHOLE, INIT, ("advance", n) or FINISH), vmapped over rows and
    placed on ``mesh``; jitted once per (attack, mesh, micro-batch, phase)."""
    cache_key = (attack, mesh, micro_batch, phase)
    if cache_key not in _CACHE:
        extra = {WHOLE: 0, INIT: 0, FINISH: 2}.get(phase, 1)  # the carry (and trace)
        rows, replicated = jax.sharding.PartitionSpec(AXIS), jax.sharding.PartitionSpec()
        in_axes = (None,) + (0,) * (5 + extra)
        sharded = jax.shard_map(
            jax.vmap(_phase(attack, phase), in_axes=in_axes),
            mesh=mesh,
            in_specs=(replicated,) + (rows,) * (5 + extra),
            out_specs=rows,
            check_vma=False,
        )
        _CACHE[cache_key] = _compile.jit(sharded)
    return _CACHE[cache_key]


def run_calls(attack, mesh, micro_batch: int, victim, calls: list[tuple]) -> list[dict]:
    """Runs each call's inputs ``(hp, x0, label, target, keys)`` (global arrays of
    ``mesh.size × micro_batch`` rows) through the driver's phases; returns each call's outputs,
    still on the devices.

    Nothing waits for results here except, in the host-driven form, the per-step traces, which
    are joined shard by shard on the host (as ``attack.batch`` does) once every call has run.
    """

    def run_phase(phase, inputs, carry, trace):
        args = [a for a in (carry, trace) if a is not None]
        return _compiled(attack, mesh, micro_batch, phase)(victim, *inputs, *args)

    return drive_calls(attack, calls, run_phase, _join_steps)


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


_USED: dict[Any, tuple[str, ...]] = {}


def used_fields(attack, victim, hp, x0, label, target, key_data) -> tuple[str, ...]:
    """The hyper-parameter fields that the outputs of one entry depend on, in field order.

    Found by tracing the entry (no compilation) and pruning the program backwards from its
    outputs (``dce_jaxpr``): a field no output depends on (C&W's κ in PGD, momentum decay without
    momentum) is not one the attack uses. Where the analysis cannot see inside an operation it
    counts every input as used, so it can keep a field too many, never drop one in use. Cached
    per attack and victim structure.

    Args:
      attack: the attack of a grid.
      victim: the victim it runs on.
      hp: one setting of ``attack.params_type`` (scalar leaves).
      x0, label, target: one entry's image, label and target.
      key_data: the entry's raw key data (``jax.random.key_data``).

    Returns:
      The names of the used fields, in ``hp._fields`` order.
    """
    from jax.interpreters import partial_eval as pe  # public module, not in jax's main namespace

    leaves = jax.tree.leaves(victim)
    cache_key = (attack, jax.tree.structure(victim),
                 tuple((np.shape(a), str(getattr(a, "dtype", type(a)))) for a in leaves), np.shape(x0))
    if cache_key not in _USED:
        fn = _phase(attack, WHOLE)
        closed = jax.make_jaxpr(lambda hp: fn(victim, hp, x0, label, target, key_data))(hp)
        _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
        per_field = [len(jax.tree.leaves(getattr(hp, f))) for f in hp._fields]
        bounds = np.cumsum([0] + per_field)
        _USED[cache_key] = tuple(
            f for f, lo, hi in zip(hp._fields, bounds[:-1], bounds[1:]) if any(used[lo:hi])
        )
    return _USED[cache_key]
