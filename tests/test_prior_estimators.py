"""Transfer-prior query attacks: P-RGF (Cheng et al. 2019), Che et al.'s prior-boosted Algorithm 2
and Yan et al.'s subspace bandits, against numpy transcriptions of the published updates on linear
models, exact query counts, the misuse errors, and success on a black box with a surrogate."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, gradients, models
from jaxadv.gradients._prgf import prgf_draws

from conftest import make_mlp_victim

D = 12  # the linear tests' input dimension


def _linear_loss(w):
    return lambda theta: (jnp.vdot(w, theta) + 0.5, ())


# -- P-RGF -----------------------------------------------------------------------------------------


def _lambda_numpy(alpha, d, q):
    """Eq. 12 of Cheng et al. (2019), as written: the optimal λ for cosine α, dimension d, q."""
    a2 = alpha**2
    if a2 <= 1 / (d + 2 * q - 2):
        return 0.0
    if a2 >= (2 * q - 1) / (d + 2 * q - 2):
        return 1.0
    return (1 - a2) * (a2 * (d + 2 * q - 2) - 1) / (
        2 * a2 * d * q - a2**2 * d * (d + 2 * q - 2) - 1
    )


def test_prgf_lambda_matches_the_papers_formula_and_is_continuous():
    alphas = np.linspace(0.0, 1.0, 101)
    for d, q in [(12, 4), (3072, 50), (268203, 50), (100, 10)]:
        got = np.asarray(gradients.prgf_lambda(jnp.asarray(alphas, jnp.float32), d, q))
        want = np.array([_lambda_numpy(a, d, q) for a in alphas])
        np.testing.assert_allclose(got, want, atol=2e-5)
        # The middle branch meets 0 and 1 at the thresholds: λ* is continuous in α.
        lo, hi = np.sqrt(1 / (d + 2 * q - 2)), np.sqrt((2 * q - 1) / (d + 2 * q - 2))
        mid = lambda a: (1 - a * a) * (a * a * (d + 2 * q - 2) - 1) / (  # noqa: E731
            2 * a * a * d * q - a**4 * d * (d + 2 * q - 2) - 1
        )
        np.testing.assert_allclose([mid(lo), mid(hi)], [0.0, 1.0], atol=1e-9)


def _prgf_numpy(w, p, theta, sigma, w_dirs, xi):
    """Algorithm 1 of Cheng et al. on the linear loss ``wᵀθ`` (exact differences), in float64."""
    w, p, w_dirs, xi = (np.asarray(a, np.float64) for a in (w, p, w_dirs, xi))
    d = w.size
    rms = lambda a: a / np.sqrt(np.mean(a * a, axis=-1, keepdims=True))  # noqa: E731
    v = rms(p)
    along = v @ w  # [f(θ + σv) − f(θ)]/σ for a linear f
    norm_sq = np.mean((rms(w_dirs) @ w) ** 2)
    alpha = along / np.sqrt(d * norm_sq)
    if alpha < 0:
        v, alpha, along = -v, -alpha, -along
    lam = _lambda_numpy(alpha, d, xi.shape[0])
    if lam == 1.0:
        return along / d * v, lam
    xi = xi - np.outer(xi @ v, v) / (v @ v)
    u = np.sqrt(lam) * v + np.sqrt(1 - lam) * rms(xi)
    return np.mean((u @ w)[:, None] * u, axis=0), lam


SAMPLES, NORM_SAMPLES, SIGMA = 4, 400, 0.1  # a sharp ‖∇f‖ estimate: α̂ is close to α


@jax.jit
def _prgf_linear(w, p, theta, key):
    """One P-RGF call on the linear loss ``wᵀθ`` with the prior ``p`` (one compilation)."""
    oracle = gradients.prgf(SAMPLES, NORM_SAMPLES, sigma=SIGMA).with_prior(lambda t, k: p)
    return oracle(_linear_loss(w), theta, key, oracle.init(theta))


@pytest.mark.parametrize("prior_seed", [4, 0])
def test_prgf_on_a_linear_model_is_its_closed_form(prior_seed):
    """Seed 4: a prior at cosine 0.43, λ* strictly inside (0, 1); seed 0: the true gradient as
    prior: λ* = 1, the estimate is ∝ the gradient, and the q directions are not queried."""
    w = jax.random.normal(jax.random.key(1), (D,))
    noise = jax.random.normal(jax.random.key(prior_seed), (D,))
    p = w if prior_seed == 0 else w + 2.0 * noise
    theta, key = jnp.linspace(-1, 1, D), jax.random.key(3)
    (_, _), grad, state, queries = _prgf_linear(w, p, theta, key)
    _, w_dirs, xi = prgf_draws(key, theta, NORM_SAMPLES, SAMPLES)
    want, lam = _prgf_numpy(w, p, theta, SIGMA, w_dirs, xi)
    np.testing.assert_allclose(grad, want, rtol=2e-3, atol=2e-4)
    assert int(state.calls) == 1
    if prior_seed == 0:
        assert lam == 1.0
        cos = np.dot(grad, w) / np.linalg.norm(grad) / np.linalg.norm(w)
        np.testing.assert_allclose(cos, 1.0, atol=1e-6)
        assert int(queries) == 1 + 1 + NORM_SAMPLES  # the iterate, the prior, the norm probes
    else:
        assert 0.0 < lam < 1.0
        assert int(queries) == 1 + 1 + NORM_SAMPLES + SAMPLES


# -- the prior-guided bandit (Che et al.'s Algorithm 2; Yan et al. with ℓ2) ----------------------


def _bandit_numpy(w, theta, us, tau, delta, eta, kind):
    """Algorithm 2's lines 6-9 on the linear loss ``wᵀθ`` for the given priors ``us``."""
    w, theta = np.asarray(w, np.float64), np.asarray(theta, np.float64)
    g, out = np.zeros_like(theta), []
    norm = (lambda a: np.sum(np.abs(a))) if kind == "l1" else np.linalg.norm
    for u in us:
        u = np.asarray(u, np.float64)
        plus, minus = g + tau * u, g - tau * u
        lp, lm = w @ (theta + delta * plus / norm(plus)), w @ (theta + delta * minus / norm(minus))
        g = g + eta * (lp - lm) / (tau * delta) * u
        out.append(g)
    return out


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_prior_bandit_update_is_algorithm_2_on_a_linear_model(kind):
    w = jax.random.normal(jax.random.key(1), (D,))
    theta = jnp.linspace(-1, 1, D)
    prior_fn = lambda t, k: jax.random.normal(k, t.shape)  # noqa: E731  (a prior per key)
    oracle = gradients.PriorBandit(kind, fd_step=0.5, exploration=0.7, prior_lr=0.3)
    oracle = oracle.with_prior(prior_fn)
    keys = jax.random.split(jax.random.key(4), 3)
    call = jax.jit(lambda t, k, st: oracle(_linear_loss(w), t, k, st))
    state, got = oracle.init(theta), []
    for k in keys:
        (_, _), grad, state, queries = call(theta, k, state)
        assert int(queries) == 3  # two probes and the iterate
        np.testing.assert_array_equal(grad, state)  # the estimate is the state g̃
        got.append(grad)
    want = _bandit_numpy(w, theta, [prior_fn(theta, k) for k in keys], 0.7, 0.5, 0.3, kind)
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-4, atol=1e-5)


