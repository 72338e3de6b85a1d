"""A persistent XLA compilation cache under the jaxadv cache directory.

Compiling an attack costs seconds to tens of seconds on CPU (unrolled steps of a convolutional
victim's gradient), often more than running it. JAX can keep compiled programs on disk and load
them in a later process instead of compiling again; :func:`enable_compilation_cache` turns that on
in ``<jaxadv cache dir>/xla`` (``$JAXADV_CACHE_DIR/xla``, else ``~/.cache/jaxadv/xla``), where the
trained default victims are kept too. ``python -m jaxadv`` calls it; library users opt in.

A user's own JAX settings win: with ``JAX_COMPILATION_CACHE_DIR`` (or ``jax_compilation_cache_dir``)
already set, nothing is changed and that directory is used. ``JAXADV_NO_COMPILE_CACHE=1`` turns the
jaxadv cache off. The cache is trusted code: like any JAX compilation cache, keep it in a directory
only you can write to.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import jax

# Set (to anything but "", "0", "false" or "no") to keep jaxadv from turning the cache on.
OPT_OUT_ENV = "JAXADV_NO_COMPILE_CACHE"
# Programs that compile faster than this are not written (JAX's own default is 1 s; the demo's
# smaller programs, the victim's evaluation say, take a fraction of a second and add up).
MIN_COMPILE_TIME_SECS = 0.2

_HITS = "/jax/compilation_cache/cache_hits"
_WRITES = "/jax/compilation_cache/cache_misses"  # recorded when a compiled program is written


def _opted_out(environ) -> bool:
    return environ.get(OPT_OUT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def compilation_cache_dir() -> Path | None:
    """The persistent compilation cache JAX uses in this process (None: none is set)."""
    path = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(path).expanduser() if path else None


def enable_compilation_cache() -> Path | None:
    """Turns on JAX's persistent compilation cache in the jaxadv cache directory.

    Compiled programs are then written to ``<cache dir>/xla`` (see
    :func:`jaxadv.models.default_cache_dir`) and loaded from there by later processes instead of
    being compiled again. Call it before the first compilation you want cached.

    Returns:
      The cache directory in use: the user's own when ``JAX_COMPILATION_CACHE_DIR`` (or the
      ``jax_compilation_cache_dir`` option) is already set — then nothing is changed —, else
      ``<cache dir>/xla``. None, and nothing changed, when ``JAXADV_NO_COMPILE_CACHE`` is set.
    """
    if _opted_out(os.environ):
        return None
    users = compilation_cache_dir()
    if users is not None:
        if not jax.config.jax_compilation_cache_dir:  # set in the environment after jax's import
            jax.config.update("jax_compilation_cache_dir", str(users))
        return users
    # Imported here: the models package (trained victims) owns the cache directory's location.
    from jaxadv.models import default_cache_dir

    path = default_cache_dir() / "xla"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
    return path


class CacheCount:
    """Programs loaded from (``hits``) and written to (``writes``) the persistent cache."""

    hits: int = 0
    writes: int = 0

    @property
    def cached(self) -> bool:
        """Everything worth caching came from the cache: at least one hit and nothing written."""
        return self.hits > 0 and self.writes == 0


@contextlib.contextmanager
def count_cache_use() -> Iterator[CacheCount]:
    """Counts persistent-cache hits and writes of the compilations inside the ``with`` block.

    Yields:
      A :class:`CacheCount` whose ``hits`` and ``writes`` grow while the block runs.
    """
    count = CacheCount()

    def listener(event: str, **kwargs) -> None:
        if event == _HITS:
            count.hits += 1
        elif event == _WRITES:
            count.writes += 1

    jax.monitoring.register_event_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_listener(listener)
