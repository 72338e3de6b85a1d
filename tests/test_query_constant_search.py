"""C&W's binary search over the constant for the query-based C&W attacks (ZOO, the Meta Attack):
``search_steps`` runs against the same runs composed by hand, with the constants of a bisection
traced here in numpy, the best run picked here and the queries summed here; one search step
equals the attack itself."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, models

from conftest import make_mlp_victim
from registry import ATTACKS, VICTIMS
from registry import DenseMetaAttacker as Linear

N = 3
ZOO_RUN = 3 * 17 + 1  # the registry's ZOO: 3 steps of 2·8 + 1 queries and the final evaluation


def _case():
    black_box = VICTIMS["score-only classifier"]()
    images = jax.random.uniform(jax.random.key(5), (N,) + tuple(black_box.input_shape))
    labels = jnp.argmax(make_mlp_victim().batch(images), -1)
    return black_box, images, labels


def _runs(attack, victim, hp):
    """The attack on each example at its own constant and key, vmapped, compiled."""

    def one(x0, label, const, key):
        return attack.run(victim, hp._replace(initial_const=const), x0, label, None, key)

    return jax.jit(jax.vmap(one))


def _by_hand(attack, victim, hp, images, labels, key, search_steps):
    """The search composed of whole runs: numpy's bisection of C&W, the best run (success,
    then the smallest ℓ2; ties keep the earlier), steps and queries summed."""
    run = _runs(attack, victim, hp)
    const = np.full(N, float(hp.initial_const), np.float32)
    lower, upper = np.zeros(N, np.float32), np.full(N, 1e10, np.float32)
    keys = jax.random.split(key, N)  # the driver's per-example keys
    consts, results = [], []
    for _ in range(search_steps):
        pairs = jax.vmap(jax.random.split)(keys)  # (carry key, the run's key) per example
        keys, inner = pairs[:, 0], pairs[:, 1]
        result = jax.tree.map(np.asarray, run(images, labels, jnp.asarray(const), inner))
        consts.append(const.copy())
        results.append(result)
        ok = result.success
        upper = np.where(ok, np.minimum(upper, const), upper)
        lower = np.where(ok, lower, np.maximum(lower, const))
        const = np.where(upper < 1e10, np.float32(0.5) * (lower + upper), const * np.float32(10))
    best = []
    for i in range(N):
        rank = [(not r.success[i], r.l2[i] if r.success[i] else r.loss[i]) for r in results]
        best.append(min(range(search_steps), key=lambda j: rank[j]))  # stable: the earlier
    return np.asarray(consts), results, np.asarray(best)


def _check(searched, consts, runs, best):
    pick = lambda field: np.stack([getattr(r, field) for r in runs])[best, np.arange(N)]  # noqa: E731
    for field in ("success", "x_adv", "l2", "loss", "logits"):
        # Differences of step h amplify rounding by 1/h: the batch driver's programs and the
        # composed runs agree to rounding times that.
        np.testing.assert_allclose(getattr(searched, field), pick(field), rtol=1e-4, atol=1e-5)
    for field in ("steps", "queries"):
        total = np.sum([getattr(r, field) for r in runs], axis=0)
        np.testing.assert_array_equal(getattr(searched, field), total, err_msg=field)


def test_zoo_search_is_a_bisection_over_whole_runs_with_queries_summed():
    black_box, images, labels = _case()
    base = ATTACKS["zoo"].make()
    search = dataclasses.replace(base, search_steps=3)  # 9 steps: one compiled program
    hp = search.hparams(step_size=0.2, initial_const=0.01, fd_step=1e-2)
    key = jax.random.key(2)
    searched = search.batch(black_box, hp, images, labels, key)
    consts, runs, best = _by_hand(base, black_box, hp, images, labels, key, 3)
    # Both branches of the search are taken: ×10 while nothing succeeded, then bisection.
    np.testing.assert_allclose(consts[:2, 2], [0.01, 0.1], rtol=1e-6)  # failed first
    np.testing.assert_allclose(consts[:3, 0], [0.01, 0.005, 0.0025], rtol=1e-6)
    assert search.length == 3 * base.length and np.asarray(searched.trace).shape == (N, 9)
    _check(searched, consts, runs, best)
    assert np.all(np.asarray(searched.queries) == 3 * ZOO_RUN)  # ZOO never stops early
    assert len(set(best.tolist())) > 1, best  # the best run is not always the same one


@pytest.mark.slow  # ~3 s of CPU: two more compilations
def test_one_search_step_is_the_attack_itself():
    black_box, images, labels = _case()
    base = ATTACKS["zoo"].make()
    hp = base.hparams(step_size=0.2, initial_const=0.01, fd_step=1e-2)

    def searched(x0, label, key):
        program = attacks.constant_search(
            lambda c: base.program(black_box, hp._replace(initial_const=c), x0, label, None),
            initial_const=hp.initial_const,
            steps=base.length,
            search_steps=1,
            bounds=black_box.bounds,
            close="finish",
        )
        carry, trace = jax.lax.scan(lambda c, _: program.step(c), program.init(key), length=3)
        return program.finish(carry, trace)

    keys = jax.random.split(jax.random.key(2), N)
    new = jax.jit(jax.vmap(searched))(images, labels, keys)
    # constant_search's init splits the key once for the run.
    inner = jax.vmap(jax.random.split)(keys)[:, 1]
    old = _runs(base, black_box, hp)(images, labels, jnp.full(N, 0.01, jnp.float32), inner)
    for field in old._fields:
        value = getattr(old, field)
        if value is None:
            continue
        if np.issubdtype(np.asarray(value).dtype, np.floating):  # two programs: rounding apart
            np.testing.assert_allclose(getattr(new, field), value, rtol=1e-5, err_msg=field)
        else:
            np.testing.assert_array_equal(getattr(new, field), value, err_msg=field)


@pytest.mark.slow  # ~20 s: the Meta Attack compiled twice
def test_meta_attack_search_keeps_its_early_stop_and_counts_every_run():
    victim = make_mlp_victim()
    rng = np.random.default_rng(0)
    variables = {
        "params": {
            "dense": {
                "kernel": jnp.asarray(rng.normal(size=(16, 16)) / 4, jnp.float32),
                "bias": jnp.asarray(0.1 * rng.normal(size=16), jnp.float32),
            }
        }
    }
    carrier = models.with_meta_attacker(models.score_only(victim), Linear(), variables)
    base = attacks.meta_attack(top_q=4, max_queries=60, finetune_steps=2, const=0.5)
    search = dataclasses.replace(base, search_steps=3)
    images = jax.random.uniform(jax.random.key(3), (N,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), -1)
    hp = search.hparams(step_size=0.2, fd_step=1e-2)
    key = jax.random.key(0)
    searched = search.batch(carrier, hp, images, labels, key)
    consts, runs, best = _by_hand(base, carrier, hp, images, labels, key, 3)
    _check(searched, consts, runs, best)
    # Each run stopped at its first success (fewer steps than the budget pays for) or spent it.
    steps = np.stack([r.steps for r in runs])
    assert np.any(steps < base.budget_steps) and np.all(np.stack([r.queries for r in runs]) <= 60)


def test_bad_search_arguments():
    with pytest.raises(ValueError, match="`search_steps`"):
        attacks.zoo(search_steps=0)
    with pytest.raises(ValueError, match="`search_steps`"):
        attacks.meta_attack(search_steps=0)
    with pytest.raises(ValueError, match="`close`"):
        attacks.constant_search(
            lambda c: None, initial_const=1.0, steps=1, search_steps=1, bounds=(0, 1), close="x"
        )
