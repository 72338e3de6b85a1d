"""The partially-white-box subspace attack (Che et al.): reduction to the full feature attack,
the gradient prior's semantics, channel sampling and bad input, on a stub substitute model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv.attacks._subspace import SubspaceAttack, subspace_attack
from jaxadv.models.saliency._victim import SaliencyVictim
from jaxadv.transforms._normalize import normalize_by_l1_norm

SHAPE = (4, 4, 2)
C = 5  # channels of the stub's hidden layer


def _hidden(variables, x):
    return jnp.tanh(x @ variables["w"] + variables["b"])  # [b, 4, 4, C]


def stub_capture(variables, x):
    h = _hidden(variables, x)
    return {"feat": h, "map": jnp.mean(h, axis=-1)}


def stub_apply(variables, x):
    return jax.nn.sigmoid(jnp.mean(_hidden(variables, x), axis=-1))


def stub_victim(bounds=(0.0, 1.0)):
    k1, k2 = jax.random.split(jax.random.key(0))
    variables = {"w": jax.random.normal(k1, (2, C)), "b": 0.1 * jax.random.normal(k2, (C,))}
    return SaliencyVictim(
        variables=variables,
        apply_fn=stub_apply,
        capture_fn=stub_capture,
        input_shape=SHAPE,
        output="unit",
        map_shape=(4, 4),
        layer_names=("feat", "map"),
        bounds=bounds,
    )


X0 = jax.random.uniform(jax.random.key(1), SHAPE, minval=0.2, maxval=0.8)
GUIDE = jax.random.uniform(jax.random.key(2), SHAPE, minval=0.2, maxval=0.8)
ATTACK = subspace_attack("feat", C, normalization="none", loss="mse", steps=4)


def test_all_channels_and_identity_normalisation_is_the_full_feature_attack():
    victim = stub_victim()
    hp = ATTACK.hparams(eps=0.1, step_size=0.02)
    result = ATTACK(victim, hp, X0, None, jax.random.key(3), target=GUIDE)
    # the full feature attack, written out: Adam (ε inside the root) on ĝ = g/‖g‖₁
    target = stub_capture(victim.variables, GUIDE[None])["feat"]
    loss = lambda x: jnp.mean((stub_capture(victim.variables, x[None])["feat"] - target) ** 2)  # noqa: E731
    tx = optax.chain(
        normalize_by_l1_norm(), optax.scale_by_adam(0.9, 0.999, eps=0.0, eps_root=1e-20)
    )
    x, state, prior = X0, tx.init(X0), jnp.zeros(SHAPE)
    losses = []
    for _ in range(4):
        value, g = jax.value_and_grad(loss)(x)
        step, state = tx.update(g, state)
        losses.append(value)
        x = jnp.clip(jnp.clip(x - 0.02 * step, X0 - 0.1, X0 + 0.1), 0.0, 1.0)
        prior = prior + 0.02 * step
    np.testing.assert_allclose(result.x_adv, x, atol=1e-6)
    np.testing.assert_allclose(result.extras["prior"], prior, atol=1e-6)
    np.testing.assert_allclose(result.trace, losses, rtol=1e-5)
    np.testing.assert_array_equal(result.extras["channels"], np.arange(C))  # p = C: all
    assert int(result.steps) == int(result.queries) == 4
    np.testing.assert_allclose(result.logits, stub_apply(victim.variables, x[None])[0], atol=1e-6)


def test_prior_is_the_sum_of_unprojected_steps_along_which_the_objective_rises():
    victim = stub_victim(bounds=(-10.0, 10.0))
    attack = subspace_attack("feat", 3, steps=4)  # 3 of 5 channels, standardised
    hp = attack.hparams(eps=5.0, step_size=0.01)  # the budget never binds here
    result = attack(victim, hp, X0, None, jax.random.key(4), target=GUIDE)
    prior, idx = result.extras["prior"], result.extras["channels"]
    assert prior.shape == SHAPE and prior.dtype == jnp.float32
    np.testing.assert_allclose(result.delta, -prior, atol=1e-6)  # x = x0 − u
    assert idx.shape == (3,) and len(set(np.asarray(idx))) == 3
    assert result.trace[-1] < result.trace[0]
    # a small step along +u raises the subspace objective, along −u lowers it

    def objective(x):
        a, b = attack.subspace(victim, x, idx), attack.subspace(victim, GUIDE, idx)
        return jnp.mean((a - b) ** 2)

    u = prior / jnp.max(jnp.abs(prior))
    assert objective(X0 + 1e-3 * u) > objective(X0) > objective(X0 - 1e-3 * u)


def test_resampling_batch_and_untargeted():
    victim = stub_victim()
    attack = SubspaceAttack("feat", 2, targeted=False, steps=3, resample=True)
    hp = attack.hparams(eps=0.05, step_size=0.01)
    images = jnp.stack([X0, GUIDE])
    batched = attack.batch(victim, hp, images, None, jax.random.key(5))
    again = attack.batch(victim, hp, images, None, jax.random.key(5))
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)  # same key → same result (random start, draws)
    channels = batched.extras["channels"]
    assert channels.shape == (2, 3, 2)  # [images, steps, p]
    draws = {tuple(c) for c in np.asarray(channels).reshape(-1, 2)}
    assert len(draws) > 1 and all(a < b for a, b in draws)  # fresh, sorted, distinct channels
    assert np.all(np.asarray(batched.linf) <= 0.05 + 1e-6)
    assert np.all(np.asarray(batched.trace) <= 0.0)  # −distance to the clean subspace, minimised
    # untargeted success (as SaliencyAttack's): the map's CC to the clean map falls below 0.5
    maps, clean = stub_apply(victim.variables, batched.x_adv), stub_apply(victim.variables, images)
    cc = [np.corrcoef(np.ravel(a), np.ravel(b))[0, 1] for a, b in zip(maps, clean)]
    np.testing.assert_array_equal(batched.success, np.array(cc) < 0.5)


def test_bad_input():
    victim = stub_victim()
    with pytest.raises(ValueError, match=r"`channels` \(p\) must be at most the 5 channels"):
        subspace_attack("feat", 6)(victim, ATTACK.hparams(), X0, None, jax.random.key(0), GUIDE)
    with pytest.raises(ValueError, match="Available layers: feat, map"):
        subspace_attack("conv", 1)(victim, ATTACK.hparams(), X0, None, jax.random.key(0), GUIDE)
    with pytest.raises(ValueError, match="guide"):
        ATTACK(victim, ATTACK.hparams(), X0, None, jax.random.key(0))
    with pytest.raises(ValueError, match=r"hp\.mu1.*\[0, 1\]"):
        ATTACK.hparams(mu1=-0.5)
    with pytest.raises(ValueError, match="normalization"):
        subspace_attack("feat", 2, normalization="pca")
