"""The persistent XLA compilation cache: where ``enable_compilation_cache`` puts it, what it leaves
alone (a user's own JAX cache, the opt-out), and how the demo counts and shows cache hits."""

from __future__ import annotations

import random

import jax
import jax.numpy as jnp
import pytest

import jaxadv
from jaxadv._compile_cache import count_cache_use
from jaxadv.demo import _compile_legend, format_table

_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


@pytest.fixture
def jax_cache_settings():
    """Restores JAX's cache settings after the test (the test process has its own cache)."""
    saved = {name: getattr(jax.config, name) for name in _SETTINGS}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.fixture
def no_user_cache(monkeypatch, tmp_path, jax_cache_settings):
    """As for a user who set no JAX cache of their own; the jaxadv cache dir is ``tmp_path``."""
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JAXADV_NO_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("JAXADV_CACHE_DIR", str(tmp_path))
    jax.config.update("jax_compilation_cache_dir", None)
    return tmp_path


def test_the_cache_goes_under_the_jaxadv_cache_dir(no_user_cache):
    path = jaxadv.enable_compilation_cache()
    assert path == (no_user_cache / "xla").resolve() and path.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(path)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == pytest.approx(0.2)
    assert jaxadv.enable_compilation_cache() == path  # calling again changes nothing


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_the_opt_out_leaves_jax_alone(no_user_cache, monkeypatch, value):
    monkeypatch.setenv("JAXADV_NO_COMPILE_CACHE", value)
    assert jaxadv.enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir is None
    assert not (no_user_cache / "xla").exists()


def test_the_opt_out_accepts_0_as_no(no_user_cache, monkeypatch):
    monkeypatch.setenv("JAXADV_NO_COMPILE_CACHE", "0")
    assert jaxadv.enable_compilation_cache() == (no_user_cache / "xla").resolve()


def test_a_users_own_jax_cache_wins(no_user_cache, monkeypatch, tmp_path_factory):
    mine = tmp_path_factory.mktemp("mine")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(mine))  # set after jax was imported
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 3.0)
    assert jaxadv.enable_compilation_cache() == mine
    assert jax.config.jax_compilation_cache_dir == str(mine)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 3.0  # untouched
    assert not (no_user_cache / "xla").exists()
    # the same through JAX's own option
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    jax.config.update("jax_compilation_cache_dir", str(mine / "option"))
    assert jaxadv.enable_compilation_cache() == mine / "option"


def test_hits_and_writes_are_counted(jax_cache_settings):
    # This process's cache (conftest's); the constant makes a program no earlier run has cached.
    assert jax.config.jax_compilation_cache_dir
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    constant = random.random()

    def make_program():  # a new function each time, so that no in-memory cache answers
        def program(x):
            return jnp.sin(x) * constant

        return program

    x = jnp.ones(3)
    with count_cache_use() as first:
        jax.jit(make_program()).lower(x).compile()
    assert (first.hits, first.writes, first.cached) == (0, 1, False)
    with count_cache_use() as second:  # the same program, from the disk this time
        jax.jit(make_program()).lower(x).compile()
    assert (second.hits, second.writes, second.cached) == (1, 0, True)


def test_the_demo_table_marks_cached_compiles():
    row = dict(
        attack="FGSM", robust_accuracy=0.0, success_rate=1.0, l0=1, l1=1.0, l2=1.0, linf=0.3,
        images_per_s=100.0, compile_s=0.4,
    )
    table = format_table([dict(row, compile_cached=True), dict(row, attack="BIM")])
    fgsm, bim = table.splitlines()[2:]
    assert fgsm.endswith("0.4 cached") and bim.endswith("0.4")
    assert "loaded from /x" in _compile_legend("/x", True)
    assert "saved for the next run in /x" in _compile_legend("/x", False)
    assert "cache off" in _compile_legend(None, False)
