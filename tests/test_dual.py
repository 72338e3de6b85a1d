"""The dual-perturbation attack (Tong, Guo, Prakash, Vorobeychik et al., appendix A): PGD when the
foreground is everything (or nothing), each region's budget, the λ·S term's sign and absence, a
numpy transcription of one step, the sweep over ε_F, and the misuse errors."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, constraints, losses, models
from jaxadv.attacks import DualLabels
from jaxadv.models.saliency import SaliencyVictim

from conftest import make_mlp_victim

N = 3  # as tests/test_conformance.py: the plain ℓ∞ run is its registry entry's program
SHAPE = (4, 4, 1)
STEPS = 2
KEY = jax.random.key(3)


def _saliency_apply(variables, x):
    """A per-pixel logistic map of the image's own size (a pure function: cheap to compile)."""
    return jax.nn.sigmoid(x[..., 0] * variables["a"] + variables["b"])


def _saliency_victim(shape=SHAPE) -> SaliencyVictim:
    k1, k2 = jax.random.split(jax.random.key(5))
    return SaliencyVictim(
        variables={"a": 3.0 * jax.random.normal(k1, shape[:2]), "b": jax.random.normal(k2, ())},
        apply_fn=_saliency_apply,
        capture_fn=None,
        input_shape=shape,
        output="unit",
        map_shape=shape[:2],
    )


@functools.lru_cache(maxsize=None)
def _setup():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(42), (N,) + SHAPE)
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    masks = jax.random.bernoulli(jax.random.key(44), 0.5, (N,) + SHAPE[:2] + (1,))
    masks = masks.astype(jnp.float32).at[:, 1, 1].set(1.0).at[:, 2, 2].set(0.0)  # both regions
    return victim, models.with_saliency(victim, _saliency_victim()), images, labels, masks


@functools.lru_cache(maxsize=None)
def _attack(norm):
    return attacks.dual_perturbation(norm=norm, steps=STEPS)


EPS = {"linf": (0.05, 0.2), "l2": (0.3, 1.0)}


@functools.lru_cache(maxsize=None)
def _run(norm, saliency, fill=None, **values):
    """The attack on the shared batch: on the classifier with the saliency model (``saliency``)
    or without; with the shared random masks, or masks filled with ``fill``. Each (norm, victim)
    pair is one compiled program; every other setting is data."""
    victim, carrier, images, labels, masks = _setup()
    if fill is not None:
        masks = jnp.full_like(masks, fill)
    eps_f, eps_b = EPS[norm]
    hp = _attack(norm).hparams(**{"eps_f": eps_f, "eps_b": eps_b, **values})
    return _attack(norm).batch(
        carrier if saliency else victim, hp, images, DualLabels(labels, masks), KEY
    )


def _assert_same(a, b):
    for field in ("x_adv", "delta", "loss", "success", "logits"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


SLOW = pytest.mark.slow  # the ℓ2 twins of the default ℓ∞ checks, and the sweep: ~1.5 s each


@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=SLOW)])
def test_all_foreground_is_pgd_at_eps_f_and_all_background_pgd_at_eps_b(norm):
    """F = 1: PGD at ε_F; F = 0: PGD at ε_B; bit for bit, same key, random starts on. (ℓ2's F = 1
    run is on the classifier carrying a saliency model at λ = 0: its −0·S changes nothing.)"""
    victim, _, images, labels, _ = _setup()
    pgd = attacks.pgd(norm=norm, steps=STEPS)
    eps_f, eps_b = EPS[norm]
    steps = dict(step_size_f=0.4 * eps_f, step_size_b=0.4 * eps_b)
    for fill, eps, saliency in ((1.0, eps_f, norm == "l2"), (0.0, eps_b, False)):
        dual = _run(norm, saliency, fill, **steps)
        ref = pgd.batch(victim, pgd.hparams(eps=eps, step_size=0.4 * eps), images, labels, KEY)
        _assert_same(dual, ref)
        assert np.any(np.asarray(dual.delta) != 0)


