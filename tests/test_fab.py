"""FAB (``jaxadv.attacks.fab``): the projection against LP/QP solvers, the exact minimum on an
affine victim against a transcription of Algorithm 1, best-so-far, budgets, box and targets."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog, minimize

from jaxadv import attacks
from jaxadv.attacks import hyperplane_box_projection

from conftest import make_linear_victim, make_mlp_victim

ORD = {"linf": np.inf, "l2": 2, "l1": 1}
DUAL = {"linf": 1, "l2": 2, "l1": np.inf}

# -- the projection --------------------------------------------------------------------------------


def _cases(n=40, d=7, seed=0):
    """Random boxes, points in them, normals with some zeros, and hyperplanes through a point of
    a box three times as wide (so some miss the box)."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1.0, 0.0, n)
    high = low + rng.uniform(0.2, 2.0, n)
    width = (high - low)[:, None]
    x = low[:, None] + rng.uniform(size=(n, d)) * width
    w = rng.normal(size=(n, d)) * (rng.uniform(size=(n, d)) > 0.25)
    through = low[:, None] + rng.uniform(-1.0, 2.0, (n, d)) * width
    through[0] = x[0]  # case 0: the point is on the plane already
    b = -np.sum(w * through, axis=1)
    return x, w, b, low, high


def _reference(x, w, b, low, high, norm):
    """The least-norm move onto the hyperplane inside the box by a generic solver, or None when
    the hyperplane misses the box (the LP is infeasible)."""
    d, rhs = len(x), -(w @ x + b)
    box = [(low - xi, high - xi) for xi in x]
    if norm == "linf":  # min s  s.t. −s ≤ δ ≤ s
        a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
        res = linprog(
            np.r_[np.zeros(d), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None],
            b_eq=[rhs], bounds=box + [(0, None)], method="highs",
        )  # fmt: skip
        return res.x[:d] if res.status == 0 else None
    if norm == "l1":  # δ = p − q,  min Σ p + q
        res = linprog(
            np.ones(2 * d), A_eq=np.r_[w, -w][None], b_eq=[rhs],
            bounds=[(0, hi) for _, hi in box] + [(0, -lo) for lo, _ in box], method="highs",
        )  # fmt: skip
        return res.x[:d] - res.x[d:] if res.status == 0 else None
    feasible = linprog(np.zeros(d), A_eq=w[None], b_eq=[rhs], bounds=box, method="highs")
    if feasible.status != 0:
        return None
    res = minimize(
        lambda v: v @ v, feasible.x, jac=lambda v: 2 * v, bounds=box, method="SLSQP",
        constraints=[dict(type="eq", fun=lambda v: w @ v - rhs, jac=lambda v: w)],
        options=dict(ftol=1e-15, maxiter=1000),
    )  # fmt: skip
    return res.x


@functools.cache
def _projection(norm):
    fn = lambda x, w, b, lo, hi: hyperplane_box_projection(x, w, b, lo, hi, norm)  # noqa: E731
    return jax.jit(jax.vmap(fn))


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_projection_matches_a_generic_solver(norm):
    x, w, b, low, high = _cases()
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    delta = np.asarray(_projection(norm)(*map(f32, (x, w, b, low, high))), np.float64)
    feasible = 0
    for i in range(len(x)):
        z = x[i] + delta[i]
        assert np.all(z >= low[i] - 1e-6) and np.all(z <= high[i] + 1e-6)
        ref = _reference(x[i], w[i], b[i], low[i], high[i], norm)
        if ref is None:  # the hyperplane misses the box: every w_i ≠ 0 at its face toward it
            side = np.sign(w[i] @ x[i] + b[i])
            face = np.where(side * w[i] > 0, low[i], high[i])
            np.testing.assert_allclose(z, np.where(w[i] != 0, face, x[i]), atol=1e-6)
            continue
        feasible += 1
        scale = np.abs(w[i]).sum() * (high[i] - low[i])
        assert abs(w[i] @ z + b[i]) <= 1e-5 * scale, (i, w[i] @ z + b[i])
        got, best = np.linalg.norm(delta[i], ORD[norm]), np.linalg.norm(ref, ORD[norm])
        np.testing.assert_allclose(got, best, rtol=1e-4, atol=1e-6, err_msg=str(i))
        if norm == "l2":  # the ℓ2 projection is unique
            np.testing.assert_allclose(delta[i], ref, atol=1e-4)
    assert 10 <= feasible < len(x)  # both regimes were exercised
    np.testing.assert_allclose(delta[0], 0.0, atol=1e-6)  # a point on the plane stays


