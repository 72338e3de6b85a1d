"""Transfer boosters (issue 22): ``attacks.with_transfer`` and its recipes.

What could prove them wrong:

* switched off, each booster is the attack itself, bit for bit (TI with a 1×1 kernel, DI with
  p = 0, SI with one copy, variance tuning with no neighbours; NI with zero momentum is I-FGSM);
* the deterministic rules (TI, NI, SI-NI) equal torchattacks 3.5.1's TIFGSM/NIFGSM/SINIFGSM
  pixel for pixel on the same weights, random parts off (reference arrays written by
  tests/data/make_transfer_reference.py; no torch needed here), as does DI's resize-and-pad;
* the oracle's gradient against a closed-form transcription of SI, Admix, NI and variance
  tuning on ``loss = Σ sin(x)``, whose gradient at any input is known;
* bad input raises ValueErrors naming the argument.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, gradients, transforms
from jaxadv.models import Victim

from conftest import mlp_apply

REF = dict(np.load(pathlib.Path(__file__).parent / "data" / "transfer_reference.npz"))
STEPS = int(REF["steps"])


@functools.lru_cache(maxsize=None)
def ref_victim() -> Victim:
    """The reference MLP of make_transfer_reference.py (6×6×3 in [0, 1], 3 classes)."""
    variables = {k: jnp.asarray(REF[k]) for k in ("w1", "b1", "w2", "b2")}
    return Victim(variables, mlp_apply, input_shape=(6, 6, 3), num_classes=3, bounds=(0.0, 1.0))


@functools.partial(jax.jit, static_argnums=0)
def _final_and_result(attack, victim, hp, images, labels, key):
    """The last iterate (what torchattacks returns) and the result of each example."""

    def one(x0, label, k):
        program = attack.program(victim, attack.derive(hp), x0, label, None)
        carry, trace = jax.lax.scan(
            lambda c, _: program.step(c), program.init(k), length=program.length
        )
        return x0 + carry.theta, program.finish(carry, trace)

    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(one)(images, labels, keys)


def run(attack, **values):
    hp = attack.hparams(eps=float(REF["eps"]), step_size=float(REF["alpha"]), **values)
    images, labels = jnp.asarray(REF["images"]), jnp.asarray(REF["labels"])
    return _final_and_result(attack, ref_victim(), hp, images, labels, jax.random.key(0))


def assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# -- switched off, a booster is the attack itself ----------------------------------------------------


def test_boosters_switched_off_and_ni_without_momentum_are_i_fgsm_bit_for_bit():
    """TI 1×1, DI p = 0, SI one copy, variance tuning with no neighbours and NI with μ = 0, all
    at once on MI-FGSM (each runs its code: the convolution, the coin, the copy, the variance
    state, the look-ahead), equal I-FGSM: one compilation. The slow tests check each alone."""
    off = attacks.with_transfer(
        attacks.mi_fgsm(steps=STEPS), translation=1, diversity=0.0, scales=1, variance=0,
        nesterov=True,
    )
    final, result = run(off, decay=0.0)
    assert float(np.abs(final - REF["images"]).max()) > 0  # it moved
    assert_same((final, result), run(attacks.bim(steps=STEPS)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "boost", [dict(translation=1), dict(diversity=0.0), dict(scales=1), dict(variance=0)]
)
def test_each_booster_switched_off_is_mi_fgsm(boost):
    off = attacks.with_transfer(attacks.mi_fgsm(steps=STEPS), **boost)
    assert_same(run(off), run(attacks.mi_fgsm(steps=STEPS)))


@pytest.mark.slow
def test_ni_with_zero_momentum_is_i_fgsm():
    assert_same(run(attacks.ni_fgsm(steps=STEPS), decay=0.0), run(attacks.bim(steps=STEPS)))


# -- torchattacks, pixel for pixel ----------------------------------------------------------------


def test_ti_ni_si_ni_equal_torchattacks():
    """TIFGSM (kernel 5, nsig 3, μ = 1, DI off), NIFGSM and SINIFGSM (m = 3) with the look-ahead
    of the code they follow. Float32 rounding differs (x0 + δ kept as δ here), hence 1e-6."""
    ti = attacks.with_transfer(attacks.mi_fgsm(steps=STEPS), translation=5)
    cases = {
        "ti": ti,
        "ni": attacks.ni_fgsm(steps=STEPS, lookahead="code"),
        "sini": attacks.si_ni_fgsm(steps=STEPS, scales=3, lookahead="code"),
    }
    for name, attack in cases.items():
        final, _ = run(attack)
        np.testing.assert_allclose(final, REF[name], rtol=0, atol=1e-6, err_msg=name)
        assert np.abs(REF[name] - REF["images"]).max() > 0.5 * float(REF["eps"])  # it moved


@pytest.mark.slow
def test_paper_lookahead_differs_from_the_code_one():
    """The paper's look-ahead (ℓ1-normalised momentum) is n times shorter than the code's: on
    this victim it changes the result (else the option would be untested)."""
    final, _ = run(attacks.ni_fgsm(steps=STEPS, lookahead="paper"))
    assert not np.allclose(final, REF["ni"], atol=1e-6)


def test_resize_and_pad_equals_torch_interpolate_and_pad():
    x = jnp.asarray(REF["images"][0])
    cases = jnp.asarray(REF["resize_cases"])
    out = jax.jit(jax.vmap(lambda c: gradients.resize_and_pad(x, c[0], c[0], c[1], c[2])))(cases)
    np.testing.assert_allclose(out, REF["resized"], rtol=0, atol=1e-6)


def test_diverse_input_draws_from_its_key():
    x = jnp.asarray(REF["images"][0])
    keys = jax.random.split(jax.random.key(3), 16)
    fn = jax.jit(jax.vmap(lambda k, p: gradients.diverse_input(k, x, p, 0.5), in_axes=(0, None)))
    always, never = fn(keys, 1.0), fn(keys, 0.0)
    assert_same(never, jnp.broadcast_to(x, never.shape))
    # shrunk to 3..5 pixels of 6 and padded with zeros: each image keeps a zero row and column
    zero_rows = np.all(np.asarray(always) == 0, axis=(2, 3))
    assert np.all(zero_rows.any(axis=1)) and len({a.tobytes() for a in np.asarray(always)}) > 4
    assert_same(fn(keys, 1.0), always)  # same keys, same draws


# -- the oracle against a closed form -------------------------------------------------------------


def test_oracle_si_admix_ni_vt_against_the_closed_form():
    """``loss(x) = Σ sin(x)``: the gradient at x is cos(x). Two oracle calls with SI (2 scales),
    Admix (a one-image pool: no draw), NI (look-ahead c along the shadow MI momentum) and
    variance tuning (3 neighbours, offsets from the documented split of the step key); the
    transcription is numpy (float64)."""
    x0 = np.linspace(0.1, 0.9, 12).reshape(2, 2, 3)
    pool = np.linspace(0.5, -0.5, 12).reshape(1, 2, 2, 3)
    eta, c, radius, n = 0.2, 0.3, 0.05, 3
    oracle = gradients.Transfer(
        loss_of_input=lambda x: jnp.sum(jnp.sin(x)), x0=jnp.asarray(x0, jnp.float32),
        scales=2, pool=jnp.asarray(pool, jnp.float32), mix_strength=eta, mix_copies=1,
        neighbours=n, radius=radius, lookahead=c, momentum=transforms.mi_momentum(1.0),
    )

    def closed(theta):  # the mean over copies (x + η·p)/2^i of the chain rule's cos(·)/2^i
        mixed = x0 + theta + eta * pool[0]
        return 0.5 * (np.cos(mixed) + 0.5 * np.cos(mixed / 2))

    @jax.jit
    def call(theta, key, state):
        record = lambda t: (jnp.sum(jnp.sin(oracle.x0 + t)), ())  # noqa: E731
        offsets = jax.random.uniform(jax.random.split(key, 2 + n)[0], (n, 2, 2, 3), minval=-1.0)
        return oracle(record, theta, key, state), radius * offsets

    theta1 = jnp.zeros((2, 2, 3))
    ((loss1, _), g1, state, queries), offsets = call(theta1, jax.random.key(1), oracle.init(theta1))
    np.testing.assert_allclose(loss1, np.sum(np.sin(x0)), rtol=1e-6)  # the plain record
    assert int(queries) == 2 * (1 + n)
    np.testing.assert_allclose(g1, closed(0.0), rtol=1e-5)  # no look-ahead, v = 0 yet
    offsets = np.asarray(offsets, np.float64)
    v1 = np.mean([closed(r) for r in offsets], axis=0) - closed(0.0)
    np.testing.assert_allclose(state.variance, v1, rtol=1e-4, atol=1e-6)
    m1 = closed(0.0) / np.sum(np.abs(closed(0.0)))
    np.testing.assert_allclose(state.last, m1, rtol=1e-5)
    (_, g2, state, _), _ = call(theta1 + 0.03, jax.random.key(2), state)
    expected = closed(0.03 - c * m1) + v1
    np.testing.assert_allclose(g2, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.last, m1 + expected / np.sum(np.abs(expected)), rtol=1e-4)


def test_translation_invariant_is_a_depthwise_gaussian_convolution():
    """Against a direct sum over the kernel (zero padding), per channel; 1×1 is the identity."""
    g = jax.random.normal(jax.random.key(0), (5, 4, 2))
    kernel = np.asarray(transforms.gaussian_kernel(3, 0.7), np.float64)
    line = np.exp(-0.5 * (np.arange(-1, 2) / 0.7) ** 2)
    np.testing.assert_allclose(kernel, np.outer(line, line) / np.outer(line, line).sum(), rtol=1e-6)
    padded = np.pad(np.asarray(g, np.float64), ((1, 1), (1, 1), (0, 0)))
    expected = sum(
        kernel[i, j] * padded[i : i + 5, j : j + 4] for i in range(3) for j in range(3)
    )
    tx = transforms.translation_invariant(3, 0.7)
    out, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    one = transforms.translation_invariant(1)
    assert_same(one.update(g, one.init(g))[0], g)


# -- bad input ----------------------------------------------------------------------------------------


def _mi():
    return attacks.mi_fgsm(steps=2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: attacks.with_transfer(_mi(), diversity=1.5), "`diversity` must lie in"),
        (lambda: attacks.with_transfer(_mi(), diversity=-0.1), "`diversity` must lie in"),
        (lambda: attacks.di_fgsm(prob=2.0), "`diversity` must lie in"),
        (lambda: attacks.Diversity(0.5, resize_rate=1.2), "`resize_rate` must lie in"),
        (lambda: attacks.with_transfer(_mi(), translation=4), "`kernel_size` must be an odd"),
        (lambda: attacks.ti_fgsm(kernel_size=0), "`kernel_size` must be an odd"),
        (lambda: transforms.translation_invariant(3, sigma=0.0), "`sigma`"),
        (lambda: attacks.with_transfer(_mi(), scales=0), "`scales` must be an integer >= 1"),
        (lambda: attacks.si_ni_fgsm(scales=0), "`scales` must be an integer >= 1"),
        (lambda: attacks.with_transfer(_mi(), variance=-1), "neighbours must be an integer"),
        (lambda: attacks.with_transfer(attacks.bim(), nesterov=True), "needs a momentum attack"),
        (lambda: attacks.with_transfer("pgd"), "`attack` must be a jaxadv.attacks.Attack"),
        (lambda: attacks.with_transfer(_mi(), lookahead="far"), "`lookahead` must be one of"),
        (lambda: attacks.admix_fgsm(np.zeros((0, 6, 6, 3))), "non-empty stack of images"),
        (lambda: attacks.with_transfer(_mi(), admix=np.ones((2, 6, 6, 3))), "`admix` must be"),
        (
            lambda: attacks.with_transfer(attacks.with_transfer(_mi(), scales=2), scales=3),
            "already has transfer boosters",
        ),
        (
            lambda: attacks.with_transfer(attacks.dual_perturbation(), variance=2),
            "needs an attack with an `eps`",
        ),
    ],
)
def test_bad_input_is_a_clear_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_kernel_larger_than_the_image_and_mismatched_pool_are_refused_when_traced():
    images, labels = jnp.asarray(REF["images"]), jnp.asarray(REF["labels"])
    too_big = attacks.ti_fgsm(steps=1, kernel_size=7)  # the images are 6×6
    with pytest.raises(ValueError, match=r"`kernel_size` must not exceed the image: .*7×7.*6×6"):
        too_big.batch(ref_victim(), too_big.hparams(), images, labels, jax.random.key(0))
    wrong = attacks.admix_fgsm(np.zeros((2, 4, 4, 3), np.float32), steps=1)
    with pytest.raises(ValueError, match="`admix` pool images have shape"):
        wrong.batch(ref_victim(), wrong.hparams(), images, labels, jax.random.key(0))


@pytest.mark.slow
def test_all_boosters_at_once_keep_the_budget_and_the_verdict():
    """DI + TI + SI + variance tuning + NI on MI-FGSM: within the ball and the box, the success
    flag is the victim's verdict on x_adv, and the same key gives the same result."""
    every = attacks.with_transfer(
        attacks.mi_fgsm(steps=STEPS), diversity=0.7, translation=3, scales=2, variance=2,
        nesterov=True,
    )
    victim, images = ref_victim(), jnp.asarray(REF["images"])
    hp = every.hparams(eps=float(REF["eps"]))
    result = every.batch(victim, hp, images, jnp.asarray(REF["labels"]), jax.random.key(1))
    again = every.batch(victim, hp, images, jnp.asarray(REF["labels"]), jax.random.key(1))
    assert_same(result, again)
    delta = np.asarray(result.x_adv) - REF["images"]
    assert np.abs(delta).max() <= float(REF["eps"]) + 1e-6
    assert 0.0 <= float(result.x_adv.min()) and float(result.x_adv.max()) <= 1.0
    fooled = np.argmax(np.asarray(victim.batch(result.x_adv)), -1) != REF["labels"]
    np.testing.assert_array_equal(result.success, fooled)
    assert np.all(np.asarray(result.queries) == STEPS * 2 * 3)  # copies × (1 + N) per step
