"""Invariants every attack must keep, on a small non-linear victim."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks

NORM_EPS = {"linf": 0.1, "l2": 0.5, "l1": 2.0}


# One test per norm: eps = 0 and the budget run through the same compiled batch.
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_eps_zero_is_the_identity_and_ball_and_box_hold(norm, mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(norm=norm, steps=5)
    # eps = 0 is the identity
    result = attack.batch(mlp_victim, attack.hparams(eps=0.0), images, labels, jax.random.key(0))
    np.testing.assert_array_equal(result.x_adv, images)
    np.testing.assert_array_equal(result.delta, 0.0)
    assert not np.any(result.success)  # labels are the clean predictions
    # the ball and the box hold
    eps = NORM_EPS[norm]
    result = attack.batch(mlp_victim, attack.hparams(eps=eps), images, labels, jax.random.key(0))
    norms = {"linf": result.linf, "l2": result.l2, "l1": result.l1}[norm]
    if norm == "linf":
        assert np.all(norms <= eps)  # clipping is exact
    else:
        assert np.all(norms <= eps * (1 + 1e-6))  # a rescaling: exact up to float rounding
    assert np.all(result.x_adv >= 0.0) and np.all(result.x_adv <= 1.0)
    # x_adv is x0 + delta, up to the rounding of that sum.
    np.testing.assert_allclose(result.x_adv, images + result.delta, atol=1e-6)
    assert np.any(result.success)  # the budget is large enough to fool this victim somewhere


def test_more_steps_are_never_weaker(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    short, long = attacks.pgd(steps=3), attacks.pgd(steps=8)
    hp = short.hparams(eps=0.05)
    a = short.batch(mlp_victim, hp, images, labels, jax.random.key(5))
    b = long.batch(mlp_victim, hp, images, labels, jax.random.key(5))
    assert np.all(b.success >= a.success)
    both_failed = ~a.success & ~b.success
    assert np.all(b.loss[both_failed] <= a.loss[both_failed] + 1e-6)


def test_restarts_keep_the_best_run_per_example(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    single = attacks.pgd(steps=3)
    multi = attacks.pgd(steps=3, restarts=3)
    hp = single.hparams(eps=0.03)
    best = multi.batch(mlp_victim, hp, images, labels, jax.random.key(9))
    keys = jax.random.split(jax.random.key(9), images.shape[0])
    for i in range(images.shape[0]):
        runs = [
            single(mlp_victim, hp, images[i], labels[i], k) for k in jax.random.split(keys[i], 3)
        ]
        if any(bool(r.success) for r in runs):
            assert bool(best.success[i])
            expected = min(float(r.loss) for r in runs if r.success)
        else:
            assert not bool(best.success[i])
            expected = min(float(r.loss) for r in runs)
        np.testing.assert_allclose(best.loss[i], expected, rtol=1e-5, atol=1e-6)
        assert int(best.steps[i]) == sum(int(r.steps) for r in runs)


def test_early_stop_freezes_at_the_first_success(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=10, early_stop=True)
    result = attack.batch(mlp_victim, attack.hparams(eps=0.3), images, labels, jax.random.key(0))
    assert np.all(result.success)
    assert np.all(result.steps < 10) and np.all(result.steps >= 0)
    # The trace is flat once an example is frozen: the loss stops changing after `steps`.
    for i in range(images.shape[0]):
        frozen = np.asarray(result.trace[i, int(result.steps[i]) + 1 :])
        assert np.all(frozen == frozen[:1]) if frozen.size else True


def test_targeted_success_is_measured_against_the_target(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    targets = (labels + 1) % mlp_victim.num_classes
    attack = attacks.pgd(steps=20, targeted=True)
    result = attack.batch(
        mlp_victim, attack.hparams(eps=0.5), images, labels, jax.random.key(0), targets=targets
    )
    predicted = np.argmax(result.logits, axis=-1)
    np.testing.assert_array_equal(result.success, predicted == np.asarray(targets))
    np.testing.assert_array_equal(predicted, np.argmax(mlp_victim.batch(result.x_adv), axis=-1))
    assert np.mean(result.success) > 0.5


@pytest.mark.slow  # ~23 s; C&W's minimality is also checked in closed form (test_closed_form.py)
def test_cw_l2_succeeds_with_smaller_l2_than_pgd_l2(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    cw = attacks.cw_l2(steps=100, search_steps=6)
    cw_result = cw.batch(
        mlp_victim, cw.hparams(step_size=0.05, initial_const=1.0), images, labels, jax.random.key(0)
    )
    assert np.all(cw_result.success)
    pgd = attacks.pgd(norm="l2", steps=20)
    pgd_result = pgd.batch(mlp_victim, pgd.hparams(eps=1.0), images, labels, jax.random.key(0))
    both = np.asarray(cw_result.success & pgd_result.success)
    assert both.sum() >= 4
    assert np.mean(cw_result.l2[both]) < np.mean(pgd_result.l2[both])


def test_a_failed_attack_returns_data_not_an_error(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.bim(steps=2)
    result = attack.batch(mlp_victim, attack.hparams(eps=1e-4), images, labels, jax.random.key(0))
    assert not np.any(result.success)
    assert np.all(np.isfinite(result.loss))
    assert np.all(np.abs(result.delta) <= 1e-4)
    assert result.trace.shape == (images.shape[0], 2)
    assert jnp.issubdtype(result.steps.dtype, jnp.integer)