# -- attacks on a black box with a surrogate -------------------------------------------------------


@pytest.fixture(scope="module")
def black_box():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(42), (8,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    bb = models.with_surrogates(models.score_only(victim), make_mlp_victim(seed=1))
    return victim, bb, images, labels


def test_alg2_query_counts_are_exact(black_box):
    """3 queries per step (2 + the iterate), the final evaluation included: an example that never
    succeeds spends 3·steps + 1, one stopped at its success 3·(steps − 1) + 1 (the step that
    finds success pays its evaluation of the iterate only)."""
    _, bb, images, labels = black_box
    attack = attacks.prior_boosted(prior="gradient", step="steepest", max_queries=17)
    assert attack.length == 5
    hp = attack.hparams(eps=0.3, step_size=0.1, fd_step=0.01)
    r = attack.batch(bb, hp, images, labels, jax.random.key(1))
    q, ok = np.asarray(r.queries), np.asarray(r.success)
    np.testing.assert_array_equal(q[~ok], 16)
    np.testing.assert_array_equal((np.asarray(r.steps)[ok] - 1) * 3 + 1, q[ok])
    assert ok.any()  # some examples fall within 5 steps (a surrogate of other weights)
    still = attack.batch(bb, hp._replace(eps=0.0), images, labels, jax.random.key(1))
    np.testing.assert_array_equal(still.queries, 16)  # no budget: never succeeds, all spent


@pytest.mark.slow  # ~2 compilations; the registry's entries run both on the same victim
@pytest.mark.parametrize("name", ["prgf", "subspace_bandits"])
def test_attacks_on_a_black_box_with_a_surrogate_succeed_on_some(name, black_box):
    victim, bb, images, labels = black_box
    # two surrogates of other weights: each prior is drawn from a random one of them
    bb = models.with_surrogates(bb.victim, *bb.surrogates, make_mlp_victim(seed=2))
    attack = {
        "prgf": lambda: attacks.prgf(samples=4, norm_samples=4, max_queries=61),
        "subspace_bandits": lambda: attacks.subspace_bandits(max_queries=31, noise=0.05),
    }[name]()
    hp = attack.hparams(eps=0.3, step_size=0.05, fd_step=1e-3)
    r = attack.batch(bb, hp, images, labels, jax.random.key(1))
    ok = np.asarray(r.success)
    assert ok.any()
    predicted = np.argmax(np.asarray(victim.batch(r.x_adv)), axis=-1)
    np.testing.assert_array_equal(ok, predicted != np.asarray(labels))
    assert np.all(np.asarray(r.queries) <= attack.max_queries)
    assert np.max(np.abs(np.asarray(r.delta))) <= 0.3 + 1e-6


# -- misuse -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FlatPrior:
    """A prior description whose prior has the wrong shape (flattened)."""

    def build(self, *args):
        return lambda theta, key: jnp.zeros(theta.size)


def test_prior_errors(black_box):
    victim, bb, images, labels = black_box
    attack = attacks.subspace_bandits(max_queries=7)
    hp = attack.hparams()
    with pytest.raises(ValueError, match="surrogate"):  # a prior, but no surrogates
        attack.batch(models.score_only(victim), hp, images, labels, jax.random.key(0))
    with pytest.raises(ValueError, match="needs a transfer prior"):
        attacks.QueryAttack(
            objective=attack.objective, step_rule=attack.step_rule, constraint=attack.constraint,
            steps=0, oracle=gradients.prgf(4), max_queries=50,
        )
    with pytest.raises(ValueError, match="takes no prior"):
        attacks.QueryAttack(
            objective=attack.objective, step_rule=attack.step_rule, constraint=attack.constraint,
            steps=0, oracle=gradients.nes(4), max_queries=50, prior=attacks.SurrogateGradient(),
        )
    wrong = dataclasses.replace(attack, prior=_FlatPrior())
    with pytest.raises(ValueError, match="latent's shape"):
        wrong.batch(bb, hp, images[:1], labels[:1], jax.random.key(0))
    with pytest.raises(ValueError, match="prior='gradient'"):
        attacks.prior_boosted()  # the paper's subspace prior needs a layer
    with pytest.raises(ValueError, match="black-box view"):
        models.with_surrogates(bb.victim, models.score_only(victim))
    with pytest.raises(ValueError, match="input_shape"):
        models.with_surrogates(bb.victim, make_mlp_victim(shape=(2, 2, 1)))


# -- whole attacks against transcriptions (slow: one compilation each) -----------------------------


def _log_p(W, x, y):
    z = W @ x
    return z[y] - np.log(np.sum(np.exp(z - z.max()))) - z.max()


@pytest.mark.slow
def test_prior_boosted_steps_are_algorithm_2_on_linear_models():
    """Algorithm 2 with the surrogate's gradient as prior, plain steps ``x − α g̃``, ℓ∞ ball:
    the attack's iterates == a numpy transcription (the ``−CE`` objective, no success)."""
    from conftest import make_linear_victim

    victim, surrogate = make_linear_victim(seed=0), make_linear_victim(seed=2)
    Wv, Ws = (np.asarray(v.variables["w"], np.float64) for v in (victim, surrogate))
    x0 = np.asarray(jax.random.uniform(jax.random.key(5), (D,), minval=-1, maxval=1))
    y = int(np.argmax(Wv @ x0))
    eps, alpha, delta, tau, eta = 0.05, 0.01, 0.1, 1.0, 0.1
    attack = attacks.prior_boosted(prior="gradient", step="plain", loss="ce", max_queries=10)
    hp = attack.hparams(eps=eps, step_size=alpha, fd_step=delta, exploration=tau, prior_lr=eta)
    bb = models.with_surrogates(models.score_only(victim), surrogate)
    r = attack(bb, hp, jnp.asarray(x0, jnp.float32), y, jax.random.key(0))

    loss = lambda th: _log_p(Wv, x0 + th, y)  # noqa: E731  (−CE, minimised)
    theta, g, seen = np.zeros(D), np.zeros(D), []
    for _ in range(attack.length):
        seen.append((loss(theta), theta))
        z = Ws @ (x0 + theta)
        p = np.exp(z - z.max()) / np.sum(np.exp(z - z.max()))
        u = Ws.T @ (np.eye(2)[y] - p)  # ∇ log p_y of the surrogate
        plus, minus = g + tau * u, g - tau * u
        diff = loss(theta + delta * plus / np.abs(plus).sum()) - loss(
            theta + delta * minus / np.abs(minus).sum()
        )
        g = g + eta * diff / (tau * delta) * u
        theta = np.clip(theta - alpha * g, -eps, eps)
    seen.append((loss(theta), theta))
    best = min(range(len(seen)), key=lambda i: (seen[i][0], i))
    assert not bool(r.success) and int(r.queries) == 3 * attack.length + 1
    np.testing.assert_allclose(r.delta, seen[best][1], atol=1e-5)
    assert np.abs(seen[best][1]).max() > 0  # it moved


@pytest.mark.slow
def test_subspace_prior_is_algorithm_1s_prior_of_the_substitute():
    """``SubspacePrior`` runs the subspace attack (Algorithm 1) on the substitute from the
    benign image: its prior == ``subspace_attack(...)``'s ``extras["prior"]`` for the same key."""
    from registry import make_saliency_victim

    stub = make_saliency_victim()
    x0 = jax.random.uniform(jax.random.key(1), stub.input_shape)
    attack = attacks.prior_boosted(saliency=True, layer="feat", channels=3, prior_steps=2)
    hp = attack.hparams(eps=0.1)
    prior_fn = attack.prior.build(attack, (stub,), hp, x0, None, None)
    key = jax.random.key(2)
    got = prior_fn(jnp.zeros_like(x0), key)
    sub = attacks.subspace_attack("feat", 3, targeted=False, steps=2)
    want = sub(stub, sub.hparams(eps=0.1), x0, None, jax.random.split(key)[1]).extras["prior"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(got)).max() > 0
    # start="current": Algorithm 1 from the current iterate x0 + θ instead
    current = dataclasses.replace(attack.prior, start="current")
    theta = jnp.clip(x0 + 0.05, 0.0, 1.0) - x0  # an iterate inside the box
    got = current.build(attack, (stub,), hp, x0, None, None)(theta, key)
    want = sub(stub, sub.hparams(eps=0.1), x0 + theta, None, jax.random.split(key)[1])
    np.testing.assert_allclose(got, want.extras["prior"], rtol=1e-5, atol=1e-7)
