"""SSIM and MS-SSIM in JAX (differentiable), and the perceptual budgets and penalties built on them.

* SSIM: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
  structural similarity", IEEE TIP 2004 — an 11×11 Gaussian window of σ = 1.5 (normalised to sum
  1), K1 = 0.01, K2 = 0.03, dynamic range L, local statistics with population (not sample)
  variances, averaged over the positions where the window fits entirely ("valid" filtering),
  per channel, then over channels. This is scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L,
  channel_axis=-1)``: it filters with a kernel truncated at 3.5σ (radius 5, i.e. 11 taps) and
  averages over the map cropped by the kernel radius, which are the valid positions.
* MS-SSIM: Wang, Simoncelli & Bovik, "Multi-scale structural similarity for image quality
  assessment", Asilomar 2003 — the contrast-structure term at scales 1…M−1 and the full SSIM at
  scale M, combined as ``Π_j cs_j^{w_j} · ssim_M^{w_M}`` with the published weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), each term the mean over the valid positions of one
  channel, clamped at 0 before the power (negative similarities would give complex powers); the
  product is taken per channel and then averaged over channels. Between scales the images are
  average-pooled 2×2 with stride 2, an odd row/column first repeated (symmetric padding). These
  are TensorFlow's ``tf.image.ssim_multiscale`` conventions.

The perceptual constraints of Che et al.'s attack library (ℓ1, ℓ2, ℓ∞, SSIM, MS-SSIM) are offered
as budgets and as penalties. ℓp budgets are the norm balls of ``jaxadv.constraints``; SSIM has no
projection, so :func:`ssim_budget` is a *retraction*: it pulls an infeasible perturbation back
toward ``x0`` along its own ray (bisection on the scale ``s ∈ [0, 1]`` of ``delta``, keeping the
largest scale found with ``1 − SSIM(x0, x0 + s·delta) ≤ eps``). Penalties are
:func:`perceptual_distance` terms ``λ·D(x0, x)`` added to a minimised loss (:func:`penalized`).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.constraints import Constraint

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PERCEPTUAL_DISTANCES = ("l1", "l2", "linf", "ssim", "msssim")


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """The 1-D Gaussian taps (sum 1) whose outer product is the SSIM window."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).astype(np.float32)


def _as_channels(name: str, x: jax.Array) -> jax.Array:
    """``[h, w]`` or ``[h, w, c]`` → ``[c, h, w, 1]`` (channels in the batch axis of a conv)."""
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(
            f"`{name}` must be ONE image of shape (h, w) or (h, w, c); got shape {tuple(x.shape)}."
        )
    return jnp.transpose(x, (2, 0, 1))[..., None]


def _check_pair(x, y, min_size: int, what: str) -> None:
    if jnp.shape(x) != jnp.shape(y):
        raise ValueError(
            f"`x` and `y` must have the same shape; got {tuple(jnp.shape(x))} and "
            f"{tuple(jnp.shape(y))}."
        )
    if jnp.ndim(x) not in (2, 3):
        raise ValueError(
            f"`x` must be ONE image of shape (h, w) or (h, w, c); got shape {tuple(jnp.shape(x))}."
        )
    h, w = jnp.shape(x)[:2]
    if h < min_size or w < min_size:
        raise ValueError(
            f"{what} needs images of at least {min_size}×{min_size} pixels; got `x` of {h}×{w}."
        )


def _filter_valid(stack: jax.Array) -> jax.Array:
    """Separable Gaussian filtering of ``[n, h, w, 1]`` over the valid positions."""
    taps = jnp.asarray(gaussian_window())
    dims = ("NHWC", "HWIO", "NHWC")
    hp = jax.lax.Precision.HIGHEST
    out = jax.lax.conv_general_dilated(
        stack, taps.reshape(-1, 1, 1, 1), (1, 1), "VALID", dimension_numbers=dims, precision=hp
    )
    return jax.lax.conv_general_dilated(
        out, taps.reshape(1, -1, 1, 1), (1, 1), "VALID", dimension_numbers=dims, precision=hp
    )


def _components(x: jax.Array, y: jax.Array, data_range) -> tuple[jax.Array, jax.Array]:
    """Per-channel means of the SSIM map and of the contrast-structure map: two ``[c]`` arrays.

    ``x``, ``y``: ``[c, h, w, 1]``.
    """
    c = x.shape[0]
    data_range = jnp.asarray(data_range, x.dtype)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    stats = _filter_valid(jnp.concatenate([x, y, x * x, y * y, x * y], axis=0))
    mx, my, xx, yy, xy = (stats[i * c : (i + 1) * c] for i in range(5))
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    cs = (2.0 * cov + c2) / (vx + vy + c2)
    lum = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    axes = (1, 2, 3)
    return jnp.mean(lum * cs, axis=axes), jnp.mean(cs, axis=axes)