def test_projection_refuses_an_unknown_norm():
    with pytest.raises(ValueError, match="`norm` must be one of"):
        hyperplane_box_projection(jnp.zeros(3), jnp.ones(3), 0.0, 0.0, 1.0, "l3")


# -- the exact minimum on an affine victim ---------------------------------------------------------

AFFINE = make_linear_victim(dim=12, num_classes=4, seed=1)  # box [-10, 10]: never binding here
AFFINE_X = jax.random.uniform(jax.random.key(3), (5, 12), minval=-1.0, maxval=1.0)
AFFINE_Y = jnp.argmax(AFFINE.batch(AFFINE_X), axis=-1)
# (eta, beta): the defaults, and a tighter pair that lands within 1e-3 of the minimum
SETTINGS = ((1.05, 0.9), (1.01, 0.98))


def _affine_minimum(norm):
    """The exact minimal perturbation: the distance to the nearest class hyperplane, measured
    in ``norm`` (|f_l(x)| / ‖w_l − w_y‖ in the dual norm)."""
    w = np.asarray(AFFINE.variables["w"], np.float64)
    z = np.asarray(AFFINE_X, np.float64) @ w.T
    y = np.asarray(AFFINE_Y)
    return np.array([
        min(abs(z[i, j] - z[i, y[i]]) / np.linalg.norm(w[j] - w[y[i]], DUAL[norm])
            for j in range(w.shape[0]) if j != y[i])
        for i in range(len(y))
    ])  # fmt: skip


def algorithm1_on_a_line(eta, beta, alpha_max, steps):
    """Algorithm 1 of Croce & Hein transcribed for an affine classifier (no box), in units of the
    minimal distance: every projection moves along the same line, the boundary sits at 1, the
    iterate s starts at 0 (x0). Returns the smallest fooling point's distance."""
    s, best = 0.0, np.inf
    for _ in range(steps):
        d, d_orig = 1.0 - s, 1.0  # signed projections of the iterate and of x0
        a, a_orig = max(abs(d), 1e-8), max(d_orig, 1e-8)
        alpha = min(a / (a + a_orig), alpha_max)
        new = (1 - alpha) * (s + eta * d) + alpha * (eta * d_orig)
        if new > 1.0:  # fools the classifier: record, step back toward x0
            best, s = min(best, new), beta * new
        else:
            s = new
    return best


@pytest.mark.parametrize(
    "norm", ["l2", pytest.param("linf", marks=pytest.mark.slow), pytest.param("l1", marks=pytest.mark.slow)]
)  # fmt: skip
def test_affine_victim_exact_minimum(norm):
    attack = attacks.fab(norm=norm, steps=5)
    ratios = []
    for eta, beta in SETTINGS:  # one compiled batch: the numbers are arguments
        r = attack.batch(AFFINE, attack.hparams(eta=eta, beta=beta), AFFINE_X, AFFINE_Y,
                         jax.random.key(0))  # fmt: skip
        assert np.all(r.success)
        ratios.append(np.asarray(getattr(r, norm), np.float64) / _affine_minimum(norm))
    # defaults: the fixed point of Algorithm 1's step-back cycle, 1.0052 × the minimum
    expected = algorithm1_on_a_line(*SETTINGS[0], 0.1, 5)
    np.testing.assert_allclose(ratios[0], expected, rtol=2e-5)
    # η = 1.01, β = 0.98: within 1e-3 of the exact minimum, and never below it
    assert np.all(ratios[1] >= 1 - 1e-5) and np.all(ratios[1] <= 1 + 1e-3), ratios[1]


