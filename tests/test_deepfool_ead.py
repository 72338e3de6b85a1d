"""DeepFool and EAD: closed forms and a linear program on affine victims, the best-kept and budget
invariants, targeted success, and misuse.

Affine victim ``z = W x + b`` with ``f_k = z_k − z_y`` and ``w_k = W_k − W_y``: the least ℓp move
out of class ``y`` (box not binding) is ``min_k |f_k| / ‖w_k‖_q`` (q dual), along the ℓp-steepest
direction of that ``w_k``: DeepFool's first step, times ``1 + overshoot``.
The least-ℓ1 flip inside a box is a linear program (``scipy.optimize.linprog``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from jaxadv.attacks import deepfool, ead, run_program
from jaxadv.attacks._ead import shrink

from conftest import make_linear_victim


@functools.partial(jax.jit, static_argnums=(0,))
def rolled(attack, victim, hp, x0, label, target, key):
    """The attack on a batch as a vmapped rolled scan (cheap to compile for long programs)."""

    def one(x, y, t):
        return run_program(attack.program(victim, attack.derive(hp), x, y, t), key, unroll=1)

    return jax.vmap(one)(x0, label, target)


def _affine(num_classes, n=4):
    victim = make_linear_victim(num_classes=num_classes, bounds=(-100.0, 100.0))  # never binds
    x0 = jax.random.normal(jax.random.key(3), (n,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(x0), axis=-1)
    return victim, x0, labels


def _minimal_step(victim, x0, label, norm, classes=None):
    """The exact least-``norm`` perturbation leaving class ``label`` of the affine victim."""
    w_all = np.asarray(victim.variables["w"], np.float64)
    z = w_all @ np.asarray(x0, np.float64)
    q = 2 if norm == "l2" else 1
    best = None
    for k in classes if classes is not None else range(len(z)):
        if k == label:
            continue
        w, f = w_all[k] - w_all[label], z[k] - z[label]
        dist = abs(f) / np.linalg.norm(w, q)
        if best is None or dist < best[0]:
            step = (
                abs(f) / np.sum(w * w) * w if norm == "l2" else abs(f) / np.sum(abs(w)) * np.sign(w)
            )
            best = (dist, step)
    return best


@pytest.mark.parametrize(
    "num_classes, norm",
    [
        (2, "l2"),
        (5, "linf"),
        pytest.param(5, "l2", marks=pytest.mark.slow),
        pytest.param(2, "linf", marks=pytest.mark.slow),
    ],
)
def test_deepfool_takes_the_exact_minimal_step_on_an_affine_victim(num_classes, norm):
    victim, x0, labels = _affine(num_classes)
    attack = deepfool(norm=norm, steps=3)
    hp = attack.hparams()
    r = rolled(attack, victim, hp, x0, labels, labels, jax.random.key(0))
    assert np.all(r.success) and np.all(r.steps == 1)  # one linearised step
    assert np.all(r.queries == num_classes - 1)  # one Jacobian row per other class
    for i in range(x0.shape[0]):
        dist, step = _minimal_step(victim, x0[i], int(labels[i]), norm)
        np.testing.assert_allclose(getattr(r, norm)[i], 1.02 * dist, rtol=1e-5)
        np.testing.assert_allclose(r.delta[i], 1.02 * step, rtol=1e-4, atol=1e-6)
    assert np.all(np.argmax(victim.batch(r.x_adv), axis=-1) != labels)


@pytest.mark.slow  # another compilation (~2 s); the registry's deepfool-linf entry uses candidates
def test_deepfool_candidates_restrict_the_boundaries_to_the_top_clean_classes():
    victim, x0, labels = _affine(5)
    attack = deepfool(steps=3, candidates=2)  # the label and the runner-up only
    r = rolled(attack, victim, attack.hparams(), x0, labels, labels, jax.random.key(0))
    assert np.all(r.success) and np.all(r.queries == 1)
    for i in range(x0.shape[0]):
        runner_up = int(np.argsort(np.asarray(victim(x0[i])))[-2])
        dist, step = _minimal_step(victim, x0[i], int(labels[i]), "l2", classes=[runner_up])
        np.testing.assert_allclose(r.delta[i], 1.02 * step, rtol=1e-4, atol=1e-6)


def test_deepfool_counts_rows_keeps_the_box_and_judges_success_at_eps(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack, key = deepfool(steps=5), jax.random.key(0)
    a = rolled(attack, mlp_victim, attack.hparams(), images, labels, labels, key)
    assert np.sum(a.success) >= 6  # the tiny net falls within a few steps
    assert np.all(a.queries == 2 * a.steps)  # two Jacobian rows (3 classes) per step
    assert np.all((a.x_adv >= 0.0) & (a.x_adv <= 1.0))  # the pixel box
    predicted = np.argmax(mlp_victim.batch(a.x_adv), axis=-1)
    np.testing.assert_array_equal(a.success, predicted != np.asarray(labels))
    # At a budget (the same compiled program): success = fooled and ℓ2 ≤ eps; x_adv is the
    # smallest found either way.
    eps = float(np.median(np.asarray(a.l2)[np.asarray(a.success)]))
    c = rolled(attack, mlp_victim, attack.hparams(eps=eps), images, labels, labels, key)
    np.testing.assert_array_equal(c.x_adv, a.x_adv)
    np.testing.assert_array_equal(c.success, np.asarray(a.success) & (np.asarray(a.l2) <= eps))
    assert 0 < np.sum(c.success) < np.sum(a.success)


@pytest.mark.slow  # a second compilation (~3 s)
def test_deepfool_more_steps_keep_the_first_fooled_iterate(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    key = jax.random.key(0)
    short, long = deepfool(steps=5), deepfool(steps=10)
    a = rolled(short, mlp_victim, short.hparams(), images, labels, labels, key)
    b = rolled(long, mlp_victim, long.hparams(), images, labels, labels, key)
    ok = np.asarray(a.success)
    assert ok.sum() >= 6 and np.all(b.success[ok])  # more steps are never weaker
    # Fooled examples stop: more steps change nothing (the first fooled iterate is kept).
    np.testing.assert_array_equal(a.x_adv[ok], b.x_adv[ok])
    np.testing.assert_array_equal(a.steps[ok], b.steps[ok])


# -- EAD -------------------------------------------------------------------------------------------


def _least_l1_flip(u, x0, low, high):
    """min ‖δ‖₁ s.t. u·(x0 + δ) ≤ 0 and x0 + δ in [low, high], as an LP over (δ, t), |δ| ≤ t."""
    n = u.size
    eye = np.eye(n)
    a_ub = np.block([[eye, -eye], [-eye, -eye], [u[None], np.zeros((1, n))]])
    b_ub = np.r_[np.zeros(2 * n), -u @ x0]
    bounds = [(low - v, high - v) for v in x0] + [(0, None)] * n
    lp = linprog(np.r_[np.zeros(n), np.ones(n)], A_ub=a_ub, b_ub=b_ub, bounds=bounds)
    assert lp.status == 0
    return lp.fun


@pytest.mark.parametrize(  # the second box binds: 3-4 pixels move
    "box", [pytest.param((0.0, 1.0), marks=pytest.mark.slow), (0.4, 0.6)]
)
def test_ead_l1_rule_reaches_the_least_l1_flip_of_an_affine_victim(box):
    victim = make_linear_victim(bounds=box)
    x0 = jnp.full((1,) + victim.input_shape, 0.5)
    label = jnp.argmax(victim.batch(x0), axis=-1)
    w = np.asarray(victim.variables["w"], np.float64)
    u = w[int(label[0])] - w[1 - int(label[0])]
    optimum = _least_l1_flip(u, np.asarray(x0[0], np.float64), *box)
    # A large β makes the elastic net nearly ℓ1; the ℓ1 rule keeps the least-ℓ1 success.
    attack = ead(steps=200, search_steps=20, decision="l1")
    r = rolled(
        attack,
        victim,
        attack.hparams(beta=0.1, initial_const=1e-2),
        x0,
        label,
        label,
        jax.random.key(0),
    )
    assert bool(r.success[0])
    # Never below the LP optimum (float rounding aside); at most 3% above it (the shrinkage moves
    # in steps of β and the search resolves c finitely: measured 0.9-2.1% over these settings).
    assert optimum * (1 - 1e-5) <= float(r.l1[0]) <= 1.03 * optimum


def test_ead_targeted_decision_rules_and_budget(mlp_victim, mlp_batch):
    """Targeted success is the target's; the EN and ℓ1 rules pick the least elastic-net and the
    least ℓ1 among the same iterates; ``eps`` only judges success."""
    images, labels = mlp_batch
    targets = (labels + 1) % mlp_victim.num_classes
    key = jax.random.key(0)
    runs = {}
    for rule in ("en", "l1"):
        attack = ead(steps=10, search_steps=3, targeted=True, decision=rule)
        hp = attack.hparams(step_size=0.05, beta=0.01, initial_const=1.0)
        runs[rule] = rolled(attack, mlp_victim, hp, images, labels, targets, key)
    en, l1 = runs["en"], runs["l1"]
    for r in (en, l1):
        predicted = np.argmax(mlp_victim.batch(r.x_adv), axis=-1)
        np.testing.assert_array_equal(r.success, predicted == np.asarray(targets))
        assert np.all((r.x_adv >= 0.0) & (r.x_adv <= 1.0))
    # The rule only selects: the same trajectory, the same successes.
    np.testing.assert_array_equal(en.success, l1.success)
    ok = np.asarray(en.success)
    assert ok.sum() >= 4
    elastic = lambda r: np.asarray(r.l2) ** 2 + 0.01 * np.asarray(r.l1)  # noqa: E731
    assert np.all(np.asarray(l1.l1)[ok] <= np.asarray(en.l1)[ok] + 1e-6)
    assert np.all(elastic(en)[ok] <= elastic(l1)[ok] + 1e-6)
    assert np.any(np.asarray(l1.l1)[ok] < np.asarray(en.l1)[ok])  # the rules differ somewhere
    # At an ℓ1 budget (the same compiled program): success = fooled and ℓ1 ≤ eps.
    eps = float(np.median(np.asarray(l1.l1)[ok]))
    judged = rolled(
        attack, mlp_victim, hp._replace(eps=jnp.float32(eps)), images, labels, targets, key
    )
    np.testing.assert_array_equal(judged.x_adv, l1.x_adv)
    np.testing.assert_array_equal(judged.success, ok & (np.asarray(l1.l1) <= eps))


def test_shrink_is_the_papers_projected_soft_threshold():
    x0 = jnp.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.95])
    z = jnp.array([0.52, 0.8, 0.1, 0.48, 1.7, 1.2])
    np.testing.assert_allclose(
        shrink(z, x0, 0.05, 0.0, 1.0), [0.5, 0.75, 0.15, 0.5, 1.0, 1.0], atol=1e-7
    )


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="`norm` must be one of 'l2', 'linf'; got 'l1'"):
        deepfool(norm="l1")
    with pytest.raises(ValueError, match="`candidates` must be None .* at least 2"):
        deepfool(candidates=1)
    with pytest.raises(ValueError, match="`steps` must be an integer >= 1; got 0"):
        deepfool(steps=0)
    victim, x0, labels = _affine(2, n=1)
    attack = deepfool(candidates=3)
    with pytest.raises(ValueError, match="`candidates` must be at most the victim's 2 classes"):
        attack(victim, attack.hparams(), x0[0], labels[0], jax.random.key(0))
    with pytest.raises(ValueError, match="`hp.eps` must be >= 0"):
        deepfool().hparams(eps=-1.0)
    with pytest.raises(ValueError, match="`hp.eps` must be >= 0"):
        ead().hparams(eps=float("nan"))
    assert float(ead().hparams().eps) == np.inf  # inf is allowed: no budget
    with pytest.raises(ValueError, match="`decision` must be one of 'en', 'l1'; got 'l2'"):
        ead(decision="l2")
    with pytest.raises(ValueError, match="`search_steps` must be an integer >= 1"):
        ead(search_steps=0)
    with pytest.raises(ValueError, match="`hp.initial_const`"):
        ead().hparams(initial_const=0.0)
    with pytest.raises(ValueError, match="`target` must be None for the untargeted attack"):
        deepfool()(victim, deepfool().hparams(), x0[0], labels[0], jax.random.key(0), target=1)
