"""The orthonormal 2-D discrete cosine transform (DCT-II, ``norm="ortho"``) of an ``[h, w, c]``
image, per channel, as two small matrix products.

``C_n[k, i] = a_k · cos(π (2i + 1) k / (2n))`` with ``a_0 = √(1/n)`` and ``a_k = √(2/n)``
otherwise is an orthogonal matrix, so the 2-D transform ``X = C_h · x · C_wᵀ`` (each channel) is
orthonormal and its inverse is ``x = C_hᵀ · X · C_w``. The basis image of frequency ``(k, l)`` is
the outer product ``C_h[k] ⊗ C_w[l]`` (SimBA-DCT's search directions, ``attacks.simba``). This is
``scipy.fft.dctn(x, type=2, axes=(0, 1), norm="ortho")`` and its inverse ``idctn``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def dct_matrix(n: int) -> jax.Array:
    """The orthonormal DCT-II matrix ``C`` of size ``n × n`` (rows: frequencies), float32.

    Built in float64 by numpy (a static size), so that its rows are orthonormal to float32
    rounding.

    Args:
      n: the size, a Python int ≥ 1.

    Returns:
      ``f32[n, n]`` with orthonormal rows.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be an integer >= 1; got {n!r}.")
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return jnp.asarray(c, jnp.float32)


def _check_image(name: str, x) -> None:
    if jnp.ndim(x) != 3:
        raise ValueError(f"`{name}` must be one image of shape [h, w, c]; got {jnp.shape(x)}.")


def dct2(x: jax.Array) -> jax.Array:
    """The orthonormal 2-D DCT-II of an ``[h, w, c]`` image over its two spatial axes.

    Args:
      x: ``[h, w, c]``.

    Returns:
      The coefficients, ``[h, w, c]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxadv.image import dct2, idct2
      >>> x = jnp.arange(12.0).reshape(2, 3, 2)
      >>> bool(jnp.allclose(idct2(dct2(x)), x, atol=1e-5))
      True
    """
    _check_image("x", x)
    ch, cw = dct_matrix(x.shape[0]), dct_matrix(x.shape[1])
    hi = jax.lax.Precision.HIGHEST  # exact float32 products (TPU/GPU default to lower precision)
    return jnp.einsum("ki,ijc,lj->klc", ch, x, cw, precision=hi)


def idct2(coefficients: jax.Array) -> jax.Array:
    """The inverse of :func:`dct2` (the orthonormal DCT-III): ``x = C_hᵀ · X · C_w``.

    Args:
      coefficients: ``[h, w, c]`` DCT-II coefficients.

    Returns:
      The image, ``[h, w, c]``.
    """
    _check_image("coefficients", coefficients)
    ch, cw = dct_matrix(coefficients.shape[0]), dct_matrix(coefficients.shape[1])
    hi = jax.lax.Precision.HIGHEST
    return jnp.einsum("ki,klc,lj->ijc", ch, coefficients, cw, precision=hi)
