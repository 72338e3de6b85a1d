"""Attacks on saliency victims: the classifier engine with maps for classes.

The victim is a tiny Flax saliency model (two convolutions, a sown hidden layer, a sigmoid or
log-softmax head) so that every check compiles in seconds.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv import attacks
from jaxadv.attacks._saliency import pearson
from jaxadv.losses import to_saliency_map
from jaxadv.models.saliency import from_flax_saliency

SHAPE = (8, 8, 3)


class TinySaliency(nn.Module):
    output_kind: str = "unit"

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.tanh(nn.Conv(6, (3, 3))(x))
        self.sow("intermediates", "hidden", h)
        logits = nn.Conv(1, (3, 3))(h)[..., 0]
        if self.output_kind == "log_density":
            flat = logits.reshape(logits.shape[0], -1)
            return jax.nn.log_softmax(flat, axis=-1).reshape(logits.shape)
        return jax.nn.sigmoid(logits)


def _victim(kind="unit", seed=0):
    module = TinySaliency(output_kind=kind)
    variables = module.init(jax.random.key(seed), jnp.zeros((1,) + SHAPE))
    return from_flax_saliency(module, variables, input_shape=SHAPE)


def _images(n, seed):
    return jax.random.uniform(jax.random.key(seed), (n,) + SHAPE)


def _cc(victim, a, b):
    maps = lambda x: to_saliency_map(victim.batch(x), victim.output)  # noqa: E731
    return np.asarray(jax.vmap(pearson)(maps(a), maps(b)))


@pytest.fixture(scope="module")
def victim():
    return _victim()


@pytest.mark.parametrize("loss", ["kl", "cc"])
def test_untargeted_attack_decorrelates_the_map_within_the_budget(victim, loss):
    attack = attacks.saliency_pgd(loss=loss, steps=10)
    hp = attack.hparams(eps=0.1)
    images = _images(4, 1)
    result = attack.batch(victim, hp, images, None, jax.random.key(0))
    assert np.all(np.asarray(result.linf) <= 0.1 + 1e-6)
    cc = _cc(victim, images, result.x_adv)
    # The clean map has CC 1 with itself; random ±eps noise of the same budget barely moves it.
    noise = 0.1 * jnp.sign(jax.random.normal(jax.random.key(9), images.shape))
    cc_noise = _cc(victim, images, jnp.clip(images + noise, 0.0, 1.0))
    assert np.all(cc < cc_noise - 0.03), (cc, cc_noise)
    np.testing.assert_array_equal(np.asarray(result.success), cc < attack.threshold)
    np.testing.assert_allclose(result.logits, victim.batch(result.x_adv), atol=1e-5)


def test_targeted_attack_pulls_the_map_toward_the_guide(victim):
    attack = attacks.saliency_pgd(loss="cc", targeted=True, steps=10)
    hp = attack.hparams(eps=0.15)
    images, guides = _images(3, 2), _images(3, 3)
    result = attack.batch(victim, hp, images, None, jax.random.key(0), guides)
    before, after = _cc(victim, images, guides), _cc(victim, result.x_adv, guides)
    assert np.all(after > before + 0.1), (before, after)
    # Guides given as images or as their maps are the same attack.
    by_maps = attack.batch(victim, hp, images, None, jax.random.key(0), victim.batch(guides))
    np.testing.assert_allclose(by_maps.x_adv, result.x_adv, atol=1e-6)


def test_batch_equals_one_example_calls_and_a_log_density_victim_works():
    victim = _victim("log_density", seed=4)
    attack = attacks.saliency_pgd(loss="kl", steps=4)
    hp = attack.hparams(eps=0.05)
    images, key = _images(2, 5), jax.random.key(7)
    batched = attack.batch(victim, hp, images, None, key)
    keys = jax.random.split(key, 2)
    for i in range(2):
        single = attack(victim, hp, images[i], None, keys[i])
        np.testing.assert_allclose(single.x_adv, batched.x_adv[i], atol=1e-5)
    assert np.all(np.asarray(batched.loss) < 0)  # −KL(clean ‖ adversarial): the map moved


def test_feature_space_attack_moves_the_named_layer(victim):
    attack = attacks.saliency_pgd(layer="hidden", steps=6)
    hp = attack.hparams(eps=0.1)
    images = _images(2, 6)
    result = attack.batch(victim, hp, images, None, jax.random.key(0))
    clean = attacks.saliency_clean_outputs(attack, victim, images)
    assert result.logits.shape == clean.shape == (2, 8, 8, 6)
    moved = np.mean((np.asarray(result.logits) - np.asarray(clean)) ** 2, axis=(1, 2, 3))
    assert np.all(moved > 1e-3)
    np.testing.assert_allclose(np.asarray(result.loss), -moved, rtol=1e-4)


def test_bad_input_is_named(victim):
    with pytest.raises(ValueError, match="Available layers: hidden"):
        attacks.saliency_pgd(layer="conv9").batch(
            victim, attacks.saliency_pgd().hparams(), _images(1, 0), None, jax.random.key(0)
        )
    targeted = attacks.saliency_pgd(targeted=True)
    hp = targeted.hparams()
    with pytest.raises(ValueError, match="targets"):
        targeted.batch(victim, hp, _images(2, 0), None, jax.random.key(0))
    with pytest.raises(ValueError, match="targets"):
        targeted.batch(victim, hp, _images(2, 0), None, jax.random.key(0), jnp.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="labels"):
        targeted.batch(victim, hp, _images(2, 0), jnp.zeros((2, 3, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match="saliency victim"):
        attacks.saliency_pgd().batch(
            make_mlp_victim(), hp, jnp.zeros((1, 4, 4, 1)), None, jax.random.key(0)
        )
    with pytest.raises(ValueError, match="loss"):
        attacks.saliency_pgd(loss="auc")


def test_nan_clean_or_guide_maps_are_refused(victim):
    attack = attacks.saliency_pgd(targeted=True, steps=1)
    hp, images = attack.hparams(), _images(2, 0)
    maps = victim.batch(images)
    nan_maps = maps.at[0, 0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"`labels` must be finite; got 1 NaN/inf"):
        attack.batch(victim, hp, images, nan_maps, jax.random.key(0), maps)
    with pytest.raises(ValueError, match=r"`targets` must be finite; got 1 NaN/inf"):
        attack.batch(victim, hp, images, maps, jax.random.key(0), nan_maps)
