"""The ℓp-box ADMM transformation: projections, one iteration by hand, conformance, brute force."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv.transforms._lp_box_admm import (
    RHO_MAX,
    RHO_MAX_CODE,
    binarize,
    group_norm_sum,
    group_soft_threshold,
    lp_box_admm,
    project_box,
    project_sphere,
    sapf_step_schedule,
)


@pytest.mark.parametrize("seed", range(4))
def test_projections_are_exact(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    a = jnp.asarray(rng.normal(0.5, 2.0, n), jnp.float32)
    np.testing.assert_array_equal(project_box(a), np.clip(np.asarray(a), 0, 1))
    y = np.asarray(project_sphere(a), np.float64)
    np.testing.assert_allclose(np.sum((y - 0.5) ** 2), n / 4, rtol=1e-5)
    # The nearest point of a sphere lies along the ray from its centre.
    centred = np.asarray(a, np.float64) - 0.5
    np.testing.assert_allclose(
        y - 0.5, centred * np.sqrt(n) / 2 / np.linalg.norm(centred), atol=1e-6
    )
    # Binary vectors (the cube's corners) lie on both sets: projections leave them unchanged.
    b = jnp.asarray(rng.integers(0, 2, n), jnp.float32)
    np.testing.assert_allclose(project_sphere(b), b, atol=1e-6)
    np.testing.assert_array_equal(project_box(b), b)


def test_group_soft_threshold_is_the_prox():
    rng = np.random.default_rng(0)
    a = rng.normal(size=9).astype(np.float32)
    groups = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    t = 0.8
    out = np.asarray(group_soft_threshold(jnp.asarray(a), jnp.asarray(groups), 3, t))
    np.testing.assert_allclose(
        group_norm_sum(jnp.asarray(a), jnp.asarray(groups), 3),
        sum(np.linalg.norm(a[groups == i]) for i in range(3)),
        rtol=1e-5,
    )
    for g in range(3):
        v = a[groups == g]
        expected = max(0.0, 1 - t / np.linalg.norm(v)) * v
        np.testing.assert_allclose(out[groups == g], expected, rtol=1e-5, atol=1e-7)

    # Optimality: value at the prox is below nearby points of ½‖y−a‖² + t Σ‖yⁱ‖.
    def value(y):
        return 0.5 * np.sum((y - a) ** 2) + t * sum(
            np.linalg.norm(y[groups == i]) for i in range(3)
        )

    for _ in range(20):
        assert value(out) <= value(out + rng.normal(scale=0.05, size=9)) + 1e-6


def test_one_iteration_by_hand():
    g = np.array([0.9, 0.2, 1.3], np.float32)
    grad = np.array([0.5, -1.0, 0.25], np.float32)
    k, lr = 2.0, 0.1
    rho = np.array([0.5, 0.4, 0.3, 0.2], np.float32)
    tx = lp_box_admm(k, lr, rho=rho, rho_max=(0.6, 10.0, 10.0, 0.21), rho_growth=1.5)
    state = tx.init(jnp.asarray(g))
    state = state._replace(
        z_box=jnp.array([0.1, -0.2, 0.3]),
        z_sphere=jnp.array([0.0, 0.1, -0.1]),
        z_card=jnp.array(0.05),
    )
    z1, z2, z4 = (np.asarray(v, np.float64) for v in (state.z_box, state.z_sphere, state.z_card))
    update, new = tx.update(jnp.asarray(grad), state, jnp.asarray(g))
    g64 = g.astype(np.float64)
    y1 = np.clip(g64 + z1 / rho[0], 0, 1)
    c = g64 + z2 / rho[1] - 0.5
    y2 = 0.5 + np.sqrt(3) / 2 * c / np.linalg.norm(c)
    full = grad + z1 + z2 + z4 + rho[0] * (g64 - y1) + rho[1] * (g64 - y2)
    full = full + rho[3] * (g64.sum() - k)
    g_new = np.clip(g64 - lr * full, 0, 1)  # the step stays in the box (here: 1.22 → 1)
    np.testing.assert_allclose(update, g_new - g64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.y_box, y1, rtol=1e-6)
    np.testing.assert_allclose(new.y_sphere, y2, rtol=1e-5)
    # Standard ADMM duals: Z += ρ(G_new − Y) (not the paper's misprinted G − Z).
    np.testing.assert_allclose(new.z_box, z1 + rho[0] * (g_new - y1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.z_sphere, z2 + rho[1] * (g_new - y2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.z_card, z4 + rho[3] * (g_new.sum() - k), rtol=1e-5)
    # Penalties grow by 1.5 up to their caps.
    np.testing.assert_allclose(new.rho, [0.6, 0.6, 0.45, 0.21], rtol=1e-6)
    assert new.y_group is None and new.z_group is None and int(new.count) == 1


@functools.partial(jax.jit, static_argnames=("steps", "num_groups"))
def _solve(q, c, k, groups, lambda2, *, steps, num_groups):
    tx = lp_box_admm(
        k, sapf_step_schedule(0.1), groups=groups, num_groups=num_groups, lambda2=lambda2
    )

    def body(carry, _):
        g, state = carry
        update, state = tx.update(q @ g + c, state, g)
        return (optax.apply_updates(g, update), state), None

    g0 = jnp.ones(c.shape[0], jnp.float32)
    return jax.lax.scan(body, (g0, tx.init(g0)), length=steps)[0]


def _quadratic_run(q, c, k, steps, groups=None, lambda2=1e-3):
    args = (jnp.asarray(q, jnp.float32), jnp.asarray(c, jnp.float32), jnp.float32(k))
    num_groups = None if groups is None else int(np.max(groups)) + 1
    groups = None if groups is None else jnp.asarray(groups)
    return _solve(*args, groups, jnp.float32(lambda2), steps=steps, num_groups=num_groups)


def test_state_is_stable_through_scan_and_jit_matches_eager():
    rng = np.random.default_rng(1)
    q, c = np.eye(6) + 0.1, rng.normal(size=6)
    groups = jnp.array([0, 0, 1, 1, 2, 2])
    for grp in (None, groups):
        tx = lp_box_admm(2.0, 0.1, groups=grp)
        g0 = jnp.ones(6, jnp.float32)
        s0 = tx.init(g0)
        g, s = _quadratic_run(q, c, 2.0, 5, groups=grp)  # a lax.scan carries the state
        assert jax.tree.structure(s) == jax.tree.structure(s0)
        for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(s0)):
            assert a.shape == b.shape and a.dtype == b.dtype
        assert g.dtype == jnp.float32
        # Two updates eagerly and under jit agree.
        grad = jnp.asarray(rng.normal(size=6), jnp.float32)
        eager, jitted = (g0, s0), (g0, s0)
        update = jax.jit(tx.update)
        for _ in range(2):
            u, st = tx.update(grad, eager[1], eager[0])
            eager = (eager[0] + u, st)
            u, st = update(grad, jitted[1], jitted[0])
            jitted = (jitted[0] + u, st)
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _brute_force(q, c, k, penalty=lambda mask: 0.0):
    values = []
    for idx in itertools.combinations(range(len(c)), k):
        mask = np.zeros(len(c))
        mask[list(idx)] = 1
        values.append((0.5 * mask @ q @ mask + c @ mask + penalty(mask), tuple(mask)))
    values.sort()
    return np.array(values[0][1]), values[1][0] - values[0][0]


def _well_posed_problem(n, seed):
    """Weakly coupled convex quadratics: a unique best mask by a margin (else skipped)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return 0.3 * a @ a.T / n + np.diag(rng.uniform(0.5, 1.5, n)), 2.0 * rng.normal(size=n)


