"""The one compiled program of a sweep: a chunk of grid entries, per victim and attack structure.

Every entry carries its own hyper-parameter leaves (gathered from the grid's settings on the
host), its image, label, target and key, so a grid over numbers (eps, step sizes) is data, not
structure: one compilation serves every chunk and every setting. Inside, each device maps
(``lax.map``) over fixed-size micro-batches of its rows and ``vmap``s ``attack.run`` over each
micro-batch; ``shard_map`` places the rows on the mesh (``_sharding.py``).
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
    """``run(victim, hp, x0, label, target, keys) -> dict of (C,) outputs``, jitted once per
    (attack, mesh, micro-batch); every input but the victim has a leading chunk axis ``C`` that
    is a multiple of ``mesh.size × micro_batch``."""
    cache_key = (attack, mesh, micro_batch)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    per_entry = jax.vmap(_per_entry(attack), in_axes=(None, 0, 0, 0, 0, 0))

    def local(victim, hp, x0, label, target, keys):
        rows = label.shape[0]
        split = lambda a: a.reshape((rows // micro_batch, micro_batch) + a.shape[1:])  # noqa: E731
        batches = jax.tree.map(split, (hp, x0, label, target, keys))
        out = jax.lax.map(lambda b: per_entry(victim, *b), batches)
        return jax.tree.map(lambda a: a.reshape((rows,) + a.shape[2:]), out)

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
