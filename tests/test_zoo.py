"""ZOO and AutoZOOM: the estimators against exact derivatives of quadratics and linear maps, the
coordinate Adam/Newton rules against numpy transcriptions of ZOO's Algorithms 2 and 3, exact
query counts, success on the tiny MLP seen score-only, and clear errors."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv import attacks, gradients, transforms
from jaxadv.gradients import CoordinateEstimate

from conftest import make_mlp_victim
from registry import ATTACKS, VICTIMS

SHAPE = (3, 4)  # a latent of 12 coordinates
A = np.diag(np.linspace(0.5, 3.0, 12)) + 0.1 * np.ones((12, 12))  # positive definite
B = np.linspace(-1.0, 1.0, 12)
THETA = np.linspace(0.3, -0.4, 12).reshape(SHAPE)


def quadratic(theta):
    """``½ θᵀAθ + bᵀθ`` (aux: the input), with gradient ``Aθ + b`` and Hessian ``A``."""
    flat = theta.reshape(-1)
    return 0.5 * flat @ jnp.asarray(A, theta.dtype) @ flat + jnp.asarray(
        B, theta.dtype
    ) @ flat, theta


# -- ZOO's coordinate estimate ----------------------------------------------------------------------


def test_zoo_estimate_is_the_exact_partial_derivatives_and_hessian_diagonal():
    oracle = gradients.zoo(5, h=0.05)  # symmetric differences: exact for quadratics
    theta = jnp.asarray(THETA, jnp.float32)
    draw = jax.vmap(lambda key: oracle(quadratic, theta, key, oracle.init(theta)))
    (loss, _), est, _, queries = jax.jit(draw)(jax.random.split(jax.random.key(0), 8))
    chosen = np.asarray(est.chosen)
    assert np.all(chosen.sum(axis=(1, 2)) == 5)  # distinct coordinates
    assert len({tuple(np.flatnonzero(c)) for c in chosen}) > 4  # other keys, other coordinates
    assert np.all(np.asarray(queries) == 2 * 5 + 1) and oracle.queries_per_call == 11
    flat = THETA.reshape(-1)
    np.testing.assert_allclose(loss, 0.5 * flat @ A @ flat + B @ flat, rtol=1e-6)
    grad = (A @ flat + B).reshape(SHAPE)
    np.testing.assert_allclose(est.grad, np.where(chosen, grad, 0.0), atol=2e-4)
    hess = np.diag(A).reshape(SHAPE)
    np.testing.assert_allclose(est.curvature, np.where(chosen, hess, 0.0), atol=2e-2)


def test_one_newton_step_on_all_coordinates_of_a_separable_quadratic_is_its_minimiser():
    a = np.linspace(0.5, 2.0, 12).reshape(SHAPE)

    def separable(theta):
        return jnp.sum(0.5 * a * theta**2 + theta), theta

    tx = transforms.coordinate_newton(1.0)

    @jax.jit
    def newton(theta):
        _, est, _, _ = gradients.zoo(12, h=0.1)(separable, theta, jax.random.key(0), ())
        return theta + tx.update(est, tx.init(theta))[0]

    np.testing.assert_allclose(newton(jnp.asarray(THETA, jnp.float32)), -1.0 / a, rtol=1e-3)


# -- the coordinate step rules ----------------------------------------------------------------------


def zoo_adam_numpy(steps, n, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """ZOO's Algorithm 2 (ZOO-ADAM), literally: for each chosen coordinate i in turn, T_i += 1,
    M_i, v_i updated, bias-corrected, x_i moved; every other coordinate untouched."""
    M, v, T, x = np.zeros(n), np.zeros(n), np.zeros(n, int), np.zeros(n)
    for index, values in steps:
        for i, g in zip(index, values):
            T[i] += 1
            M[i] = b1 * M[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = M[i] / (1 - b1 ** T[i]), v[i] / (1 - b2 ** T[i])
            x[i] += -lr * m_hat / (np.sqrt(v_hat) + eps)
    return x, M, v, T


def _coordinate_steps(count=6, n=12, b=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.choice(n, b, replace=False), rng.normal(size=b)) for _ in range(count)]


def _estimate(index, values, n, curvature=None):
    grad = np.zeros(n, np.float32)
    grad[index] = values
    chosen = np.zeros(n, bool)
    chosen[index] = True
    curv = np.zeros(n, np.float32)
    if curvature is not None:
        curv[index] = curvature
    return CoordinateEstimate(jnp.asarray(grad), jnp.asarray(curv), jnp.asarray(chosen))


def test_coordinate_adam_is_zoo_algorithm_2_and_leaves_unchosen_coordinates_alone():
    n, steps = 12, _coordinate_steps()
    tx = transforms.coordinate_adam(0.01)
    update = jax.jit(tx.update)
    x = jnp.zeros(n)
    state = tx.init(x)
    for index, values in steps:
        before = state
        step, state = update(_estimate(index, values, n), state)
        untouched = np.setdiff1d(np.arange(n), index)
        assert np.all(np.asarray(step)[untouched] == 0)
        for old, new in zip(before, state):
            np.testing.assert_array_equal(np.asarray(new)[untouched], np.asarray(old)[untouched])
        x = x + step
    want_x, want_m, want_v, want_t = zoo_adam_numpy(steps, n)
    np.testing.assert_allclose(x, want_x, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(state.mu, want_m, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(state.nu, want_v, rtol=1e-5, atol=1e-10)
    np.testing.assert_array_equal(state.count, want_t)


def test_coordinate_adam_on_a_dense_gradient_is_optax_adam():
    mine, ref = transforms.coordinate_adam(0.05), optax.adam(0.05)

    @jax.jit
    def steps(grads):
        out = []
        for tx in (mine, ref):
            state, updates = tx.init(jnp.zeros(12)), []
            for g in grads:
                u, state = tx.update(g, state)
                updates.append(u)
            out.append(jnp.stack(updates))
        return out

    got, want = steps(jax.random.normal(jax.random.key(0), (4, 12)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_coordinate_newton_is_zoo_algorithm_3():
    n, index = 6, np.array([0, 2, 3, 5])
    values = np.array([1.0, -2.0, 0.5, 3.0])
    curvature = np.array([4.0, -1.0, 0.0, 0.5])  # positive, negative, zero, positive
    tx = transforms.coordinate_newton(0.1)
    step, _ = tx.update(_estimate(index, values, n, curvature), tx.init(jnp.zeros(n)))
    want = np.zeros(n)
    want[index] = -0.1 * np.where(
        curvature > 0, values / np.where(curvature > 0, curvature, 1), values
    )
    np.testing.assert_allclose(step, want, rtol=1e-6)


# -- AutoZOOM's estimate ------------------------------------------------------------------------------

LATENT, IMAGE = (2, 2, 1), (4, 4, 1)
WEIGHTS = np.linspace(-1.0, 1.0, 16).reshape(IMAGE)


def decoded_linear(z):
    """A linear ``F(z) = ⟨c, D(z)⟩`` with D AutoZOOM-BiLIN's bilinear upsampling."""
    return jnp.sum(jnp.asarray(WEIGHTS) * jax.image.resize(z, IMAGE, "linear")), z


