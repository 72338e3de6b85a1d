"""SAPF on small victims: targeted success with ℓ0 ≤ k, the λ1 search rules, vmap == loop, the
group-sparse and weighted variants, superpixels and weights, and bad input."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv.attacks._sapf import SAPF, common_positions, next_lambda1, sapf, start_lambda1
from jaxadv.image._sensitivity import sensitivity_weights
from jaxadv.image._superpixels import slic
from jaxadv.transforms import ADMM_RHO_MAX_CODE, lp_box_admm

# Short schedules: the paper's 6 × (2000 + 2000 + 1000) steps belong in the experiment.
SMALL = dict(steps=60, mask_steps=60, finetune_steps=30, trials=4)


@functools.lru_cache(maxsize=None)
def _victim(channels=1):
    return make_mlp_victim(shape=(4, 4, channels), hidden=16, num_classes=3, seed=0)


def _batch(victim, n=8, seed=42):
    images = jax.random.uniform(jax.random.key(seed), (n,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    return images, labels, (labels + 1) % victim.num_classes


@functools.lru_cache(maxsize=None)
def _sapf_batch(select="sparsest", k=4.0):
    victim = _victim()
    images, labels, targets = _batch(victim)
    attack = sapf(select=select, **SMALL)
    hp = attack.hparams(k=k, lambda1=1.0)
    return attack.batch(victim, hp, images, labels, jax.random.key(0), targets)


def test_reaches_the_target_with_at_most_k_changed_entries():
    victim = _victim()
    images, labels, targets = _batch(victim)
    result = _sapf_batch()
    success = np.asarray(result.success)
    assert success.mean() >= 7 / 8, success
    assert np.all(np.asarray(result.l0) <= 4), result.l0
    # Success means the victim predicts the target at x_adv, which is x0 + delta in the box.
    predicted = np.argmax(np.asarray(victim.batch(result.x_adv)), axis=-1)
    np.testing.assert_array_equal(predicted[success], np.asarray(targets)[success])
    np.testing.assert_allclose(result.x_adv, np.clip(images + result.delta, 0, 1), atol=1e-6)
    # The paper's λ1 search from 1: ×10 up to 100 and stop at the first success (or at a failure
    # at 100); only the trials run count their steps.
    lambdas = np.asarray(result.extras["lambda1"])
    run = np.sum(~np.isnan(lambdas), axis=1)
    for row, n, ok in zip(lambdas, run, success):
        np.testing.assert_allclose(row[:n], [1.0, 10.0, 100.0][:n], rtol=1e-6)
        assert ok or n == 3, (row, ok)
    np.testing.assert_array_equal(result.steps, run * SAPF(**SMALL).trial_length)


def _trace(search, outcomes, lambda1=1.0, lambda1_max=100.0):
    """The λ1 of every trial run, given each trial's outcome in turn."""
    s, tried = start_lambda1(lambda1, lambda1_max), []
    for ok in outcomes:
        if bool(s.stopped):
            break
        tried.append(float(s.lam))
        s = next_lambda1(s, jnp.asarray(ok), lambda1, lambda1_max, search)
    return tried, bool(s.stopped)


@pytest.mark.parametrize(
    "search,lambda1,outcomes,expected,stopped",
    [
        # The paper: ×10 up to the bound, stop at the first success or after failing at the bound.
        ("paper", 1e-3, [0] * 8, [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], True),
        ("paper", 1.0, [0, 0, 1, 1], [1.0, 10.0, 100.0], True),  # was 1, 10, 100, 100, 100, 100
        ("paper", 1.0, [1, 0], [1.0], True),
        ("paper", 1e-3, [0, 0], [1e-3, 1e-2], False),
        # The code's bisection: a success at the bound lowers λ1; a failure there never goes past.
        ("bisect", 1.0, [0, 0, 1, 1, 0, 1], [1.0, 10.0, 100.0, 55.0, 32.5, 43.75], False),
        ("bisect", 1.0, [0, 0, 0, 0], [1.0, 10.0, 100.0], True),  # was 1, 10, 100, 1000
        # ... and stops, as the code does, on a success below 0.01·λ1(initial).
        ("bisect", 1.0, [1] * 10, [2.0**-i for i in range(8)], True),
    ],
)
def test_lambda_search_follows_a_hand_traced_sequence(search, lambda1, outcomes, expected, stopped):
    tried, done = _trace(search, outcomes, lambda1)
    np.testing.assert_allclose(tried, expected, rtol=1e-6)
    assert done == stopped


