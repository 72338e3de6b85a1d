"""Finite-difference gradient estimators (NES, SPSA, RGF) and their named query attacks.

The estimators are checked on losses whose gradient is known (linear and quadratic ``F``, called
directly with ``loss_fn(θ) = (F(θ), None)``): one estimate against a float64 numpy transcription
of the published formula from the same random directions; the mean over many keys against
``∇F`` (``∇F / D`` for RGF) within a few standard errors; the mean squared cosine to ``∇F``
against its distribution (Beta laws, below); the queries against a count of the loss's calls.
The attacks run on ``score_only`` views of the conftest MLP, through the compiled driver.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, gradients, models

from conftest import make_mlp_victim

D = 8  # input size of the estimator tests
THETA = jnp.linspace(-1.0, 1.0, D).reshape(2, 4)  # a non-flat latent: shapes are kept
A = jnp.asarray([3.0, -1.0, 0.5, 2.0, -2.5, 1.0, 0.0, 1.5]).reshape(2, 4)
_M = np.random.default_rng(0).normal(size=(D, D))
H = jnp.asarray((_M + _M.T) / 2, jnp.float32)  # a symmetric, indefinite Hessian


def linear(theta):
    return jnp.sum(A * theta), None


def quadratic(theta):
    t = theta.reshape(-1)
    return jnp.sum(A * theta) + 0.5 * t @ H @ t, None


GRADS = {  # ∇F(THETA)
    "linear": np.asarray(A, np.float64),
    "quadratic": np.asarray(A).reshape(-1) + np.asarray(H, np.float64) @ np.asarray(THETA).ravel(),
}
LOSSES = {"linear": linear, "quadratic": quadratic}


def _f64(loss, points):
    """F at each point in float64 (numpy)."""
    t = np.asarray(points, np.float64).reshape(len(points), -1)
    a, h = np.asarray(A, np.float64).ravel(), np.asarray(H, np.float64)
    quad = 0.5 * np.einsum("ni,ij,nj->n", t, h, t) if loss == "quadratic" else 0.0
    return t @ a + quad


# -- one estimate against the published formula (eager: no compilation) -----------------------


@pytest.mark.parametrize("loss", ["linear", "quadratic"])
def test_one_estimate_is_the_published_formula_on_its_own_directions(loss):
    key, theta = jax.random.key(3), np.asarray(THETA, np.float64).ravel()
    sigma = 0.01
    # SPSA (Spall / Uesato et al.): mean over pairs of [F(θ+δv) − F(θ−δv)] / 2δ · v.
    v = np.asarray(jax.random.rademacher(key, (3, 2, 4), jnp.float32), np.float64).reshape(3, D)
    want = np.mean(((_f64(loss, theta + sigma * v) - _f64(loss, theta - sigma * v))
                    / (2 * sigma))[:, None] * v, axis=0)  # fmt: skip
    got = gradients.spsa(6, sigma)(LOSSES[loss], THETA, key, ())[1]
    assert got.shape == THETA.shape
    np.testing.assert_allclose(np.ravel(got), want, rtol=2e-3, atol=2e-3)
    # RGF (Nesterov & Spokoiny / Cheng et al.): mean of [F(θ+σu) − F(θ)] / σ · u.
    u = np.asarray(gradients.rgf_directions(key, 5, (2, 4)), np.float64).reshape(5, D)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-6)
    want = np.mean(((_f64(loss, theta + sigma * u) - _f64(loss, theta[None])) / sigma)[:, None]
                   * u, axis=0)  # fmt: skip
    got = gradients.rgf(5, sigma)(LOSSES[loss], THETA, key, ())[1]
    np.testing.assert_allclose(np.ravel(got), want, rtol=2e-3, atol=2e-3)


# -- many estimates: all cases in one compiled program ----------------------------------------
# Each case gives an estimate per key; its mean is checked against factor · ∇F(θ), and the mean
# squared cosine of estimates to g = ∇F(θ) against theory. NES with m Gaussian pairs gives
# Σ (g·u_i) u_i, whose squared cosine to g is S/(S + T), S ~ χ²_m and T ~ χ²_{D-1} independent:
# Beta(m/2, (D-1)/2), mean m/(m + D - 1). RGF with q orthonormal directions projects g onto a
# uniformly random q-dimensional subspace: cos² ~ Beta(q/2, (D-q)/2), mean q/D. One SPSA pair
# gives E[cos²] = E[(g·v)²]/(‖g‖²‖v‖²) = 1/D. The central differences of NES and SPSA cancel a
# quadratic's curvature exactly, so these laws hold on the quadratic F too. The mean of k
# estimates from independent keys is an estimate with k times the samples: the growth with the
# number of samples is read from group means.

CASES = {  # name: (oracle, loss, E[estimate] / ∇F, E[cos²] of one estimate, of a group mean)
    "nes": (gradients.nes(2, 0.1), "quadratic", 1.0, 1 / D, 8 / (8 + D - 1)),
    "spsa": (gradients.spsa(2, 0.1), "quadratic", 1.0, 1 / D, None),
    "rgf": (gradients.rgf(1, 0.1), "quadratic", 1 / D, None, None),
    "rgf-orthogonal": (gradients.rgf(6, 0.1, orthogonal=True), "linear", 1 / D, 6 / D, None),
}
KEYS = jax.random.split(jax.random.key(0), 24_000)
GROUP = 8  # estimates per group mean


@functools.lru_cache(maxsize=None)
def _estimates():
    """Estimates over KEYS for every case (one compiled program), flattened: [keys, D]."""

    def run(keys):
        one = lambda o, f: jax.vmap(lambda key: o(f, THETA, key, ())[1].ravel())(keys)  # noqa: E731
        return [one(oracle, LOSSES[loss]) for oracle, loss, *_ in CASES.values()]

    return {n: np.asarray(e, np.float64) for n, e in zip(CASES, jax.jit(run)(KEYS))}


def _mean_cos2(est, g):
    cos2 = (est @ g) ** 2 / (np.sum(est**2, axis=1) * (g @ g))
    return cos2.mean(), cos2.std() / np.sqrt(len(cos2))


@pytest.mark.parametrize("name", list(CASES))
def test_mean_estimate_is_the_gradient_times_the_known_factor(name):
    _, loss, factor, _, _ = CASES[name]
    est = _estimates()[name]
    mean, se = est.mean(0), est.std(0) / np.sqrt(len(est))
    want = factor * GRADS[loss].ravel()
    z = np.abs(mean - want) / np.maximum(se, 1e-12)
    assert z.max() < 5.0, (mean, want, se)
    # The test has power: a 10% error in the scale would be many standard errors away.
    assert np.max(np.abs(0.1 * want) / np.maximum(se, 1e-12)) > 10.0


@pytest.mark.parametrize("name", list(CASES))
def test_mean_squared_cosine_matches_theory_and_grows_with_samples(name):
    _, loss, _, one, group = CASES[name]
    est, g = _estimates()[name], GRADS[loss].ravel()
    single, se1 = _mean_cos2(est, g)
    grouped, se8 = _mean_cos2(est.reshape(-1, GROUP, D).mean(1), g)
    for mean, se, expected in [(single, se1, one), (grouped, se8, group)]:
        if expected is not None:
            assert abs(mean - expected) < 5 * se + 1e-3, (mean, expected)
    assert grouped > single + 0.2, (single, grouped)


# -- queries and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "oracle",
    [gradients.nes(6), gradients.spsa(6), gradients.rgf(5), gradients.rgf(3, orthogonal=True)],
)
def test_queries_are_the_loss_evaluations(oracle):
    calls = []

    def counted(theta):  # one callback per evaluated row, batched probes included
        jax.debug.callback(lambda t: calls.append(np.shape(t)), theta)
        return linear(theta)

    (loss, _), _, _, queries = oracle(counted, THETA, jax.random.key(1), ())  # eager
    jax.effects_barrier()
    assert len(calls) == int(queries) == oracle.queries_per_call
    assert all(shape == THETA.shape for shape in calls)
    assert float(loss) == pytest.approx(float(linear(THETA)[0]))


@pytest.mark.parametrize("build", [gradients.nes, gradients.spsa])
def test_antithetic_estimators_refuse_odd_or_nonpositive_samples(build):
    with pytest.raises(ValueError, match="`samples` must be even.*got 5"):
        build(5)
    with pytest.raises(ValueError, match="`samples` must be an integer >= 1; got 0"):
        build(0)


def test_rgf_refuses_bad_samples():
    with pytest.raises(ValueError, match="`samples` must be an integer >= 1; got 0"):
        gradients.rgf(0)
    with pytest.raises(ValueError, match="`samples` must be at most the input size 8.*got 9"):
        gradients.rgf(9, orthogonal=True)(linear, THETA, jax.random.key(0), ())
    with pytest.raises(ValueError, match="`norm` must be one of 'linf', 'l2'; got 'l1'"):
        attacks.rgf_attack(norm="l1")


# -- the named attacks on a score-only victim --------------------------------------------------

SAMPLES, STEPS = 100, 2
BUDGET = STEPS * (SAMPLES + 1) + 1  # 203 queries: 2 steps and the final evaluation
ATTACKS = {  # one in the default run; the registry's entries run the others' batch checks
    "nes": (attacks.nes_attack, dict(eps=0.1, step_size=0.05, fd_step=0.01)),
    "spsa": (attacks.spsa_attack, dict(eps=0.1, step_size=0.05)),
    "rgf": (
        lambda **kw: attacks.rgf_attack(norm="linf", **kw),
        dict(eps=0.1, step_size=0.05, fd_step=0.01),
    ),
}


@functools.lru_cache(maxsize=None)
def _attack_run(name):
    victim = make_mlp_victim()
    x = jax.random.uniform(jax.random.key(0), (16,) + victim.input_shape)
    y = jnp.argmax(victim.batch(x), axis=-1).astype(jnp.int32)
    factory, values = ATTACKS[name]
    attack = factory(samples=SAMPLES, max_queries=BUDGET)
    hp = attack.hparams(**values)
    return attack, hp, attack.batch(models.score_only(victim), hp, x, y, jax.random.key(1))


@pytest.mark.parametrize(
    "name", ["nes", pytest.param("spsa", marks=pytest.mark.slow),
             pytest.param("rgf", marks=pytest.mark.slow)],
)  # fmt: skip
def test_named_attack_on_a_score_only_victim(name):
    attack, hp, r = _attack_run(name)
    assert attack.length == STEPS
    assert 0.25 <= float(r.success.mean()) < 1.0  # fools some examples, within 203 queries
    assert np.all(np.asarray(r.queries) <= BUDGET)
    assert np.all(np.asarray(r.linf) <= float(hp.eps) + 1e-6)
    # Exact accounting: each step costs samples + 1, except the one whose evaluation of the
    # current point finds success (1: the probes are not sent); an example that does not stop
    # during the steps pays the final evaluation (1).
    steps, queries, success = map(np.asarray, (r.steps, r.queries, r.success))
    found = (steps - 1) * (SAMPLES + 1) + 1
    assert np.all((queries == found) | (queries == steps * (SAMPLES + 1) + 1))
    assert np.all(success[queries == found])
    assert np.all(queries[steps < STEPS] == found[steps < STEPS])
    assert np.all(queries[~success] == STEPS * (SAMPLES + 1) + 1)


def test_white_box_gradients_are_refused_and_defaults_are_documented():
    victim = models.score_only(make_mlp_victim())
    x = jnp.zeros((1,) + victim.input_shape)
    with pytest.raises(models.GradientAccessError):
        attacks.pgd(steps=1).batch(victim, attacks.pgd().hparams(), x, jnp.zeros(1, jnp.int32),
                                   jax.random.key(0))  # fmt: skip
    nes, spsa, rgf = attacks.nes_attack(), attacks.spsa_attack(), attacks.rgf_attack()
    hp = nes.derive(nes.hparams())
    assert (float(hp.eps), float(hp.step_size), float(hp.fd_step)) == pytest.approx(
        (0.05, 0.01, 1e-3)
    )
    assert nes.length == (10_000 - 1) // 51 and nes.oracle.samples == 50
    hp = spsa.derive(spsa.hparams())
    assert (float(hp.step_size), float(hp.fd_step)) == pytest.approx((0.01, 0.01))
    assert spsa.oracle.samples == 256 and spsa.random_start
    hp = rgf.derive(rgf.hparams())
    assert float(hp.step_size) == pytest.approx(2.0, rel=1e-3) and rgf.oracle.samples == 50
