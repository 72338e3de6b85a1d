"""The AutoAttack ensemble: each attack on the points still robust, the first verified adversarial
example kept, robust accuracy ≤ every component alone, and its flags raised in the same run.

The ensemble's bookkeeping is checked with deterministic components (FGSM, BIM: no random start,
so a point's result does not depend on which batch it is attacked in), against running each one
alone on every point."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim, mlp_apply
from example_attack import RandomSignNoise

from jaxadv import attacks
from jaxadv.attacks import _autoattack_flags as flags_
from jaxadv.attacks._autoattack import CLEAN_WRONG, ROBUST, _bucket
from jaxadv.models import Victim, with_input_noise

EPS = 0.15
KEY = jax.random.key(3)


@pytest.fixture(scope="module")
def setup():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(0), (12, 4, 4, 1))
    labels = np.array(jnp.argmax(victim.batch(images), -1))
    labels[:2] = (labels[:2] + 1) % 3  # two points the victim gets wrong
    return victim, images, labels


def _plan():
    fgsm, bim = attacks.fgsm(), attacks.bim(steps=3)
    return [("fgsm", fgsm, fgsm.hparams(eps=EPS)), ("bim", bim, bim.hparams(eps=EPS))]


def _alone(attack, hp, victim, images, labels):
    """Points one attack breaks within the budget when run alone on every point."""
    result = attack.batch(victim, hp, images, labels, KEY)
    fooled = np.argmax(victim.batch(result.x_adv), -1) != labels
    linf = np.max(np.abs(np.asarray(result.x_adv - images)).reshape(len(images), -1), axis=1)
    return fooled & (linf <= EPS * (1 + 1e-5) + 1e-6)


def test_ensemble_keeps_the_first_verified_break_of_the_still_robust_points(setup):
    victim, images, labels = setup
    plan = _plan()
    report = attacks.AutoAttack(eps=EPS).run_plan(plan, victim, images, labels, KEY)
    correct = np.argmax(victim.batch(images), -1) == labels
    np.testing.assert_array_equal(report.clean_correct, correct)
    alone = [_alone(a, hp, victim, images, labels) & correct for _, a, hp in plan]
    # each point is broken by the first attack that breaks it alone; robust if none does
    expected = np.where(~correct, CLEAN_WRONG, ROBUST)
    expected = np.where(correct & alone[1], 1, expected)
    expected = np.where(correct & alone[0], 0, expected)
    np.testing.assert_array_equal(report.broken_by, expected)
    assert 0 < np.sum(report.broken_by >= 0) < correct.sum()  # the check is not vacuous
    # robust accuracy ≤ every component alone, and after each attack it never rises
    for broke in alone:
        assert report.robust_accuracy <= np.mean(correct & ~broke)
    assert list(report.robust_accuracy_after) == sorted(report.robust_accuracy_after, reverse=True)
    assert report.attacked == (correct.sum(), correct.sum() - np.sum(report.broken_by == 0))
    # x_adv: fools the victim within budget and box where broken, the clean input elsewhere
    broken = report.broken_by >= 0
    assert np.all(np.argmax(victim.batch(report.x_adv[broken]), -1) != labels[broken])
    np.testing.assert_array_equal(report.x_adv[~broken], np.asarray(images)[~broken])
    assert np.max(np.abs(report.x_adv - np.asarray(images))) <= EPS * (1 + 1e-5) + 1e-6
    assert report.queries[0] == report.attacked[0]  # FGSM: one forward+backward pass per point
    text = report.table()
    assert "robust accuracy" in text and "fgsm" in text and "flags: none" in text


def test_claims_beyond_the_budget_are_not_counted(setup):
    victim, images, labels = setup
    # an attack run with a larger budget than the ensemble's: its breaks beyond EPS do not count
    big = attacks.bim(steps=3)
    report = attacks.AutoAttack(eps=EPS).run_plan(
        [("bim-big", big, big.hparams(eps=0.6))], victim, images, labels, KEY
    )
    result = big.batch(victim, big.hparams(eps=0.6), images, labels, KEY)
    linf = np.max(np.abs(np.asarray(result.x_adv - images)).reshape(len(images), -1), axis=1)
    assert np.any(np.asarray(result.success) & (linf > EPS))  # it did claim such breaks
    assert np.max(np.abs(report.x_adv - np.asarray(images))) <= EPS * (1 + 1e-5) + 1e-6


def _probabilities(variables, x):
    return jax.nn.softmax(mlp_apply(variables, x))


def _frozen(variables, x):
    return jax.lax.stop_gradient(mlp_apply(variables, x))


def test_output_flags_probabilities_and_randomness(setup):
    victim, images, labels = setup
    logits = np.asarray(victim.batch(images))
    assert flags_.output_flags(logits, logits, randomized=False) == []
    probabilities = np.asarray(jax.nn.softmax(logits))
    names = [f.name for f in flags_.output_flags(probabilities, probabilities, False)]
    assert names == ["probabilities"]
    moved = logits.copy()
    moved[3] += 0.1
    (flag,) = flags_.output_flags(logits, moved, randomized=False)
    assert (flag.name, flag.count) == ("randomized", 1)
    # In a run: an empty plan still judges the clean points and raises the victim's flags.
    aa = attacks.AutoAttack(eps=EPS)
    probs = dataclasses.replace(victim, apply_fn=_probabilities)
    report = aa.run_plan([], probs, images, labels, KEY)
    assert [f.name for f in report.flags] == ["probabilities"]
    noisy = with_input_noise(victim, 0.3)
    report = aa.run_plan([], noisy, images, labels, KEY)
    assert "randomized" in {f.name for f in report.flags}
    rand = attacks.AutoAttack(eps=EPS, version="rand").run_plan([], noisy, images, labels, KEY)
    assert rand.flags == ()  # under "rand" the randomness is what EOT averages over
    assert report.attacks == () and np.array_equal(report.robust, report.clean_correct)


def test_zero_gradients_and_square_beating_the_white_box_attacks(setup):
    # Gradients masked by stop_gradient: BIM cannot move, the random search still breaks points
    # and the "square" flag says so (any attack named "square" after another).
    victim, images, labels = setup
    frozen = dataclasses.replace(victim, apply_fn=_frozen)
    bim, noise = attacks.bim(steps=2), RandomSignNoise(tries=8)
    plan = [("bim", bim, bim.hparams(eps=0.4)), ("square", noise, noise.hparams(eps=0.4))]
    report = attacks.AutoAttack(eps=0.4).run_plan(plan, frozen, images, labels, KEY)
    flags = {f.name: f for f in report.flags}
    assert flags["zero_gradient"].count == report.clean_correct.sum()
    assert flags["square_beat_white_box"].count == np.sum(report.broken_by == 1) > 0
    assert np.sum(report.broken_by == 0) == 0


def test_bad_arguments_are_named(setup):
    victim, images, labels = setup
    with pytest.raises(ValueError, match="`version` must be one of"):
        attacks.AutoAttack(version="fast")
    with pytest.raises(ValueError, match="`norm` must be one of"):
        attacks.AutoAttack(norm="l0")
    with pytest.raises(ValueError, match="`eps` must be finite and > 0"):
        attacks.AutoAttack(eps=0.0)
    with pytest.raises(ValueError, match="`queries` must be an integer >= 1"):
        attacks.AutoAttack(queries=0)
    with pytest.raises(ValueError, match="`attacks` must be one of"):
        attacks.AutoAttack(attacks=("apgd-ce", "pgd"))
    with pytest.raises(ValueError, match="no l1 version"):
        attacks.AutoAttack(norm="l1", attacks=("square",))
    with pytest.raises(ValueError, match="`victim` must be a jaxadv.models.Victim"):
        attacks.AutoAttack()(mlp_apply, images, labels, KEY)
    with pytest.raises(ValueError, match="`labels` must have shape"):
        attacks.AutoAttack().run_plan(_plan(), victim, images, labels[:3], KEY)
    assert isinstance(victim, Victim)


def test_bucket_sizes():
    assert [_bucket(c, 12) for c in (1, 2, 3, 5, 8, 9, 12)] == [1, 2, 4, 8, 8, 12, 12]


def test_versions_and_what_too_few_classes_leave_out():
    names = lambda plan: [name for name, _, _ in plan]  # noqa: E731
    plan, flags = attacks.AutoAttack(eps=EPS).components(10)
    assert names(plan) == ["apgd-ce", "apgd-t", "fab-t", "square"] and flags == []
    assert plan[1][1].n_target_classes == 9 and plan[2][1].n_target_classes == 9
    assert all(float(hp.eps) == pytest.approx(EPS) for _, _, hp in plan)
    plan, _ = attacks.AutoAttack(norm="l1", version="plus").components(10)
    assert "square" not in names(plan) and names(plan)[:2] == ["apgd-ce", "apgd-dlr"]
    rand = attacks.AutoAttack(version="rand")
    assert [a.eot_iter for _, a, _ in rand.components(10, randomized=True)[0]] == [20, 20]
    assert [a.eot_iter for _, a, _ in rand.components(10, randomized=False)[0]] == [1, 1]
    # 3 classes: targeted DLR (4 needed) is left out, FAB-T aims at the 2 other classes
    plan, flags = attacks.AutoAttack(eps=EPS).components(3)
    assert names(plan) == ["apgd-ce", "fab-t", "square"] and plan[1][1].n_target_classes == 2
    assert {f.name for f in flags} == {"few_classes"} and len(flags) == 2
    plan, flags = attacks.AutoAttack(eps=EPS, version="plus").components(2)
    assert "apgd-dlr" not in names(plan) and "apgd-t" not in names(plan)
