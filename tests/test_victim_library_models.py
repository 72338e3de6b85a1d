"""Issue 18's remaining members of Table 2 (shared/papers/000, "Code repository of victim
models"): CSC-Net, the Inception-ResNet family (DCN_Inception, DCN_2, DCN_LSTM_1) and DCN-SAM-VGG.

Each model is checked against a model it must reduce to (CSC-Net with uniform attention is
GazeGAN; a two-stream model with one stream's readout zeroed is the other stream alone; an
Inception-ResNet block with residual scale 0 is its shortcut) and for its structure (named
layers, map range and shape, finite non-zero input gradients). Weights are drawn with numpy
from abstract variables (a jitted ``init`` costs a threefry compilation per parameter), and each
check is one program compiled at XLA optimisation level 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models.saliency import (
    CSCNet,
    GazeGAN,
    SoftmaxSpatialAttention,
)

_FAST = {"xla_backend_optimization_level": 0}


def _abstract(module, shape):
    x = jnp.zeros((1,) + tuple(shape))
    return jax.eval_shape(lambda k, x: module.init(k, x, train=False), jax.random.key(0), x)


def _draw(abstract, seed=0):
    """Fan-in scaled normal kernels, small biases; SAM's prior parameters in their range."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "priors" in name:
            return jnp.asarray(rng.uniform(0.2, 0.7, leaf.shape), leaf.dtype)
        if leaf.ndim <= 1:
            return jnp.asarray(rng.normal(0, 0.1, leaf.shape), leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _images(n, shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).random((n,) + tuple(shape)), jnp.float32)


def _zero(tree, keep=lambda path: True):
    """``tree`` with the leaves whose path passes ``keep`` set to zero."""
    return jax.tree_util.tree_map_with_path(
        lambda p, leaf: jnp.zeros_like(leaf) if keep(jax.tree_util.keystr(p)) else leaf, tree
    )


def _map_checks(module, variables, x):
    """Maps of the batch, the input gradient of <w, map 0>, and the named intermediates: one
    compiled program."""

    def run(variables, x):
        def maps_fn(x):
            return module.apply(variables, x)

        maps, pullback = jax.vjp(maps_fn, x)
        w = jnp.asarray(np.random.default_rng(3).normal(size=maps.shape[1:]), jnp.float32)
        (grads,) = pullback(jnp.stack([w] + [jnp.zeros_like(w)] * (x.shape[0] - 1)))
        _, state = module.apply(variables, x, mutable=["intermediates"])
        return maps, grads, state["intermediates"]

    return jax.jit(run, compiler_options=_FAST)(variables, x)


def _flat_names(tree, prefix=""):
    names = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            names |= _flat_names(value, f"{prefix}{key}/")
        else:
            names.add(prefix + key)
    return names


def _check_maps(maps, grads, intermediates, shape, layers, kind):
    assert maps.shape == (2, *shape[:2]) and maps.dtype == jnp.float32
    assert not np.allclose(maps[0], maps[1])
    low = 0.0 if kind == "unit" else -1.0
    assert float(maps.min()) >= low and float(maps.max()) <= 1.0
    assert bool(jnp.all(jnp.isfinite(grads))) and float(jnp.max(jnp.abs(grads[0]))) > 0.0
    np.testing.assert_array_equal(grads[1], 0.0)  # no coupling between the examples
    names = _flat_names(intermediates)
    for layer in layers:
        assert layer in names, (layer, sorted(names))


# ---------------------------------------------------------------------------------------------
# Softmax spatial attention and CSC-Net


def test_softmax_spatial_attention_matches_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    kernel = rng.normal(size=(1, 1, 5, 1)).astype(np.float32)
    variables = {"params": {"logits": {"kernel": jnp.asarray(kernel)}}}
    got, state = jax.jit(
        lambda v, x: SoftmaxSpatialAttention().apply(v, x, mutable=["intermediates"]),
        compiler_options=_FAST,
    )(variables, x)
    for i in range(2):
        logits = x[i] @ kernel[0, 0, :, 0]
        a = np.exp(logits - logits.max())
        a /= a.sum()
        np.testing.assert_allclose(state["intermediates"]["attention"][0][i], a, rtol=1e-5)
        np.testing.assert_allclose(got[i], x[i] * 12 * a[..., None], rtol=1e-5, atol=1e-6)
    # a zero kernel is uniform attention: the identity
    same = SoftmaxSpatialAttention().apply(_zero(variables), x)
    np.testing.assert_allclose(same, x, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="`x` must be a batch"):
        SoftmaxSpatialAttention().init(jax.random.key(0), jnp.zeros((3, 4, 5)))


def test_cscnet_structure_and_bad_input():
    shape = (64, 64, 3)
    abstract = _abstract(CSCNet(width=1), shape)
    attention = {k for k in abstract["params"] if k.endswith("_attention")}
    assert attention == {"csc1_g_attention", "csc2_g_attention", "csc1_attention", "csc2_attention"}
    # everything else is GazeGAN's, shape for shape
    rest = {k: v for k, v in abstract["params"].items() if k not in attention}
    gazegan = _abstract(GazeGAN(width=1), shape)["params"]
    assert jax.tree.map(lambda a: a.shape, rest) == jax.tree.map(lambda a: a.shape, gazegan)
    with pytest.raises(ValueError, match="`spatial_attention` weighs the CSC features"):
        _abstract(CSCNet(width=1, csc=False), shape)
    with pytest.raises(ValueError, match="GazeGAN needs image sides"):
        _abstract(CSCNet(width=1), (48, 64, 3))
    with pytest.raises(ValueError, match="`x` must be a batch"):
        jax.eval_shape(CSCNet(width=1).init, jax.random.key(0), jnp.zeros(shape))


@pytest.mark.slow  # two GazeGAN-sized programs: ~10 s on the loaded 2-core CPU
def test_cscnet_with_uniform_attention_is_gazegan():
    shape = (64, 64, 3)
    module = CSCNet(width=1)
    variables = _draw(_abstract(module, shape))
    x = _images(2, shape)
    layers = ("csc1_attention/attention", "csc2_g_attention/attention", "d6", "global_map")
    maps, grads, inter = _map_checks(module, variables, x)
    _check_maps(maps, grads, inter, shape, layers, "signed")
    for name in ("csc1_attention", "csc2_g_attention"):
        a = inter[name]["attention"][0]
        np.testing.assert_allclose(jnp.sum(a, axis=(1, 2)), 1.0, rtol=1e-5)
        assert float(jnp.std(a[0])) > 0  # the random kernel does attend
    uniform = _zero(variables, lambda p: "_attention" in p)
    plain = {k: v for k, v in variables["params"].items() if not k.endswith("_attention")}
    both = jax.jit(
        lambda u, p, x: (module.apply(u, x), GazeGAN(width=1).apply({"params": p}, x)),
        compiler_options=_FAST,
    )
    got, want = both(uniform, plain, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(maps, want, atol=1e-4)  # the attention changes the map