def test_penalty_caps_are_the_papers_by_default_and_the_codes_on_request():
    # Paper §4.1: (ρ1, ρ2, ρ3) capped at (20, 10, 100) for (box, sphere, cardinality); the group
    # term has no printed cap and keeps the code's 100. Code: (20, 20, 100, 0.01).
    assert SAPF().rho_max == (20.0, 10.0, 100.0, 100.0)
    default = inspect.signature(lp_box_admm).parameters["rho_max"].default
    assert default == SAPF().rho_max
    assert SAPF(rho_max=ADMM_RHO_MAX_CODE).rho_max == (20.0, 20.0, 100.0, 0.01)


def test_sparsest_rule_is_never_less_sparse_than_the_published_last_success_rule():
    sparsest, last = _sapf_batch("sparsest"), _sapf_batch("last")
    both = np.asarray(sparsest.success) & np.asarray(last.success)
    np.testing.assert_array_equal(sparsest.success, last.success)  # same trials, other choice
    s0, l0 = np.asarray(sparsest.l0)[both], np.asarray(last.l0)[both]
    assert np.all(s0 <= l0)
    tie = s0 == l0
    assert np.all(np.asarray(sparsest.l2)[both][tie] <= np.asarray(last.l2)[both][tie] + 1e-6)


@pytest.mark.slow  # two SAPF compilations (~20 s): the slow suite
def test_variants_keep_the_pixel_budget_and_batch_equals_a_loop_of_solve():
    # SAPF-GS + SAPF-VI with a mask shared over channels, on a 3-channel victim.
    victim = _victim(channels=3)
    images, labels, targets = _batch(victim, n=4, seed=3)
    k = 3
    attack = sapf(
        steps=20,
        mask_steps=20,
        finetune_steps=10,
        trials=3,
        mask="pixel",
        segments=6,
        weighting="variance_mean",
    )
    hp = attack.hparams(k=float(k), lambda1=1.0, lambda2=0.01)
    result = attack.batch(victim, hp, images, labels, jax.random.key(2), targets)
    changed_pixels = np.sum(np.any(np.asarray(result.delta) != 0, axis=-1), axis=(1, 2))
    assert np.all(changed_pixels <= k), changed_pixels
    assert np.all(np.asarray(result.l0) <= 3 * k)
    assert np.all(np.isfinite(np.asarray(result.x_adv)))
    # The same attack one example at a time, with the groups and weights passed explicitly.
    keys = jax.random.split(jax.random.key(2), 4)
    for i in (0, 2):
        groups = np.asarray(slic(images[i], 6))
        weights = np.asarray(sensitivity_weights(images[i], "variance_mean"))
        alone = attack.solve(
            victim, hp, images[i], labels[i], targets[i], keys[i], groups=groups, weights=weights
        )
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(result)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)