def ssim(x: jax.Array, y: jax.Array, *, data_range: float | jax.Array = 1.0) -> jax.Array:
    """Mean structural similarity of ONE pair of images ``[h, w]`` or ``[h, w, c]`` (module
    docstring); a float32 scalar, 1 for identical images, differentiable in both.

    Args:
      x, y: the images, same shape, at least 11×11.
      data_range: L, the span of the pixel values (1 for images in [0, 1]); may be traced.

    Raises:
      ValueError: shapes differ, are not images, or are smaller than the 11×11 window.

    Returns:
      A float32 scalar in [-1, 1].

    References:
      Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to
      Structural Similarity", IEEE TIP 2004.
    """
    _check_pair(x, y, WINDOW_SIZE, "SSIM with its 11×11 window")
    return _ssim(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), data_range)


@jax.jit  # compiled once per shape when called eagerly; inlined inside a user's trace
def _ssim(x, y, data_range):
    full, _ = _components(_as_channels("x", x), _as_channels("y", y), data_range)
    return jnp.mean(full)


def _safe_power(base: jax.Array, exponent: float) -> jax.Array:
    """``max(base, 0)^exponent`` with a zero (not NaN) gradient where ``base ≤ 0``."""
    positive = base > 0
    return jnp.where(positive, jnp.where(positive, base, 1.0) ** exponent, 0.0)


