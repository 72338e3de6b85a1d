"""The four baselines of SAPF's Table 1 that issue 20 adds (JSMA, One-Pixel, CornerSearch,
StrAttack), each checked against something that could prove it wrong: brute-force searches of
JSMA's saliency map and of CornerSearch's one-pixel ranking, a hand-computed DE generation, a
one-pixel victim DE must solve, and the closed-form group soft-threshold and group-lasso optimum
of a linear victim for StrAttack's ADMM. Programs run as rolled scans (cheap to compile)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.attacks import (
    corner_rank_weights,
    corner_ranking,
    corner_search,
    de_generation,
    de_indices,
    group_soft_threshold,
    jsma,
    one_pixel,
    run_program,
    saliency_pair,
    str_attack,
)
from jaxadv.losses import cw_margin
from jaxadv.models._victim import Victim

from conftest import linear_apply, make_mlp_victim


@functools.partial(jax.jit, static_argnums=(0,))
def rolled(attack, victim, hp, x0, label, target, key):
    return run_program(attack.program(victim, hp, x0, label, target), key, unroll=1)


def linear_victim(shape, num_classes, seed=0, bounds=(0.0, 1.0)):
    w = jax.random.normal(jax.random.key(seed), (num_classes, int(np.prod(shape))))
    return Victim(
        variables={"w": w, "b": jnp.zeros(num_classes)},
        apply_fn=linear_apply,
        input_shape=shape,
        num_classes=num_classes,
        bounds=bounds,
    )


# -- JSMA ------------------------------------------------------------------------------------------


PAIR = jax.jit(saliency_pair)


def brute_force_pair(alpha, beta, domain, increase=True):
    best, pair = -np.inf, None
    for p, q in itertools.combinations(np.flatnonzero(domain), 2):
        a, b = alpha[p] + alpha[q], beta[p] + beta[q]
        if (a > 0 and b < 0) if increase else (a < 0 and b > 0):
            if a * abs(b) > best:
                best, pair = a * abs(b), (p, q)
    return pair


@pytest.mark.parametrize("increase", [True, False])
def test_saliency_pair_equals_a_brute_force_search_of_the_map(increase):
    rng = np.random.default_rng(0)
    for _ in range(5):
        alpha, beta = rng.normal(size=(2, 9)).astype(np.float32)
        domain = rng.random(9) < 0.8
        p, q, valid = PAIR(jnp.asarray(alpha), jnp.asarray(beta), jnp.asarray(domain), increase)
        expected = brute_force_pair(alpha, beta, domain, increase)
        assert bool(valid) == (expected is not None)
        if expected is not None:
            assert (int(p), int(q)) == expected


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
@pytest.mark.parametrize("jacobian", ["logits", "softmax"])
def test_jsma_picks_the_brute_force_pair_at_every_step_on_a_linear_victim(jacobian):
    victim = linear_victim((12,), 3, seed=1)
    w = np.asarray(victim.variables["w"], np.float64)
    x0 = np.full(12, 0.2, np.float32)
    label = int(np.argmax(w @ x0))
    target = (label + 1) % 3
    theta, steps = 0.3, 4
    # the algorithm with the pair found by brute force at each step
    x, domain = x0.astype(np.float64), np.ones(12, bool)
    for _ in range(steps):
        z = w @ x
        if np.argmax(z) == target:
            break
        if jacobian == "logits":
            jac = w
        else:
            s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            jac = (np.diag(s) - np.outer(s, s)) @ w
        alpha = jac[target]
        pair = brute_force_pair(alpha, jac.sum(0) - alpha, domain)
        x[list(pair)] = np.minimum(x[list(pair)] + theta, 1.0)
        domain &= x < 1.0
    attack = jsma(steps=steps, jacobian=jacobian)
    result = rolled(attack, victim, attack.hparams(theta=theta, gamma=1.0), jnp.asarray(x0),
                    label, target, jax.random.key(0))
    np.testing.assert_allclose(result.x_adv, x, atol=1e-6)
    assert int(result.l0) == int(np.sum(x != x0)) >= 2


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
def test_jsma_stops_at_the_gamma_budget():
    victim = linear_victim((12,), 3, seed=1)
    x0 = jnp.zeros(12)
    label = int(jnp.argmax(victim(x0 + 0.1)))
    attack = jsma(steps=6, jacobian="logits")
    # gamma = 2/12: after one pair the changed fraction reaches gamma and the attack stops
    result = rolled(attack, victim, attack.hparams(theta=0.01, gamma=2 / 12), x0 + 0.1,
                    label, (label + 1) % 3, jax.random.key(0))
    assert int(result.l0) == 2 and int(result.steps) == 2  # one move, then the stop


def test_jsma_refuses_untargeted_and_a_zero_theta():
    with pytest.raises(ValueError, match="targeted"):
        jsma().__class__(targeted=False)
    with pytest.raises(ValueError, match="theta"):
        jsma().hparams(theta=0.0)


# -- One-Pixel --------------------------------------------------------------------------------------


def test_de_generation_equals_a_hand_computed_generation():
    rng = np.random.default_rng(0)
    pop = rng.uniform(-1, 1, size=(7, 3)).astype(np.float32)
    fitness = (pop**2).sum(1)
    key, scale = jax.random.key(3), 0.5
    generation = jax.jit(lambda p, f, k: (de_indices(k, 7), de_generation(
        p, f, k, scale, lambda c: (jnp.sum(c**2, 1), c), jnp.full(3, -0.8), jnp.full(3, 0.8)
    )))  # one compilation for both
    idx, (new_pop, new_fit, replaced, _) = generation(jnp.asarray(pop), jnp.asarray(fitness), key)
    idx = np.asarray(idx)
    for i, r in enumerate(idx):  # three distinct partners, none the member itself
        assert len(set(r.tolist()) | {i}) == 4
    children = np.clip(pop[idx[:, 0]] + scale * (pop[idx[:, 1]] - pop[idx[:, 2]]), -0.8, 0.8)
    child_fit = (children**2).sum(1)
    keep = child_fit < fitness
    np.testing.assert_allclose(new_pop, np.where(keep[:, None], children, pop), atol=1e-6)
    np.testing.assert_allclose(new_fit, np.where(keep, child_fit, fitness), atol=1e-6)
    np.testing.assert_array_equal(replaced, keep)
    assert keep.any() and not keep.all()  # both branches of the selection are exercised


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
def test_one_pixel_finds_the_only_pixel_that_flips_a_linear_victim():
    w = np.zeros((2, 9), np.float32)
    w[1, 5] = 4.0  # class 1 (logit 4·x5 − 1) beats class 0 (mean of x) only through pixel
    w[0] = 1.0 / 9  # (1, 2) = x5 > 1/(4 − 1/9); no other single pixel can flip it
    victim = Victim(variables={"w": jnp.asarray(w), "b": jnp.array([0.0, -1.0])},
                    apply_fn=linear_apply, input_shape=(3, 3, 1), num_classes=2,
                    bounds=(0.0, 1.0))
    x0 = jnp.full((3, 3, 1), 0.0)
    assert int(jnp.argmax(victim(x0))) == 0
    attack = one_pixel(steps=10, population=12, targeted=True)
    result = rolled(attack, victim, attack.hparams(), x0, 0, 1, jax.random.key(0))
    assert bool(result.success)
    changed = np.flatnonzero(np.asarray(result.delta).ravel())
    np.testing.assert_array_equal(changed, [5])
    assert float(result.x_adv[1, 2, 0]) > 1 / (4 - 1 / 9)


# -- CornerSearch -----------------------------------------------------------------------------------


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
def test_corner_ranking_equals_a_brute_force_evaluation_of_every_change():
    victim = make_mlp_victim()  # 4×4×1 in [0, 1], 3 classes
    x0 = jax.random.uniform(jax.random.key(7), victim.input_shape)
    label = int(jnp.argmax(victim(x0)))
    loss = functools.partial(cw_margin, label=label, kappa=jnp.inf)
    scores, order, best = corner_ranking(lambda x: loss(victim(x)), x0, 0.0, 1.0, chunk=8)
    changed = np.repeat(np.array(x0)[None], 32, axis=0)
    for p, c in itertools.product(range(16), range(2)):
        changed[2 * p + c, p // 4, p % 4] = float(c)
    logits = np.asarray(victim.batch(jnp.asarray(changed)), np.float64)
    others = np.delete(logits, label, axis=1).max(1)
    expected = (logits[:, label] - others).reshape(16, 2)  # the untargeted C&W margin
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(order, np.argsort(expected.min(1), kind="stable"))
    np.testing.assert_array_equal(best[:, 0], expected.argmin(1).astype(np.float32))
    weights = np.asarray(corner_rank_weights(16))
    assert abs(weights.sum() - 1) < 1e-6 and np.all(np.diff(weights) < 0)


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
def test_corner_search_changes_k_pixels_to_their_best_corners_and_counts_queries():
    victim = make_mlp_victim()
    x0 = jax.random.uniform(jax.random.key(7), victim.input_shape)
    label = int(jnp.argmax(victim(x0)))
    attack = corner_search(steps=5)
    result = rolled(attack, victim, attack.hparams(k=3.0), x0, label, label, jax.random.key(0))
    loss = functools.partial(cw_margin, label=label, kappa=jnp.inf)
    _, _, best = corner_ranking(lambda x: loss(victim(x)), x0, 0.0, 1.0)
    changed = np.asarray(result.delta).reshape(16) != 0
    assert changed.sum() <= 3
    np.testing.assert_allclose(np.asarray(result.x_adv).reshape(16)[changed], best[changed, 0])
    # the ranking (16 pixels × 2 corners) + the clean point + one per sample until success
    assert int(result.queries) == 32 + 1 + int(result.steps)


# -- StrAttack --------------------------------------------------------------------------------------


def test_group_soft_threshold_equals_the_closed_form_per_group():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(4, 6, 3)).astype(np.float32)
    out = np.asarray(jax.jit(group_soft_threshold, static_argnums=2)(jnp.asarray(v), 3.5, 2))
    for i, j in itertools.product(range(2), range(3)):
        g = v[2 * i:2 * i + 2, 2 * j:2 * j + 2]
        norm = np.linalg.norm(g)
        expected = max(0.0, 1 - 3.5 / norm) * g
        np.testing.assert_allclose(out[2 * i:2 * i + 2, 2 * j:2 * j + 2], expected, atol=1e-6)
    assert np.any(out == 0) and np.any(out != 0)  # both regimes


@pytest.mark.slow  # compiles a program (seconds on a shared CPU)
def test_str_attack_admm_reaches_the_group_lasso_optimum_of_a_linear_victim():
    victim = linear_victim((12,), 2, seed=2, bounds=(-10.0, 10.0))
    x0 = jnp.zeros(12)
    label = int(jnp.argmax(victim(x0 + 0.01)))
    u = np.asarray(victim.variables["w"][label] - victim.variables["w"][1 - label], np.float64)
    c, gamma, tau = 1.0, float(np.median(np.linalg.norm(u.reshape(6, 2), axis=1))), 0.5
    # min c·u·δ + γ Σ‖δ_g‖ + τ‖δ‖²: per group δ_g = −max(0, c‖u_g‖ − γ)/(2τ) · u_g/‖u_g‖
    ug = u.reshape(6, 2)
    norms = np.linalg.norm(ug, axis=1, keepdims=True)
    expected = (-np.maximum(0, c * norms - gamma) / (2 * tau) * ug / norms).ravel()
    assert np.sum(expected == 0) >= 2  # some groups vanish
    attack = str_attack(steps=400)
    hp = attack.hparams(const=c, group_weight=gamma, l2_weight=tau, kappa=1e6)  # linear margin
    program = attack.program(victim, hp, x0 + 0.0, label, label)

    @jax.jit
    def admm(key):
        carry, _ = jax.lax.scan(lambda cr, _: program.step(cr), program.init(key), length=400)
        return carry.delta

    np.testing.assert_allclose(admm(jax.random.key(0)), expected, atol=2e-3)
