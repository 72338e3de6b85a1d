"""Attacks against a linear victim, where the optimum of every budget is known in closed form.

For two classes with logits ``z = W x`` the margin ``m(x) = z_y − z_o = u·x`` with ``u = w_y − w_o``
is linear, and the untargeted CE gradient is a negative multiple of ``u``:
* the ℓ∞ optimum of ``min m(x0 + δ), ‖δ‖∞ ≤ ε`` is ``δ = −ε·sign(u)`` (a drop of ``ε‖u‖₁``);
* the ℓ2 optimum is ``δ = −ε·u/‖u‖₂`` (a drop of ``ε‖u‖₂``);
* the ℓ1 optimum moves only the coordinate of largest ``|u_i|`` (a drop of ``ε‖u‖∞``);
* the smallest ℓ2 perturbation that flips the label has norm ``m(x0)/‖u‖₂``.
The victim's pixel box is [−10, 10], far from these perturbations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks

from conftest import make_linear_victim


@pytest.fixture
def problem(linear_victim):
    x0 = jnp.full(linear_victim.input_shape, 0.1)
    label = jnp.argmax(linear_victim(x0))
    w = linear_victim.variables["w"]
    u = w[label] - w[1 - label]
    return linear_victim, x0, label, u


def margin(victim, x, label):
    z = victim(x)
    return z[label] - z[1 - label]


def test_fgsm_linf_is_the_exact_linf_optimum(problem):
    victim, x0, label, u = problem
    eps = 0.05  # small: the margin stays positive, so the attack fails and must still be optimal
    attack = attacks.fgsm()
    result = attack(victim, attack.hparams(eps=eps), x0, label, jax.random.key(0))
    np.testing.assert_array_equal(result.delta, -eps * jnp.sign(u))
    drop = margin(victim, x0, label) - margin(victim, result.x_adv, label)
    np.testing.assert_allclose(drop, eps * jnp.sum(jnp.abs(u)), rtol=1e-5)


def test_fgm_l2_steps_along_w(problem):
    victim, x0, label, u = problem
    eps = 0.05
    attack = attacks.fgsm(norm="l2")
    result = attack(victim, attack.hparams(eps=eps), x0, label, jax.random.key(0))
    np.testing.assert_allclose(result.delta, -eps * u / jnp.linalg.norm(u), rtol=1e-5, atol=1e-7)


def test_pgd_l2_reaches_the_l2_optimum(problem):
    victim, x0, label, u = problem
    eps = 0.05
    attack = attacks.pgd(norm="l2", steps=50)
    result = attack(victim, attack.hparams(eps=eps), x0, label, jax.random.key(3))
    cosine = jnp.dot(result.delta, -u) / (jnp.linalg.norm(result.delta) * jnp.linalg.norm(u))
    assert cosine > 0.9999
    np.testing.assert_allclose(result.l2, eps, rtol=1e-5)


def test_pgd_l1_moves_the_largest_weight(problem):
    victim, x0, label, u = problem
    eps = 0.05
    attack = attacks.pgd(norm="l1", steps=5, random_start=False)
    result = attack(victim, attack.hparams(eps=eps, sparsity=1.0), x0, label, jax.random.key(0))
    i = int(jnp.argmax(jnp.abs(u)))
    expected = jnp.zeros_like(x0).at[i].set(-eps * jnp.sign(u[i]))
    np.testing.assert_allclose(result.delta, expected, atol=1e-7)
    drop = margin(victim, x0, label) - margin(victim, result.x_adv, label)
    np.testing.assert_allclose(drop, eps * jnp.max(jnp.abs(u)), rtol=1e-5)


@pytest.mark.parametrize("targeted", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_cw_l2_finds_the_minimal_flip_within_one_percent(targeted):
    # In the [0, 1] box (C&W's tanh scale) from mid-grey, where the minimal flip stays inside.
    victim = make_linear_victim(bounds=(0.0, 1.0))
    x0 = jnp.full(victim.input_shape, 0.5)
    label = jnp.argmax(victim(x0))
    u = victim.variables["w"][label] - victim.variables["w"][1 - label]
    minimal = margin(victim, x0, label) / jnp.linalg.norm(u)
    attack = attacks.cw_l2(steps=200, targeted=targeted)
    target = 1 - label if targeted else None
    hp = attack.hparams(step_size=1e-2, initial_const=1e-2)
    result = attack(victim, hp, x0, label, jax.random.key(0), target=target)
    assert bool(result.success)
    assert minimal <= result.l2 <= 1.01 * minimal, (float(result.l2), float(minimal))