def _region_norms(norm, delta, masks):
    fg = np.asarray(masks, np.float64) > 0.5
    d = np.asarray(delta, np.float64)
    parts = [np.where(fg, d, 0.0), np.where(fg, 0.0, d)]
    flat = [p.reshape(len(p), -1) for p in parts]
    if norm == "linf":
        return [np.abs(f).max(axis=1) for f in flat]
    return [np.sqrt((f**2).sum(axis=1)) for f in flat]


@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=SLOW)])
def test_each_region_keeps_its_budget_and_the_pixel_box(norm):
    _, _, images, _, masks = _setup()
    r = _run(norm, True, lam=1.0)
    eps_f, eps_b = EPS[norm]
    on_f, on_b = _region_norms(norm, r.delta, masks)
    assert np.all(on_f <= eps_f * (1 + 1e-6)) and np.all(on_b <= eps_b * (1 + 1e-6))
    moved_f, moved_b = _region_norms(norm, r.x_adv - images, masks)
    assert np.all(moved_f <= eps_f + 1e-5) and np.all(moved_b <= eps_b + 1e-5)
    # the larger background budget is used: the attack is not one ball of radius ε_F
    assert np.max(on_b) > 1.5 * eps_f
    assert np.all(np.asarray(r.x_adv) >= 0.0) and np.all(np.asarray(r.x_adv) <= 1.0)


def _score(carrier, x, masks):
    sal = carrier.saliency_victim
    return np.asarray(jax.vmap(losses.foreground_score)(sal.batch(x), masks))


def test_lam_zero_ignores_the_saliency_model_and_lam_raises_the_foreground_score():
    victim, carrier, images, labels, masks = _setup()
    # the objective's gradient: at λ = 0 the same with and without the saliency model
    bound = dataclasses.replace(_attack("linf"), mask=masks[0])  # as `program` binds it
    x = images[0] * 0.9 + 0.05

    def grad(model, lam):
        hp = bound.hparams()._replace(lam=lam)
        loss = bound.loss_fn(model, hp, images[0], labels[0], labels[0])
        return jax.grad(lambda x: loss(x, victim(x)))(x)

    with_s, without, with_s1 = jax.jit(
        lambda lam: (grad(carrier, lam), grad(victim, lam), grad(carrier, lam + 1.0))
    )(jnp.float32(0.0))
    np.testing.assert_array_equal(with_s, without)
    assert not np.allclose(with_s1, without)
    # the runs: λ = 50 moves the saliency mass onto the foreground
    plain = _run("linf", True, lam=0.0)
    strong = _run("linf", True, lam=50.0)
    assert not np.array_equal(strong.delta, plain.delta)
    s_plain, s_strong = _score(carrier, plain.x_adv, masks), _score(carrier, strong.x_adv, masks)
    assert np.all(s_strong > s_plain), (s_strong, s_plain)
    assert np.all(s_strong > _score(carrier, images, masks))
    # the reported loss is −CE − λ·S at the returned point
    logits = victim.batch(strong.x_adv)
    ce = -jax.nn.log_softmax(logits)[jnp.arange(N), labels]
    np.testing.assert_allclose(strong.loss, -ce - 50.0 * _score(carrier, strong.x_adv, masks),
                               rtol=1e-4, atol=1e-4)


def _numpy_step(norm, delta, grad, mask, x0, eps_f, eps_b, a_f, a_b):
    """Appendix A, Eqs. 1-4 (descending −L − λS): split, per-region G, step, project, merge, box."""
    fg = np.broadcast_to(mask > 0.5, delta.shape)
    out = np.zeros_like(delta)
    for region, eps, alpha in ((fg, eps_f, a_f), (~fg, eps_b, a_b)):
        g = np.where(region, grad, 0.0)
        if norm == "linf":
            direction = np.sign(g)
        else:
            direction = g / max(np.linalg.norm(g), 1e-12)
        d = np.where(region, delta, 0.0) - alpha * direction
        if norm == "linf":
            d = np.clip(d, -eps, eps)
        else:
            d = d * min(1.0, eps / max(np.linalg.norm(d), 1e-30))
        out = np.where(region, d, out)
    return np.clip(out, -x0, 1.0 - x0)


