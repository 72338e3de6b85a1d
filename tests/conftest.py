"""Shared fixtures: tiny victims whose behaviour is known in closed form or cheap to brute-force,
and the caches every test process shares (compiled programs, trained victims)."""

from __future__ import annotations

import os
import pathlib

# One persistent XLA compilation cache for the whole run, shared by the xdist workers and the
# processes the tests start (notebook kernels, experiments): the same programs (the default
# victim's training step, say) are compiled by many tests, and a cache hit costs ~1/4 of a
# compile. It lives in this checkout's .pytest_cache, so a fresh clone (CI) starts cold.
_COMPILE_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compiled"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_COMPILE_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# Likewise one cache of trained victims (``default_victim``, the saliency experiments): the smoke
# runs of notebooks, experiments and the demo train the same one-epoch victims, and the cache's
# lock lets one process train while the others wait and restore. Tests of the caching itself pass
# their own ``cache_dir``.
SHARED_VICTIMS = _COMPILE_CACHE.parent / "jaxadv-victims"
os.environ.setdefault("JAXADV_CACHE_DIR", str(SHARED_VICTIMS))
# The suite compiles at XLA CPU's backend optimisation level 0 (JAXADV_TEST_FAST_COMPILE=0: the
# default level and emitters). It compiles hundreds of small programs and runs most for
# milliseconds; LLVM's optimisation is ~35% of the CPU (measured: 82 conformance tests 155 → 99
# CPU-s; test_demo + test_training 37 → 24). Float32 results move by rounding only (SparseFool's
# eager-vs-jit trace: 2.3e-5 relative). Added to the user's XLA_FLAGS (device counts of the sweeps'
# tests); an explicit level is left alone. Benchmarks and experiments compile at the default level.
# XLA CPU's fusion emitters (MLIR, on by default) are switched off too: the older loop emitter
# compiles the suite's programs in ~55% of the CPU (measured: cw_l2 on a linear victim 6.0 → 3.6 s;
# the pgd, sapf and mi-fgsm conformance entries 15.5 → 8.0 s; same results to the printed digits;
# the 12 heaviest test files 202 → 123 worker CPU-s, demo and training files 46 → 34; the whole
# suite from a fresh clone 485 → 299 s, 896 → 544 CPU-s), and the suite's programs run for
# milliseconds. Checks that compared two different programs bit for bit now allow their rounding
# or keep it from growing (test_smbea_boost, test_smoothing, test_saliency_training). An explicit
# setting of either flag is left alone.
_FAST_COMPILE = {
    "optimization_level": "--xla_backend_optimization_level=0",
    "xla_cpu_use_fusion_emitters": "--xla_cpu_use_fusion_emitters=false",
}
if os.environ.get("JAXADV_TEST_FAST_COMPILE", "1") != "0":
    _flags = os.environ.get("XLA_FLAGS", "")
    _extra = [flag for name, flag in _FAST_COMPILE.items() if name not in _flags]
    os.environ["XLA_FLAGS"] = " ".join([_flags, *_extra]).strip()

import jax  # noqa: E402  (after the cache settings, which jax reads when imported)
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models._victim import Victim


def linear_apply(variables, x):
    """Batched affine classifier ``z = W·vec(x) + b`` (module-level: hashable for jit caches)."""
    return x.reshape(x.shape[0], -1) @ variables["w"].T + variables["b"]


def mlp_apply(variables, x):
    """Batched two-layer tanh network: small, smooth and non-linear."""
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ variables["w1"] + variables["b1"])
    return h @ variables["w2"] + variables["b2"]


def make_linear_victim(dim=12, num_classes=2, seed=0, bounds=(-10.0, 10.0)):
    w = jax.random.normal(jax.random.key(seed), (num_classes, dim))
    return Victim(
        variables={"w": w, "b": jnp.zeros(num_classes)},
        apply_fn=linear_apply,
        input_shape=(dim,),
        num_classes=num_classes,
        bounds=bounds,
    )


def make_mlp_victim(shape=(4, 4, 1), hidden=16, num_classes=3, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    dim = int(np.prod(shape))
    variables = {
        "w1": jax.random.normal(k1, (dim, hidden)) * 2.0 / np.sqrt(dim),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, num_classes)) * 2.0,
        "b2": jnp.zeros(num_classes),
    }
    # Centre the logits over random inputs so that every class is predicted somewhere.
    sample = jax.random.uniform(jax.random.key(seed + 1), (256, dim))
    variables["b2"] = -jnp.mean(mlp_apply(variables, sample), axis=0)
    return Victim(
        variables=variables,
        apply_fn=mlp_apply,
        input_shape=shape,
        num_classes=num_classes,
        bounds=(0.0, 1.0),
    )


@pytest.fixture
def linear_victim():
    return make_linear_victim()


@pytest.fixture
def mlp_victim():
    return make_mlp_victim()


@pytest.fixture
def mlp_batch(mlp_victim):
    """8 images in [0, 1] with the victim's own clean predictions as labels."""
    images = jax.random.uniform(jax.random.key(42), (8,) + mlp_victim.input_shape)
    labels = jnp.argmax(mlp_victim.batch(images), axis=-1).astype(jnp.int32)
    return images, labels


# The longest tests (each a minute or so: notebooks, experiment smoke runs, the demo, CLI
# training) go first. Under ``pytest -n 2`` they then overlap with the hundreds of short tests
# instead of being handed out last, when one worker would finish them while the other sits idle.
_LONG_FIRST = (
    "test_notebooks.py",
    "test_experiments.py",
    "test_sapf_experiment.py",
    "test_demo.py",
    "test_saliency_training.py",
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in _LONG_FIRST)  # stable: order kept within
