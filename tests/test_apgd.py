"""APGD (Croce & Hein 2020), APGD-T and ℓ1-APGD (2021): the schedules and the DLR losses against
numpy transcriptions of the papers, the ℓ1 ∩ box projection against a bisection, closed-form
optima on linear victims, and APGD-CE against PGD at the same budget."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_apply, make_mlp_victim

from jaxadv import attacks, losses
from jaxadv.attacks import _apgd_schedule as sched
from jaxadv.constraints import project_l1_box
from jaxadv.models import Victim, with_input_noise

# -- checkpoints -----------------------------------------------------------------------------------


def paper_checkpoints(n):
    """w_j = ⌈p_j·N⌉, p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    p = [Fraction(0), Fraction(22, 100)]
    while p[-1] * n <= n:
        p.append(p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)))
    ws = sorted({math.ceil(q * n) for q in p[1:]})
    return tuple(w for w in ws if 1 <= w <= n - 1)


def test_checkpoints_follow_the_paper_and_the_reference_code():
    assert sched.checkpoints(100) == (22, 41, 57, 70, 80, 87, 93, 99)  # the paper's p_j × 100
    assert sched.checkpoints(100, "reference") == sched.checkpoints(100)
    for n in (1, 5, 10, 37, 100, 250, 1000):
        assert sched.checkpoints(n) == paper_checkpoints(n), n
    # The code's integer windows differ from ⌈p_j·N⌉ for other N (here N = 50).
    assert sched.checkpoints(50, "reference") == (11, 21, 30, 38, 45)
    assert sched.checkpoints(50) == (11, 21, 29, 35, 40, 44, 47)
    assert sched.l1_checkpoints(100) == tuple(range(4, 100, 4))


# -- the ℓ∞/ℓ2 step-size schedule ------------------------------------------------------------------


def numpy_schedule(losses_, rho, eta0, schedule):
    """Sec. 3.2 of the paper on a fixed sequence of evaluated (minimised) losses L = −f: the
    decision at each checkpoint w_j, taken once f(x^(w_j)) is known."""
    f = -np.asarray(losses_, np.float64)
    n = len(f)
    points = paper_checkpoints(n) if schedule == "paper" else sched.checkpoints(n, "reference")
    eta, fmax = eta0, -np.inf
    seen = []  # f(x^(i)) of the point iteration i steps from (the best one after a restart)
    prev_w, eta_prev, fmax_prev, halved_prev = 0, eta0, None, schedule == "reference"
    decisions = []
    for k in range(n):
        fmax = max(fmax, f[k])
        seen.append(f[k])
        if k == 0:
            fmax_prev = fmax
        if k in points:
            count = sum(seen[i + 1] > seen[i] for i in range(prev_w, k))
            window = k - prev_w
            c1 = count < rho * window if schedule == "paper" else count <= rho * window
            if schedule == "paper":  # η(w_{j−1}) ≡ η(w_j) and f_max(w_{j−1}) ≡ f_max(w_j)
                c2 = eta_prev == eta and fmax_prev == fmax
            else:
                c2 = not halved_prev and fmax_prev >= fmax
            halve = c1 or c2
            decisions.append((k, bool(halve), bool(c1), bool(c2)))
            eta_prev, fmax_prev, halved_prev = eta, fmax, halve
            if halve:
                eta /= 2
                if schedule == "paper":
                    seen[k] = fmax  # x^(w_j) ← x_max
            prev_w = k
    return decisions, eta


@functools.partial(jax.jit, static_argnames="schedule")
def jax_schedule(losses_, rho, eta0, schedule):
    n = losses_.shape[-1]
    tables = sched.checkpoint_tables(sched.checkpoints(n, schedule), n)
    is_check, window = map(jnp.asarray, tables)

    def run(seq):
        def body(state, inputs):
            k, loss = inputs
            state, _, halve = sched.step_schedule_update(
                state, loss, k, is_check[k], window[k], rho, schedule
            )
            return state, halve

        state, halves = jax.lax.scan(
            body, sched.step_schedule_init(eta0, schedule), (jnp.arange(n), seq)
        )
        return halves, state.step_size

    return jax.vmap(run)(losses_)