@functools.partial(jax.jit, static_argnums=0)
def _one_step(norm, carrier, x0, label, mask, lam):
    """The attack's own init and first step on one example, and the gradient there of the
    objective written from the paper (not from the attack's code)."""
    attack = _attack(norm)
    eps_f, eps_b = EPS[norm]
    hp = attack.derive(attack.hparams(eps_f=eps_f, eps_b=eps_b)._replace(lam=lam))
    program = attack.program(carrier, hp, x0, DualLabels(label, mask), label)
    carry = program.init(jax.random.key(0))
    after, _ = program.step(carry)

    def objective(delta):  # −L − λ·S, L the cross-entropy, S = Σ map·F / Σ map
        x = x0 + delta
        ce = -jax.nn.log_softmax(carrier(x))[label]
        smap = carrier.saliency_victim(x)
        return -ce - lam * jnp.sum(smap * mask[..., 0]) / jnp.sum(smap)

    return carry.theta, after.theta, jax.grad(objective)(carry.theta)


@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=SLOW)])
def test_one_step_matches_a_numpy_transcription(norm):
    _, carrier, images, labels, masks = _setup()
    eps_f, eps_b = EPS[norm]
    x0, mask = images[0], masks[0]
    theta0, theta1, grad = _one_step(norm, carrier, x0, labels[0], mask, jnp.float32(2.0))
    a_f, a_b = 2.5 / STEPS * eps_f, 2.5 / STEPS * eps_b  # the documented default steps
    expected = _numpy_step(
        norm, np.asarray(theta0, np.float64), np.asarray(grad, np.float64), np.asarray(mask),
        np.asarray(x0, np.float64), eps_f, eps_b, a_f, a_b,
    )
    np.testing.assert_allclose(theta1, expected, atol=1e-6)
    assert not np.allclose(theta1, theta0)
    on_f, on_b = _region_norms(norm, theta0[None], mask[None])  # the random start: both balls
    assert 0 < on_f[0] <= eps_f * (1 + 1e-6) and 0 < on_b[0] <= eps_b * (1 + 1e-6)


@SLOW
def test_a_sweep_over_eps_f_is_one_program_equal_to_single_runs_and_moves_the_step(monkeypatch):
    _, carrier, images, labels, masks = _setup()
    attack = _attack("linf")
    hp = attack.hparams(eps_f=0.05, eps_b=0.2, lam=1.0)
    reference = _run("linf", True, lam=1.0)  # compiled before counting
    traces = []
    program = attacks.DualAttack.program
    monkeypatch.setattr(
        attacks.DualAttack, "program", lambda *args: traces.append(1) or program(*args)
    )
    grid = jnp.asarray([0.05, 0.0], jnp.float32)  # 0.05: the budget test's own run
    dual_labels = DualLabels(labels, masks)
    swept = attack.sweep(carrier, hp._replace(eps_f=grid), images, dual_labels, KEY)
    assert len(traces) == 1  # the grid is one program (steps=2: one whole-run phase)
    again = hp._replace(eps_f=0.1, eps_b=0.3, lam=2.0)  # new numbers: the compiled batch
    attack.batch(carrier, again, images, dual_labels, KEY)
    assert len(traces) == 1
    np.testing.assert_allclose(swept.delta[0], reference.delta, atol=1e-6)
    np.testing.assert_array_equal(np.where(masks > 0.5, swept.delta[1], 0.0), 0.0)
    on_b = _region_norms("linf", swept.delta[1], masks)[1]
    assert np.all(on_b <= 0.2 * (1 + 1e-6)) and np.max(on_b) > 0.1
    derived = attack.derive(hp._replace(eps_f=jnp.float32(0.3)))
    np.testing.assert_allclose(derived.step_size_f, 2.5 / STEPS * 0.3, rtol=1e-6)
    fixed = attack.derive(attack.hparams(step_size_f=0.01)._replace(eps_f=jnp.float32(0.3)))
    np.testing.assert_allclose(fixed.step_size_f, 0.01)


