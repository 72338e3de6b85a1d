"""The sparse baselines of SAPF's Table 1: closed forms on linear victims, budgets, conformance.

Linear binary victim (as in test_closed_form): the margin is ``m(x) = u·x`` with ``u = w_y − w_o``.
* The best ℓ0 + ℓ∞ perturbation with k entries moves the k largest ``|u_i|`` by ``−eps·sign(u_i)``.
* The least-ℓ1 flip moves the largest ``|u_i|`` alone (by ``m/|u_i|``), or, where the pixel box
  stops it, the next largest too.
Long programs run as a rolled ``lax.scan`` here (``unroll=1``: fast to compile); the conformance
tests check that every loop form and entry point gives the same result.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

from jaxadv.attacks import (
    SparsePGD,
    cw_l0,
    cw_l2,
    l1_linear_solve,
    pgd_l0_linf,
    run_program,
    sparsefool,
)

from conftest import make_linear_victim


@pytest.fixture
def linear_problem():
    victim = make_linear_victim(bounds=(0.0, 1.0))
    x0 = jnp.full(victim.input_shape, 0.5)
    label = jnp.argmax(victim(x0))
    u = victim.variables["w"][label] - victim.variables["w"][1 - label]
    margin = float(jnp.dot(u, x0))
    return victim, x0, label, u, margin


def assert_results_close(a, b):
    # float32 rounding of op-by-op against compiled code over several steps (up to 2.3e-5
    # relative in SparseFool's trace when the suite compiles at XLA's optimisation level 0)
    jax.tree_util.tree_map_with_path(
        lambda path, x, y: np.testing.assert_allclose(
            x, y, rtol=5e-5, atol=1e-5, err_msg=jax.tree_util.keystr(path)
        ),
        a,
        b,
    )


@functools.partial(jax.jit, static_argnums=(0,))
def rolled(attack, victim, hp, x0, label, target, key):
    """The attack on one example as a rolled scan (cheap to compile for long programs)."""
    return run_program(attack.program(victim, hp, x0, label, target), key, unroll=1)


# -- PGD ℓ0 + ℓ∞ ----------------------------------------------------------------------------------

PGD = pgd_l0_linf(steps=10, unit="element")


def run_pgd(victim, hp, x0, label):
    return rolled(PGD, victim, hp, x0, label, label, jax.random.key(0))


def test_pgd_l0_linf_reaches_the_l0_linf_optimum_of_a_linear_victim(linear_problem):
    victim, x0, label, u, margin = linear_problem
    eps, k = 0.3, 3
    assert eps * np.sort(np.abs(u))[-k:].sum() > margin  # the budget can flip the label
    result = run_pgd(victim, PGD.hparams(k=k, eps=eps), x0, label)
    top = np.argsort(-np.abs(u))[:k]
    expected = np.zeros(u.shape, np.float32)
    expected[top] = -eps * np.sign(u[top])
    np.testing.assert_allclose(result.delta, expected, atol=1e-6)
    assert bool(result.success) and float(result.l0) == k


def test_pgd_l0_linf_fails_as_data_when_the_budget_is_too_small(linear_problem):
    victim, x0, label, u, margin = linear_problem
    eps = 0.9 * margin / float(np.max(np.abs(u)))  # one entry at eps cannot flip the label
    result = run_pgd(victim, PGD.hparams(k=1, eps=eps), x0, label)
    assert not bool(result.success)
    assert float(result.l0) <= 1 and float(result.linf) <= eps * (1 + 1e-6)


@pytest.mark.slow  # a sweep plus eager runs (~20 s): the slow suite
def test_pgd_l0_linf_budget_sweep_traces_once_equals_eager_runs_and_holds_per_pixel(
    mlp_victim, mlp_batch
):
    images, labels = mlp_batch
    targets = (labels + 1) % mlp_victim.num_classes
    attack = pgd_l0_linf(steps=3, targeted=True, loss="cw")
    ks = jnp.array([1.0, 3.0, 8.0])
    hp = attack.hparams(k=ks, eps=0.4)
    key = jax.random.key(1)
    traces = []
    original = SparsePGD.program

    def counting_program(self, *args):
        traces.append(1)  # runs once per trace, never when a compiled program is reused
        return original(self, *args)

    SparsePGD.program = counting_program  # a subclass would change the jit key
    try:
        swept = attack.sweep(mlp_victim, hp, images, labels, key, targets=targets)
    finally:
        SparsePGD.program = original
    assert len(traces) == 1  # one compilation for every budget
    pixels = np.any(np.asarray(swept.delta) != 0, axis=-1).sum(axis=(2, 3))
    assert np.all(pixels <= np.asarray(ks)[:, None])
    assert np.all(np.asarray(swept.linf) <= 0.4 * (1 + 1e-6))
    assert np.all((swept.x_adv >= 0.0) & (swept.x_adv <= 1.0))
    flat = swept.x_adv.reshape((-1,) + images.shape[1:])  # (K·b, ...)
    predicted = np.argmax(mlp_victim.batch(flat), axis=-1)
    np.testing.assert_array_equal(
        np.asarray(swept.success).ravel(), predicted == np.tile(np.asarray(targets), len(ks))
    )
    rate = np.asarray(swept.success).mean(axis=1)
    assert rate[-1] > rate[0]  # a larger budget helps somewhere: the sweep is not vacuous
    # A loop of eager (no-jit) single-example runs over budgets and examples gives the compiled,
    # vmapped sweep's results.
    keys = jax.random.split(key, images.shape[0])
    for j, k in enumerate(ks):
        for i in (2, 5):
            with jax.disable_jit():
                one = attack(
                    mlp_victim, hp._replace(k=k), images[i], labels[i], keys[i], targets[i]
                )
            assert_results_close(one, jax.tree.map(lambda x: x[j, i], swept))


# -- C&W ℓ0 ----------------------------------------------------------------------------------------


def test_cw_l0_shrinks_to_the_minimal_support_never_above_its_cw_l2_start(linear_problem):
    victim, x0, label, u, margin = linear_problem
    # Four tiny problems: x0 = 0.5 everywhere (where one entry suffices), and three random x0.
    starts = jnp.concatenate(
        [x0[None], jax.random.uniform(jax.random.key(5), (3,) + x0.shape, minval=0.3, maxval=0.7)]
    )
    labels = jnp.argmax(victim.batch(starts), axis=-1)
    targets = 1 - labels  # targeted, measured against the target
    l0 = cw_l0(steps=50, search_steps=4, rounds=6, unit="element", targeted=True)
    l2 = cw_l2(steps=50, search_steps=4, targeted=True)
    run = jax.jit(jax.vmap(rolled, in_axes=(None, None, None, 0, 0, 0, None)), static_argnums=0)
    values = dict(step_size=0.05, initial_const=0.1)
    key = jax.random.key(0)
    sparse = run(l0, victim, l0.hparams(**values, shrink=0.5), starts, labels, targets, key)
    dense = run(l2, victim, l2.hparams(**values), starts, labels, targets, key)
    ok = np.asarray(sparse.success)
    assert np.all(ok) and np.all(np.asarray(dense.success))
    np.testing.assert_array_equal(np.argmax(victim.batch(sparse.x_adv), axis=-1), targets)
    assert np.all(np.asarray(sparse.l0) <= np.asarray(dense.l0))
    assert float(dense.l0[0]) == x0.size and float(sparse.l0[0]) == 1  # C&W-ℓ2 moves every entry
    assert int(np.flatnonzero(sparse.delta[0])[0]) == np.argmax(np.abs(u))
    for i in range(4):  # never below the fewest entries that can flip the label (greedy in |u|)
        room = np.where(
            np.sign(u) * (1 - 2 * int(labels[i] != label)) > 0, starts[i], 1 - starts[i]
        )
        reach = np.cumsum(np.sort(np.abs(u) * room)[::-1])
        m = abs(float(np.dot(u, starts[i])))
        assert float(sparse.l0[i]) >= 1 + np.searchsorted(reach, m)


# -- SparseFool ------------------------------------------------------------------------------------

FOOL = sparsefool(steps=10, deepfool_steps=5)


def run_fool(victim, hp, x0, label):
    return rolled(FOOL, victim, hp, x0, label, label, jax.random.key(0))


def test_sparsefool_moves_only_the_largest_weight_of_a_linear_victim(linear_problem):
    victim, x0, label, u, margin = linear_problem
    result = run_fool(victim, FOOL.hparams(lam=1.0), x0, label)
    j = int(np.argmax(np.abs(u)))
    assert bool(result.success) and np.flatnonzero(result.delta).tolist() == [j]
    # λ = 1: the DeepFool boundary (plus its 1e-4 and the solver's 1e-3 slack), overshot by 2%.
    minimal = margin / abs(float(u[j]))
    slack = (1e-4 + 1e-3) * float(np.linalg.norm(u)) / abs(float(u[j]))
    assert -np.sign(u[j]) * result.delta[j] >= 1.02 * minimal * (1 - 1e-5)
    assert -np.sign(u[j]) * result.delta[j] <= 1.02 * (minimal + slack) * (1 + 1e-5)


def test_sparsefool_uses_the_next_weight_where_the_box_stops_the_largest(linear_problem):
    victim, x0, label, u, margin = linear_problem
    result = run_fool(victim, FOOL.hparams(lam=3.0), x0, label)
    first, second = np.argsort(-np.abs(u))[:2]
    assert 3.0 * margin / abs(float(u[first])) > 0.5  # λ·r lies beyond the box on `first`
    assert bool(result.success)
    assert sorted(np.flatnonzero(result.delta).tolist()) == sorted([first, second])
    assert float(x0[first] + result.delta[first]) in (0.0, 1.0)  # saturated at the box
    assert np.sign(result.delta[second]) == -np.sign(u[second])


def test_l1_linear_solve_matches_a_linear_program():
    solve = jax.jit(l1_linear_solve)
    rng = np.random.default_rng(0)
    for _ in range(12):
        n = int(rng.integers(2, 9))
        x = rng.uniform(0.0, 1.0, n).astype(np.float32)
        w = rng.normal(size=n).astype(np.float32)
        w /= np.linalg.norm(w)
        point = x + rng.uniform(0.05, 0.6) * w  # the plane lies on the +w side of x
        moved = np.asarray(solve(x, w, point, 0.0, 1.0)) - x
        # min ‖d‖₁ s.t. w·d ≥ w·(point − x) + 1e-3, 0 ≤ x + d ≤ 1, as d = d⁺ − d⁻.
        need = float(w @ (point - x)) + 1e-3
        lp = linprog(
            np.ones(2 * n),
            A_ub=-np.concatenate([w, -w])[None],
            b_ub=[-need],
            bounds=[(0, 1 - xi) for xi in x] + [(0, xi) for xi in x],
        )
        if lp.status == 2:  # infeasible: the solver must push every useful entry to the box
            np.testing.assert_allclose(x + moved, np.where(w > 0, 1.0, 0.0), atol=1e-6)
            continue
        np.testing.assert_allclose(np.abs(moved).sum(), lp.fun, rtol=1e-4, atol=1e-6)
        assert float(w @ moved) >= need * (1 - 1e-4)


def test_sparsefool_targeted_reaches_every_target_of_a_linear_victim():
    victim = make_linear_victim(num_classes=4, bounds=(0.0, 1.0), seed=3)
    x0 = jnp.full(victim.input_shape, 0.5)
    label = int(jnp.argmax(victim(x0)))
    targets = jnp.array([t for t in range(4) if t != label], jnp.int32)
    attack = sparsefool(steps=20, deepfool_steps=5, targeted=True)
    run = jax.jit(
        jax.vmap(rolled, in_axes=(None, None, None, None, None, 0, None)), static_argnums=0
    )
    result = run(attack, victim, attack.hparams(lam=1.0), x0, label, targets, jax.random.key(0))
    predicted = np.argmax(victim.batch(result.x_adv), axis=-1)
    np.testing.assert_array_equal(np.asarray(result.success), predicted == np.asarray(targets))
    assert np.all(np.asarray(result.success))
    assert np.all(np.asarray(result.l0) < x0.size)


# -- conformance: every entry point and loop form agrees; targeted success is against the target -

ATTACKS = {
    "cw-l0": (
        lambda: cw_l0(steps=2, search_steps=1, rounds=2, targeted=True),
        dict(step_size=0.5, initial_const=10.0, shrink=0.5),  # large steps: some succeed in 2
    ),
    "sparsefool": (lambda: sparsefool(steps=4, deepfool_steps=1, targeted=True), dict(lam=2.0)),
}


# C&W-ℓ0's eager run (its support-shrinking rounds op by op) takes 10-50 s: slow.
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "cw-l0" else n for n in ATTACKS]
)
def test_jit_vmap_equals_no_jit_loop_and_targeted_success(name, mlp_victim, mlp_batch):
    make, values = ATTACKS[name]
    attack = make()
    hp = attack.hparams(**values)
    images, labels = mlp_batch
    targets = (labels + 1) % mlp_victim.num_classes
    key = jax.random.key(7)
    batched = attack.batch(mlp_victim, hp, images, labels, key, targets=targets)
    keys = jax.random.split(key, images.shape[0])
    for i in (5,):  # an eager single-example run == its entry of the compiled, vmapped batch
        with jax.disable_jit():
            one = attack(mlp_victim, hp, images[i], labels[i], keys[i], target=targets[i])
        assert_results_close(one, jax.tree.map(lambda x: x[i], batched))
    predicted = np.argmax(mlp_victim.batch(batched.x_adv), axis=-1)
    np.testing.assert_array_equal(batched.success, predicted == np.asarray(targets))
    assert np.any(np.asarray(batched.success))
    assert batched.x_adv.dtype == jnp.float32 and np.all(np.isfinite(batched.x_adv))


# -- misuse ----------------------------------------------------------------------------------------


def test_bad_budgets_radii_and_settings_name_the_argument(mlp_victim, mlp_batch, linear_victim):
    images, labels = mlp_batch
    key = jax.random.key(0)
    attack = pgd_l0_linf(steps=1)
    with pytest.raises(ValueError, match=r"`hp.k` must be a whole number >= 1; got 0.0"):
        attack.hparams(k=0, eps=0.1)
    with pytest.raises(ValueError, match=r"`hp.k` must be a whole number >= 1; got -3.0"):
        attack.hparams(k=-3, eps=0.1)
    with pytest.raises(ValueError, match=r"`hp.eps` must be finite and > 0; got 0.0"):
        attack.hparams(k=2, eps=0.0)
    with pytest.raises(ValueError, match=r"`hp.eps` must be finite and > 0; got -0.5"):
        attack.hparams(k=2, eps=-0.5)
    with pytest.raises(ValueError, match=r"\['k'\] have no default"):
        attack.hparams(eps=0.1)
    too_many = attack.hparams(k=17, eps=0.1)  # the MLP's examples have 4×4 = 16 pixels
    with pytest.raises(ValueError, match=r"`hp.k` must be at most the number of maskable pixels"):
        attack.batch(mlp_victim, too_many, images, labels, key)
    with pytest.raises(ValueError, match=r"maskable pixels .* 16; got 17.0"):
        attack(mlp_victim, too_many, images[0], labels[0], key)
    x0 = jnp.zeros(linear_victim.input_shape)
    with pytest.raises(ValueError, match=r"`unit='pixel'` needs a channels-last example"):
        attack(linear_victim, attack.hparams(k=1, eps=0.1), x0, 0, key)
    with pytest.raises(ValueError, match=r"`unit` must be one of 'pixel', 'element'"):
        pgd_l0_linf(unit="channel")
    with pytest.raises(ValueError, match=r"`hp.shrink` must lie in \(0, 1\]; got 0.0"):
        cw_l0().hparams(shrink=0.0)
    with pytest.raises(ValueError, match=r"`rounds` must be an integer >= 1; got 0"):
        cw_l0(rounds=0)
    with pytest.raises(ValueError, match=r"`hp.initial_const` must be finite and > 0"):
        cw_l0().hparams(initial_const=0.0)
    with pytest.raises(ValueError, match=r"`hp.lam` must be finite and >= 1; got 0.5"):
        sparsefool().hparams(lam=0.5)
    with pytest.raises(ValueError, match=r"`hp.overshoot` must be >= 0; got -0.1"):
        sparsefool().hparams(overshoot=-0.1)
    with pytest.raises(ValueError, match=r"`deepfool_steps` must be an integer >= 1; got 0"):
        sparsefool(deepfool_steps=0)
    with pytest.raises(ValueError, match=r"`hp` must be a SparseFoolParams .* got L0LinfParams"):
        sparsefool()(mlp_victim, attack.hparams(k=1, eps=0.1), images[0], labels[0], key)


class _TwoPassCWL0(type(cw_l0())):
    share_pass = False  # the closing step takes its own gradient pass (the replaced form)


def test_cw_l0_takes_one_victim_pass_per_step(linear_problem):
    victim, x0, _, _, _ = linear_problem
    starts = jax.random.uniform(jax.random.key(3), (3,) + x0.shape, minval=0.3, maxval=0.7)
    labels = jnp.argmax(victim.batch(starts), axis=-1)
    settings = dict(steps=3, search_steps=2, rounds=3, unit="element", targeted=True)
    one, two = cw_l0(**settings), _TwoPassCWL0(**settings)
    assert one.length == two.length == 3 * (3 * 2 + 1)
    counts = []
    for attack in (one, two):
        hp = attack.hparams(step_size=0.05, initial_const=0.1, shrink=0.5)
        program = attack.program(victim, hp, x0, labels[0], 1 - labels[0])
        carry = jax.tree.map(lambda a: jnp.stack([a, a]), program.init(jax.random.key(0)))
        jaxpr = jax.make_jaxpr(jax.vmap(program.step))(carry)
        # The linear victim's forward and its input gradient are one matrix product each.
        counts.append(str(jaxpr).count("dot_general"))
    assert counts == [2, 4]  # one forward+backward pass per step, where two were


@pytest.mark.slow  # two attack compilations: ~10 s on the shared CPU
def test_cw_l0_one_pass_form_equals_the_two_pass_form(linear_problem):
    victim, x0, _, _, _ = linear_problem
    starts = jax.random.uniform(jax.random.key(3), (3,) + x0.shape, minval=0.3, maxval=0.7)
    labels = jnp.argmax(victim.batch(starts), axis=-1)
    settings = dict(steps=3, search_steps=2, rounds=3, unit="element", targeted=True)
    one, two = cw_l0(**settings), _TwoPassCWL0(**settings)
    results = [
        jax.vmap(rolled, in_axes=(None, None, None, 0, 0, 0, None))(
            attack,
            victim,
            attack.hparams(step_size=0.05, initial_const=0.1, shrink=0.5),
            starts,
            labels,
            1 - labels,
            jax.random.key(0),
        )
        for attack in (one, two)
    ]
    assert np.min(np.asarray(results[0].l0)) < x0.size  # the rounds shrank a support
    assert_results_close(*results)
