"""Transfer boosters on SMBEA (issue 22): TI (the gradient smoothed before SMBEA's normaliser)
and DI (the ensemble's input resized and padded), through ``with_transfer``. Checked: the
neutral boosters (TI 1×1, DI p = 0) leave SMBEA unchanged to float32 rounding; TI's and DI's first
step equals a step written out by hand (numpy kernel, DI's draw reproduced); the boosters SMBEA
does not take are refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.attacks import Admix, SMBEAttack, Translation, smbea, with_transfer
from jaxadv.gradients import diverse_input
from jaxadv.models._ensemble import ensemble
from jaxadv.transforms._translation import gaussian_kernel

from test_smbea import _classifiers

RNG = np.random.default_rng(3)
MLP, LIN = _classifiers(RNG)
BATCHES = (ensemble([MLP, LIN], [2.0, 1.0]), ensemble([LIN]))  # two structures: lax.switch
LIN2 = _classifiers(np.random.default_rng(4))[1]
IMAGES = RNG.uniform(size=(3, 4, 4, 1)).astype(np.float32)
LABELS = np.array([0, 1, 2], np.int32)


def _run(attack, victim, x0, label, key, hp=None):
    """``attack``'s program on one example, step by step (inside one jit, see ``_results``)."""
    hp = attack.hparams(eps=0.3, step_size=0.05) if hp is None else hp
    program = attack.program(victim, hp, x0, label, label)
    carry, trace = program.init(key), []
    for _ in range(program.length):
        carry, value = program.step(carry)
        trace.append(value)
    return program.finish(carry, jnp.stack(trace))


KEY = jax.random.key(5)
X0, LABEL = jnp.asarray(IMAGES[0]), jnp.int32(0)
PLAIN = smbea(loss="ce", steps=1, minibatches=2)
NEUTRAL = with_transfer(PLAIN, translation=1, diversity=0.0)
TI3 = with_transfer(smbea(loss="ce", steps=1), translation=Translation(3, 1.0))
DI1 = with_transfer(smbea(loss="ce", steps=1), diversity=1.0)


def _objective(ens, view=lambda x: x):
    """Untargeted SMBEA on logits minimises −CE of the fused logits (label 0)."""
    return lambda x: jax.nn.log_softmax(ens(view(x)))[0]


def draw(key):
    """DI's first draw: the init key folded with 1, then split (the program's key stream)."""
    return jax.random.split(jax.random.fold_in(key, 1))[1]


@pytest.fixture(scope="module")
def results():
    """Every run of this module in ONE compilation: SMBEA and SMBEA with TI 1×1 + DI p = 0 on
    two stacked mini-batches; one step of TI 3×3 and of DI p = 1 on one ensemble; the
    gradients of the hand steps (plain and at DI's drawn resize)."""
    stacked = (ensemble([LIN]), ensemble([LIN2]))
    ens = BATCHES[0]

    @jax.jit
    def run(key):
        return dict(
            plain=_run(PLAIN, stacked, X0, LABEL, key),
            neutral=_run(NEUTRAL, stacked, X0, LABEL, key),
            ti=_run(TI3, BATCHES[0], X0, LABEL, key),
            di=_run(DI1, ens, X0, LABEL, key),
            g=jax.grad(_objective(ens))(X0),
            g_di=jax.grad(_objective(ens, lambda x: diverse_input(draw(key), x, 1.0, 0.9)))(X0),
            value=_objective(ens)(X0),
        )

    return run(KEY)


def test_ti_1x1_and_di_p0_leave_smbea_unchanged(results):
    # To float32 rounding, not bit for bit: the two are different programs, and the suite's loop
    # emitter (conftest) fuses them differently (one x_adv pixel 1.5e-8 apart, relative 4.8e-7);
    # a booster that acted would move a pixel by a step, 0.05. The slow test below compares the
    # batch driver's runs bit for bit.
    assert NEUTRAL.name == "smbea+di+ti"
    a, b = results["plain"], results["neutral"]
    assert float(jnp.max(jnp.abs(a.delta))) > 0  # the attack moved
    for name in ("x_adv", "trace", "loss", "logits"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, err_msg=name)
    for name in ("m", "v", "x_minibatches"):
        np.testing.assert_allclose(a.extras[name], b.extras[name], rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_neutral_boosters_through_the_batch_driver_and_lax_switch():
    hp = PLAIN.hparams(eps=0.3, step_size=0.05)
    a = PLAIN.batch(BATCHES, hp, IMAGES, LABELS, KEY)
    b = NEUTRAL.batch(BATCHES, hp, IMAGES, LABELS, KEY)
    for name in ("x_adv", "trace", "loss", "logits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _hand_step(grad, x0, alpha=0.05):
    """Algorithm 1's first step: m̂ = ĝ, v̂ = ĝ², so ``−α·ĝ/(|ĝ| + 1e-8)`` ≈ ``−α·sign(g)``,
    then the pixel box [0, 1] (the budget 0.3 > α does not bind)."""
    x0 = np.asarray(x0, np.float64)
    return np.clip(x0 - alpha * np.sign(grad), 0.0, 1.0) - x0


def test_ti_first_step_follows_the_smoothed_gradient(results):
    """TI 3×3 (σ = 1): the step follows sign(W ∗ g), W the Gaussian, zero padding (numpy)."""
    g = np.asarray(results["g"], np.float64)[..., 0]
    w = np.asarray(gaussian_kernel(3, 1.0), np.float64)
    padded = np.pad(g, 1)
    smooth = sum(w[i, j] * padded[i:i + 4, j:j + 4] for i in range(3) for j in range(3))
    delta = results["ti"].delta[..., 0]
    np.testing.assert_allclose(delta, _hand_step(smooth, X0[..., 0]), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(np.sign(smooth), np.sign(g))  # TI changed the direction


def test_di_first_step_follows_the_gradient_at_the_drawn_resize(results):
    """DI p = 1: the gradient at T(x), T drawn from the program's DI key stream; the trace
    keeps the objective at the plain iterate."""
    g = np.asarray(results["g_di"])
    delta = results["di"].delta
    np.testing.assert_allclose(delta, _hand_step(g, X0), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(np.sign(g), np.sign(results["g"]))  # DI changed the direction
    np.testing.assert_allclose(results["di"].trace[0], results["value"], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(scales=5), "scales"),
        (dict(admix=Admix(np.zeros((1, 4, 4, 1), np.float32))), "admix"),
        (dict(variance=20), "variance"),
        (dict(nesterov=True), "nesterov"),
    ],
)
def test_boosters_smbea_does_not_take_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=f"SMBEA takes only.*{named}.*long-term memory"):
        with_transfer(smbea(loss="ce"), **kwargs)
    twice = with_transfer(smbea(loss="ce"), translation=3)
    with pytest.raises(ValueError, match="already has transfer boosters"):
        with_transfer(twice, diversity=0.5)
    with pytest.raises(ValueError, match="`diversity` must be a jaxadv.attacks.Diversity"):
        SMBEAttack(diversity=0.5)
