"""RobustBench's and torchvision's architectures and their converters, checked against forward
passes written in numpy the PyTorch way (NCHW, OIHW, the modules' own key names), on fabricated
state dicts at tiny widths. The numpy side builds its state dict by walking the PyTorch module
structure (``wide_resnet.py``, ``resnet.py``, torchvision's ``resnet.py``/``vgg.py``), not the
Flax modules, so a wrong name, shape, layout or wiring on either side fails."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from torch_reference import (
    preact_forward,
    preact_state_dict,
    resnet_forward,
    resnet_state_dict,
    vgg_forward,
    vgg_state_dict,
    wrn_forward,
    wrn_state_dict,
)

from jaxadv import models


# -- the checks ------------------------------------------------------------------------------------

CIFAR = (32, 32, 3)

# Default run: every architecture's layout at its smallest (one block per stage, widen factor 1,
# 2-4 channels); the basic and pre-activation blocks meet both an identity and a projection shortcut.
CASES = {  # name: (module, input_shape, state dict, numpy forward)
    "wrn-10-1": (  # block1 keeps 16 channels (identity); block2/3 widen (convShortcut)
        lambda: models.WideResNet(10, 1, num_classes=5),
        (8, 8, 3),
        lambda: wrn_state_dict(10, 1, 5, sub_block1=True),
        lambda sd, x: wrn_forward(sd, x, 10),
    ),
    "preact-v2-bn": (
        lambda: models.PreActResNet((1, 1, 1, 1), 5, 4, True, True),
        (8, 8, 3),
        lambda: preact_state_dict((1, 1, 1, 1), 4, 5, True),
        lambda sd, x: preact_forward(sd, x, (1, 1, 1, 1), True),
    ),
    "resnet-basic": (
        lambda: models.TorchvisionResNet((1, 1, 1, 1), False, 5, 4),
        CIFAR,
        lambda: resnet_state_dict((1, 1, 1, 1), False, 4, 5),
        lambda sd, x: resnet_forward(sd, x, (1, 1, 1, 1), False),
    ),
    "resnet-bottleneck-cifar": (  # projection shortcuts only (identity ones: the slow cases)
        lambda: models.TorchvisionResNet((1, 1, 1, 1), True, 5, 2, cifar_stem=True),
        (8, 8, 3),
        lambda: resnet_state_dict((1, 1, 1, 1), True, 2, 5, cifar=True),
        lambda sd, x: resnet_forward(sd, x, (1, 1, 1, 1), True, cifar=True),
    ),
    "vgg-bn": (
        lambda: models.VGG((1, 1, 1, 1, 1), True, 5, 2, 8),
        CIFAR,
        lambda: vgg_state_dict(8, 2, 8, 5, True),
        lambda sd, x: vgg_forward(sd, x, 8, True),
    ),
}

# Slow run: the published depths (tiny widths), through the public factories.
SLOW_CASES = {
    "wrn-16-2": (
        lambda: models.WideResNet(16, 2, num_classes=5),
        (8, 8, 3),
        lambda: wrn_state_dict(16, 2, 5),
        lambda sd, x: wrn_forward(sd, x, 16),
    ),
    "preact18": (
        lambda: models.PreActResNet18(5, width=4, shortcut_from_activation=False),
        (8, 8, 3),
        lambda: preact_state_dict((2, 2, 2, 2), 4, 5, False),
        lambda sd, x: preact_forward(sd, x, (2, 2, 2, 2), False),
    ),
    "resnet18": (
        lambda: models.ResNet18(5, width=4),
        CIFAR,
        lambda: resnet_state_dict((2, 2, 2, 2), False, 4, 5),
        lambda sd, x: resnet_forward(sd, x, (2, 2, 2, 2), False),
    ),
    "resnet50-wide": (
        lambda: models.ResNet50(5, width=2, width_per_group=128),
        CIFAR,
        lambda: resnet_state_dict((3, 4, 6, 3), True, 2, 5, wpg=128),
        lambda sd, x: resnet_forward(sd, x, (3, 4, 6, 3), True),
    ),
    "vgg16-bn": (
        lambda: models.VGG16(5, batch_norm=True, width=2, hidden=8),
        CIFAR,
        lambda: vgg_state_dict(16, 2, 8, 5, True),
        lambda sd, x: vgg_forward(sd, x, 16, True),
    ),
    "vgg19": (
        lambda: models.VGG19(5, width=2, hidden=8),
        (40, 40, 3),  # a 1x1 map after the last pool, spread over 7x7 by the adaptive pool
        lambda: vgg_state_dict(19, 2, 8, 5, False),
        lambda sd, x: vgg_forward(sd, x, 19, False),
    ),
}


@functools.lru_cache(maxsize=None)
def _case(name):
    make_module, shape, make_sd, forward = {**CASES, **SLOW_CASES}[name]
    return make_module(), shape, make_sd(), forward


def _images(shape, n=2, seed=0):
    return np.random.default_rng(seed).random((n,) + shape).astype(np.float32)


def _check_against_numpy(name):
    module, shape, sd, forward = _case(name)
    variables = models.from_torch_state_dict(sd, module, shape)
    x = _images(shape)
    expected = forward({k: v.astype(np.float64) for k, v in sd.items()}, x.transpose(0, 3, 1, 2))
    logits = jax.jit(module.apply, static_argnames="train")(variables, x, train=False)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", list(CASES))
def test_converted_logits_match_a_numpy_pytorch_forward_pass(name):
    _check_against_numpy(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_published_depths_match_a_numpy_pytorch_forward_pass(name):
    _check_against_numpy(name)


def test_normalized_reads_both_robustbench_layouts_and_matches_a_numpy_forward_pass():
    module, shape, sd, forward = _case("wrn-10-1")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    wrapped = models.Normalized(module, mean, std)
    # ImageNet's normalize_model: buffers normalize.mean / .std, weights under "model."
    imagenet = {f"model.{k}": v for k, v in sd.items()}
    imagenet["normalize.mean"] = np.array(mean, np.float32).reshape(1, 3, 1, 1)
    imagenet["normalize.std"] = np.array(std, np.float32).reshape(1, 3, 1, 1)
    variables = models.from_torch_state_dict(imagenet, wrapped, shape)
    cifar = dict(sd, mu=imagenet["normalize.mean"], sigma=imagenet["normalize.std"])
    jax.tree.map(
        np.testing.assert_array_equal,
        models.from_torch_state_dict(cifar, wrapped, shape),
        variables,
    )
    x = _images(shape)
    xn = ((x - np.array(mean)) / np.array(std)).transpose(0, 3, 1, 2)
    expected = forward({k: v.astype(np.float64) for k, v in sd.items()}, xn)
    np.testing.assert_allclose(jax.jit(wrapped.apply)(variables, x), expected, atol=1e-5)
    # A state dict normalised otherwise than the module is refused, naming both.
    other = dict(cifar, mu=np.zeros((1, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"`state_dict\['mu'\]` is \[0\.0, 0\.0, 0\.0\]"):
        models.from_torch_state_dict(other, wrapped, shape)


def test_normalization_with_the_wrong_channels_is_a_clear_error():
    module = models.WideResNet(10, 1)
    with pytest.raises(ValueError, match="3 channels but the inputs have 1"):
        models.Normalized(module, (0.5,) * 3, (0.2,) * 3).init(
            jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32)
        )
    with pytest.raises(ValueError, match="of equal length; got 3 and 1 values"):
        models.Normalized(module, (0.5,) * 3, (0.2,))
    with pytest.raises(ValueError, match="`std` must be finite and positive"):
        models.Normalized(module, (0.5,) * 3, (0.2, 0.0, 0.2))


def test_a_state_dict_of_another_depth_width_or_with_a_missing_key_names_the_layer():
    module, shape, sd, _ = _case("wrn-10-1")
    deeper = wrn_state_dict(16, 1, 5)  # WRN-16: a second block per group
    with pytest.raises(ValueError, match=r"entries no layer reads: block1\.layer\.1\.bn1\.\{"):
        models.from_torch_state_dict(deeper, module, shape)
    wider = wrn_state_dict(10, 2, 5)
    with pytest.raises(
        ValueError,
        match=r"block1\.layer\.0\.conv1\.weight has shape \(32, 16, 3, 3\), expected "
        r"\(16, 16, 3, 3\) for block1_layer_0\.conv1",
    ):
        models.from_torch_state_dict(wider, module, shape)
    missing = {k: v for k, v in sd.items() if k != "block2.layer.0.convShortcut.weight"}
    with pytest.raises(
        ValueError,
        match=r"missing entries: block2\.layer\.0\.convShortcut\.weight "
        r"\(for block2_layer_0\.convShortcut\)",
    ):
        models.from_torch_state_dict(missing, module, shape)
    # DataParallel's prefix is dropped; RobustBench's unused sub_block1 group is skipped.
    parallel = {f"module.{k}": v for k, v in sd.items()}
    jax.tree.map(
        np.testing.assert_array_equal,
        models.from_torch_state_dict(parallel, module, shape),
        models.from_torch_state_dict(sd, module, shape),
    )


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: models.WideResNet(12, 1), r"`depth` must be 6n \+ 4"),
        (lambda: models.WideResNet(28, 0), "`widen_factor` must be an integer >= 1"),
        (lambda: models.ResNet18(0), "`num_classes` must be an integer >= 1"),
        (lambda: models.VGG16(width=0), "`width` must be an integer >= 1"),
    ],
)
def test_bad_architecture_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.slow
def test_wrn_pgd_benchmark_runs_at_a_tiny_size():
    """``benchmarks/wrn_pgd.py`` (PGD-ℓ∞ on WRN-28-10 at full size) at WRN-10-1: the report is
    complete and the attack stayed in its budget (random weights: nothing is asserted on time)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "wrn_pgd.py"
    spec = importlib.util.spec_from_file_location("benchmark_wrn_pgd", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--depth", "10", "--widen", "1", "--steps", "2", "--rounds", "1"])
    assert report["model"] == "WideResNet-10-1" and report["parameters"] == 77850
    assert 0 < report["linf_max"] <= 8 / 255 + 1e-6
    assert report["median_call_s"] > 0 and report["peak_rss_mib"] > 0
