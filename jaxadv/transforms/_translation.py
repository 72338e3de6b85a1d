"""Translation invariance (TI): the gradient smoothed by a Gaussian kernel, as an optax transform.

Dong, Pang, Su & Zhu, "Evading defenses to transferable adversarial examples by
translation-invariant attacks", CVPR 2019 (Eq. 8): the gradient of an ensemble of translated
inputs is approximated by the gradient at the untranslated input convolved with a kernel ``W``;
the attack then steps along ``sign(W ∗ ∇J)`` (or feeds ``W ∗ ∇J`` to MI-FGSM's momentum).
Chain :func:`translation_invariant` before a step rule: ``optax.chain(translation_invariant(15),
mi_momentum(1.0), sign(), optax.scale(-alpha))``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks


def _check_kernel(kernel_size: Any, sigma: Any) -> None:
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, (int, np.integer))
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(
            f"`kernel_size` must be an odd integer >= 1 (the kernel is centred on a pixel); got "
            f"{kernel_size!r}."
        )
    if sigma is not None:
        _checks.check_positive("sigma", sigma)


def gaussian_kernel(kernel_size: int = 15, sigma: Any = None) -> jax.Array:
    """The normalised 2-D Gaussian kernel ``[k, k]`` of TI (entries sum to 1).

    ``sigma`` is the standard deviation in pixels; None: ``(k − 1)/6``, the kernel of the
    published code and of torchattacks (``linspace(−3, 3, k)`` standard deviations, ``nsig = 3``:
    the kernel spans ±3σ). A 1×1 kernel is ``[[1]]``: TI is then the identity.
    """
    _check_kernel(kernel_size, sigma)
    half = (kernel_size - 1) / 2
    if kernel_size == 1:
        return jnp.ones((1, 1), jnp.float32)
    if sigma is None:
        sigma = half / 3.0
    offsets = np.arange(kernel_size) - half
    if _checks.is_concrete(sigma):  # float64 weights, as the reference code computes them
        line = np.exp(-0.5 * np.square(offsets / np.float64(sigma)))
        kernel = np.outer(line, line)
        return jnp.asarray(kernel / kernel.sum(), jnp.float32)
    line = jnp.exp(-0.5 * jnp.square(jnp.asarray(offsets, jnp.float32) / sigma))
    kernel = jnp.outer(line, line)
    return kernel / jnp.sum(kernel)


def smooth_image(grad: jax.Array, kernel: jax.Array) -> jax.Array:
    """``grad`` (one example, ``[H, W, C]``) convolved channel by channel with ``kernel``
    (``[k, k]``), zero padding, same size: a depthwise convolution."""
    if grad.ndim != 3:
        raise ValueError(
            "`translation_invariant` smooths images of one example, shape (H, W, C); got an "
            f"update of shape {grad.shape}."
        )
    k = kernel.shape[0]
    if k > min(grad.shape[:2]):
        raise ValueError(
            f"`kernel_size` must not exceed the image: the kernel is {k}×{k} but the image is "
            f"{grad.shape[0]}×{grad.shape[1]}; choose an odd `kernel_size` <= {min(grad.shape[:2])}."
        )
    channels = grad.shape[-1]
    rhs = jnp.broadcast_to(kernel[:, :, None, None], (k, k, 1, channels)).astype(grad.dtype)
    out = jax.lax.conv_general_dilated(
        grad[None],
        rhs,
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out[0]


def translation_invariant(
    kernel_size: int = 15, sigma: jax.Array | float | None = None
) -> optax.GradientTransformation:
    """TI: each update (one example's gradient, ``[H, W, C]``) convolved with a Gaussian kernel.

    Dong et al., CVPR 2019 (module docstring). ``kernel_size`` is odd and at most the image's
    side (checked when the update's shape is known); ``sigma`` the Gaussian's standard deviation
    in pixels (None: ``(k − 1)/6``, the paper's code and torchattacks' ``TIFGSM`` with
    ``nsig = 3``; it may be traced). Zero padding keeps the size (torchattacks' ``padding="same"``).
    The paper's default for 299-pixel ImageNet images is ``kernel_size = 15``. Stateless.
    """
    _check_kernel(kernel_size, sigma)

    def update_fn(updates, state, params=None):
        del params
        kernel = gaussian_kernel(kernel_size, sigma)
        return jax.tree.map(lambda g: smooth_image(g, kernel), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
