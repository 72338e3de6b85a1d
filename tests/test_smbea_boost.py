"""Transfer boosters on SMBEA (issue 22): TI (the gradient smoothed before SMBEA's normaliser)
and DI (the ensemble's input resized and padded), through ``with_transfer``. Checked: the
neutral boosters (TI 1×1, DI p = 0) leave SMBEA unchanged bit for bit; TI's and DI's first
step equals a step written out by hand (numpy kernel, DI's draw reproduced); the boosters SMBEA
does not take are refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.attacks import Admix, smbea, with_transfer
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


def test_ti_1x1_and_di_p0_leave_smbea_unchanged_bit_for_bit():
    attack = smbea(loss="ce", steps=2, minibatches=2)
    batches = (ensemble([LIN]), ensemble([LIN2]))  # one structure: stacked
    boosted = with_transfer(attack, translation=1, diversity=0.0)
    assert boosted.name == "smbea+di+ti"
    hp = attack.hparams(eps=0.3, step_size=0.05)
    key = jax.random.key(0)
    a = attack.batch(batches, hp, IMAGES, LABELS, key)
    b = boosted.batch(batches, hp, IMAGES, LABELS, key)
    assert float(jnp.max(jnp.abs(a.delta))) > 0  # the attack moved
    for name in ("x_adv", "trace", "loss", "logits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("m", "v", "x_minibatches"):
        np.testing.assert_array_equal(a.extras[name], b.extras[name], err_msg=name)


def _first_step(attack, ens, x0, label, key):
    """One SMBEA step of ``attack`` on ``ens`` (one mini-batch), through its own program."""
    hp = attack.hparams(eps=0.3, step_size=0.05)
    program = attack.program(ens, hp, x0, label, label)
    carry, _ = program.step(program.init(key))
    return carry.delta


def _hand_step(grad, x0, alpha=0.05):
    """Algorithm 1's first step: m̂ = ĝ, v̂ = ĝ², so ``−α·ĝ/(|ĝ| + 1e-8)`` ≈ ``−α·sign(g)``,
    then the pixel box [0, 1] (the budget 0.3 > α does not bind)."""
    x0 = np.asarray(x0, np.float64)
    return np.clip(x0 - alpha * np.sign(grad), 0.0, 1.0) - x0


def _objective(ens, view=lambda x: x):
    """Untargeted SMBEA on logits minimises −CE of the fused logits (label 0)."""
    return lambda x: jax.nn.log_softmax(ens(view(x)))[0]


def test_ti_and_di_first_steps_match_a_hand_step():
    ens, x0, label = BATCHES[0], jnp.asarray(IMAGES[0]), jnp.int32(0)
    key = jax.random.key(5)
    # TI 3×3 (σ = 1): the step follows sign(W ∗ g), W the Gaussian, zero padding (numpy here)
    attack = with_transfer(smbea(loss="ce", steps=1), translation=dict_free_ti())
    delta = jax.jit(lambda k: _first_step(attack, ens, x0, label, k))(key)
    g = np.asarray(jax.grad(_objective(ens))(x0), np.float64)[..., 0]
    w = np.asarray(gaussian_kernel(3, 1.0), np.float64)
    padded = np.pad(g, 1)
    smooth = sum(w[i, j] * padded[i:i + 4, j:j + 4] for i in range(3) for j in range(3))
    np.testing.assert_allclose(delta[..., 0], _hand_step(smooth, x0[..., 0]), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(np.sign(smooth), np.sign(g))  # TI changed the direction
    # DI p = 1: the gradient is taken at T(x), T drawn from the program's DI key stream
    attack = with_transfer(smbea(loss="ce", steps=1), diversity=1.0)
    delta = jax.jit(lambda k: _first_step(attack, ens, x0, label, k))(key)
    draw = jax.random.split(jax.random.fold_in(key, 1))[1]
    g = jax.grad(_objective(ens, lambda x: diverse_input(draw, x, 1.0, 0.9)))(x0)
    np.testing.assert_allclose(delta, _hand_step(np.asarray(g), x0), rtol=1e-5, atol=1e-6)
    g_plain = jax.grad(_objective(ens))(x0)
    assert not np.array_equal(np.sign(g), np.sign(g_plain))  # DI changed the direction


def dict_free_ti():
    from jaxadv.attacks import Translation

    return Translation(3, 1.0)


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