def _pullback(z):
    return jax.grad(lambda z: decoded_linear(z)[0])(z)  # Dᵀc: the gradient pulled back by D


def test_autozoom_estimate_on_a_linear_map_through_the_decoder():
    oracle = gradients.autozoom(beta=0.01)
    z = jnp.asarray(np.linspace(-0.2, 0.3, 4).reshape(LATENT), jnp.float32)

    @jax.jit
    def draws(keys):
        def one(key):
            _, g, _, queries = oracle(decoded_linear, z, key, oracle.init(z))
            return g, queries, gradients.sphere_directions(key, 1, LATENT)[0]

        return jax.vmap(one)(keys), _pullback(z)

    (g, queries, u), grad = draws(jax.random.split(jax.random.key(0), 20_000))
    g, u, grad = np.asarray(g), np.asarray(u), np.asarray(grad)
    assert np.all(np.asarray(queries) == 2) and oracle.queries_per_call == 2
    # each draw is exactly b·(u·∇F)u with b = d (forward differences are exact for linear F)
    want = z.size * np.sum(u * grad, axis=(1, 2, 3), keepdims=True) * u
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4)
    # and the mean over draws is the gradient (E[u uᵀ] = I/d); 20k draws: ~1.4% noise
    np.testing.assert_allclose(g.mean(0), grad, atol=0.05 * np.linalg.norm(grad))


def test_autozoom_switches_to_more_directions_once_found():
    oracle = dataclasses.replace(gradients.autozoom(directions=3), found=lambda aux: True)
    z = jnp.zeros(LATENT)

    @jax.jit
    def call(key):
        _, g, switched, queries = oracle(decoded_linear, z, key, oracle.init(z))
        return g, switched, queries, gradients.sphere_directions(key, 3, LATENT), _pullback(z)

    g, switched, queries, u, grad = call(jax.random.key(1))
    assert bool(switched) and int(queries) == 4
    want = z.size / 3 * np.tensordot(np.sum(u * grad, axis=(1, 2, 3)), u, axes=1)
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4)


