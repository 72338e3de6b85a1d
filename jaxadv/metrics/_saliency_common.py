"""What the saliency metrics share: the two conventions (``variant=``) and their constants, the
argument checks, and the map normalizations of the reference codes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks

VARIANTS = ("mit", "pysaliency")

MATLAB_EPS = 2.220446049250313e-16  # eps in MATLAB's KLdiv.m and InfoGain.m

PYSALIENCY_KL_EPS = 2.2204e-16  # the literal in pysaliency's MIT_KLDiv

JITTER_SCALE = 1e-7  # AUC_Judd.m: rand / 10000000; pysaliency: randn * 1e-7


def _rank_error(name: str, shape: tuple[int, ...], expected: str) -> ValueError:
    hint = ""
    if len(shape) == 3:
        hint = (
            " A leading batch axis? Map the metric over it with jax.vmap (e.g. "
            "jax.vmap(nss, in_axes=(0, None)) for a batch of maps sharing one fixation map). "
            "A trailing channel axis? Pass map[..., 0]."
        )
    return ValueError(f"`{name}` must be ONE map of shape {expected}; got shape {shape}.{hint}")

def _as_map(name: str, x, *, nonnegative: bool = False):
    """Checks one 2-D map; values are inspected with numpy when concrete (no JAX dispatch)."""
    if not isinstance(x, (jax.Array, jax.core.Tracer, np.ndarray)):
        x = np.asarray(x)
    if x.ndim != 2:
        raise _rank_error(name, tuple(x.shape), "(h, w)")
    if x.size == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {tuple(x.shape)}.")
    if _checks.is_concrete(x):
        arr = np.asarray(x)
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(
                f"`{name}` must be finite; got {arr.size - int(finite.sum())} NaN/inf entries of "
                f"{arr.size}."
            )
        if nonnegative and arr.min() < 0:
            raise ValueError(f"`{name}` must be non-negative; got minimum {arr.min():.6g}.")
    return x

def _float(x, dtype=None) -> jax.Array:
    """Inside the jitted cores: the map as float32 (or wider), or as ``dtype``."""
    x = jnp.asarray(x)
    return x.astype(dtype if dtype is not None else jnp.promote_types(x.dtype, jnp.float32))

def _as_fixations(name: str, f, *, shape=None):
    f = _as_map(name, f, nonnegative=True)
    if shape is not None and tuple(f.shape) != tuple(shape):
        raise ValueError(
            f"`{name}` must be a count map of the fixation grid, shape {tuple(shape)}; "
            f"got shape {tuple(f.shape)}."
        )
    return f

def _require_fixated(name: str, f: jax.Array, minimum: int, metric: str) -> None:
    if not _checks.is_concrete(f):
        return
    found = int(np.count_nonzero(np.asarray(f) > 0))
    if found < minimum:
        raise ValueError(
            f"`{name}` must have at least {minimum} fixated pixel{'s' * (minimum > 1)} for "
            f"{metric}; got {found}. (Under jit/vmap the metric returns NaN here, as the MIT "
            "benchmark code does.)"
        )

def _check_variant(variant: str) -> None:
    _checks.check_choice("variant", variant, VARIANTS)

def _check_step(step) -> float:
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1:
        raise ValueError(f"`step` must be a Python number in (0, 1] (static); got {step!r}.")
    return float(step)

def _as_samples(samples, grid: tuple[int, int], allowed=None, allowed_name: str = "") -> jax.Array:
    samples = jnp.asarray(samples)
    if samples.ndim != 2 or samples.shape[0] < 1 or samples.shape[1] < 1:
        raise ValueError(
            "`samples` must be int[splits, m] (one row of flat pixel indices per split); got "
            f"shape {samples.shape}."
        )
    if not jnp.issubdtype(samples.dtype, jnp.integer):
        raise ValueError(f"`samples` must hold integer pixel indices; got dtype {samples.dtype}.")
    if _checks.is_concrete(samples):
        arr = np.asarray(samples)
        size = grid[0] * grid[1]
        if arr.min() < 0 or arr.max() >= size:
            raise ValueError(
                f"`samples` must be row-major flat indices into the {grid} fixation grid, in "
                f"[0, {size - 1}]; got values in [{arr.min()}, {arr.max()}]."
            )
        if allowed is not None and _checks.is_concrete(allowed):
            off = ~(np.asarray(allowed).ravel()[arr] > 0)
            if off.any():
                raise ValueError(
                    f"`samples` must index pixels where `{allowed_name}` > 0; {int(off.sum())} "
                    f"of {arr.size} do not (first: flat index {int(arr[off][0])})."
                )
    return samples

def _exactly_one_source(key, draws, draws_name: str, why: str) -> None:
    if key is not None and draws is not None:
        raise ValueError(f"Pass either `key` or `{draws_name}`, not both; got both ({why}).")

def _is_constant(x):
    return jnp.max(x) == jnp.min(x)

def _min_max(x):
    """MATLAB ``(x - min) / (max - min)``: NaN everywhere for a constant map."""
    return (x - jnp.min(x)) / (jnp.max(x) - jnp.min(x))

def _sum_normalized_if_nonzero(x):
    """MATLAB ``if any(x(:)), x = x / sum(x(:)); end``."""
    total = jnp.sum(x)
    return jnp.where(jnp.any(x != 0), x / jnp.where(total == 0, 1, total), x)

def _pysaliency_density(x):
    """pysaliency ``convert_saliency_map_to_density(x, minimum_value=0)``: shift up if the
    minimum is negative, divide by the sum; a zero-sum map becomes uniform."""
    x = jnp.where(jnp.min(x) < 0, x - jnp.min(x), x)
    total = jnp.sum(x)
    return jnp.where(total != 0, x / jnp.where(total == 0, 1, total), 1.0 / x.size)

def _nan_where(bad, value):
    return jnp.where(bad, jnp.nan, value).astype(value.dtype)

def _nonfinite(*arrays):
    """Whether any input holds NaN/inf: under jit the checks of ``_as_map`` cannot see values, so
    the metrics return NaN then (the benchmark's convention) instead of a plausible number."""
    return ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(jnp.asarray(a))) for a in arrays]))
