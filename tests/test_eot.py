"""Expectation over transformation (``attacks.with_eot``) on randomized victims.

One step against a hand-written loop over the same draws (and success as the draws' vote); one
draw of zero noise against the plain attack, bit for bit; a victim whose single draws mislead the
gradient but whose expectation does not, judged on the smoothed decision with fresh draws, as eps
sweeps that compile once; bad input.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv import attacks, models
from jaxadv.attacks import Attack
from jaxadv.constraints import norm_ball

from conftest import make_mlp_victim, mlp_apply

SIGMA = 0.5


def _images(n, seed=0, low=0.3, high=0.7):
    return jax.random.uniform(jax.random.key(seed), (n, 4, 4, 1), minval=low, maxval=high)


def _ce(logits, label):
    return -jax.nn.log_softmax(logits)[label]


@dataclasses.dataclass(frozen=True)
class _Penalised(Attack):
    """An Attack subclass with its own loss (as the dual attack's loss + λ·S), no EOT code."""

    def loss_fn(self, victim, hp, x0, label, target):
        return lambda x, logits: -_ce(logits, label) + 0.3 * jnp.sum(jnp.square(x - 0.2))


def _probe_step(hp):
    return optax.scale(-1e-3)  # θ₁ = −1e-3·∇: the step's gradient, read off the iterate


def _ball(hp):
    return norm_ball("linf", hp.eps)


_NEAR, _FAR = jnp.array([0.0, 40.0, 0.0]), jnp.array([150.0, 0.0, 0.0])


def _bimodal_apply(variables, x, key):
    """The MLP behind input noise, plus a logit offset: class 1 by 40 (70% of draws) or class 0
    by 150 (30%). The draws' vote says class 1 where their mean logits say class 0."""
    noise = jax.random.normal(key, x.shape)
    far = noise.reshape(x.shape[0], -1)[:, :1] > 0.5244  # P = 0.3, from the same draw (cheap)
    noisy = x + SIGMA * noise
    return mlp_apply(variables, noisy) + jnp.where(far, _FAR, _NEAR)


def test_a_step_is_the_mean_over_a_hand_written_loop_of_the_same_draws_success_their_vote():
    n = 7
    base = make_mlp_victim()
    victim = models.RandomizedVictim(base.variables, _bimodal_apply, base.input_shape, 3)
    attack = _Penalised(objective=None, step_rule=_probe_step, constraint=_ball, steps=1)
    attack = attacks.with_eot(attack, samples=n)
    x0, label = _images(1)[0], jnp.int32(0)
    hp = attack.derive(attack.hparams(eps=1.0, step_size=0.0))

    @jax.jit
    def two_steps(key):
        program = attack.program(victim, hp, x0, label, label)
        carry = program.init(key)
        after, loss = program.step(carry)
        _, loss2 = program.step(after)
        # best: the iterate x0 (evaluated by the first step)
        return carry.key, after.key, after.theta, loss, loss2, after.queries, after.best

    key_before, key2, theta, loss, loss2, queries, best = two_steps(jax.random.key(5))
    # A step's draws: the keys after the next key and the oracle's, split from the run's key.
    draws = jax.random.split(key_before, n + 2)[2:]
    draws2 = jax.random.split(key2, n + 2)[2:]  # the second step's: fresh ones
    assert not np.any(np.isin(jax.random.key_data(draws2), jax.random.key_data(draws)))

    def one_draw(x, key):  # the randomized victim of one draw, and the loss by hand
        logits = victim(x, key)
        return -_ce(logits, label) + 0.3 * jnp.sum(jnp.square(x - 0.2)), logits

    by_hand = jax.jit(jax.value_and_grad(one_draw, has_aux=True))
    outs = [by_hand(x0, k) for k in draws]  # ((loss, logits), grad) per draw
    losses, logits, grads = ([o[0][0] for o in outs], [o[0][1] for o in outs], [o[1] for o in outs])
    np.testing.assert_allclose(loss, sum(losses) / n, rtol=1e-5)
    np.testing.assert_allclose(-theta / 1e-3, sum(grads) / n, rtol=1e-4, atol=1e-5)
    assert int(queries) == n  # n forward+backward passes
    assert not np.allclose(losses[0], losses[1])  # the draws differ
    losses2 = [by_hand(x0 + theta, k)[0][0] for k in draws2]  # the second step, at x0 + θ₁
    np.testing.assert_allclose(loss2, sum(losses2) / n, rtol=1e-5)
    # The iterate's logits are the draws' mean; its success is their plurality vote, here class
    # 1 ≠ label (the mean logits' argmax is the label: a success judged on them would be False).
    np.testing.assert_allclose(best.logits, sum(logits) / n, rtol=1e-5, atol=1e-5)
    votes = np.bincount([int(np.argmax(z)) for z in logits], minlength=3)
    assert np.argmax(votes) == 1 and np.argmax(sum(logits)) == 0, votes
    assert bool(best.success)


def test_one_draw_of_zero_noise_is_the_plain_attack_bit_for_bit():
    victim = make_mlp_victim()
    images = _images(4, seed=1, low=0.0, high=1.0)
    labels = jnp.argmax(victim.batch(images), axis=-1)
    pgd = attacks.pgd(steps=1)
    hp = pgd.hparams(eps=0.1)
    key = jax.random.key(0)
    plain = pgd.batch(victim, hp, images, labels, key)
    eot = attacks.with_eot(pgd, 1).batch(
        models.with_input_noise(victim, 0.0), hp, images, labels, key
    )
    for field, a, b in zip(plain._fields, plain, eot):
        jax.tree.map(lambda p, q: np.testing.assert_array_equal(p, q, err_msg=field), a, b)


# -- a victim whose single draws mislead --------------------------------------------------------
# z = w·x + b + A Σ_i u_i sin(ω x_i), logits (−z/2, z/2). Behind noise of std σ with ωσ = 5 the
# ripple's expected value and gradient vanish (factor e^{−ω²σ²/2} ≈ 4e-6), so the smoothed
# decision follows w·x; one draw's gradient w_i + Aω u_i cos(ω(x_i + η_i)) has a random term of
# size Aω = 5 against |w_i| = 1, so its sign is right for ~60% of the pixels. EOT over n draws
# shrinks that term by √n. Judged on the smoothed decision (1,000 fresh draws, by hand).
RIPPLE_A, RIPPLE_W, RIPPLE_SIGMA = 0.25, 20.0, 0.25


def _ripple_apply(variables, x):
    flat = x.reshape(x.shape[0], -1)
    ripple = RIPPLE_A * jnp.sin(RIPPLE_W * flat) @ variables["u"]
    z = flat @ variables["w"] + variables["b"] + ripple
    return jnp.stack([-z / 2, z / 2], axis=-1)


def _ripple_victim(x0):
    kw, ku = jax.random.split(jax.random.key(11))
    w = jnp.sign(jax.random.normal(kw, (16,)))
    u = jnp.sign(jax.random.normal(ku, (16,)))
    b = 2.0 - jnp.mean(x0.reshape(x0.shape[0], -1) @ w)  # clean z ≈ 2: class 1 for ~90% of draws
    return models.Victim(
        variables={"w": w, "u": u, "b": b},
        apply_fn=_ripple_apply,
        input_shape=(4, 4, 1),
        num_classes=2,
        bounds=(0.0, 1.0),
    )


def _smoothed_class(victim, x, draws=1000):
    """Whether class 1 wins most of ``draws`` noisy copies of each ``x`` (numpy, float64)."""
    w, u, b = (np.asarray(victim.variables[k], np.float64) for k in ("w", "u", "b"))
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    noisy = flat + RIPPLE_SIGMA * np.random.default_rng(99).normal(size=(draws,) + flat.shape)
    z = noisy @ w + b + RIPPLE_A * np.sin(RIPPLE_W * noisy) @ u
    return np.mean(z > 0, axis=0) > 0.5  # class 1 (logit z/2 > −z/2) has most draws


def test_more_draws_fool_the_smoothed_classifier_where_single_draws_fail_eps_sweep_one_trace():
    x0 = _images(16, seed=2, low=0.35, high=0.65)
    base = _ripple_victim(x0)
    noisy = models.with_input_noise(base, RIPPLE_SIGMA)
    labels = jnp.ones(16, jnp.int32)
    assert np.all(_smoothed_class(base, x0))  # the smoothed classifier gets them all
    fgsm = attacks.fgsm()  # one sign step of length eps
    hp = fgsm.hparams(eps=0.3)  # the best ℓ∞ step shifts w·x by −4.8: z ≈ −2.8
    key = jax.random.key(5)
    one = attacks.with_eot(fgsm, 1).batch(noisy, hp, x0, labels, key)
    eps = jnp.array([0.0, 0.3], jnp.float32)
    # Attack.program runs once per trace, never when a compiled program is reused.
    with mock.patch.object(Attack, "program", autospec=True, side_effect=Attack.program) as traced:
        many = attacks.with_eot(fgsm, 64).sweep(noisy, hp._replace(eps=eps), x0, labels, key)
    assert traced.call_count == 1  # one compilation for the eps grid
    fooled = {n: np.mean(~np.asarray(_smoothed_class(base, r.x_adv))) for n, r in
              ((1, one), (64, jax.tree.map(lambda leaf: leaf[1], many)))}  # fmt: skip
    assert fooled[64] >= 0.9 and fooled[1] <= 0.4, fooled  # measured: 1.0 and 0.0625
    assert np.all(np.asarray(many.success[1]))  # the vote of 64 draws agrees with 1,000
    np.testing.assert_array_equal(many.x_adv[0], x0)  # eps = 0: nothing moves
    assert np.all(np.asarray(many.linf[1]) <= 0.3 * (1 + 1e-6))
    assert np.all(np.asarray(one.queries) == 1) and np.all(np.asarray(many.queries) == 64)


# -- bad input ------------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    victim = make_mlp_victim()
    noisy = models.with_input_noise(victim, SIGMA)
    pgd = attacks.pgd(steps=1)
    images, labels, key = _images(2), jnp.zeros(2, jnp.int32), jax.random.key(0)
    hp = pgd.hparams(eps=0.1)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="`samples`"):
            attacks.with_eot(pgd, bad)
    with pytest.raises(ValueError, match="`eot_samples`"):
        dataclasses.replace(pgd, eot_samples=0)
    with pytest.raises(ValueError, match="`attack`.*eot_iter"):
        attacks.with_eot(attacks.apgd(), 4)
    # EOT on a deterministic victim would be ignored: refused, naming the argument.
    with pytest.raises(ValueError, match="`eot_samples=4`.*deterministic Victim"):
        attacks.with_eot(pgd, 4).batch(victim, hp, images, labels, key)
    with pytest.raises(ValueError, match="`eot_samples=1`.*deterministic Victim"):
        attacks.with_eot(pgd, 1)(victim, hp, images[0], labels[0], key)
    # A randomized victim without EOT: refused, pointing to with_eot.
    with pytest.raises(ValueError, match="RandomizedVictim.*with_key.*with_eot"):
        pgd.batch(noisy, hp, images, labels, key)
