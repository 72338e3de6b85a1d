"""The minimum-norm evaluation protocol: exact MIP minima (vs brute force), robustness curves
(vs a direct count), AttackBench local optimality, query counts, and SLIDE's ℓ1 step (pgd-ℓ1 now
reaches every example whose exact ℓ1 minimum is within the budget)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv import metrics, transforms
from jaxadv.attacks import pgd
from jaxadv.models import ReluMLP, from_flax, relu_mlp_layers


def _toy_2d(seed=3, hidden=6, classes=3):
    """A random 2→hidden→classes ReLU network; pixels in [0, 1]."""
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(size=(2, hidden)) * 3, rng.normal(size=hidden)
    w2, b2 = rng.normal(size=(hidden, classes)), rng.normal(size=classes) * 0.5
    return [(w1, b1), (w2, b2)]


def _grid_minimum(layers, x, label, norm, margin, n=401):
    """Brute force: the smallest distance from ``x`` to a grid point of [0, 1]² that the network
    assigns to another class by at least ``margin``."""
    g = np.linspace(0.0, 1.0, n)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    (w1, b1), (w2, b2) = layers
    z = np.maximum(pts @ w1 + b1, 0.0) @ w2 + b2
    adv = np.max(np.delete(z, label, axis=1), axis=1) - z[:, label] >= margin
    d = np.abs(pts - x)
    dist = d.max(1) if norm == "linf" else d.sum(1)
    return (dist[adv].min() if adv.any() else np.inf), g[1] - g[0]


@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_mip_matches_brute_force_on_a_2d_network(norm):
    layers = _toy_2d()
    checked = 0
    for x in np.random.default_rng(0).uniform(size=(6, 2)):
        label = int(
            np.argmax(np.maximum(x @ layers[0][0] + layers[0][1], 0) @ layers[1][0] + layers[1][1])
        )
        res = metrics.exact_min_norm(layers, x, label, norm=norm, margin=1e-4)
        grid, h = _grid_minimum(layers, x, label, norm, 1e-4)
        if not np.isfinite(grid):
            assert res.status == "infeasible" and res.norm == np.inf
            continue
        checked += 1
        assert res.status == "optimal" and res.fooled
        # The MIP is a true minimum: no grid point beats it, and the grid gets within a cell.
        assert res.norm <= grid + 1e-6
        assert grid <= res.norm + 2 * h
        assert res.lower_bound <= res.norm + 1e-6
    assert checked >= 3


def _relu_victim(layers, shape):
    module = ReluMLP(
        hidden=tuple(w.shape[1] for w, _ in layers[:-1]), num_classes=layers[-1][1].size
    )
    names = [f"hidden_{i}" for i in range(len(layers) - 1)] + ["logits"]
    params = {
        n: {"kernel": jnp.asarray(w, jnp.float32), "bias": jnp.asarray(b, jnp.float32)}
        for n, (w, b) in zip(names, layers)
    }
    return from_flax(
        module,
        {"params": params},
        input_shape=shape,
        num_classes=layers[-1][1].size,
        bounds=(0.0, 1.0),
    )


def test_mip_on_a_victim_equals_mip_on_its_layers_and_fools_it():
    layers = _toy_2d(seed=5)
    victim = _relu_victim(layers, (2,))
    assert all(
        np.allclose(a, b)
        for pair in zip(relu_mlp_layers(victim.variables), layers)
        for a, b in zip(*pair)
    )
    x = np.array([0.3, 0.6], np.float32)
    label = int(jnp.argmax(victim(x)))
    for norm in ("linf", "l1"):
        a = metrics.exact_min_norm(victim, x, label, norm=norm)
        b = metrics.exact_min_norm(layers, x, label, norm=norm)
        assert a.status == "optimal" and a.fooled
        assert int(jnp.argmax(victim(x + a.delta))) == a.target != label
        np.testing.assert_allclose(a.norm, b.norm, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(norm="l2"), "`norm`"),
        (dict(x=np.zeros(3)), "`x` must have 2 entries"),
        (dict(x=np.array([np.nan, 0.5])), "`x` must be finite"),
        (dict(x=np.array([1.5, 0.5])), "pixel bounds"),
        (dict(label=3), "`label`"),
        (dict(network=[(np.ones((2, 2)), np.ones(3))]), "layer 0"),
    ],
)
def test_mip_bad_input_is_named(kwargs, match):
    args = dict(network=_toy_2d(), x=np.array([0.5, 0.5]), label=0) | kwargs
    with pytest.raises(ValueError, match=match):
        metrics.exact_min_norm(args.pop("network"), args.pop("x"), args.pop("label"), **args)


def test_robust_accuracy_curve_counts_directly():
    rng = np.random.default_rng(0)
    norms = rng.uniform(0, 2, 40).astype(np.float32)
    success = rng.uniform(size=40) < 0.7
    correct = rng.uniform(size=40) < 0.8
    budgets = np.array([0.0, 0.1, 0.5, 1.0, 1.5, 3.0], np.float32)
    got = jax.jit(metrics.robust_accuracy_curve)(norms, success, correct, budgets)
    expected = [
        np.mean([c and not (s and n <= e) for n, s, c in zip(norms, success, correct)])
        for e in budgets
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got[-1], np.mean(correct & ~success), rtol=1e-6)


def test_robustness_bad_input_is_named():
    with pytest.raises(ValueError, match="`norms` must not hold NaN"):
        metrics.robust_accuracy_curve([np.nan], [True], [True], [0.1])
    with pytest.raises(ValueError, match="must share one shape"):
        metrics.robust_accuracy_curve([0.1, 0.2], [True], [True], [0.1])
    with pytest.raises(ValueError, match="`success` must hold booleans"):
        metrics.robust_accuracy_curve([0.1], [1.0], [True], [0.1])
    with pytest.raises(ValueError, match="`clean_correct` must have shape"):
        metrics.local_optimality([[0.1, 0.2]], [[True, True]], [True])


def test_local_optimality_scores_best_one_and_worse_lower():
    correct = np.array([True, True, True, False])
    norms = np.array(
        [
            [0.5, 1.0, 2.0, 0.0],  # best everywhere
            [1.0, 1.0, 2.0, 0.0],  # worse on the first example
            [9.0, 9.0, 9.0, 9.0],
        ],
        np.float32,
    )  # never succeeds
    success = np.array([[True] * 4, [True] * 4, [False] * 4])
    lo = np.asarray(jax.jit(metrics.local_optimality)(norms, success, correct))
    # By hand: eps* = 2; areas (mean of min(d, 2)): best (0.5+1+2)/4, none (2+2+2)/4, second
    # (1+1+2)/4; LO = 1 - (4 - 3.5) / (6 - 3.5) = 0.8.
    np.testing.assert_allclose(lo, [1.0, 0.8, 0.0], atol=1e-6)
    # Exact minima as reference: the best attack is then below 1 where it missed the optimum.
    ref = np.array([0.25, 1.0, 2.0, np.inf], np.float32)
    lo_ref = metrics.local_optimality(norms, success, correct, reference=ref)
    np.testing.assert_allclose(lo_ref[0], 1 - 0.25 / (6 - 3.25), atol=1e-6)


def test_query_counts_sum_the_results():
    result = type("R", (), {"queries": np.array([10, 20, 30])})()
    assert metrics.query_counts({"pgd": result}) == {
        "pgd": {"total": 60.0, "mean": 20.0, "max": 30.0}
    }
    with pytest.raises(ValueError, match="AttackResult"):
        metrics.query_counts({"pgd": 3})


def test_l1_steepest_skips_saturated_coordinates():
    g = jnp.array([-5.0, 1.0, -0.5, 4.0])  # descent moves along -g: +5, -1, +0.5, -4
    delta = jnp.array([0.2, 0.0, 0.0, -0.3])
    lower, upper = jnp.array([-1.0, -1.0, -1.0, -0.3]), jnp.array([0.2, 1.0, 1.0, 1.0])
    tx = transforms.l1_steepest(0.99)
    plain, _ = tx.update(g, tx.init(delta), delta)
    boxed, _ = tx.update(g, tx.init(delta), delta, box=(lower, upper))
    np.testing.assert_array_equal(plain, [-1.0, 0.0, 0.0, 0.0])  # the saturated coordinate 0
    np.testing.assert_array_equal(boxed, [0.0, 1.0, 0.0, 0.0])  # 0 and 3 are saturated
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(g, tx.init(delta), None, box=(lower, upper))


class _WithoutBox:
    """The same step rule with the box dropped: the ℓ1 step before the SLIDE fix."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, hp):
        tx = self.inner(hp)
        return optax.GradientTransformation(tx.init, lambda u, s, p=None: tx.update(u, s, p))

    def __hash__(self):
        return hash(("without-box", self.inner))

    def __eq__(self, other):
        return isinstance(other, _WithoutBox) and other.inner == self.inner