# -- the attacks on the score-only MLP ----------------------------------------------------------------

N = 3  # the shapes of tests/test_conformance.py's cases: the compiled programs are shared
ZOO_BATCH, ZOO_STEPS = 8, 3
AZ_QUERIES, AZ_DIRECTIONS = 17, 3


@functools.lru_cache(maxsize=None)
def mlp_case():
    black_box = VICTIMS["score-only classifier"]()
    victim = make_mlp_victim()  # the same network, white-box, to check the results
    images = jax.random.uniform(jax.random.key(5), (N,) + IMAGE)
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    return victim, black_box, images, labels


@functools.lru_cache(maxsize=None)
def run(name):
    """The registry's attack (the sizes above) on the score-only MLP."""
    victim, black_box, images, labels = mlp_case()
    attack = ATTACKS[name].make()
    hp = attack.hparams(step_size=0.2, initial_const=5.0)
    return attack, hp, attack.batch(black_box, hp, images, labels, jax.random.key(2))


def test_the_registry_runs_the_sizes_tested_here():
    zoo, autozoom = ATTACKS["zoo"].make(), ATTACKS["autozoom"].make()
    assert zoo.oracle.coordinates == ZOO_BATCH and zoo.length == ZOO_STEPS
    assert autozoom.oracle.directions == AZ_DIRECTIONS and autozoom.max_queries == AZ_QUERIES


@pytest.mark.parametrize("name", ["zoo", "autozoom"])
def test_attacks_fool_the_score_only_mlp_and_report_their_objective(name):
    attack, hp, r = run(name)
    victim, _, images, labels = mlp_case()
    assert np.mean(r.success) >= 0.5, r.success
    logits = victim.batch(r.x_adv)
    np.testing.assert_allclose(r.logits, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(r.success, np.argmax(logits, -1) != np.asarray(labels))
    assert np.all(np.asarray(r.x_adv) >= 0) and np.all(np.asarray(r.x_adv) <= 1)
    # the reported loss is ‖x − x0‖² + c·max(log p_y − max_j log p_j, 0) at the returned point
    logp = np.asarray(jax.nn.log_softmax(logits))
    own = logp[np.arange(N), labels]
    other = np.max(np.where(np.eye(3)[labels] > 0, -np.inf, logp), axis=1)
    penalty = np.sum((np.asarray(r.x_adv) - np.asarray(images)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(
        r.loss, penalty + 5.0 * np.maximum(own - other, 0.0), rtol=1e-4, atol=1e-5
    )


def test_zoo_query_count_is_exact():
    _, _, r = run("zoo")
    assert np.all(np.asarray(r.queries) == ZOO_STEPS * (2 * ZOO_BATCH + 1) + 1)
    assert np.all(np.asarray(r.steps) == ZOO_STEPS)


def test_autozoom_spends_two_queries_a_step_until_success_then_q_plus_one_within_budget():
    attack, _, r = run("autozoom")
    assert attack.length == (AZ_QUERIES - 1) // 2
    queries, steps = np.asarray(r.queries), np.asarray(r.steps)
    assert np.all(queries <= AZ_QUERIES)
    # s steps of which k after the switch: 2(s − k) + (q + 1)k + 1 queries, for some 0 ≤ k ≤ s
    k = (queries - 1 - 2 * steps) / (AZ_DIRECTIONS - 1)
    assert np.all(k == np.round(k)) and np.all((k >= 0) & (k <= steps))
    switched = k > 0
    assert switched.any()
    # a run that switched stopped only when one more step would overspend the budget
    assert np.all(AZ_QUERIES - queries[switched] < AZ_DIRECTIONS + 1)


# -- bad input ----------------------------------------------------------------------------------------


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="batch"):
        attacks.zoo(batch=0)
    with pytest.raises(ValueError, match="update"):
        attacks.zoo(update="sgd")
    with pytest.raises(ValueError, match="latent_shape"):
        attacks.autozoom(decoder=lambda z: z)
    with pytest.raises(ValueError, match="directions"):
        attacks.autozoom(directions=0)
    victim, black_box, images, labels = mlp_case()
    key = jax.random.key(0)
    too_many = attacks.zoo(batch=17, max_queries=100)  # the image has 16 coordinates
    with pytest.raises(ValueError, match="batch"):
        too_many.batch(black_box, too_many.hparams(), images, labels, key)
    reduced = attacks.zoo(batch=4, reduced=(3, 3))
    with pytest.raises(ValueError, match="reduced"):
        reduced.batch(black_box, reduced.hparams(), images, labels, key)
    with pytest.raises(ValueError, match="batch"):
        gradients.zoo(5).init(jnp.zeros(4))