@pytest.mark.slow
def test_fab_t_over_every_other_class_finds_the_nearest_boundary():
    """With k = C − 1 targets, one run linearises the nearest class's boundary: the result is
    the untargeted one (Algorithm 1's fixed point), and success stays untargeted."""
    attack = attacks.fab(norm="l2", n_target_classes=3, steps=5)
    r = attack.batch(AFFINE, attack.hparams(), AFFINE_X, AFFINE_Y, jax.random.key(0))
    ratio = np.asarray(r.l2, np.float64) / _affine_minimum("l2")
    np.testing.assert_allclose(ratio, algorithm1_on_a_line(*SETTINGS[0], 0.1, 5), rtol=2e-5)
    assert np.all(np.argmax(np.asarray(r.logits), axis=-1) != np.asarray(AFFINE_Y))


# -- best so far, budgets, box, targets (a small non-linear victim) --------------------------------

MLP = make_mlp_victim()  # 4×4×1 in [0, 1], 3 classes
MLP_X = jax.random.uniform(jax.random.key(42), (6,) + MLP.input_shape)
MLP_Y = jnp.argmax(MLP.batch(MLP_X), axis=-1).astype(jnp.int32)


ATTACK = attacks.fab(norm="l2", steps=6)
MLP_LABELS = MLP_Y.at[0].set((MLP_Y[0] + 1) % 3)  # example 0 is misclassified from the start
EPS = jnp.array([jnp.inf, 0.3, 0.0], jnp.float32)


@functools.cache
def _run_with_every_point():
    """FAB's program on every example at every ``eps`` of ``EPS`` (same key per example), and the
    points each step evaluated: its new point (``checked``) and the next linearisation point.
    Fields have shape ``(len(EPS), examples, ...)``."""

    def one(hp, x0, label, key):
        program = ATTACK.program(MLP, ATTACK.derive(hp), x0, label, label)

        def body(carry, _):
            carry, loss = program.step(carry)
            return carry, (carry.runs.checked[0], carry.runs.x[0], loss)

        carry, (checked, starts, trace) = jax.lax.scan(
            body, program.init(key), length=program.length
        )
        return program.finish(carry, trace), checked, starts

    n, k = len(MLP_LABELS), len(EPS)
    hp = ATTACK.hparams()._replace(eps=jnp.repeat(EPS, n))  # one flat axis: eps-major rows
    axes = type(hp)(*(0 if f == "eps" else None for f in hp._fields))
    keys = jax.random.split(jax.random.key(0), n)
    tile = lambda a: jnp.concatenate([a] * k)  # noqa: E731
    run = jax.jit(jax.vmap(one, in_axes=(axes, 0, 0, 0)))
    out = run(hp, tile(MLP_X), tile(MLP_LABELS), tile(keys))
    return jax.tree.map(lambda a: np.asarray(a).reshape((k, n) + a.shape[1:]), out)


def test_the_result_is_the_smallest_fooling_point_evaluated():
    """Every point FAB evaluates (x0, each step's new point, each linearisation point) is
    checked here by the victim; the result is the smallest fooling one, not the last."""
    r, checked, starts = _run_with_every_point()
    r, checked, starts = jax.tree.map(lambda a: a[0], (r, checked, starts))  # eps = inf
    last_is_not_best = 0
    for i in range(len(MLP_LABELS)):
        x0 = np.asarray(MLP_X[i])
        points = np.concatenate([x0[None], checked[i], starts[i][:-1]])
        fooled = np.argmax(np.asarray(MLP.batch(points)), axis=-1) != int(MLP_LABELS[i])
        sizes = np.linalg.norm((points - x0).reshape(len(points), -1), axis=1)
        assert bool(r.success[i]) == fooled.any()
        if fooled.any():
            np.testing.assert_allclose(r.l2[i], sizes[fooled].min(), rtol=1e-6, atol=1e-7)
            last = np.flatnonzero(fooled)[-1]
            last_is_not_best += bool(sizes[last] > sizes[fooled].min())
    assert np.sum(r.success) >= 4 and last_is_not_best >= 1


