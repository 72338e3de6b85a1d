"""``torch.save`` files read without torch, and ``models.load_robustbench`` on a RobustBench
directory. The ``.pt`` fixtures were written by torch itself (``tests/data/torch_files/
make_fixtures.py``); the loaded victim is checked against a numpy forward pass of the same
weights."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest
from torch_reference import preact_forward, preact_state_dict

from jaxadv import models
from jaxadv.models import _robustbench

DATA = pathlib.Path(__file__).resolve().parent / "data" / "torch_files"
MU, SIGMA = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)  # as make_fixtures.py wrote


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
def test_both_torch_save_layouts_read_to_the_saved_values(name):
    from jaxadv.models._torch_file import read_torch_file

    checkpoint = read_torch_file(str(DATA / name))
    sd = checkpoint["state_dict"]
    np.testing.assert_array_equal(sd["a.weight"], np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert sd["a.weight"].dtype == np.float32
    np.testing.assert_array_equal(sd["a.bias"], [1.5, -2.0])  # an nn.Parameter
    np.testing.assert_array_equal(sd["t"], np.arange(12).reshape(3, 4).T)  # a strided view
    np.testing.assert_array_equal(sd["v"], [3.0, 4.0, 5.0, 6.0])  # an offset view
    assert sd["v"].dtype == np.float64 and sd["n"].dtype == np.int64 and sd["n"] == 7
    np.testing.assert_array_equal(sd["h"], np.array([1.0, 2.5], np.float32))  # bfloat16
    assert checkpoint["epoch"] == 3
    # Training metadata is not rebuilt: an inert placeholder stands for each foreign object.
    assert type(checkpoint["args"]).__name__ == "Namespace"
    assert not hasattr(checkpoint["args"], "lr")


def test_a_pt_file_converts_through_from_torch_state_dict(tmp_path):
    with pytest.raises(ValueError, match="not a readable torch.save file"):
        (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
        models.from_torch_state_dict(tmp_path / "bad.pt", models.WideResNet(10, 1), (8, 8, 3))
    # {"state_dict": ...} is unwrapped and the file's entries are named in the misfit error.
    with pytest.raises(
        ValueError, match=r"entries no layer reads: a\.\{bias, weight\}, h, n, t, v"
    ):
        models.from_torch_state_dict(DATA / "zip.pt", models.WideResNet(10, 1), (8, 8, 3))


@pytest.fixture
def tiny_wong(monkeypatch):
    """RobustBench's Wong2020Fast entry with the fixture's tiny widths (same layout)."""
    table = dict(_robustbench._MODELS[("cifar10", "Linf")])
    tiny = _robustbench._Entry(
        lambda c: models.PreActResNet((1, 1, 1, 1), c, 1, shortcut_from_activation=False), None
    )
    table["Wong2020Fast"] = tiny
    monkeypatch.setitem(_robustbench._MODELS, ("cifar10", "Linf"), table)


def test_load_robustbench_reads_the_directory_layout_and_the_normalisation(tiny_wong):
    victim = models.load_robustbench("Wong2020Fast", "Linf", "cifar10", DATA / "robustbench")
    module = victim.apply_fn.module
    assert isinstance(module, models.Normalized)
    np.testing.assert_allclose(module.mean, MU, rtol=1e-6)  # read from the file's mu / sigma
    np.testing.assert_allclose(module.std, SIGMA, rtol=1e-6)
    assert victim.input_shape == (32, 32, 3) and victim.num_classes == 10
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    sd = preact_state_dict((1, 1, 1, 1), 1, 10, False)  # the arrays make_fixtures.py saved
    xn = (x - np.array(MU)) / np.array(SIGMA)
    expected = preact_forward(sd, xn.transpose(0, 3, 1, 2), (1, 1, 1, 1), False)
    np.testing.assert_allclose(jax.jit(victim.batch)(x), expected, atol=1e-5)


def test_load_robustbench_errors_name_what_is_wrong(tiny_wong, tmp_path, monkeypatch):
    root = DATA / "robustbench"
    with pytest.raises(ValueError, match=r"Close names: Wong2020Fast"):
        models.load_robustbench("Wong2020Fats", "Linf", "cifar10", root)
    with pytest.raises(ValueError, match=r"listed under cifar10/Linf"):
        models.load_robustbench("Carmon2019Unlabeled", "L2", "cifar10", root)
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        models.load_robustbench("Wong2020Fast", "Linf", "mnist", root)
    with pytest.raises(ValueError, match="`threat_model` must be one of"):
        models.load_robustbench("Wong2020Fast", "L1", "cifar10", root)
    with pytest.raises(ValueError, match=r"has no file .*Standard\.pt.*does not download"):
        models.load_robustbench("Standard", "Linf", "cifar10", tmp_path)
    # The real Wong2020Fast is a width-64 PreActResNet-18: the tiny file does not fit it.
    table = dict(_robustbench._MODELS[("cifar10", "Linf")])
    table["Wong2020Fast"] = _robustbench._preact(False, False, _robustbench._C10)
    monkeypatch.setitem(_robustbench._MODELS, ("cifar10", "Linf"), table)
    with pytest.raises(ValueError, match=r"Wong2020Fast.*conv1\.weight has shape \(1, 3, 3, 3\)"):
        models.load_robustbench("Wong2020Fast", "Linf", "cifar10", root)


def test_the_table_builds_every_listed_architecture():
    """Every entry builds a module of the dataset's classes (shapes only: no compile)."""
    for (dataset, _), names in _robustbench._MODELS.items():
        classes, _ = _robustbench.DATASETS[dataset]
        for name, entry in names.items():
            module = entry.build(classes)
            assert module.num_classes == classes, name
