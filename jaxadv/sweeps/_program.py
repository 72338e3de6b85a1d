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

"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxadv import _compile
from jaxadv.sweeps._sharding import AXIS

# The per-entry outputs of the program (``clean_correct`` comes from one clean forward pass).
OUTPUTS = ("clean_correct", "success", "loss", "l0", "l1", "l2", "linf", "queries", "steps")

_CACHE: dict[Any, Any] = {}


def _per_entry(attack):
    def fn(victim, hp, x0, label, target, key_data):
        key = jax.random.wrap_key_data(key_data)
        result = attack.run(victim, hp, x0, label, target, key)
        out = {name: getattr(result, name) for name in OUTPUTS[1:]}
        out["clean_correct"] = jnp.argmax(victim(x0)) == label
        return {
            "clean_correct": out["clean_correct"].astype(bool),
            "success": jnp.asarray(out["success"]).astype(bool),
            **{k: jnp.asarray(out[k], jnp.float32) for k in ("loss", "l0", "l1", "l2", "linf")},
            "queries": jnp.asarray(out["queries"]).astype(jnp.int32),
            "steps": jnp.asarray(out["steps"]).astype(jnp.int32),
        }

    return fn


def chunk_program(attack, mesh, micro_batch: int):
    """``run(victim, hp, x0, label, target, keys) -> dict of (R,) outputs``, jitted once per
    (attack, mesh, micro-batch); every input but the victim has a leading axis of
    ``R = mesh.size × micro_batch`` rows, ``micro_batch`` per device."""
    cache_key = (attack, mesh, micro_batch)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    local = jax.vmap(_per_entry(attack), in_axes=(None, 0, 0, 0, 0, 0))
    rows, replicated = jax.sharding.PartitionSpec(AXIS), jax.sharding.PartitionSpec()
    sharded = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(replicated, rows, rows, rows, rows, rows),
        out_specs=rows,
        check_vma=False,
    )
    program = _compile.jit(sharded)
    _CACHE[cache_key] = program
    return program
