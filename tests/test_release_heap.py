"""The compiler's freed heap goes back to the OS after each compilation the driver causes (issue
19, memory): ``malloc_trim`` runs once per XLA compile inside ``release_heap_after_compiles`` and
never outside it, and ``attack.batch`` / ``compile_batch`` run inside it. Results are unchanged
(the trim frees no live memory)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv import _compile
from jaxadv.attacks import pgd

pytestmark = pytest.mark.skipif(
    _compile._TRIM is None or jax.default_backend() != "cpu",
    reason="malloc_trim is glibc's and the release only acts on CPU",
)


@pytest.fixture
def trims(monkeypatch):
    calls = []
    real = _compile._TRIM

    def counting(pad):
        calls.append(pad)
        return real(pad)

    monkeypatch.setattr(_compile, "_TRIM", counting)
    return calls


def test_every_compile_inside_the_context_releases_and_none_outside(trims):
    a, b, c = jnp.ones(7), jnp.ones(5), jnp.ones(3)  # made (and their programs compiled) here
    fresh = jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.25)  # programs no other test compiles
    fresh(a).block_until_ready()
    assert trims == []
    with _compile.release_heap_after_compiles():
        jax.jit(lambda x: jnp.cos(x) - 0.5)(b).block_until_ready()
        assert trims == [0]
        fresh(a).block_until_ready()  # cached: no compile, no release
        assert trims == [0]
    jax.jit(lambda x: jnp.tan(x) + 2.0)(c).block_until_ready()
    assert trims == [0]


def test_batch_and_compile_batch_release_after_compiling_and_results_are_unchanged(trims):
    victim = make_mlp_victim(shape=(3, 3, 1), hidden=8, num_classes=3, seed=4)
    images = jax.random.uniform(jax.random.key(1), (5, 3, 3, 1))
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    attack = dataclasses.replace(pgd(norm="linf", steps=3), name="pgd-trim-test")
    hp = attack.hparams(eps=0.1)
    key = jax.random.key(3)
    result = attack.batch(victim, hp, images, labels, key)
    assert len(trims) >= 1  # the batch program was compiled, then the heap released
    run = attack.compile_batch(victim, hp, images, labels)
    compiled = len(trims)
    again = run(hp, images, labels, key)
    assert len(trims) == compiled  # running a compiled program compiles (and trims) nothing
    for a, b in zip(jax.tree.leaves(result), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Without any release the same attack gives the same numbers.
    plain = dataclasses.replace(attack, name="pgd-trim-test-off")  # compiled afresh
    trims.clear()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_compile, "_TRIM", None)
        off = plain.batch(victim, hp, images, labels, key)
    assert trims == []
    for a, b in zip(jax.tree.leaves(result), jax.tree.leaves(off)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
