"""The image-guided pixel graph of Laplacian smoothing, matrix-free.

Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, §3.1: the
vertices are the pixels of the clean image x0, edges join grid neighbours (4 or 8), and an edge
weighs ``w_ij = k_f(x_i, x_j)·k_s(p_i, p_j)`` (feature kernel on colours, spatial kernel on
positions). With the degree ``D = diag(W·1)`` the symmetrically normalised adjacency is
``𝒲 = D^{-1/2} W D^{-1/2}``.

Nothing here builds an n×n matrix: the graph stores, for each of half of the neighbour offsets,
the normalised weight of the edge from every pixel to its neighbour at that offset (zero where
the neighbour falls outside the image), and ``𝒲·v`` is a sum of shifted, weighted copies of
``v``. The other half of the offsets are the same edges seen from the other end, so the operator
is symmetric by construction. A dense matrix is available for small images (tests, references).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxadv import _checks

# Half of each neighbourhood: every edge is stored once, at its first endpoint.
OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}
FEATURE_KERNELS = ("laplacian", "gaussian")
# A pixel whose edges all underflow to zero keeps 𝒲 finite: its row and column are then zero.
_MIN_DEGREE = 1e-30


def shift(a: jax.Array, di: int, dj: int, axes: tuple[int, int] = (0, 1)) -> jax.Array:
    """``out[i, j] = a[i + di, j + dj]`` along ``axes``, zero where that falls outside (static
    offsets)."""
    pads = [(0, 0)] * a.ndim
    pads[axes[0]] = (max(-di, 0), max(di, 0))
    pads[axes[1]] = (max(-dj, 0), max(dj, 0))
    starts = [0] * a.ndim
    starts[axes[0]], starts[axes[1]] = max(di, 0), max(dj, 0)
    return jax.lax.slice(jnp.pad(a, pads), starts, [s + n for s, n in zip(starts, a.shape)])


def neighbour_sum(weights, offsets, v: jax.Array, axes: tuple[int, int] = (0, 1)) -> jax.Array:
    """``Σ_o w_o·v(· + o) + (w_o·v)(· − o)``: the adjacency applied to ``v`` (any layout whose
    spatial ``axes`` match those of the broadcastable per-offset ``weights``)."""
    out = jnp.zeros_like(v)
    for weight, (di, dj) in zip(weights, offsets):
        out = out + weight * shift(v, di, dj, axes) + shift(weight * v, -di, -dj, axes)
    return out


@struct.dataclass
class PixelGraph:
    """The normalised adjacency ``𝒲`` of one image's pixel graph.

    Attributes:
      weights: ``f32[k, h, w, g]``: ``weights[o, i, j, :]`` is ``𝒲`` between pixel ``(i, j)`` and
        its neighbour at ``offsets[o]``. ``g`` is 1 (one graph for all channels) or the number of
        channels (one graph per channel, as the published code builds it).
      offsets: the static neighbour offsets, half of the neighbourhood.
    """

    weights: jax.Array
    offsets: tuple[tuple[int, int], ...] = struct.field(pytree_node=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(h, w, g)``: the image size and the number of graphs."""
        return tuple(self.weights.shape[1:])

    def check_signal(self, name: str, v: jax.Array) -> None:
        """Raises a ValueError unless ``v`` is an ``[h, w, c]`` signal this graph can act on."""
        h, w, g = self.shape
        shape = jnp.shape(v)
        if len(shape) != 3 or shape[:2] != (h, w) or (g != 1 and shape[2] != g):
            want = f"[{h}, {w}, c]" if g == 1 else f"[{h}, {w}, {g}]"
            raise ValueError(
                f"`{name}` must have shape {want} to match the graph built from the clean image "
                f"({'one graph for all channels' if g == 1 else f'{g} per-channel graphs'}); "
                f"got {shape}."
            )

    def matvec(self, v: jax.Array) -> jax.Array:
        """``𝒲·v`` for a signal ``v`` of shape ``[h, w, c]`` (each channel on its graph)."""
        return neighbour_sum(self.weights, self.offsets, v)

    def dense(self) -> jax.Array:
        """``𝒲`` as ``f32[g, n, n]`` (n = h·w pixels, row-major): for small images only."""
        h, w, g = self.shape
        n = h * w
        basis = jnp.eye(n, dtype=self.weights.dtype).reshape(n, h, w, 1)
        columns = jax.vmap(lambda e: self.matvec(jnp.broadcast_to(e, (h, w, g))))(basis)
        return jnp.transpose(columns.reshape(n, n, g), (2, 1, 0))


