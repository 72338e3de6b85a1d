"""Input diversity (DI): a random resize-and-pad of one image, with fixed output shape.

Xie, Zhang, Zhou, Bai, Wang, Ren & Yuille, "Improving transferability of adversarial examples
with input diversity", CVPR 2019: with probability ``p`` the gradient is taken through
``T(x)``, the image resized to a random size and zero-padded at a random place. The paper
enlarges (299 → [299, 330), padded to 330, which its victim accepts); a victim of fixed input
shape needs the output at the input's size, so, as torchattacks' ``DIFGSM``, the image is
shrunk to ``rnd ∈ [⌊r·W⌋, W)`` (``resize_rate`` ``r`` ≤ 1) and padded back to ``W``.

Everything is a fixed-shape computation with traced sizes (resizing is a product with two
interpolation matrices built from ``iota``), so it runs inside the compiled step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _interpolation(size_out: int, size_in: int, rnd: jax.Array, start: jax.Array) -> jax.Array:
    """``[size_out, size_in]``: row ``i`` holds the bilinear weights of output pixel ``i`` of a
    ``size_in`` axis resized to ``rnd`` pixels placed at ``start`` (zero rows outside it).

    Bilinear with ``align_corners=False`` (torch's ``F.interpolate``, no antialiasing): the
    source coordinate of resized pixel ``r`` is ``max((r + ½)·size_in/rnd − ½, 0)``."""
    i = jnp.arange(size_out)
    r = (i - start).astype(jnp.float32)
    inside = (i >= start) & (i < start + rnd)
    src = jnp.maximum((r + 0.5) * (size_in / rnd.astype(jnp.float32)) - 0.5, 0.0)
    i0 = jnp.clip(jnp.floor(src).astype(jnp.int32), 0, size_in - 1)
    i1 = jnp.minimum(i0 + 1, size_in - 1)
    w1 = src - i0.astype(jnp.float32)
    cols = jnp.arange(size_in)
    weights = (1.0 - w1)[:, None] * (cols == i0[:, None]) + w1[:, None] * (cols == i1[:, None])
    return jnp.where(inside[:, None], weights, 0.0)


def resize_and_pad(
    x: jax.Array, rnd_h: jax.Array, rnd_w: jax.Array, top: jax.Array, left: jax.Array
) -> jax.Array:
    """``x`` (``[H, W, C]``) resized bilinearly to ``rnd_h × rnd_w`` and placed with its corner
    at ``(top, left)`` on a zero canvas of ``x``'s shape (sizes and offsets may be traced)."""
    h, w = x.shape[0], x.shape[1]
    a_h = _interpolation(h, h, rnd_h, top).astype(x.dtype)
    a_w = _interpolation(w, w, rnd_w, left).astype(x.dtype)
    return jnp.einsum("ih,jw,hwc->ijc", a_h, a_w, x, precision=jax.lax.Precision.HIGHEST)


def diverse_input(key: jax.Array, x: jax.Array, prob: float, resize_rate: float) -> jax.Array:
    """DI's ``T(x; p)``: with probability ``prob`` the resized-and-padded image, else ``x``.

    The size is drawn once for both axes (a square image keeps its aspect): ``rnd = ⌊r·S⌋ +
    ⌊u·(S − ⌊r·S⌋)⌋`` with ``u ~ U[0, 1)``, i.e. uniform on ``[⌊r·S⌋, S)`` (``S`` itself when
    ``⌊r·S⌋ = S``); each offset is uniform on ``[0, S − rnd)`` (0 when nothing is left), as
    torchattacks. ``prob = 0`` returns ``x`` itself (bit for bit: the resized branch gets a zero
    cotangent)."""
    return diverse_from_uniforms(jax.random.uniform(key, (4,)), x, prob, resize_rate)


def diverse_from_uniforms(u: jax.Array, x: jax.Array, prob: float, resize_rate: float):
    """:func:`diverse_input` from four uniforms on [0, 1) (size, top, left, coin): callers draw
    all their uniforms at once (each draw is a threefry, slow to compile on CPU)."""

    def draw(size: int, u_start: jax.Array) -> tuple[jax.Array, jax.Array]:
        low = int(size * resize_rate)
        rnd = low + jnp.floor(u[0] * (size - low)).astype(jnp.int32) if low < size else size
        rnd = jnp.asarray(rnd, jnp.int32)
        start = jnp.floor(u_start * jnp.maximum(size - rnd, 1)).astype(jnp.int32)
        return rnd, start

    (rnd_h, top), (rnd_w, left) = draw(x.shape[0], u[1]), draw(x.shape[1], u[2])
    return jnp.where(u[3] < prob, resize_and_pad(x, rnd_h, rnd_w, top, left), x)
