"""The matmul input-gradient convolution against the plain Flax layers (issue 19)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models import CWNet, describe_module, max_pool_2x2
from jaxadv.models._layers import Conv2D, conv_matmul_input_grad

CIFAR = (32, 32, 3)


def _normal(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class _PlainCWNet(nn.Module):
    """The C&W net written with plain Flax layers only (``nn.Conv``, ``nn.max_pool``)."""

    @nn.compact
    def __call__(self, x):
        for i, features in enumerate((32, 32, 64, 64)):
            x = nn.relu(nn.Conv(features, (3, 3), padding="VALID", name=f"conv{i + 1}")(x))
            if i % 2 == 1:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for i in range(2):
            x = nn.relu(nn.Dense(200, name=f"fc{i + 1}")(x))
        return nn.Dense(10, name="fc3")(x)


@pytest.mark.parametrize(
    "padding,channels", [("VALID", 3), ("SAME", 5), (1, 3), (((2, 0), (0, 1)), 5)]
)
@pytest.mark.parametrize("input_grad", ["autodiff", "matmul"])
def test_conv2d_equals_flax_conv(padding, channels, input_grad):
    x = _normal((2, 9, 8, channels), 0)
    plain = nn.Conv(4, (3, 2), padding=padding)
    ours = Conv2D(4, (3, 2), padding=padding, input_grad=input_grad)
    variables = plain.init(jax.random.key(1), x)
    # Same parameter names, shapes and initial values for the same key: interchangeable.
    _assert_trees_equal(ours.init(jax.random.key(1), x), variables)
    variables = jax.tree.map(lambda v: v + _normal(v.shape, 2), variables)  # a nonzero bias too
    g = _normal(y_shape := plain.apply(variables, x).shape, 3)
    tx, tv = _normal(x.shape, 4), jax.tree.map(lambda v: _normal(v.shape, 5), variables)

    @functools.partial(jax.jit, static_argnums=0)  # one program per module, not op by op
    def derivatives(module, variables, x):
        y, vjp = jax.vjp(module.apply, variables, x)
        # Forward mode too (a custom_jvp, not a custom_vjp): the tangent in x and in the kernel.
        return y, vjp(g), jax.jvp(module.apply, (variables, x), (tv, tx))[1]

    (y, (dv, dx), t), (y2, (dv2, dx2), t2) = (derivatives(m, variables, x) for m in (plain, ours))
    assert y.shape == y_shape
    np.testing.assert_allclose(y2, y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx2, dx, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), dv2, dv)
    np.testing.assert_allclose(t2, t, rtol=1e-5, atol=1e-5)


def test_matmul_input_grad_is_a_matmul_and_col2im():
    """The compiled input gradient has no convolution left; the plain one has one."""
    x, k = _normal((2, 6, 6, 3), 0), _normal((3, 3, 3, 4), 1)

    def hlo(conv):
        grad = jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, k))))
        return jax.jit(grad).lower(x).as_text()

    plain = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    assert hlo(plain).count("convolution(") == 2
    assert hlo(conv_matmul_input_grad).count("convolution(") == 1  # the forward only
    assert "dot_general" in hlo(conv_matmul_input_grad)


def test_cwnet_equals_the_plain_flax_net():
    """Variables of the all-Flax C&W net load into CWNet in both forms; logits and input gradients
    agree to float32 tolerance (max-pools of ReLUs: reshape-max against nn.max_pool)."""
    x = jnp.asarray(np.random.default_rng(0).random((4,) + CIFAR, np.float32))
    labels = jnp.arange(4) % 10
    plain = _PlainCWNet()
    variables = jax.jit(plain.init)(jax.random.key(0), x[:1])

    def loss_grad(module):
        def loss(x):
            logits = module.apply(variables, x)
            return -jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(4), labels]), logits

        return jax.jit(jax.grad(loss, has_aux=True))(x)

    g, logits = loss_grad(plain)
    assert float(jnp.max(jnp.abs(g))) > 1e-4  # a gradient worth comparing
    for form in ("matmul", "autodiff"):
        module = CWNet(conv1_input_grad=form)
        _assert_trees_equal(
            jax.eval_shape(module.init, jax.random.key(0), x[:1]),
            jax.eval_shape(plain.init, jax.random.key(0), x[:1]),
        )
        g2, logits2 = loss_grad(module)
        np.testing.assert_allclose(logits2, logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g2, g, rtol=1e-4, atol=1e-6)


def test_cwnet_form_field_keeps_the_cache_description():
    assert describe_module(CWNet()) == "CWNet(num_classes=10, dropout_rate=0.0)"
    assert describe_module(CWNet(conv1_input_grad="autodiff")) == describe_module(CWNet())
    assert describe_module(CWNet(dropout_rate=0.5)) != describe_module(CWNet())


def test_conv2d_rejects_bad_arguments():
    x = jnp.zeros((1, 5, 5, 3))
    with pytest.raises(ValueError, match="`input_grad` must be one of .* got 'fast'"):
        Conv2D(2, (3, 3), input_grad="fast").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="`padding` must be .* got 'FULL'"):
        Conv2D(2, (3, 3), padding="FULL").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"`x` must be \[batch, h, w, c\]"):
        Conv2D(2, (3, 3)).init(jax.random.key(0), x[0])


def test_max_pool_2x2_is_flax_max_pool():
    x = _normal((2, 6, 7, 3), 0)
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
