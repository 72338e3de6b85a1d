"""Joining several processes into one sweep with JAX's own runtime (``jax.distributed``).

Every process runs the same sweep; after :func:`initialize`, ``jax.devices()`` lists the devices
of all of them and the sweep's mesh spans them (``_sharding.py``). On CPU, cross-process
collectives (the gather of each chunk's results) need an implementation: gloo, set here before
the backend starts (jax 0.10 ships it in jaxlib).

When a process does not join in time, JAX's client aborts the whole process from C++ (no Python
exception, only a log line about a deadline). :func:`initialize` installs an error callback on
the client instead, so the failure becomes a ``TimeoutError`` that names the coordinator, the
process and what to check. That hook uses JAX internals; where they are missing it falls back to
the plain ``jax.distributed.initialize``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import jax

ENV = {
    "coordinator": "JAXADV_COORDINATOR",
    "num_processes": "JAXADV_NUM_PROCESSES",
    "process_id": "JAXADV_PROCESS_ID",
}


def _check_address(address: Any) -> str:
    if not isinstance(address, str) or ":" not in address:
        raise ValueError(f"`coordinator` must be 'HOST:PORT'; got {address!r}.")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"`coordinator` must be 'HOST:PORT' with a port in 1..65535; got {address!r}."
        )
    return address


@contextlib.contextmanager
def _client_errors_raise():
    """Makes the distributed client report errors to Python instead of aborting the process."""
    try:
        from jax._src import distributed as internals

        make_client = internals._jax.get_distributed_runtime_client
    except (ImportError, AttributeError):
        yield
        return

    def patched(*args, **kwargs):
        kwargs.setdefault("missed_heartbeat_callback", lambda *_: None)
        return make_client(*args, **kwargs)

    internals._jax.get_distributed_runtime_client = patched
    try:
        yield
    finally:
        internals._jax.get_distributed_runtime_client = make_client


def _forget_failed_join() -> None:
    """Drops the half-made client/service so that the process can exit (or try again)."""
    try:
        from jax._src import distributed as internals
    except ImportError:
        return
    state = internals.global_state
    for part in ("client", "service"):
        obj = getattr(state, part, None)
        if obj is not None:
            with contextlib.suppress(Exception):
                obj.shutdown()
            setattr(state, part, None)


def initialize(
    coordinator: str, num_processes: int, process_id: int, *, timeout_s: int = 300
) -> None:
    """Joins this process to a sweep of ``num_processes`` processes (``jax.distributed``).

    Call it before any other JAX work. Process 0 also runs the coordinator service at
    ``coordinator`` (``HOST:PORT``, reachable from every process).

    Raises:
      ValueError: for a malformed address, count or id.
      TimeoutError: when not every process joined within ``timeout_s`` seconds.

    Args:
      coordinator: ``HOST:PORT`` of process 0.
      num_processes: processes taking part, ≥ 1.
      process_id: this process's index in ``[0, num_processes)``.
      timeout_s: seconds to wait for every process to join.
    """
    _check_address(coordinator)
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"`num_processes` must be an integer >= 1; got {num_processes!r}.")
    if (
        isinstance(process_id, bool)
        or not isinstance(process_id, int)
        or not 0 <= process_id < num_processes
    ):
        raise ValueError(
            f"`process_id` must be an integer in [0, {num_processes}); got {process_id!r}."
        )
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        raise ValueError(f"`timeout_s` must be an integer >= 1 (seconds); got {timeout_s!r}.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    with _client_errors_raise():
        try:
            jax.distributed.initialize(
                coordinator_address=coordinator,
                num_processes=num_processes,
                process_id=process_id,
                initialization_timeout=timeout_s,
            )
        except Exception as err:
            _forget_failed_join()
            raise TimeoutError(
                f"Process {process_id} of {num_processes} could not join the sweep at coordinator "
                f"{coordinator} within {timeout_s} s. Start all "
                f"{num_processes} processes with the same --coordinator (process 0 serves it), "
                "check that its host and port are reachable, or raise the timeout."
            ) from err


def from_environment() -> dict[str, Any] | None:
    """``coordinator``/``num_processes``/``process_id`` from ``JAXADV_*`` variables, if set.

    Returns:
      ``{"coordinator", "num_processes", "process_id"}`` when ``JAXADV_COORDINATOR`` is set, else
      None.
    """
    values = {name: os.environ.get(var) for name, var in ENV.items()}
    if values["coordinator"] is None:
        return None
    try:
        return {
            "coordinator": values["coordinator"],
            "num_processes": int(values["num_processes"] or ""),
            "process_id": int(values["process_id"] or ""),
        }
    except ValueError:
        raise ValueError(
            f"{ENV['coordinator']} is set, so {ENV['num_processes']} and {ENV['process_id']} must "
            f"be integers; got {values['num_processes']!r} and {values['process_id']!r}."
        ) from None


def shutdown() -> None:
    """Leaves the distributed runtime (a no-op in a single process)."""
    if jax.process_count() > 1:
        jax.distributed.shutdown()
