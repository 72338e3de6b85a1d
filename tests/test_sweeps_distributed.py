"""Sweeps across devices and processes give the same bits as one device; a process that nobody
joins fails with a clear error naming the coordinator.

Each case starts fresh Python processes (a device count and ``jax.distributed`` are fixed when
JAX starts); they run side by side to keep the suite short. The test process may itself have
several devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``): then the one-device
reference runs in a process of its own too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv.attacks import pgd
from jaxadv.sweeps import Grid, run_grid

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Worker: argv = inputs.npz, out.npz, then nothing (one process, however many devices) or
# coordinator, num_processes, process_id, checkpoint dir. The victim's variables and the images
# come from the test, so the worker compiles nothing but the sweep.
WORKER = r"""
import sys
sys.path.insert(0, {tests!r})
inputs, out, dist = sys.argv[1], sys.argv[2], sys.argv[3:]
if dist:
    from jaxadv.sweeps import initialize
    initialize(dist[0], int(dist[1]), int(dist[2]), timeout_s=120)
import jax, numpy as np
from conftest import mlp_apply
from jaxadv.models import Victim
from jaxadv.sweeps import run_grid
sys.path.insert(0, {here!r})
from test_sweeps_distributed import make_grid
data = dict(np.load(inputs))
images, labels = data.pop("images"), data.pop("labels")
victim = Victim(data, mlp_apply, images.shape[1:], 3, (0.0, 1.0))
run = run_grid(victim, make_grid(images, labels), chunk_size=4, micro_batch=2, progress=False,
               checkpoint_dir=dist[3] if dist else None)
if jax.process_index() == 0:
    np.savez(out, **run.table)
print("devices", jax.device_count(), "processes", jax.process_count(), "chunk", run.chunk_size)
"""


def make_grid(images, labels):
    # 11 steps: on CPU the host-driven form (init, 10 + 1 unrolled steps, finish), whose traces
    # are joined shard by shard; the one-call form runs in tests/test_sweeps.py.
    return Grid(pgd(steps=11), images, labels, params={"eps": [0.05, 0.2]}, restarts=2, key=7)


NOBODY_JOINS = r"""
import sys
from jaxadv.sweeps import initialize
try:
    initialize(sys.argv[1], 2, 0, timeout_s=1)
except TimeoutError as err:
    print("TIMEOUT:", err, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(code: str, *args: str, devices: int = 1) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    # Keep the test process's XLA flags (compile options change the bits) but its device count.
    count = "--xla_force_host_platform_device_count"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(count)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{count}={devices}"])
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def lonely_coordinator():
    """A process 0 that waits for a partner who never comes; started first, so that its wait
    overlaps the other test's work."""
    address = f"127.0.0.1:{_free_port()}"
    return address, _start(NOBODY_JOINS, address)


def test_devices_and_processes_match_one_device_bit_for_bit(tmp_path, lonely_coordinator):
    victim = make_mlp_victim()
    images = np.asarray(jax.random.uniform(jax.random.key(42), (3,) + victim.input_shape))
    labels = np.asarray(jnp.argmax(victim.batch(images), -1), np.int32)
    inputs = str(tmp_path / "inputs.npz")
    np.savez(inputs, images=images, labels=labels, **jax.tree.map(np.asarray, victim.variables))
    worker = WORKER.format(tests=str(TESTS), here=str(TESTS))
    address = f"127.0.0.1:{_free_port()}"
    ckpt = str(tmp_path / "ckpt")
    procs = {
        "four": _start(worker, inputs, str(tmp_path / "four.npz"), devices=4),
        "p0": _start(worker, inputs, str(tmp_path / "two.npz"), address, "2", "0", ckpt),
        "p1": _start(worker, inputs, str(tmp_path / "unused.npz"), address, "2", "1", ckpt),
    }
    devices = jax.device_count()  # 1, unless XLA_FLAGS gives this process several
    if devices != 1:  # the one-device reference runs in a process of its own
        procs["one"] = _start(worker, inputs, str(tmp_path / "one.npz"), devices=1)
    # meanwhile, this process's devices
    here = run_grid(victim, make_grid(images, labels), chunk_size=4, micro_batch=2, progress=False)
    assert here.chunk_size == -(-4 // (2 * devices)) * 2 * devices  # whole devices × 2
    logs = {name: _finish(proc) for name, proc in procs.items()}
    assert "devices 4 processes 1 chunk 8" in logs["four"]  # 4 rounded up to 4 devices × 2
    assert "devices 2 processes 2 chunk 4" in logs["p0"]
    assert not (tmp_path / "unused.npz").exists()  # only process 0 writes the table
    if devices == 1:
        one = here.table
    else:
        assert "devices 1 processes 1 chunk 4" in logs["one"]
        one = _load(tmp_path / "one.npz")
    assert len(one["loss"]) == 2 * 3 * 2 and one["success"].any()
    others = {"four": _load(tmp_path / "four.npz"), "two": _load(tmp_path / "two.npz")}
    for layout, other in dict(others, here=here.table).items():
        assert set(other) == set(one)
        for k in one:
            np.testing.assert_array_equal(other[k], one[k], err_msg=f"{layout}: {k}")
    # the two processes checkpointed every chunk (orbax, written once)
    assert sorted(p.name for p in Path(ckpt).iterdir() if p.name.isdigit()) == ["2", "3"]


def test_a_coordinator_nobody_joins_times_out_clearly(lonely_coordinator):
    address, proc = lonely_coordinator
    out = _finish(proc, timeout=120)
    message = next(line for line in out.splitlines() if line.startswith("TIMEOUT:"))
    assert f"Process 0 of 2 could not join the sweep at coordinator {address} within 1 s" in message