def loss_sequences(n=100):
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(0.0, 1.0, (6, n)), axis=1)
    descending = -np.linspace(0, 5, n) + 0.3 * rng.normal(size=n)  # mostly rising f: few halvings
    plateau = np.where(np.arange(n) < 10, -np.arange(n), -9.0)  # flat: condition 2
    oscillating = np.tile([0.0, -1.0], n // 2)  # rises in half the steps: condition 1 (ρ = 0.75)
    # Rises in 4 of 5 steps, never above the first point: condition 2 alone.
    sawtooth = np.where(np.arange(n) == 0, -100.0, -(np.arange(n) % 5))
    return np.vstack([walks, descending, plateau, oscillating, sawtooth]).astype(np.float32)


@pytest.mark.parametrize("schedule", ["paper", "reference"])
def test_step_schedule_matches_a_numpy_transcription(schedule):
    seqs = loss_sequences()
    halves, etas = jax_schedule(jnp.asarray(seqs), 0.75, 1.0, schedule)
    fired = set()
    for seq, got, eta in zip(seqs, np.asarray(halves), np.asarray(etas)):
        decisions, eta_ref = numpy_schedule(seq, 0.75, 1.0, schedule)
        want = np.zeros(len(seq), bool)
        for k, halve, c1, c2 in decisions:
            want[k] = halve
            fired |= {"c1"} if c1 else set()
            fired |= {"c2"} if c2 and not c1 else set()
        np.testing.assert_array_equal(got, want)
        assert eta == eta_ref
    assert fired == {"c1", "c2"}  # both conditions decided some halving


def test_sparsity_schedule_matches_a_numpy_transcription():
    """ℓ1-APGD: at each check, k ← ‖x_best − x0‖₀/1.5; η reset to η₀ (and a restart) if that count
    fell by more than 5%, else η/1.5 within [η₀/10, η₀]."""
    rng = np.random.default_rng(1)
    n, size, eta0 = 60, 50, 2.0
    seq = np.cumsum(rng.normal(size=n)).astype(np.float32)
    counts = rng.integers(1, size, n).astype(np.float32)
    is_check, _ = sched.checkpoint_tables(sched.l1_checkpoints(n), n)
    # numpy
    best, best_count, eta, sparsity, old = np.inf, np.nan, eta0, 0.2, size
    want = []
    for k in range(n):
        if seq[k] < best:
            best, best_count = seq[k], counts[k]
        if is_check[k]:
            shrunk = best_count / old < 0.95
            eta = eta0 if shrunk else eta / 1.5
            eta = min(max(eta, eta0 / 10), eta0)
            sparsity, old = best_count / size / 1.5, best_count
        want.append((eta, sparsity, is_check[k] and shrunk))
    # jax, one step at a time
    state, best_count_j = sched.sparsity_schedule_init(eta0, size), jnp.float32(0)
    for k in range(n):
        state, improved, restart = sched.sparsity_schedule_update(
            state, seq[k], is_check[k], counts[k], best_count_j, eta0, size
        )
        best_count_j = jnp.where(improved, counts[k], best_count_j)
        np.testing.assert_allclose(
            (state.step_size, state.sparsity), want[k][:2], rtol=1e-6, err_msg=str(k)
        )
        assert bool(restart) == want[k][2], k
    assert any(w[2] for w in want) and not all(w[2] for w in want if w[0])


# -- DLR -------------------------------------------------------------------------------------------


def test_dlr_losses_match_the_published_definitions():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20, 7)).astype(np.float32) * 3
    y, t = np.array([rng.choice(7, 2, replace=False) for _ in range(20)]).T
    want, want_t = [], []
    for zi, yi, ti in zip(z, y, t):
        s = np.sort(zi)[::-1]  # z_π1 ≥ z_π2 ≥ …
        want.append(-(zi[yi] - np.max(np.delete(zi, yi))) / (s[0] - s[2] + 1e-12))  # maximised
        want_t.append(-(zi[yi] - zi[ti]) / (s[0] - 0.5 * (s[2] + s[3]) + 1e-12))
    got = jax.vmap(losses.dlr)(z, y)
    got_t = jax.vmap(lambda *a: losses.dlr(*a, targeted=True))(z, y, t)
    np.testing.assert_allclose(got, -np.asarray(want), rtol=1e-5, atol=1e-6)  # minimised
    np.testing.assert_allclose(got_t, -np.asarray(want_t), rtol=1e-5, atol=1e-6)


