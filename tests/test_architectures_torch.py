"""The converted architectures against PyTorch itself: RobustBench's own module definitions and
torchvision's, with random weights and batch-norm statistics, at their published widths.

Slow, and skipped where torch is absent (the project's environment). Run it with the peers'
Python, which has torch, robustbench and jax:
``PYTHONPATH=$PWD /work/peersenv/bin/python -m pytest -m slow tests/test_architectures_torch.py``.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import jax
import numpy as np
import pytest

from jaxadv import models

pytestmark = pytest.mark.slow


def _torchvision():
    """torchvision, or None. (torchvision 0.28 beside torch 2.13 fails registering its ``nms``
    meta kernel at import; the models do not need it, so that one module is stubbed.)"""
    pytest.importorskip("torch")
    try:
        import torchvision
    except RuntimeError:
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("stub")
        try:
            import torchvision
        except Exception:  # noqa: BLE001 (any failure: the torchvision cases skip)
            return None
    return torchvision


def _robustbench_architectures():
    """RobustBench's ``model_zoo/architectures`` modules, loaded from their files (importing the
    ``robustbench`` package would pull in its data loaders)."""
    pytest.importorskip("torch")
    spec = importlib.util.find_spec("robustbench")
    if spec is None:
        pytest.skip("robustbench is not installed")
    root = pathlib.Path(spec.origin).parent / "model_zoo" / "architectures"
    out = {}
    for name in ("wide_resnet", "resnet", "utils_architectures"):
        file_spec = importlib.util.spec_from_file_location(f"_rb_{name}", root / f"{name}.py")
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
        out[name] = module
    return out


def _randomise(torch_model, seed=0):
    """Random batch-norm affine parameters and running statistics (torch's init makes them
    the identity, which would hide a layout error), in inference mode."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in torch_model.state_dict().items():
            if name.endswith("running_var") or (name.endswith(".weight") and t.ndim == 1):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith(("running_mean", ".bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return torch_model.eval()


def _compare(torch_model, module, shape, n=2):
    import torch

    sd = _randomise(torch_model).state_dict()
    variables = models.from_torch_state_dict(sd, module, shape)
    x = np.random.default_rng(1).random((n,) + shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    logits = np.asarray(jax.jit(module.apply)(variables, x))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * scale)
    return expected


ROBUSTBENCH = {  # name: (torch model from RobustBench's architectures, Flax module, input shape)
    "WideResNet-28-10 (sub_block1)": (
        lambda a: a["wide_resnet"].WideResNet(28, 10, 10, sub_block1=True),
        lambda: models.WideResNet(28, 10, 10),
        (32, 32, 3),
    ),
    "WideResNet-34-2": (
        lambda a: a["wide_resnet"].WideResNet(34, 100, 2),
        lambda: models.WideResNet(34, 2, 100),
        (32, 32, 3),
    ),
    "PreActResNet-18": (
        lambda a: a["resnet"].PreActResNet18(),
        lambda: models.PreActResNet18(10, shortcut_from_activation=False),
        (32, 32, 3),
    ),
    "PreActResNet-18 (V2, bn_before_fc)": (
        lambda a: a["resnet"].PreActResNet(a["resnet"].PreActBlockV2, [2, 2, 2, 2], 10, True),
        lambda: models.PreActResNet18(10, bn_before_fc=True, shortcut_from_activation=True),
        (32, 32, 3),
    ),
    "ResNet-18 (CIFAR)": (
        lambda a: a["resnet"].ResNet18(),
        lambda: models.ResNet18(10, cifar_stem=True),
        (32, 32, 3),
    ),
    "ResNet-50 (CIFAR)": (
        lambda a: a["resnet"].ResNet50(),
        lambda: models.ResNet50(10, cifar_stem=True),
        (32, 32, 3),
    ),
}


@pytest.mark.parametrize("name", list(ROBUSTBENCH))
def test_robustbench_architectures_match_torch(name):
    build_torch, build_flax, shape = ROBUSTBENCH[name]
    _compare(build_torch(_robustbench_architectures()), build_flax(), shape)


TORCHVISION = {  # name: (torchvision constructor, Flax module, input shape)
    "resnet18": ("resnet18", lambda: models.ResNet18(10), (64, 64, 3)),
    "resnet50": ("resnet50", lambda: models.ResNet50(10), (64, 64, 3)),
    "wide_resnet50_2": (
        "wide_resnet50_2",
        lambda: models.ResNet50(10, width_per_group=128),
        (64, 64, 3),
    ),
    "vgg16_bn": ("vgg16_bn", lambda: models.VGG16(10, batch_norm=True), (32, 32, 3)),
    "vgg19": ("vgg19", lambda: models.VGG19(10), (48, 48, 3)),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_architectures_match_torch(name):
    torchvision = _torchvision()
    if torchvision is None:
        pytest.skip("torchvision does not import")
    constructor, build_flax, shape = TORCHVISION[name]
    torch_model = getattr(torchvision.models, constructor)(num_classes=10)
    _compare(torch_model, build_flax(), shape)


def test_robustbench_normalize_model_matches_torch():
    """RobustBench's ImageNet wrapper: ``normalize_model(resnet18(), mu, sigma)``."""
    torchvision = _torchvision()
    if torchvision is None:
        pytest.skip("torchvision does not import")
    arch = _robustbench_architectures()
    torch_model = arch["utils_architectures"].normalize_model(
        torchvision.models.resnet18(num_classes=10), models.IMAGENET_MEAN, models.IMAGENET_STD
    )
    module = models.Normalized(models.ResNet18(10), models.IMAGENET_MEAN, models.IMAGENET_STD)
    _compare(torch_model, module, (64, 64, 3))