def test_budget_success_box_and_a_clean_mistake():
    """``eps`` only decides success: x_adv is the same minimum-norm point at every eps; success
    = fooled and norm ≤ eps. A clean input that is already wrong is returned as is."""
    r, _, _ = _run_with_every_point()
    for k in range(1, len(EPS)):
        np.testing.assert_array_equal(r.x_adv[k], r.x_adv[0])
    fooled = np.argmax(r.logits[0], axis=-1) != np.asarray(MLP_LABELS)
    for k in range(len(EPS)):
        np.testing.assert_array_equal(r.success[k], fooled & (r.l2[k] <= EPS[k]))
    assert 0 < np.sum(r.success[1]) < np.sum(r.success[0])  # the budget matters here
    assert np.all(r.x_adv >= 0.0) and np.all(r.x_adv <= 1.0)
    np.testing.assert_allclose(r.delta, r.x_adv - np.asarray(MLP_X)[None], atol=1e-6)
    np.testing.assert_array_equal(r.x_adv[:, 0], np.broadcast_to(MLP_X[0], r.x_adv[:, 0].shape))
    assert r.success[2, 0] and r.steps[0, 0] == 0 and r.queries[0, 0] == 1
    assert r.queries[0, 1] == 1 + 6 * 3  # per step: C − 1 = 2 gradients + 1 forward


@pytest.mark.slow  # the conformance entry "fab" (targeted ℓ1) checks the same in the default run
def test_targeted_success_is_against_the_target():
    attack = attacks.fab(norm="l2", targeted=True, steps=8)
    targets = (MLP_Y + 1) % 3
    r = attack.batch(MLP, attack.hparams(), MLP_X, MLP_Y, jax.random.key(0), targets)
    predicted = np.argmax(np.asarray(MLP.batch(r.x_adv)), axis=-1)
    np.testing.assert_array_equal(r.success, predicted == np.asarray(targets))
    assert np.any(r.success)
    assert np.all(np.asarray(r.queries) == 1 + 8 * 2)  # one gradient and one forward per step


def test_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match="`norm` must be one of"):
        attacks.fab(norm="l3")
    with pytest.raises(ValueError, match="not both"):
        attacks.fab(targeted=True, n_target_classes=2)
    with pytest.raises(ValueError, match="`n_target_classes` must be >= 0"):
        attacks.fab(n_target_classes=-1)
    with pytest.raises(ValueError, match="`steps`"):
        attacks.fab(steps=0)
    attack = attacks.fab()
    with pytest.raises(ValueError, match="hp.eps"):
        attack.hparams(eps=-1.0)
    with pytest.raises(ValueError, match="hp.beta"):
        attack.hparams(beta=0.0)
    with pytest.raises(ValueError, match="hp.restart_radius"):
        attack.hparams(restart_radius=-1.0)
    with pytest.raises(ValueError, match="at most num_classes - 1 = 2"):
        attacks.fab(n_target_classes=3).batch(MLP, attacks.fab().hparams(), MLP_X, MLP_Y,
                                              jax.random.key(0))  # fmt: skip


@pytest.mark.slow
def test_a_second_restart_never_ends_larger():
    """Restart 1 starts at x0 as a single run does (same key): a second restart, from a random
    point near the best so far, can only shrink the result; it spends the same again."""
    one, two = attacks.fab(norm="linf", steps=4), attacks.fab(norm="linf", steps=4, restarts=2)
    r1 = one.batch(MLP, one.hparams(), MLP_X, MLP_Y, jax.random.key(2))
    r2 = two.batch(MLP, two.hparams(), MLP_X, MLP_Y, jax.random.key(2))
    assert np.all(r2.success >= r1.success)
    assert np.all(np.where(r1.success, r2.linf <= r1.linf, True))
    np.testing.assert_array_equal(r2.queries - 1, 2 * (r1.queries - 1))