def test_dlr_refuses_too_few_classes():
    with pytest.raises(ValueError, match="at least 3 classes.*2 classes"):
        losses.dlr(jnp.zeros(2), 0)
    with pytest.raises(ValueError, match="at least 4 classes.*3 classes"):
        losses.dlr(jnp.zeros(3), 0, 1, targeted=True)
    x = jnp.full((12,), 0.5)
    for loss, classes in (("dlr", 2), ("dlr-targeted", 3)):
        attack = attacks.apgd(loss=loss, steps=2)
        with pytest.raises(ValueError, match=f"num_classes={classes}"):
            attack(linear_box_victim(classes=classes), attack.hparams(), x, 0, jax.random.key(0))
    attack = attacks.apgd(loss="dlr-targeted", n_target_classes=9)
    with pytest.raises(ValueError, match="n_target_classes"):
        attack(linear_box_victim(classes=5), attack.hparams(), x, 0, jax.random.key(0))


def test_bad_arguments_name_themselves():
    for kwargs, name in [
        (dict(norm="l3"), "norm"),
        (dict(loss="mse"), "loss"),
        (dict(schedule="fast"), "schedule"),
        (dict(eot_iter=0), "eot_iter"),
        (dict(restarts=2, random_start=False), "restarts"),
    ]:
        with pytest.raises(ValueError, match=name):
            attacks.apgd(**kwargs)
    attack = attacks.apgd(eot_iter=2, steps=2)
    with pytest.raises(ValueError, match="eot_iter=2"):
        attack(linear_box_victim(), attack.hparams(), jnp.full((12,), 0.5), 0, jax.random.key(0))


# -- the ℓ1 ∩ box projection ----------------------------------------------------------------------


def bisection_projection(y, eps, lo, hi):
    """KKT form sign(y)·clip(|y| − λ, 0, room), λ by bisection on Σ = eps (float64)."""
    a, room = np.abs(y), np.maximum(np.where(y >= 0, hi, -lo), 0)
    phi = lambda lam: np.clip(a - lam, 0, room).sum()  # noqa: E731
    lam_lo, lam_hi = 0.0, a.max() + 1
    if phi(0.0) > eps:
        for _ in range(80):  # float64: the bracket is below 1e-20 of its start
            mid = (lam_lo + lam_hi) / 2
            lam_lo, lam_hi = (mid, lam_hi) if phi(mid) > eps else (lam_lo, mid)
    else:
        lam_hi = 0.0
    return np.sign(y) * np.clip(a - lam_hi, 0, room)


