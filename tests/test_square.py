"""The Square Attack: the schedule and the ℓ2 bump against numpy transcriptions of the published
definitions, budgets and box, a non-increasing loss trace, exact query counts (a black-box victim
that counts its calls), success on the tiny MLP, and clear errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks
from jaxadv.attacks import _square
from jaxadv.models import Victim

from conftest import make_mlp_victim, mlp_apply

NORMS = ("linf", "l2")

# -- numpy transcriptions of the published definitions ----------------------------------------------


def p_selection(p_init, it, n_iters):
    """The authors' schedule (attack.py, ``p_selection``), in float64 as they compute it."""
    it = int(it / n_iters * 10000)
    for k, (lo, hi) in enumerate(
        [(10, 50), (50, 200), (200, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 6000),
         (6000, 8000), (8000, 10000)]
    ):  # fmt: skip
        if lo < it <= hi:
            return p_init / 2 ** (k + 1)
    return p_init


def side(p, h, w, norm):
    """The side for fractions ``p`` (an array): round(√(p·h·w)) half to even, as Python's round."""
    s = np.round(np.sqrt(np.asarray(p, np.float64) * h * w)).astype(int)
    if norm == "linf":
        s = np.maximum(s, 1)
    else:
        s = np.maximum(s, 3)
        s += s % 2 == 0
    return np.minimum(s, min(h, w))


