"""The driver's memory savers (issue 19, memory). A batch larger than ``max_batch`` runs as
several calls of one compiled program: the results are bit-identical to one call's with the same
keys (every field, every loop form, sweeps and ``compile_batch`` too), the padding of the last
call is dropped, and the backend's default does split. No test here asserts on time or memory."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv import _compile
from jaxadv.attacks import _driver, pgd

VICTIM = make_mlp_victim(shape=(3, 3, 1), hidden=8, num_classes=3, seed=7)
IMAGES = jax.random.uniform(jax.random.key(11), (5, 3, 3, 1))
LABELS = jnp.argmax(VICTIM.batch(IMAGES), -1).astype(jnp.int32)
KEY = jax.random.key(5)
# Random start: a call that took another example's key would give another result.
ATTACK = dataclasses.replace(pgd(norm="linf", steps=2, random_start=True), name="pgd-chunk-test")
HP = ATTACK.hparams(eps=0.1)


def assert_same(a, b):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture
def counted_calls(monkeypatch):
    """The sizes of the compiled calls the driver makes."""
    sizes = []
    real = _driver._drive_call

    def spy(attack, hp_axes, victim, hp, images, *rest):
        sizes.append(int(jnp.shape(images)[0]))
        return real(attack, hp_axes, victim, hp, images, *rest)

    monkeypatch.setattr(_driver, "_drive_call", spy)
    return sizes


@pytest.mark.parametrize(
    "size, max_batch, expected",
    [(512, 128, (4, 128)), (300, 256, (2, 150)), (513, 128, (5, 103)), (5, 2, (3, 2)),
     (5, None, (1, 5)), (5, 5, (1, 5)), (5, 9, (1, 5)), (1, 1, (1, 1))],
)
def test_batch_layout_takes_the_fewest_equal_calls(size, max_batch, expected):
    calls, per_call = _driver.batch_layout(size, max_batch)
    assert (calls, per_call) == expected
    assert calls * per_call >= size > (calls - 1) * per_call  # the padding is under one call
    assert max_batch is None or per_call <= max_batch


@pytest.mark.parametrize(
    "host_loop", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["one-program", "host-loop"]
)
def test_split_batch_is_bit_identical_to_one_call(host_loop, monkeypatch, counted_calls):
    if host_loop:  # 2 steps as 2 chunks of 1 step driven from the host
        monkeypatch.setattr(_compile, "MAX_CPU_UNROLL", 1)
        if _driver.plan(ATTACK) == [_driver.WHOLE]:
            pytest.skip("the host loop is the CPU loop form")
    whole = ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY, max_batch=5)
    split = ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY, max_batch=2)
    assert counted_calls == [5, 2, 2, 2]  # 3 calls of 2, the last padded with one repeat
    assert_same(split, whole)
    assert np.asarray(whole.linf).max() > 0  # the attack moved: the comparison means something


def test_split_sweep_and_compile_batch_equal_one_call(counted_calls):
    grid = ATTACK.hparams(eps=jnp.array([0.05, 0.2]))
    whole = ATTACK.sweep(VICTIM, grid, IMAGES, LABELS, KEY, max_batch=8)
    split = ATTACK.sweep(VICTIM, grid, IMAGES, LABELS, KEY, max_batch=3)
    assert whole.x_adv.shape == (2, 5, 3, 3, 1)
    assert_same(split, whole)
    run = ATTACK.compile_batch(VICTIM, HP, IMAGES, LABELS, max_batch=2)
    assert_same(run(HP, IMAGES, LABELS, KEY), ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY))
    assert counted_calls == [5, 3, 3, 2, 2, 2, 5]


def test_the_backend_default_splits(monkeypatch, counted_calls):
    whole = ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY, max_batch=5)
    monkeypatch.setattr(_compile, "MAX_CPU_BATCH", 3)
    default = ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY)
    if jax.default_backend() == "cpu":
        assert counted_calls == [5, 3, 3]
    else:
        assert _compile.max_batch() is None and counted_calls == [5, 5]
    assert_same(default, whole)


def test_inside_a_users_jit_the_batch_stays_one_program(counted_calls):
    fn = jax.jit(lambda x: ATTACK.batch(VICTIM, HP, x, LABELS, KEY, max_batch=2).x_adv)
    np.testing.assert_array_equal(
        fn(IMAGES), ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY, max_batch=5).x_adv
    )


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_a_bad_max_batch_is_refused(bad):
    with pytest.raises(ValueError, match="`max_batch` must be None .* positive int; got"):
        ATTACK.batch(VICTIM, HP, IMAGES, LABELS, KEY, max_batch=bad)
    with pytest.raises(ValueError, match="`max_batch`"):
        ATTACK.compile_batch(VICTIM, HP, IMAGES, LABELS, max_batch=bad)