def test_l1_box_projection_is_exact():
    rng = np.random.default_rng(3)
    n, d = 30, 24
    x0 = rng.uniform(0, 1, (n, d))
    y = rng.normal(0, 1, (n, d)) * rng.uniform(0.1, 2, (n, 1))
    y[::2, : d // 3] = 0  # exact zeros in half the trials
    eps = rng.uniform(0.01, 4, n)
    lo, hi = -x0, 1 - x0
    project = jax.jit(jax.vmap(project_l1_box))
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    got = np.asarray(project(f32(y), f32(eps), f32(lo), f32(hi)), np.float64)
    others = np.asarray(project(f32(rng.normal(size=(n, d))), f32(eps), f32(lo), f32(hi)))
    for yi, gi, zi, ei, li, hi_ in zip(y, got, others, eps, lo, hi):
        np.testing.assert_allclose(gi, bisection_projection(yi, ei, li, hi_), atol=2e-5)
        assert np.abs(gi).sum() <= ei * (1 + 1e-5)
        assert np.all(gi >= np.float32(li)) and np.all(gi <= np.float32(hi_))
        assert np.dot(yi - gi, zi - gi) <= 1e-4  # the nearest point: ⟨y − P, z − P⟩ ≤ 0
    assert not np.any(np.asarray(project_l1_box(jnp.ones(5), 0.0, -1.0, 1.0)))


# -- attacks on linear victims: closed-form optima ------------------------------------------------


def linear_box_victim(dim=12, classes=2, seed=0):
    """An affine classifier on inputs in [0, 1]."""
    w = jax.random.normal(jax.random.key(seed), (classes, dim))
    return Victim({"w": w, "b": jnp.zeros(classes)}, linear_apply, (dim,), classes, (0.0, 1.0))


@pytest.fixture(scope="module")
def linear_case():
    victim = linear_box_victim()
    x = jax.random.uniform(jax.random.key(1), (4, 12), minval=0.2, maxval=0.8)
    y = jnp.argmax(victim.batch(x), -1)
    w = np.asarray(victim.variables["w"])
    d = w[np.asarray(y)] - w[1 - np.asarray(y)]  # the margin z_y − z_other = d·x is minimised
    return victim, x, y, d


def run_linear(linear_case, norm, eps, steps=4, **kwargs):
    victim, x, y, d = linear_case
    attack = attacks.apgd(norm=norm, steps=steps, **kwargs)
    result = attack.batch(victim, attack.hparams(eps=eps), x, y, jax.random.key(0))
    delta = np.asarray(result.x_adv - x, np.float64)
    assert np.all(result.x_adv >= 0) and np.all(result.x_adv <= 1)
    assert np.all(np.asarray(result.queries) == steps) and not np.any(result.zero_gradient)
    return result, delta, np.sum(d * delta, -1)  # the change of the margin


def test_linf_reaches_the_box_constrained_optimum(linear_case):
    _, x, _, d = linear_case
    result, delta, _ = run_linear(linear_case, "linf", 0.3)
    x = np.asarray(x)
    optimum = np.clip(-0.3 * np.sign(d), -x, 1 - x)  # coordinate-wise: ball ∩ box
    np.testing.assert_allclose(delta, optimum, atol=1e-6)
    assert np.max(np.abs(np.asarray(result.delta))) <= 0.3


def test_a_flat_victim_reports_zero_gradients(linear_case):
    victim, x, y, _ = linear_case  # the same compiled program as the ℓ∞ test: weights are data
    flat = victim.replace(variables=jax.tree.map(jnp.zeros_like, victim.variables))
    attack = attacks.apgd(norm="linf", steps=4)
    result = attack.batch(flat, attack.hparams(eps=0.3), x, y, jax.random.key(0))
    assert np.all(result.zero_gradient) and np.all(np.asarray(result.linf) <= 0.3)


def test_l2_reaches_the_optimum_along_w(linear_case):
    _, _, _, d = linear_case  # eps 0.2 < the box's room 0.2 everywhere: the box is inactive
    result, delta, _ = run_linear(linear_case, "l2", 0.2, random_start=False)
    optimum = -0.2 * d / np.linalg.norm(d, axis=-1, keepdims=True)
    np.testing.assert_allclose(delta, optimum, atol=1e-5)
    assert np.all(np.asarray(result.l2) <= 0.2 * (1 + 1e-6))


@pytest.mark.slow
def test_l1_comes_close_to_the_knapsack_optimum(linear_case):
    _, x, _, d = linear_case
    _, delta, change = run_linear(linear_case, "l1", 1.0, steps=10)
    x = np.asarray(x)
    best = []  # fill the largest |d_i| to the box until eps is spent (a fractional knapsack)
    for di, xi in zip(d, x):
        room = np.where(di > 0, xi, 1 - xi)  # moving against d lowers the margin
        gain, left = 0.0, 1.0
        for i in np.argsort(-np.abs(di)):
            move = min(room[i], left)
            gain, left = gain + move * abs(di[i]), left - move
        best.append(-gain)
    assert np.all(np.abs(delta).sum(-1) <= 1.0 * (1 + 1e-5))
    assert np.all(change >= np.asarray(best) - 1e-5)  # never beyond the optimum
    assert np.all(change <= 0.9 * np.asarray(best))  # within 10% of it in 10 steps


# -- APGD-CE against PGD at the same budget and steps ----------------------------------------------


def test_apgd_ce_is_at_least_as_strong_as_pgd():
    victim = make_mlp_victim()
    x = jax.random.uniform(jax.random.key(7), (64, 4, 4, 1))
    y = jnp.argmax(victim.batch(x), -1)
    robust = {}
    for name, attack in [("apgd", attacks.apgd(steps=4)), ("pgd", attacks.pgd(steps=4))]:
        robust[name] = []
        for eps in (0.02, 0.06, 0.1):  # eps is data: one compiled program per attack
            result = attack.batch(victim, attack.hparams(eps=eps), x, y, jax.random.key(0))
            assert np.all(np.asarray(result.linf) <= eps + 1e-7)
            robust[name].append(1 - float(np.mean(result.success)))
    assert np.all(np.asarray(robust["apgd"]) <= np.asarray(robust["pgd"])), robust
    assert np.all(np.asarray(robust["pgd"]) > 0)  # the comparison is not vacuous


# -- APGD-T, EOT (slow: extra programs) ------------------------------------------------------------


@pytest.mark.slow
def test_apgd_t_runs_over_the_top_classes():
    victim = make_mlp_victim(num_classes=5)
    x = jax.random.uniform(jax.random.key(5), (16, 4, 4, 1))
    y = jnp.argmax(victim.batch(x), -1)
    attack = attacks.apgd(loss="dlr-targeted", n_target_classes=3, steps=10)
    result = attack.batch(victim, attack.hparams(eps=0.1), x, y, jax.random.key(0))
    assert np.all(np.asarray(result.queries) == 30) and result.trace.shape == (16, 10)
    assert np.array_equal(result.success, jnp.argmax(result.logits, -1) != y)
    assert np.all(np.asarray(result.linf) <= 0.1 + 1e-7)
    ce = attacks.apgd(steps=10).batch(victim, attack.hparams(eps=0.1), x, y, jax.random.key(0))
    assert result.success.mean() >= ce.success.mean() - 1 / 16


@pytest.mark.slow
def test_eot_on_noise_free_draws_equals_the_plain_attack():
    victim = make_mlp_victim()
    x = jax.random.uniform(jax.random.key(7), (8, 4, 4, 1))
    y = jnp.argmax(victim.batch(x), -1)
    plain = attacks.apgd(steps=6)
    hp = plain.hparams(eps=0.05)
    want = plain.batch(victim, hp, x, y, jax.random.key(0))
    eot = attacks.apgd(steps=6, eot_iter=3)
    got = eot.batch(with_input_noise(victim, 0.0), hp, x, y, jax.random.key(0))
    np.testing.assert_allclose(got.x_adv, want.x_adv, atol=1e-6)
    assert np.all(np.asarray(got.queries) == 18)
    noisy = eot.batch(with_input_noise(victim, 0.3), hp, x, y, jax.random.key(0))
    assert np.all(np.asarray(noisy.linf) <= 0.05 + 1e-7) and not np.allclose(
        noisy.x_adv, want.x_adv
    )


@pytest.mark.slow
def test_digits_apgd_ce_is_at_least_as_strong_as_pgd():
    from jaxadv.data import load_digits
    from jaxadv.training import default_victim

    victim, _ = default_victim(progress=False)
    data = load_digits(size=28)
    x, y = jnp.asarray(data.test_images[:64]), jnp.asarray(data.test_labels[:64])
    robust = {}
    for name, attack in [("apgd", attacks.apgd(steps=20)), ("pgd", attacks.pgd(steps=20))]:
        result = attack.batch(victim, attack.hparams(eps=0.1), x, y, jax.random.key(0))
        robust[name] = 1 - float(np.mean(result.success))
    assert robust["apgd"] <= robust["pgd"], robust