def rectangle(x, y):
    """The authors' pseudo-Gaussian rectangle: rings of 1/(k+1)² around (x//2, y//2), unit norm."""
    delta = np.zeros([x, y])
    cx, cy = x // 2, y // 2
    for k in range(max(x, y) // 2 + 1):
        delta[max(cx - k, 0) : cx + k + 1, max(cy - k, 0) : cy + k + 1] += 1.0 / (k + 1) ** 2
    return delta / np.sqrt(np.sum(delta**2))


def eta(s):
    delta = np.zeros([s, s])
    if s // 2:
        delta[: s // 2] = rectangle(s // 2, s)
    delta[s // 2 :] = -rectangle(s - s // 2, s)
    return delta / np.sqrt(np.sum(delta**2))


BUDGETS = (1, 37, 5000, 12345)
SHAPES = ((28, 28), (4, 4), (224, 224), (5, 9))


@jax.jit
def _schedules(p_inits):
    """p for every iteration of each budget (rows: p_inits), and the sides of each shape."""
    out = {}
    for queries in BUDGETS:
        its = jnp.arange(max(queries - 1, 1))
        p = _square.square_schedule(p_inits[:, None], its, queries)
        sides = {(n, h, w): _square.square_side(p, (h, w), n) for n in NORMS for h, w in SHAPES}
        out[queries] = p, sides
    return out


def test_schedule_and_side_match_the_published_definition():
    p_inits = np.asarray([0.05, 0.3, 0.8, 1.0], np.float32)
    for queries, (p, sides) in _schedules(p_inits).items():
        for k, p_init in enumerate(p_inits):
            want = np.asarray([p_selection(float(p_init), i, queries) for i in range(p.shape[1])])
            np.testing.assert_allclose(p[k], want, rtol=1e-7)
            for (norm, h, w), got in sides.items():
                np.testing.assert_array_equal(got[k], side(want, h, w, norm), err_msg=norm)
    # the halvings happen after iterations 10, 50, ..., 8000 of 10,000
    p = _square.square_schedule(1.0, np.asarray([10, 11, 50, 51, 8000, 8001, 9999]), 10000)
    np.testing.assert_array_equal(p, [1, 0.5, 0.5, 0.25, 1 / 256, 1 / 512, 1 / 512])


def test_l2_bump_matches_the_published_eta():
    """η for every side 1..13 (a traced side, one compilation), at the origin of a 13×13 grid."""
    sums = _square._inverse_square_sums(8)
    a, b = jnp.arange(13)[:, None], jnp.arange(13)[None, :]
    sides = jnp.arange(1, 14)
    grids = jax.jit(jax.vmap(lambda s, t: _square.bump(a, b, s, t, sums), in_axes=(0, None)))
    plain, flipped = np.asarray(grids(sides, False)), np.asarray(grids(sides, True))
    for s, got, got_t in zip(range(1, 14), plain, flipped):
        want = np.zeros((13, 13))
        want[:s, :s] = eta(s)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=f"side {s}")
        np.testing.assert_allclose(got_t, want.T, rtol=1e-5, atol=1e-7, err_msg=f"side {s}")


# -- the attack on the tiny MLP --------------------------------------------------------------------

N = 6
QUERIES = 6  # 5 steps: one compiled program on CPU


@functools.lru_cache(maxsize=None)
def _inputs():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(42), (N, 4, 4, 1))
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    return victim, images, labels


@functools.lru_cache(maxsize=None)
def _run(norm, eps, grey=False):
    """One compiled batch per setting (``grey``: constant 0.5 images, no box clipping)."""
    victim, images, labels = _inputs()
    if grey:
        images = jnp.full_like(images, 0.5)
    attack = attacks.square(norm=norm, queries=QUERIES)
    return images, labels, attack.batch(victim, attack.hparams(eps=eps), images, labels,
                                        jax.random.key(3))  # fmt: skip


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_budget_box_monotone_trace_and_success(norm):
    eps = 0.5 if norm == "linf" else 3.0
    images, labels, r = _run(norm, eps)
    delta = np.asarray(r.delta).reshape(N, -1)
    if norm == "linf":
        assert np.all(np.abs(delta) <= np.float32(eps))
    else:
        assert np.all(np.linalg.norm(delta, axis=1) <= eps * (1 + 1e-6))
    assert np.all((np.asarray(r.x_adv) >= 0) & (np.asarray(r.x_adv) <= 1))
    np.testing.assert_allclose(r.x_adv, np.clip(images + r.delta, 0, 1), atol=1e-7)
    trace = np.asarray(r.trace)
    assert trace.shape == (N, QUERIES - 1)
    assert np.all(np.diff(trace, axis=1) <= 0)  # only improvements are accepted
    np.testing.assert_array_equal(trace[:, -1], r.loss)
    # a generous budget fools the MLP (random search: at least 5 of 6 in 5 iterations, for each
    # of the keys 0-5 too); the rest of the budget is not spent
    assert np.sum(r.success) >= N - 1
    assert np.all(r.queries == r.steps + 1) and np.all(r.queries <= QUERIES)
    assert np.any(r.queries < QUERIES)
    # untargeted margin z_y − max_{j≠y} z_j at x_adv
    z = np.asarray(r.logits)
    own = z[np.arange(N), labels]
    other = np.max(np.where(np.eye(3)[labels] > 0, -np.inf, z), axis=1)
    np.testing.assert_allclose(r.loss, own - other, rtol=1e-5)


@functools.lru_cache(maxsize=None)
def _start(eps, grey=False):
    """The ℓ∞ start alone: a budget of one query (no iterations)."""
    victim, images, labels = _inputs()
    if grey:
        images = jnp.full_like(images, 0.5)
    first = attacks.square(queries=1)
    return first.batch(victim, first.hparams(eps=eps), images, labels, jax.random.key(3))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_iterates_stay_on_the_boundary_of_the_ball(norm):
    """Without box clipping (grey images), ℓ∞ iterates are ±eps everywhere (the ℓ∞ start is
    vertical stripes) and ℓ2 iterates have ‖δ‖₂ = eps."""
    eps = 0.1 if norm == "linf" else 0.3
    _, _, r = _run(norm, eps, grey=True)
    delta = np.asarray(r.delta)
    if norm == "linf":
        np.testing.assert_array_equal(np.abs(delta), np.float32(eps))
        start = np.asarray(_start(eps, grey=True).delta)
        np.testing.assert_array_equal(np.abs(start), np.float32(eps))
        np.testing.assert_array_equal(start, np.broadcast_to(start[:, :1], start.shape))
    else:
        np.testing.assert_allclose(np.linalg.norm(delta.reshape(N, -1), axis=1), eps, rtol=1e-5)


_LOG: list = []  # what the counting victim was queried with, in order


@functools.lru_cache(maxsize=None)
def _counting_victim():
    """The MLP as a numpy black box (no gradient can pass through it) that logs every query."""
    weights = jax.tree.map(np.asarray, make_mlp_victim().variables)

    def host(x):
        _LOG.append(np.array(x))
        return np.asarray(mlp_apply(weights, x), np.float32)

    def apply_fn(variables, x):
        out = jax.ShapeDtypeStruct((x.shape[0], 3), jnp.float32)
        return jax.pure_callback(host, out, x, vmap_method="sequential")

    return Victim(variables={}, apply_fn=apply_fn, input_shape=(4, 4, 1), num_classes=3,
                  bounds=(0.0, 1.0))  # fmt: skip


@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=pytest.mark.slow)])
def test_queries_are_the_forward_passes_until_success(norm):
    """One example at a time, a victim that logs its inputs: ``queries`` is the number of forward
    passes up to the first fooling one (all of them when none fools), ``steps`` one less."""
    victim_np, images, labels = _inputs()
    attack = attacks.square(norm=norm, queries=QUERIES)
    hp = attack.hparams(eps=0.15 if norm == "linf" else 0.6)
    seen = {"success": 0, "failure": 0}
    for i in range(N):
        _LOG.clear()
        r = attack(_counting_victim(), hp, images[i], labels[i], jax.random.key(i))
        xs = np.concatenate(_LOG)
        assert len(xs) == attack.queries  # every program step is one forward pass
        fooled = np.argmax(np.asarray(victim_np.batch(xs)), axis=-1) != int(labels[i])
        first = int(np.argmax(fooled)) + 1 if fooled.any() else attack.queries
        assert int(r.queries) == first and int(r.steps) == first - 1
        assert bool(r.success) == bool(fooled.any())
        if fooled.any():  # the result is the first fooling query
            np.testing.assert_array_equal(r.x_adv, xs[first - 1])
        seen["success" if fooled.any() else "failure"] += 1
    assert seen["success"] and seen["failure"]  # both cases are exercised