def test_binarising_in_a_branch_equals_binarising_at_every_step(monkeypatch):
    # The mask is binarised in a `lax.cond` on the lock-step counter, taken once per trial. With
    # `lockstep` made a plain identity the predicate is batched, vmap turns the cond into a select
    # of both branches, and `binarize` runs at every step: the form it replaces. Same results (to
    # float rounding: the two programs fuse differently).
    from jaxadv.attacks import _sapf

    victim = _victim()
    images, labels, targets = _batch(victim, n=6, seed=7)
    short = dict(steps=6, mask_steps=6, finetune_steps=4, trials=3, search="bisect")
    hp = sapf(**short).hparams(k=3.0, lambda1=1.0)
    key = jax.random.key(5)
    branch = sapf(name="sapf-branch", **short).batch(victim, hp, images, labels, key, targets)
    monkeypatch.setattr(_sapf, "lockstep", lambda t: t)
    every = sapf(name="sapf-every-step", **short).batch(victim, hp, images, labels, key, targets)
    assert np.all(np.asarray(branch.l0) <= 3)  # the fine-tuned masks keep at most k ones
    for a, b in zip(jax.tree.leaves(branch), jax.tree.leaves(every)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(branch.success, every.success)
    np.testing.assert_array_equal(branch.l0, every.l0)


def test_superpixels_are_contiguous_and_about_the_asked_number():
    segment = jax.jit(slic, static_argnums=1)
    image = jax.random.uniform(jax.random.key(0), (16, 16, 1))
    labels = np.asarray(segment(image, 40))
    used = np.unique(labels)
    np.testing.assert_array_equal(used, np.arange(used.size))
    assert 25 <= used.size <= 50, used.size
    # A two-region image: no segment straddles the intensity edge.
    two = np.zeros((16, 16, 1), np.float32)
    two[:, 7:] = 1.0
    seg = np.asarray(segment(jnp.asarray(two), 40))
    assert not set(np.unique(seg[:, :7])) & set(np.unique(seg[:, 7:]))


def test_sensitivity_weights_follow_their_definition():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(5, 6, 2)).astype(np.float32)
    for kind in ("variance", "variance_mean"):
        w = np.asarray(sensitivity_weights(jnp.asarray(image), kind))
        ref = np.zeros_like(image)
        for i in range(5):
            for j in range(6):
                win = image[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
                s = win.std(axis=(0, 1), ddof=1)
                ref[i, j] = s * win.mean(axis=(0, 1)) if kind == "variance_mean" else s
        ref = 1 / (ref + 1e-4)
        ref = (ref - ref.min((0, 1))) / (ref.max((0, 1)) - ref.min((0, 1)))
        np.testing.assert_allclose(w, ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(sensitivity_weights(jnp.asarray(image), "uniform"), 1.0)


def test_common_positions():
    deltas = np.zeros((3, 2, 2))
    deltas[:, 0, 0] = 1.0
    deltas[0, 1, 1] = 1.0
    np.testing.assert_array_equal(common_positions(deltas), [[True, False], [False, False]])


@pytest.mark.parametrize(
    "values,match",
    [
        (dict(k=0.0), "hp.k"),
        (dict(k=-3.0), "hp.k"),
        (dict(k=2.5), "hp.k"),
        (dict(rho_box=0.0), "hp.rho_box"),
        (dict(rho_card=-1e-4), "hp.rho_card"),
        (dict(lambda1=0.0), "hp.lambda1"),
        (dict(lambda2=-1.0), "hp.lambda2"),
        (dict(lambda1=1e3), "hp.lambda1"),
    ],
)
def test_bad_hyperparameters_name_themselves(values, match):
    with pytest.raises(ValueError, match=match):
        sapf(**SMALL).hparams(**values)


def test_bad_calls_name_their_argument():
    victim = _victim()
    images, labels, targets = _batch(victim, n=2)
    attack = sapf(**SMALL)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"hp\.k.*at most.*16"):
        attack.batch(victim, attack.hparams(k=17.0), images, labels, key, targets)
    with pytest.raises(ValueError, match="`targets` must differ"):
        attack.batch(victim, attack.hparams(k=2.0), images, labels, key, labels)
    with pytest.raises(ValueError, match="`target` must differ"):
        attack(victim, attack.hparams(k=2.0), images[0], labels[0], key, labels[0])
    hp = attack.hparams(k=2.0)
    with pytest.raises(ValueError, match="`groups`.*shape"):
        attack.solve(
            victim, hp, images[0], labels[0], targets[0], key, groups=np.zeros((3, 4), int)
        )
    with pytest.raises(ValueError, match="`groups`.*contiguous"):
        bad = np.repeat(np.array([0, 1, 3, 4]), 4).reshape(4, 4)
        attack.solve(victim, hp, images[0], labels[0], targets[0], key, groups=bad)
    with pytest.raises(ValueError, match="`weights`.*>= 0"):
        attack.solve(victim, hp, images[0], labels[0], targets[0], key, weights=-np.ones((4, 4, 1)))
    with pytest.raises(ValueError, match="`weights`.*finite"):
        w = np.ones((4, 4, 1))
        w[0, 0, 0] = np.nan
        attack.solve(victim, hp, images[0], labels[0], targets[0], key, weights=w)
    with pytest.raises(ValueError, match="`weights`.*broadcast"):
        attack.solve(victim, hp, images[0], labels[0], targets[0], key, weights=np.ones((3, 4, 1)))
    with pytest.raises(ValueError, match="`mask`"):
        sapf(mask="channel")
    with pytest.raises(ValueError, match="`select`"):
        sapf(select="first")
    with pytest.raises(ValueError, match="`search`"):
        sapf(search="linear")
    with pytest.raises(ValueError, match="`steps`"):
        sapf(steps=0)