@pytest.mark.parametrize("n,k", [(6, 2), (8, 3), (10, 4), (12, 5)])
def test_binarised_solution_matches_brute_force(n, k):
    checked = 0
    for seed in range(8):
        q, c = _well_posed_problem(n, seed)
        best, gap = _brute_force(q, c, k)
        if gap < 0.2:
            continue
        g, _ = _quadratic_run(q, c, float(k), 2000)
        np.testing.assert_array_equal(np.asarray(g) > 0.5, best > 0.5, err_msg=f"seed {seed}")
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_group_sparse_solution_matches_brute_force():
    n, k, lambda2 = 8, 4, 1.0
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])

    def penalty(mask):
        return lambda2 * sum(np.sqrt(mask[groups == i].sum()) for i in range(4))

    checked = 0
    for seed in range(8):
        q, c = _well_posed_problem(n, seed)
        best, gap = _brute_force(q, c, k, penalty)
        if gap < 0.2:
            continue
        g, _ = _quadratic_run(q, c, float(k), 2000, groups=jnp.asarray(groups), lambda2=lambda2)
        np.testing.assert_array_equal(np.asarray(g) > 0.5, best > 0.5, err_msg=f"seed {seed}")
        checked += 1
        if checked == 2:
            break
    assert checked == 2


def _binary_quadratic(n, seed, kind):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    if kind == "psd":
        return 0.3 * a @ a.T / n + np.diag(rng.uniform(0.5, 1.5, n)), 2.0 * rng.normal(size=n)
    return (a + a.T) / 2, 2.0 * rng.normal(size=n)  # indefinite: eigenvalues of both signs