def test_misclassified_start_costs_one_query_and_one_query_budget_works():
    victim, images, labels = _inputs()
    attack = attacks.square(queries=QUERIES)
    wrong = (labels + 1) % 3
    r = attack.batch(victim, attack.hparams(eps=0.0), images, wrong, jax.random.key(3))
    assert np.all(r.success) and np.all(r.queries == 1) and np.all(r.steps == 0)
    np.testing.assert_array_equal(r.x_adv, images)  # eps = 0: the start is the clean image
    assert np.all(np.asarray(r.trace) == np.asarray(r.loss)[:, None])
    r = _start(0.3)  # queries=1: no iterations, the start is the result
    assert r.trace.shape == (N, 0) and np.all(r.queries == 1) and np.all(r.steps == 0)
    assert np.all(np.abs(np.asarray(r.delta)) <= np.float32(0.3))


@pytest.mark.slow
def test_targeted_ce_reaches_the_target_and_resampling_never_repeats_the_best():
    victim, images, labels = _inputs()
    targets = (labels + 1) % 3
    attack = attacks.square(targeted=True, queries=QUERIES, resample=True)
    r = attack.batch(victim, attack.hparams(eps=0.5), images, labels, jax.random.key(1), targets)
    np.testing.assert_array_equal(np.argmax(r.logits, axis=-1) == np.asarray(targets), r.success)
    assert np.mean(r.success) >= 0.8
    ce = -jax.nn.log_softmax(r.logits)[jnp.arange(N), targets]
    np.testing.assert_allclose(r.loss, ce, rtol=1e-5)
    assert np.all(np.diff(np.asarray(r.trace), axis=1) <= 0)
    # the code's rejection step: every candidate differs from the best iterate before it (on a
    # grey-scale image, the paper's sampler repeats it in about half of its 1×1 windows), up to
    # the first success (then the best is frozen)
    attack = attacks.square(queries=40, resample=True)
    for i in range(2):
        _LOG.clear()
        attack(_counting_victim(), attack.hparams(eps=0.05), images[i], labels[i],
               jax.random.key(i))  # fmt: skip
        xs = np.concatenate(_LOG)
        z = np.asarray(victim.batch(xs))
        margin = z[:, labels[i]] - np.max(np.delete(z, int(labels[i]), axis=1), axis=1)
        best = 0
        for t in range(1, len(xs)):
            if margin[best] < 0:
                break
            assert not np.array_equal(xs[t], xs[best]), t
            best = t if margin[t] < margin[best] else best


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="`queries` must be an integer >= 1; got 0"):
        attacks.square(queries=0)
    with pytest.raises(ValueError, match="`norm`"):
        attacks.square(norm="l1")
    with pytest.raises(ValueError, match="`loss`"):
        attacks.square(loss="dlr")
    with pytest.raises(ValueError, match="`resample=True` is an ℓ∞ option"):
        attacks.square(norm="l2", resample=True)
    attack = attacks.square(queries=2)
    with pytest.raises(ValueError, match="`hp.p_init` must lie in"):
        attack.hparams(p_init=0.0)
    from conftest import make_linear_victim

    flat = make_linear_victim(bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"images of shape \[h, w, c\]"):
        attack.batch(flat, attack.hparams(), jnp.zeros((2, 12)), jnp.zeros(2, jnp.int32),
                     jax.random.key(0))  # fmt: skip
