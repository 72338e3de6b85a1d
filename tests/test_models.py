"""Classifier architectures, the registry, the strided-conv rewrite and the Victim contract."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models import (
    C4Net,
    CWNet,
    ResNet,
    Stride2Conv,
    classifier,
    conv_stride2,
    from_flax,
    max_pool_2x2,
)

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)


def _init(module, shape, seed=0):
    """Random variables of the module's shapes, drawn with numpy.

    (Compiling ``module.init`` means compiling a threefry draw per parameter, which takes seconds
    per model on a 2-core CPU; the tests only need some weights of the right shapes.)
    """
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1,) + shape))

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "var" in name:
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        fan_in = max(int(np.prod(leaf.shape[:-1])), 1)
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _images(n, shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n,) + shape, np.float32))


@pytest.mark.parametrize("name", ["cw", "c4", "resnet"])
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_output_shapes(name, shape):
    module = classifier(name, num_classes=7)
    variables = _init(module, shape)
    logits = jax.jit(module.apply)(variables, _images(3, shape))
    assert logits.shape == (3, 7) and logits.dtype == jnp.float32
    assert ("batch_stats" in variables) == (name == "resnet")


@pytest.mark.parametrize(
    "module, features",
    [(CWNet(), (4, 4, 64)), (C4Net(), (1, 1, 128)), (ResNet(width=8), (32,))],
)
def test_pre_flatten_features_are_sown(module, features):
    variables = _init(module, MNIST)
    apply = jax.jit(functools.partial(module.apply, mutable=["intermediates"]))
    _, state = apply(variables, _images(2, MNIST))
    assert state["intermediates"]["features"][0].shape == (2,) + features


def test_registry_rejects_unknown_names_and_bad_class_counts():
    with pytest.raises(ValueError, match=r"`name`.*'cw', 'c4', 'resnet'.*'vgg'"):
        classifier("vgg")
    with pytest.raises(ValueError, match="`num_classes`"):
        classifier("cw", num_classes=0)


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 9, 2)])
def test_max_pool_2x2_matches_flax_values_and_gradients(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)  # no ties
    ours = lambda x: max_pool_2x2(x)
    flax_pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(flax_pool)(x))
    w = np.random.default_rng(1).normal(size=flax_pool(x).shape).astype(np.float32)
    g_ours = jax.jit(jax.grad(lambda x: jnp.sum(ours(x) * w)))(x)
    g_flax = jax.jit(jax.grad(lambda x: jnp.sum(flax_pool(x) * w)))(x)
    np.testing.assert_array_equal(g_ours, g_flax)


@pytest.mark.parametrize(
    "size, kernel, padding",
    [(28, 8, "SAME"), (14, 6, "VALID"), (15, 3, 1), (9, 5, "SAME"), (10, 1, "VALID")],
)
def test_stride2_conv_matches_lax_strided_conv(size, kernel, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    w = rng.normal(size=(kernel, kernel, 3, 4)).astype(np.float32)
    lax_pad = [(padding, padding)] * 2 if isinstance(padding, int) else padding

    def ref(x, w):
        dn = ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(x, w, (2, 2), lax_pad, dimension_numbers=dn)

    def value_and_grads(f):
        loss = lambda x, w: jnp.sum(jnp.sin(f(x, w)))
        return jax.jit(lambda x, w: (f(x, w), jax.grad(loss, argnums=(0, 1))(x, w)))(x, w)

    ours, ours_grads = value_and_grads(lambda x, w: conv_stride2(x, w, padding))
    theirs, theirs_grads = value_and_grads(ref)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours_grads, theirs_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_stride2_conv_module_is_a_drop_in_for_nn_conv():
    ours = Stride2Conv(5, (6, 6), padding="SAME")
    theirs = nn.Conv(5, (6, 6), strides=2, padding="SAME")
    x = _images(2, (12, 12, 3))
    variables = _init(ours, (12, 12, 3))
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, _init(theirs, (12, 12, 3)))
    np.testing.assert_allclose(
        jax.jit(ours.apply)(variables, x), jax.jit(theirs.apply)(variables, x), atol=1e-5
    )


@pytest.mark.parametrize(
    "module", [CWNet(dropout_rate=0.5), C4Net(), ResNet(width=8)], ids=["cw", "c4", "resnet"]
)
def test_victim_is_deterministic_and_vmap_equals_batch(module):
    victim = from_flax(module, _init(module, MNIST), input_shape=MNIST, num_classes=10)
    x = _images(4, MNIST)
    # Jitted: eager calls would compile every primitive of the net separately.
    batch = jax.jit(lambda v, x: v.batch(x))(victim, x)
    np.testing.assert_array_equal(jax.jit(lambda v, x: v.batch(x))(victim, x), batch)
    per_example = jax.jit(lambda v, x: jax.vmap(v)(x))(victim, x)
    np.testing.assert_allclose(per_example, batch, rtol=1e-5, atol=1e-5)


def test_victim_rejects_a_batch_axis_for_one_example_and_vice_versa():
    module = C4Net()
    victim = from_flax(module, _init(module, MNIST), input_shape=MNIST, num_classes=10)
    with pytest.raises(ValueError, match="`x`.*ONE example.*batch axis"):
        victim(_images(2, MNIST))
    with pytest.raises(ValueError, match="`x`.*BATCH"):
        victim.batch(_images(1, MNIST)[0])
    with pytest.raises(ValueError, match="`variables`.*'params'"):
        from_flax(module, {"weights": {}}, input_shape=MNIST, num_classes=10)


def test_resnet_victim_uses_running_statistics_not_batch_statistics():
    module = ResNet(width=8)
    variables = _init(module, MNIST)
    x = _images(4, MNIST)
    train_apply = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))
    train_logits, _ = train_apply(variables, x)
    victim = from_flax(module, variables, input_shape=MNIST, num_classes=10)
    logits = jax.jit(lambda v, x: v.batch(x))
    assert not np.allclose(train_logits, logits(victim, x), atol=1e-3)
    # Inference mode: an example's logits do not depend on the rest of the batch.
    np.testing.assert_allclose(logits(victim, x[:2])[0], logits(victim, x)[0], rtol=1e-5, atol=1e-5)


def test_cw_dropout_acts_in_training_only():
    module = CWNet(dropout_rate=0.5)
    variables = _init(module, MNIST)
    x = _images(2, MNIST)
    train = jax.jit(lambda key: module.apply(variables, x, train=True, rngs={"dropout": key}))
    assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))
    infer = jax.jit(module.apply)
    np.testing.assert_array_equal(infer(variables, x), infer(variables, x))
