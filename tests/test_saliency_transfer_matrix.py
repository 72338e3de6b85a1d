"""The saliency transfer matrix: a hand case of two tiny saliency victims whose CC drop is
recomputed with numpy from attacks run alone, and the clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The victims, images and attack of test_saliency_attacks' first test: in the default run the
# attack's compiled program is shared (compiling it alone costs ~5 s on 2 busy cores).
from test_saliency_attacks import SHAPE, _images, _victim

from jaxadv import attacks, transfer
from jaxadv.data.saliency import SaliencyDataset
from jaxadv.losses import to_saliency_map

B = 4


def _data():
    rng = np.random.default_rng(0)
    images = np.asarray(_images(B, 1))
    maps = rng.uniform(size=(B,) + SHAPE[:2]).astype(np.float32)
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    # 4 distinct fixated pixels per image: sAUC's draws have one shape (one compilation).
    pixels = [rng.permutation(SHAPE[0] * SHAPE[1])[:4] for _ in range(B)]
    fixations = tuple(np.stack([p % SHAPE[1], p // SHAPE[1]], 1).astype(np.int32) for p in pixels)
    return SaliencyDataset(images, maps, fixations, tuple(f"s{i}" for i in range(B)), "hand")


@pytest.fixture(scope="module")
def case():
    victims = {"a": _victim(seed=0), "b": _victim(seed=1)}
    attack = attacks.saliency_pgd(loss="cc", steps=10)
    data = _data()
    key = jax.random.key(5)
    hp = attack.hparams(eps=0.1)
    m = transfer.saliency_transfer_matrix(
        {"pgd": attack}, victims, None, data, key, hparams={"pgd": hp}, splits=5
    )
    return victims, attack, hp, data, key, m


def _cc(maps, truth):  # MIT CC: Pearson's correlation of the map and the ground-truth map
    return np.mean([np.corrcoef(s.ravel(), g.ravel())[0, 1] for s, g in zip(maps, truth)])


def test_cc_drop_equals_numpy_on_attacks_run_alone(case):
    victims, attack, hp, data, key, m = case
    names = list(victims)
    assert m.adversarial["cc"].shape == (1, 2, 2) and m.source_success.shape == (1, 2, B)
    for s, source in enumerate(victims.values()):
        alone = attack.batch(source, hp, data.images, None, key)
        np.testing.assert_array_equal(m.source_success[0, s], np.asarray(alone.success))
        for t, target in enumerate(victims.values()):
            maps = lambda x: np.asarray(to_saliency_map(target.batch(x), target.output))  # noqa: E731
            clean = _cc(maps(jnp.asarray(data.images)), data.maps)
            drop = clean - _cc(maps(alone.x_adv), data.maps)
            np.testing.assert_allclose(m.clean["cc"][t], clean, atol=2e-5)
            np.testing.assert_allclose(m.drop("cc")[0, s, t], drop, atol=2e-5)
    # The white-box cells moved the maps (a hand case where nothing happens proves nothing).
    assert all(abs(m.drop("cc")[0, i, i]) > 1e-3 for i in range(2)), m.drop("cc")
    assert names[0] in m.table("pgd", "sauc")


def test_zero_budget_drops_nothing_and_the_sauc_draws_are_paired(case):
    victims, attack, _, data, key, _ = case
    m = transfer.saliency_transfer_matrix(
        {"pgd": attack},
        victims,
        None,
        data,
        key,
        hparams={"pgd": attack.hparams(eps=0.0)},
        splits=5,
    )
    for metric in ("cc", "sauc", "nss", "kl", "sim"):
        np.testing.assert_allclose(m.drop(metric), 0.0, atol=1e-6, err_msg=metric)


def test_errors_name_the_argument(case):
    victims, attack, _, data, key, _ = case
    with pytest.raises(ValueError, match="saliency attack"):
        transfer.saliency_transfer_matrix({"bim": attacks.bim()}, victims, None, data, key)
    with pytest.raises(ValueError, match="targeted"):
        targeted = attacks.saliency_pgd(targeted=True)
        transfer.saliency_transfer_matrix({"t": targeted}, victims, None, data, key)
    with pytest.raises(ValueError, match=r"`targets\['x'\]` must be a saliency victim"):
        transfer.saliency_transfer_matrix({"p": attack}, victims, {"x": object()}, data, key)
    with pytest.raises(ValueError, match="`data` must be a SaliencyDataset"):
        transfer.saliency_transfer_matrix({"p": attack}, victims, None, data.images, key)