def _saturating_victim():
    """Class 1 wins by raising pixels; the strongest pixel of each image is already at 1."""
    w = np.array([5.0, 1.0, 1.5, 0.8])
    layers = [(np.eye(4), np.zeros(4)), (np.stack([np.zeros(4), w], 1), np.array([6.5, 0.0]))]
    return _relu_victim(layers, (2, 2, 1)), layers


def test_slide_step_reaches_every_exact_minimum_where_the_old_step_stalls():
    victim, layers = _saturating_victim()
    base = np.array([1.0, 0.2, 0.1, 0.3], np.float32)
    images = np.stack([base + [0, d, 0, d / 2] for d in np.linspace(0, 0.2, 8)]).reshape(8, 2, 2, 1)
    labels = np.zeros(8, np.int32)
    assert np.all(np.argmax(jax.vmap(victim)(images), -1) == 0)
    exact = [metrics.exact_min_norm(layers, x, 0, norm="l1") for x in images]
    assert all(r.status == "optimal" and r.fooled for r in exact)
    eps = 1.25 * max(r.norm for r in exact)
    attack = pgd(norm="l1", steps=10)
    hp = attack.hparams(eps=eps)
    after = attack.batch(victim, hp, images, labels, jax.random.key(0))
    old = dataclasses.replace(attack, step_rule=_WithoutBox(attack.step_rule))
    before = old.batch(victim, hp, images, labels, jax.random.key(0))
    assert np.mean(after.success) >= 0.99
    assert np.all(np.asarray(after.l1) <= eps * (1 + 1e-5))
    assert np.mean(before.success) < 0.5