@jax.jit
def _draws_and_projections(mask, x0):
    out = {}
    for norm in ("linf", "l2"):
        ball = constraints.dual_ball(norm, 0.1, 0.7, mask)
        draws = jax.vmap(lambda k: ball.sample(k, x0))(jax.random.split(jax.random.key(0), 64))
        out[norm] = draws, ball.project(jnp.full(x0.shape, 3.0), x0)
    return out


@SLOW
def test_the_dual_ball_samples_inside_each_region_ball_and_projects_onto_each():
    mask = jnp.asarray(np.arange(16).reshape(4, 4, 1) % 3 == 0, jnp.float32)
    for norm, (draws, projected) in _draws_and_projections(mask, jnp.full((4, 4, 2), 0.5)).items():
        on_f, on_b = _region_norms(norm, draws, jnp.broadcast_to(mask, (64, 4, 4, 1)))
        assert np.all(on_f <= 0.1 * (1 + 1e-6)) and np.all(on_b <= 0.7 * (1 + 1e-6))
        assert np.max(on_f) > 0.05 and np.max(on_b) > 0.35  # not collapsed onto the centre
        on_f, on_b = _region_norms(norm, projected[None], mask[None])
        np.testing.assert_allclose([on_f[0], on_b[0]], [0.1, 0.7], rtol=1e-6)


def test_foreground_score_closed_form():
    smap = jnp.asarray([[1.0, 3.0], [0.0, 4.0]])
    mask = jnp.asarray([[1.0, 0.0], [0.0, 1.0]])
    value_and_grad = jax.jit(jax.value_and_grad(losses.foreground_score))
    score, grad = value_and_grad(smap, mask)
    np.testing.assert_allclose(score, 5.0 / 8.0, rtol=1e-6)
    np.testing.assert_allclose(grad, (np.asarray(mask) - 0.625) / 8.0, rtol=1e-6)  # (F − S)/Σ
    np.testing.assert_allclose(losses.foreground_score(smap[..., None], mask[..., None]), 0.625)
    score, grad = value_and_grad(jnp.zeros((2, 2)), mask)  # 0/0 guarded: 0, finite gradient
    assert float(score) == 0.0 and np.all(np.isfinite(grad))
    with pytest.raises(ValueError, match="same"):
        losses.foreground_score(smap, jnp.ones((3, 3)))


def test_misuse_raises_value_errors_naming_the_argument():
    victim, carrier, images, labels, masks = _setup()
    attack = _attack("linf")
    hp = attack.hparams()
    with pytest.raises(ValueError, match="DualLabels"):
        attack.batch(victim, hp, images, labels, KEY)
    with pytest.raises(ValueError, match=r"labels\.mask.*\(3, 4, 4, 1\)"):
        attack.batch(victim, hp, images, DualLabels(labels, masks[..., 0]), KEY)
    with pytest.raises(ValueError, match=r"labels\.mask.*0 .*1"):
        attack.batch(victim, hp, images, DualLabels(labels, masks * 0.5), KEY)
    with pytest.raises(ValueError, match=r"label\.mask"):
        attack(victim, hp, images[0], DualLabels(labels[0], masks[0, ..., 0]), KEY)
    with pytest.raises(ValueError, match="eps_f"):
        attack.hparams(eps_f=-0.1)
    with pytest.raises(ValueError, match="eps_b"):
        attack.hparams(eps_b=-0.1)
    with pytest.raises(ValueError, match="lam.*with_saliency"):
        attack.batch(victim, attack.hparams(lam=0.5), images, DualLabels(labels, masks), KEY)
    with pytest.raises(ValueError, match="not both"):
        attack.hparams(step_size_f=0.1, rel_step_size_f=0.5)
    with pytest.raises(ValueError, match="norm"):
        attacks.dual_perturbation(norm="l1")
    with pytest.raises(ValueError, match="input_shape"):
        models.with_saliency(victim, _saliency_victim((5, 5, 1)))
    with pytest.raises(ValueError, match="saliency_victim"):
        models.with_saliency(victim, victim)
    with pytest.raises(ValueError, match="norm"):
        constraints.dual_ball("l1", 0.1, 0.2, masks[0])