def _downsample(x: jax.Array) -> jax.Array:
    """2×2 average pooling with stride 2 of ``[c, h, w, 1]``; odd sizes repeat the last row/col."""
    h, w = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    c, h, w = x.shape[:3]
    return x.reshape(c, h // 2, 2, w // 2, 2, 1).mean(axis=(2, 4))


def ms_ssim_min_size(num_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The smallest side for which the 11×11 window fits the coarsest of ``num_scales`` scales.

    Args:
      num_scales: the number of scales.

    Returns:
      The side in pixels, a Python int.
    """
    return (WINDOW_SIZE - 1) * 2 ** (num_scales - 1) + 1


def ms_ssim(
    x: jax.Array,
    y: jax.Array,
    *,
    data_range: float | jax.Array = 1.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> jax.Array:
    """Multi-scale SSIM of ONE pair of images ``[h, w]`` or ``[h, w, c]`` (module docstring).

    Args:
      x, y: the images, same shape; with the 5 standard scales at least 161×161 (the window must
        fit the fifth scale after four 2× downsamplings; :func:`ms_ssim_min_size`).
      data_range: L, the span of the pixel values; may be traced.
      weights: one exponent per scale, finest first (static); the default is the paper's.

    Raises:
      ValueError: shapes differ or are too small for the number of scales, or no weights.

    Returns:
      A float32 scalar.

    References:
      Wang, Simoncelli & Bovik, "Multi-scale structural similarity for image quality assessment",
      Asilomar 2003.
    """
    weights = tuple(float(w) for w in weights)
    if not weights:
        raise ValueError("`weights` must hold one exponent per scale; got an empty tuple.")
    _check_pair(x, y, ms_ssim_min_size(len(weights)), f"MS-SSIM with {len(weights)} scales")
    return _ms_ssim(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), data_range, weights)


@functools.partial(jax.jit, static_argnums=(3,))
def _ms_ssim(x, y, data_range, weights):
    x, y = _as_channels("x", x), _as_channels("y", y)
    total = jnp.ones(x.shape[0], jnp.float32)
    for j, w in enumerate(weights):
        full, cs = _components(x, y, data_range)
        last = j == len(weights) - 1
        total = total * _safe_power(full if last else cs, w)
        if not last:
            x, y = _downsample(x), _downsample(y)
    return jnp.mean(total)


# -- perceptual penalties and budgets ------------------------------------------------------------


def perceptual_distance(
    kind: str, x0: jax.Array, x: jax.Array, *, data_range: float | jax.Array = 1.0
) -> jax.Array:
    """The perceptual distance ``D(x0, x)`` that Che et al.'s attacks penalise (scalar, ≥ 0).

    ``"l1"``: mean ``|x − x0|``; ``"l2"``: mean ``(x − x0)²`` (the published code's L1 and
    MSE losses, per-pixel means); ``"linf"``: max ``|x − x0|``; ``"ssim"``: ``1 − SSIM(x0, x)``;
    ``"msssim"``: ``1 − MS-SSIM(x0, x)``. ``x0``, ``x``: ONE example (images ``[h, w, c]`` for
    the SSIM kinds).

    Args:
      kind: one of :data:`PERCEPTUAL_DISTANCES`.
      x0: the clean image.
      x: the perturbed image, same shape.
      data_range: the span of the pixel values.

    Returns:
      A scalar ≥ 0.
    """
    _checks.check_choice("kind", kind, PERCEPTUAL_DISTANCES)
    delta = x - x0
    if kind == "l1":
        return jnp.mean(jnp.abs(delta))
    if kind == "l2":
        return jnp.mean(jnp.square(delta))
    if kind == "linf":
        return jnp.max(jnp.abs(delta))
    similarity = ssim if kind == "ssim" else ms_ssim
    return 1.0 - similarity(x0, x, data_range=data_range)


def penalized(
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    x0: jax.Array,
    kind: str,
    weight: jax.Array | float,
    *,
    data_range: float | jax.Array = 1.0,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, out) -> loss_fn(x, out) + weight·D(x0, x)``: a runner loss with a perceptual penalty.

    The paper's objective (Eq. 1): ``L1[F(I*), F(G)] + λ1·L2(I, I*)`` with ``L2`` one of
    :data:`PERCEPTUAL_DISTANCES`; ``weight`` λ may be traced (swept).

    Args:
      loss_fn: the runner's ``(x, out) -> loss``.
      x0: the clean image.
      kind: one of :data:`PERCEPTUAL_DISTANCES`.
      weight: λ ≥ 0 (may be traced).
      data_range: the span of the pixel values.

    Returns:
      ``(x, out) -> loss``.
    """
    _checks.check_choice("kind", kind, PERCEPTUAL_DISTANCES)
    _checks.check_nonnegative("weight", weight)

    def loss(x, out):
        return loss_fn(x, out) + weight * perceptual_distance(kind, x0, x, data_range=data_range)

    return loss


def ssim_budget(
    eps: jax.Array | float,
    *,
    multiscale: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
    bisection_steps: int = 12,
) -> Constraint:
    """The budget ``1 − SSIM(x0, x0 + delta) ≤ eps`` (or MS-SSIM) as a :class:`Constraint`.

    SSIM balls have no closed-form projection. ``project(delta, x0)`` first clips ``x0 + delta``
    to ``bounds`` and, if the result is outside the budget, returns ``s·delta`` for the largest
    ``s ∈ [0, 1]`` that ``bisection_steps`` halvings find feasible (``s = 0`` always is: SSIM of
    an image with itself is 1), i.e. it backtracks toward ``x0`` along the perturbation's ray.
    The result is always feasible and inside the box; a feasible ``delta`` is left unchanged.
    Each call costs up to ``1 + bisection_steps`` SSIM evaluations. The data range L is
    ``bounds[1] − bounds[0]``. ``sample`` draws a uniform ``delta`` in ``[−eps·L, eps·L]`` and
    retracts it. ``eps`` may be traced (swept).

    This replaces the paper's stopping rule (Algorithm 1's loop runs while the budget holds) by a
    retraction applied after every step, so an attack never leaves the budget.

    Args:
      eps: the budget on ``1 − SSIM``, ≥ 0 (may be traced).
      multiscale: use MS-SSIM.
      bounds: the pixel box.
      bisection_steps: halvings of the backtracking search.

    Returns:
      A :class:`~jaxadv.constraints.Constraint`.
    """
    _checks.check_nonnegative("eps", eps)
    _checks.check_positive_int("bisection_steps", bisection_steps)
    low, high = float(bounds[0]), float(bounds[1])
    if not high > low:
        raise ValueError(f"`bounds` must be (low, high) with low < high; got {bounds!r}.")
    span = high - low
    similarity = ms_ssim if multiscale else ssim

    def feasible(delta, x0):
        return 1.0 - similarity(x0, x0 + delta, data_range=span) <= eps

    def project(delta, x0):
        delta = jnp.clip(delta, low - x0, high - x0)

        def halve(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            ok = feasible(mid * delta, x0)
            return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

        zero, one = jnp.zeros((), delta.dtype), jnp.ones((), delta.dtype)
        lo, _ = jax.lax.fori_loop(0, bisection_steps, halve, (zero, one))
        return jnp.where(feasible(delta, x0), delta, lo * delta)

    def sample(key, x0):
        return jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0) * eps * span

    return Constraint(project=project, sample=sample)