@pytest.mark.slow
def test_digits_relu_victim_exact_minima_bound_the_attacks():
    """On the 8×8 digits ReLU net: no attack beats the exact minimum, and pgd-ℓ1 with the SLIDE
    step reaches every example at a budget above the largest exact ℓ1 minimum (the old step
    stalled at ~20%; see the report's numbers for 50 images)."""
    from jaxadv.data import load_digits
    from jaxadv.training import small_relu_victim

    victim, info = small_relu_victim()
    assert info["test_accuracy"] >= 0.9
    data = load_digits(size=8)
    logits = jax.vmap(victim)(data.test_images[:40])
    keep = np.flatnonzero(np.argmax(logits, -1) == data.test_labels[:40])[:10]
    images, labels = data.test_images[keep], data.test_labels[keep]
    exact = {
        norm: np.array(
            [
                metrics.exact_min_norm(victim, x, int(y), norm=norm).norm
                for x, y in zip(images, labels)
            ]
        )
        for norm in ("linf", "l1")
    }
    assert np.all(np.isfinite(exact["linf"])) and np.all(np.isfinite(exact["l1"]))
    # Below each exact minimum no attack may succeed: PGD-ℓ∞ at 0.98× the minimum fails.
    attack = pgd(norm="linf", steps=50)
    for x, y, e in zip(images, labels, exact["linf"]):
        res = attack(victim, attack.hparams(eps=0.98 * e), x, y, jax.random.key(0))
        assert not bool(res.success)
    # Above the largest exact ℓ1 minimum, the SLIDE step reaches every example; the old one not.
    attack = pgd(norm="l1", steps=100)
    hp = attack.hparams(eps=1.8 * exact["l1"].max())
    after = attack.batch(victim, hp, images, labels, jax.random.key(0))
    old = dataclasses.replace(attack, step_rule=_WithoutBox(attack.step_rule))
    before = old.batch(victim, hp, images, labels, jax.random.key(0))
    assert np.mean(after.success) >= 0.99
    assert np.mean(before.success) < 0.5
