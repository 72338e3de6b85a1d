"""PyTorch-layout state dicts → Flax variables, on fabricated state dicts (no torch needed)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models import C4Net, CWNet, ResNet, from_torch_state_dict

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)


def _torch_linear(rng, out, inp):
    return {
        "weight": rng.normal(0, 1 / np.sqrt(inp), (out, inp)).astype(np.float32),
        "bias": rng.normal(0, 0.1, out).astype(np.float32),
    }


def _torch_conv(rng, out, inp, k):
    return {
        "weight": rng.normal(0, 1 / np.sqrt(inp * k * k), (out, inp, k, k)).astype(np.float32),
        "bias": rng.normal(0, 0.1, out).astype(np.float32),
    }


def _state_dict(layers):
    return {
        f"{name}.{leaf}": value for name, params in layers.items() for leaf, value in params.items()
    }


# Reference forward passes written the PyTorch way: NCHW activations, OIHW weights, and a flatten
# of (C, H, W). Independent of the converter.
def _conv(sd, name, x, stride=1, pad=0):
    y = jax.lax.conv_general_dilated(
        x,
        sd[f"{name}.weight"],
        (stride, stride),
        [(pad, pad)] * 2,
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )
    return jax.nn.relu(y + sd[f"{name}.bias"][None, :, None, None])


def _linear(sd, name, x):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _pool(x):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _torch_cw(sd, x):
    x = _pool(_conv(sd, "conv2", _conv(sd, "conv1", x)))
    x = _pool(_conv(sd, "conv4", _conv(sd, "conv3", x)))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(_linear(sd, "fc1", x))
    return _linear(sd, "fc3", jax.nn.relu(_linear(sd, "fc2", x)))


def _torch_c4(sd, x):
    x = _conv(sd, "conv1", x, stride=2, pad=3)  # PyTorch's padding=3 == TF SAME here
    x = _conv(sd, "conv3", _conv(sd, "conv2", x, stride=2))
    return _linear(sd, "fc", x.reshape(x.shape[0], -1))


def _cw_state_dict(rng, channels, flat):
    return _state_dict(
        {
            "conv1": _torch_conv(rng, 32, channels, 3),
            "conv2": _torch_conv(rng, 32, 32, 3),
            "conv3": _torch_conv(rng, 64, 32, 3),
            "conv4": _torch_conv(rng, 64, 64, 3),
            "fc1": _torch_linear(rng, 200, flat),
            "fc2": _torch_linear(rng, 200, 200),
            "fc3": _torch_linear(rng, 10, 200),
        }
    )


def _images(shape, n=3, seed=1):
    return np.random.default_rng(seed).random((n,) + shape, np.float32)


@pytest.mark.parametrize("shape, flat", [(MNIST, 64 * 4 * 4), (CIFAR, 64 * 5 * 5)])
def test_cw_net_matches_a_pytorch_layout_forward_pass(shape, flat):
    sd = _cw_state_dict(np.random.default_rng(0), shape[-1], flat)
    module = CWNet()
    variables = from_torch_state_dict(sd, module, shape)
    x = _images(shape)
    expected = jax.jit(_torch_cw)(sd, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(jax.jit(module.apply)(variables, x), expected, atol=1e-5)
    # The trap: transposing fc1 without reordering its rows loads fine and is wrong.
    naive = jax.tree.map(lambda a: a, variables)
    naive["params"]["fc1"]["kernel"] = jnp.asarray(sd["fc1.weight"].T)
    assert not np.allclose(jax.jit(module.apply)(naive, x), expected, atol=1e-2)


def test_c4_net_on_cifar_matches_a_pytorch_layout_forward_pass():
    rng = np.random.default_rng(0)
    sd = _state_dict(
        {  # 32 -> 16 -> 6 -> 2: a 2x2x128 map, so the flatten order matters
            "conv1": _torch_conv(rng, 64, 3, 8),
            "conv2": _torch_conv(rng, 128, 64, 6),
            "conv3": _torch_conv(rng, 128, 128, 5),
            "fc": _torch_linear(rng, 10, 128 * 2 * 2),
        }
    )
    module = C4Net()
    x = _images(CIFAR)
    variables = from_torch_state_dict(sd, module, CIFAR)
    expected = jax.jit(_torch_c4)(sd, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(jax.jit(module.apply)(variables, x), expected, atol=1e-5)


def _flax_to_torch(variables, flatten=None):
    """Writes Flax variables in PyTorch's layout with plain numpy (the inverse of the converter).

    ``flatten``: ``(layer, (h, w, c))`` of the dense layer fed by a flatten.
    """
    sd = {}

    def layers(tree, prefix=()):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from layers(value, prefix + (key,))
        leaves = {k: np.asarray(v) for k, v in tree.items() if not isinstance(v, dict)}
        if leaves:
            yield ".".join(prefix), leaves

    for name, leaves in layers(variables["params"]):
        if "scale" in leaves:
            sd[f"{name}.weight"], sd[f"{name}.bias"] = leaves["scale"], leaves["bias"]
            continue
        kernel = leaves["kernel"]
        if kernel.ndim == 4:
            sd[f"{name}.weight"] = kernel.transpose(3, 2, 0, 1)
        elif flatten and name == flatten[0]:
            h, w, c = flatten[1]
            sd[f"{name}.weight"] = (
                kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
            )
        else:
            sd[f"{name}.weight"] = kernel.T
        if "bias" in leaves:
            sd[f"{name}.bias"] = leaves["bias"]
    for name, leaves in layers(variables.get("batch_stats", {})):
        sd[f"{name}.running_mean"], sd[f"{name}.running_var"] = leaves["mean"], leaves["var"]
        sd[f"{name}.num_batches_tracked"] = np.array(7)
    return sd


def _random_variables(module, shape, seed=0):
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1,) + shape))
    return jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32), abstract)


def _assert_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_resnet_round_trip_with_batch_norm_statistics():
    module = ResNet(width=4)
    variables = _random_variables(module, MNIST)
    sd = _flax_to_torch(variables)
    assert "layer2_0.downsample_bn.running_var" in sd
    _assert_identical(from_torch_state_dict(sd, module, MNIST), variables)


def test_cw_round_trip_with_a_name_map_and_an_npz_file(tmp_path):
    module = CWNet()
    variables = _random_variables(module, MNIST)
    sd = _flax_to_torch(variables, flatten=("fc1", (4, 4, 64)))
    sd["features.0.weight"] = sd.pop("conv1.weight")  # a torch model with other names
    sd["features.0.bias"] = sd.pop("conv1.bias")
    np.savez(tmp_path / "cw.npz", **sd)
    restored = from_torch_state_dict(tmp_path / "cw.npz", module, MNIST, {"conv1": "features.0"})
    _assert_identical(restored, variables)


def test_missing_entries_shape_mismatches_and_unknown_names_raise():
    sd = _cw_state_dict(np.random.default_rng(0), 1, 64 * 4 * 4)
    module = CWNet()
    missing = {k: v for k, v in sd.items() if k != "fc2.bias"}
    with pytest.raises(ValueError, match=r"missing entries: fc2\.bias \(for fc2/bias\)"):
        from_torch_state_dict(missing, module, MNIST)
    with pytest.raises(
        ValueError,
        match=r"fc1\.weight has shape \(200, 1024\), expected "
        r"\(200, 1600\)",
    ):
        from_torch_state_dict(sd, module, CIFAR[:2] + (1,))  # 32x32 inputs flatten to 1600
    with pytest.raises(ValueError, match="`name_map`.*conv9"):
        from_torch_state_dict(sd, module, MNIST, name_map={"conv9": "features.9"})
    extra = dict(sd, **{"head.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=r"entries no layer reads: head\.weight"):
        from_torch_state_dict(extra, module, MNIST)
    from_torch_state_dict(extra, module, MNIST, strict=False)
    with pytest.raises(ValueError, match="`state_dict` path"):
        from_torch_state_dict("/nonexistent/weights.npz", module, MNIST)


def test_unsupported_layers_are_named():
    class WithLayerNorm(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return nn.LayerNorm(name="norm")(nn.Dense(3, name="fc")(x.reshape(x.shape[0], -1)))

    with pytest.raises(ValueError, match=r"layer 'norm' with parameters \['bias', 'scale'\]"):
        from_torch_state_dict({}, WithLayerNorm(), (2, 2, 1))