@jax.jit
def _bounded_runs(q, c, caps):
    """1500 updates per problem (one compile, vmapped); the final G and the largest |G| seen."""

    def one(q, c, caps):
        tx = lp_box_admm(4.0, sapf_step_schedule(0.1), rho_max=caps)

        def body(carry, _):
            g, state = carry
            update, state = tx.update(q @ g + c, state, g)
            return (g + update, state), jnp.max(jnp.abs(g + update))

        g0 = jnp.ones(c.shape[0], jnp.float32)
        (g, _), peak = jax.lax.scan(body, (g0, tx.init(g0)), length=1500)
        return g, jnp.max(peak), jnp.min(g)

    return jax.vmap(one)(q, c, caps)


def test_iterate_stays_in_the_box_and_finds_brute_force_optima_psd_and_indefinite():
    # 12 PSD and 12 indefinite problems (n = 10, k = 4: 210 masks), each with the paper's caps and
    # the code's. Unbounded, the indefinite ones ran off to |G| ~ 1e13 or NaN.
    n, k, seeds = 10, 4, range(12)
    problems = [_binary_quadratic(n, s, kind) for kind in ("psd", "indefinite") for s in seeds]
    problems = problems * 2
    caps = np.array([RHO_MAX] * 24 + [RHO_MAX_CODE] * 24, np.float32)
    q, c = (np.stack(a).astype(np.float32) for a in zip(*problems))
    g, peak, low = (np.asarray(a) for a in _bounded_runs(q, c, caps))
    assert np.all(np.isfinite(g)) and np.all(peak <= 1.0) and np.all(low >= 0.0)
    masks = np.array(list(itertools.combinations(range(n), k)))
    every = np.zeros((len(masks), n))
    np.put_along_axis(every, masks, 1.0, axis=1)
    values = 0.5 * np.einsum("mi,pij,mj->pm", every, q, every) + c @ every.T  # (problem, mask)
    best = values.min(axis=1)
    chosen = np.asarray(jax.vmap(binarize, (0, None))(jnp.asarray(g), float(k)))
    found = 0.5 * np.einsum("pi,pij,pj->p", chosen, q, chosen) + np.sum(chosen * c, axis=1)
    exact = (chosen.sum(axis=1) == k) & (found <= best + 1e-4)
    near = (chosen.sum(axis=1) == k) & (found <= best + 0.05 * np.abs(best))
    # The paper's caps: every PSD optimum, and 9/12 indefinite ones exactly, 11/12 within 5%.
    assert exact[:12].all() and exact[12:24].sum() >= 9 and near[12:24].sum() >= 11
    # The code's caps: every PSD optimum still (the indefinite ones: 6/12, 7/12 within 5%).
    assert exact[24:36].all()


def test_binarize_keeps_at_most_k():
    m = jnp.array([0.9, 0.8, 0.95, 0.3, 0.7, 0.7])
    np.testing.assert_array_equal(binarize(m, 3.0), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(binarize(m, 10.0), [1, 1, 1, 0, 1, 1])
    # Ties at the threshold: still exactly k.
    assert float(jnp.sum(binarize(jnp.full(7, 0.8), 4.0))) == 4


def test_hyperparameters_may_be_injected_and_swept():
    tx = optax.inject_hyperparams(lp_box_admm)(k=2.0, learning_rate=0.1)
    g = jnp.ones(4)
    grad = jnp.array([1.0, -1.0, 0.5, 0.0])
    update, state = jax.jit(tx.update)(grad, tx.init(g), g)
    plain = lp_box_admm(2.0, 0.1)
    np.testing.assert_allclose(update, plain.update(grad, plain.init(g), g)[0], rtol=1e-6)

    @jax.jit
    def one(k):
        t = lp_box_admm(k, 0.1)
        return t.update(jnp.zeros(4), t.init(g), g)[0]

    swept = jax.jit(jax.vmap(one))(jnp.array([1.0, 3.0]))
    np.testing.assert_allclose(swept[0], one(1.0), rtol=1e-6)
    np.testing.assert_allclose(swept[1], one(3.0), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(k=0.0), "`k`"),
        (dict(k=-2.0), "`k`"),
        (dict(k=2.0, rho=(5e-3, 0.0, 5e-3, 1e-4)), "`rho`"),
        (dict(k=2.0, learning_rate=-0.1), "`learning_rate`"),
        (dict(k=2.0, groups=np.zeros(4, int), lambda2=0.0), "`lambda2`"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        lp_box_admm(**kwargs)


def test_bad_group_maps_name_themselves():
    g = jnp.ones(6)
    with pytest.raises(ValueError, match="`groups`.*shape"):
        lp_box_admm(2.0, groups=np.zeros(5, int)).init(g)
    with pytest.raises(ValueError, match="`groups`.*contiguous"):
        lp_box_admm(2.0, groups=np.array([0, 0, 2, 2, 3, 3])).init(g)
    with pytest.raises(ValueError, match="`params`"):
        lp_box_admm(2.0).update(g, lp_box_admm(2.0).init(g), None)