def pixel_graph(
    x0: jax.Array,
    bandwidth: jax.Array | float,
    *,
    neighbors: int = 4,
    kernel: str = "laplacian",
    spatial_bandwidth: jax.Array | float = 1.0,
    per_channel: bool = False,
) -> PixelGraph:
    """Builds the normalised pixel graph ``𝒲`` guided by the clean image ``x0`` (``[h, w, c]``).

    Args:
      x0: the clean image; its colours drive the feature kernel.
      bandwidth: σ_f of the feature kernel: ``exp(−‖x_i − x_j‖/σ_f)`` (``"laplacian"``, the
        paper's choice) or ``exp(−‖x_i − x_j‖²/(2σ_f²))`` (``"gaussian"``). The published code's
        ``exp(−λ·d)`` is the Laplacian kernel with ``σ_f = 1/λ`` (its demo: λ = 10).
      neighbors: 4 or 8 grid neighbours (static).
      kernel: ``"laplacian"`` or ``"gaussian"`` (static).
      spatial_bandwidth: σ_s of the Gaussian spatial kernel ``exp(−‖p_i − p_j‖²/(2σ_s²))``. On a
        4-neighbour grid every edge has length 1, so it cancels in the normalisation; on an
        8-neighbour grid it weighs diagonal against axial edges.
      per_channel: one graph per colour channel on that channel's values (the published code),
        instead of one graph on the distance over all channels (the paper's text).

    Bandwidths may be traced (swept); concrete values must be positive.

    Returns:
      A :class:`PixelGraph`.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    _checks.check_choice("neighbors", neighbors, tuple(OFFSETS))
    _checks.check_choice("kernel", kernel, FEATURE_KERNELS)
    if jnp.ndim(x0) != 3:
        raise ValueError(f"`x0` must be one image of shape [h, w, c]; got shape {jnp.shape(x0)}.")
    _checks.check_positive("bandwidth", bandwidth)
    _checks.check_positive("spatial_bandwidth", spatial_bandwidth)
    x0 = jnp.asarray(x0, jnp.float32)
    bandwidth = jnp.asarray(bandwidth, jnp.float32)
    spatial_bandwidth = jnp.asarray(spatial_bandwidth, jnp.float32)
    offsets = OFFSETS[neighbors]
    h, w, _ = x0.shape
    raw = []
    for di, dj in offsets:
        diff = x0 - shift(x0, di, dj)
        sq = jnp.square(diff) if per_channel else jnp.sum(jnp.square(diff), -1, keepdims=True)
        if kernel == "laplacian":
            # sqrt has an infinite derivative at 0; bandwidths are never differentiated through
            # x0 here, but keep it finite anyway with a where.
            dist = jnp.sqrt(jnp.where(sq > 0, sq, 1.0))
            feature = jnp.where(sq > 0, jnp.exp(-dist / bandwidth), 1.0)
        else:
            feature = jnp.exp(-sq / (2.0 * jnp.square(bandwidth)))
        spatial = jnp.exp(-(di * di + dj * dj) / (2.0 * jnp.square(spatial_bandwidth)))
        raw.append(feature * spatial * _inside(h, w, di, dj))
    raw = jnp.stack(raw)
    degree = jnp.zeros(raw.shape[1:], raw.dtype)
    for weight, (di, dj) in zip(raw, offsets):
        degree = degree + weight + shift(weight, -di, -dj)
    inv_sqrt = jax.lax.rsqrt(jnp.maximum(degree, _MIN_DEGREE))
    normalized = jnp.stack(
        [wt * inv_sqrt * shift(inv_sqrt, di, dj) for wt, (di, dj) in zip(raw, offsets)]
    )
    return PixelGraph(weights=normalized, offsets=offsets)


def _inside(h: int, w: int, di: int, dj: int) -> np.ndarray:
    """``[h, w, 1]`` mask of the pixels whose neighbour at ``(di, dj)`` lies in the image."""
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    ok = (i + di >= 0) & (i + di < h) & (j + dj >= 0) & (j + dj < w)
    return ok[..., None].astype(np.float32)
