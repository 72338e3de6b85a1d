"""Orbax round trips, clear errors for mismatched checkpoints, and the cached default victim."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.data import Dataset
from jaxadv.models import (
    C4Net,
    CWNet,
    ResNet,
    default_cache_dir,
    restore_variables,
    save_variables,
)
from jaxadv.training import _default, default_victim

SHAPE = (28, 28, 1)


def _variables(module, shape=SHAPE, seed=0):
    """Random variables of the module's shapes, drawn with numpy (compiling ``module.init``
    costs seconds of threefry compilation per model on a 2-core CPU)."""
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1,) + shape))
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), abstract)


def _assert_bit_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("module", [CWNet(), ResNet(width=8)], ids=["cw", "resnet"])
def test_round_trip_is_bit_identical(tmp_path, module):
    variables = _variables(module)
    path = save_variables(tmp_path / "ckpt", variables)
    assert path.is_absolute()
    _assert_bit_identical(restore_variables(path, module, SHAPE), variables)


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    variables = _variables(C4Net())
    assert save_variables("ckpt", variables) == tmp_path / "ckpt"
    _assert_bit_identical(restore_variables("ckpt", C4Net(), SHAPE), variables)


@pytest.mark.parametrize(
    "module, match",
    [
        (
            ResNet(width=8, num_classes=5),
            r"fc/kernel is \(32, 10\) float32 in the checkpoint but \(32, 5\)",
        ),
        (ResNet(stage_sizes=(1, 2, 1), width=8), "missing from the checkpoint: .*layer2_1"),
        (ResNet(stage_sizes=(1, 1), width=8), "not in the module: .*layer3_0"),
        (CWNet(), "missing from the checkpoint: .*conv1/bias.*not in the module: .*batch_stats"),
    ],
)
def test_restoring_into_a_wrong_module_names_the_mismatch(tmp_path, module, match):
    path = save_variables(tmp_path / "ckpt", _variables(ResNet(width=8)))
    with pytest.raises(ValueError, match=match) as err:
        restore_variables(path, module, SHAPE)
    assert str(path) in str(err.value) and type(module).__name__ in str(err.value)


def test_missing_checkpoint_and_overwrite(tmp_path):
    with pytest.raises(ValueError, match="`path` .*nothing.*holds no checkpoint"):
        restore_variables(tmp_path / "nothing", C4Net(), SHAPE)
    path = save_variables(tmp_path / "ckpt", {"params": {"w": jnp.zeros(2)}})
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        save_variables(path, {"params": {"w": jnp.ones(2)}})
    save_variables(path, {"params": {"w": jnp.ones(2)}}, overwrite=True)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXADV_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("JAXADV_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "jaxadv")


def _tiny_digits():
    """Two classes of fabricated 28×28 images: bright left half or bright right half."""
    rng = np.random.default_rng(0)

    def split(n):
        labels = (np.arange(n) % 2).astype(np.int32)
        images = 0.2 * rng.random((n,) + SHAPE).astype(np.float32)
        for i, y in enumerate(labels):
            images[i, :, 14 * y : 14 * y + 14] += 0.8
        return images, labels

    (train_x, train_y), (test_x, test_y) = split(32), split(16)
    return Dataset(train_x, train_y, test_x, test_y, num_classes=2, name="fake")


class _TinyNet(nn.Module):
    """Stands in for the real classifier: the caching logic is under test, not the net."""

    num_classes: int = 2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def test_default_victim_trains_once_then_restores(tmp_path, monkeypatch):
    monkeypatch.setattr(_default, "_load_default_data", _tiny_digits)
    monkeypatch.setattr(_default, "classifier", lambda name: _TinyNet())
    monkeypatch.setitem(
        _default._SETTINGS, "c4", {"epochs": 3, "batch_size": 16, "learning_rate": 1e-2}
    )
    victim, info = default_victim("c4", cache_dir=tmp_path, progress=False)
    assert not info["restored"] and info["train_seconds"] > 0
    assert info["test_accuracy"] >= 0.9 and victim.input_shape == SHAPE
    again, info2 = default_victim("c4", cache_dir=tmp_path, progress=False)
    assert info2["restored"] and info2["path"] == info["path"]
    _assert_bit_identical(again.variables, victim.variables)
    # Other settings never restore the first checkpoint.
    _, info3 = default_victim("c4", cache_dir=tmp_path, epochs=1, progress=False)
    assert not info3["restored"] and info3["path"] != info["path"]
    with pytest.raises(ValueError, match="`name`"):
        default_victim("lenet", cache_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cw", "c4", "resnet"])
def test_default_victims_on_the_real_digits(tmp_path, request, name):
    """Trains on the embedded digits (tens of seconds each): only with ``pytest -m slow``."""
    markexpr = request.config.getoption("markexpr") or ""
    if "slow" not in markexpr or "not slow" in markexpr:
        pytest.skip("trains a real victim; run with -m slow")
    victim, info = default_victim(name, cache_dir=tmp_path, progress=False)
    assert not info["restored"] and info["test_accuracy"] >= 0.95, info
    again, info2 = default_victim(name, cache_dir=tmp_path, progress=False)
    assert info2["restored"] and info2["test_accuracy"] == info["test_accuracy"]
    _assert_bit_identical(again.variables, victim.variables)
