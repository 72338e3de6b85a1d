"""The red-black reduction of ``ℒ_α`` on a 4-neighbour pixel graph: CG on half the pixels.

A 4-neighbour grid is bipartite. Colour pixel ``(i, j)`` red when ``i + j`` is even and black
otherwise: every edge joins a red pixel to a black one, so with the red pixels first
``𝒲 = [[0, B], [Bᵀ, 0]]``. Eliminating the black pixels from ``(I − α𝒲)s = (1 − α)z`` leaves the
Schur complement system on the red pixels,

    ``M s_r = y``  with  ``M = (I − α²BBᵀ)/(1 − α)``  and  ``y = z_r + αB z_b``,

after which ``s_b = (1 − α)z_b + αBᵀs_r``. The eigenvalues of ``BBᵀ`` lie in [0, 1], so ``M`` is
symmetric positive definite with eigenvalues in [1 + α, 1/(1 − α)]: its condition number is at
most ``1/(1 − α²)`` against ``(1 + α)/(1 − α)`` for ``ℒ_α`` (α = 0.95: 10.3 against 39), and CG
needs about half the iterations, each on half the pixels. With ``s_b`` computed as above the
black rows of the full residual ``z − ℒ_α s`` vanish and its red rows are ``y − M s_r``: the
reduced residual is the full one. Red-black ordering and the reduced system: Saad, "Iterative
methods for sparse linear systems", 2nd ed., SIAM 2003.

Layout. Pixel ``(2I + a, 2J + b)`` is sub-position ``(a, b)`` of block ``(I, J)`` (an odd height or
width gets one more row or column of isolated pixels, with no edges). Red pixels are the
sub-positions (0, 0) and (1, 1), black ones (0, 1) and (1, 0). The red part of a ``[c, h, w]``
signal is laid out ``[c, 2·(h2 + 2), w2 + 2]``: plane (0, 0) above plane (1, 1), each inside a
border of zeros one block wide, so that CG's per-channel inner products reduce its two minor axes
as on the full signal (the zeros add nothing), and the solvers' vector updates keep the border
zero. The black part is ``[c, 2·h2, w2]``, without a border: no loop iterates on it.

``BBᵀ`` couples each red pixel with itself and with the 8 red pixels two edges away, at (0, ±2),
(±2, 0) and (±1, ±1): ``M`` is applied as one 9-point stencil on the red planes, its coefficients
computed once per graph. With the border, each of the stencil's neighbours is a plain slice of
the planes and only the product's own border needs zeros, instead of a bounds test per
neighbour in every output element: 20 products at 32×32×3, batch 32, take 1.0 against 1.75 ms on
a 2-core CPU (issue 19). (``B(Bᵀv)`` as two stencils is the same product, but XLA fuses the inner
one into the outer and recomputes each black value four times: 2.4× slower per CG iteration at
32×32×3, batch 32, on a 2-core CPU.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxadv.image._graph import PixelGraph, shift

# The grid's 4 directions; 𝒲·v at a pixel sums its neighbours' values in these directions.
_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))
RED = ((0, 0), (1, 1))
BLACK = ((0, 1), (1, 0))


def _neighbour(sub, offset):
    """Where the pixel at ``offset`` from sub-position ``sub`` lies: ``(its sub-position, the
    shift of its block)``."""
    i, j = sub[0] + offset[0], sub[1] + offset[1]
    return (i % 2, j % 2), (i // 2, j // 2)


def _one_edge(outputs, sources):
    """For each output sub-position, its 4 neighbours as ``(index in sources, block shift)``."""
    table = []
    for sub in outputs:
        neighbours = (_neighbour(sub, d) for d in _DIRECTIONS)
        table.append(tuple((sources.index(s), off) for s, off in neighbours))
    return tuple(table)


def _two_edges(sub):
    """The red pixels two edges from red sub-position ``sub``, other than itself, as
    ``(index in RED, block shift)`` in a fixed order, each with the paths ``(d1, d2)`` to it."""
    paths: dict = {}
    for d1 in _DIRECTIONS:
        for d2 in _DIRECTIONS:
            if (d1[0] + d2[0], d1[1] + d2[1]) != (0, 0):
                target = _neighbour(sub, (d1[0] + d2[0], d1[1] + d2[1]))
                paths.setdefault((RED.index(target[0]), target[1]), []).append((d1, d2))
    return tuple(sorted(paths.items()))


# Static stencil tables: B (black → red), Bᵀ (red → black), and BBᵀ's 8 off-diagonal terms.
_TO_RED = _one_edge(RED, BLACK)
_TO_BLACK = _one_edge(BLACK, RED)
_COUPLINGS = tuple(_two_edges(sub) for sub in RED)
_COUPLINGS_TABLE = tuple(tuple(target for target, _ in terms) for terms in _COUPLINGS)


def _stencil(coefficients, planes, table, shifted):
    """``out[k] = Σ_t coefficients[k, t]·shifted(planes[source_t], block shift_t)`` per output
    plane ``k`` of ``table``; coefficients ``[k, t, g, h2, w2]``. ``shifted`` reads a plane at a
    block offset: :func:`_shifted` on bordered planes, :func:`_padded` on bare ones."""
    return [
        sum(
            coefficients[k, t] * shifted(planes[source], offset)
            for t, (source, offset) in enumerate(terms)
        )
        for k, terms in enumerate(table)
    ]


def _padded(plane, offset):
    """``out[I, J] = plane[I + di, J + dj]`` of a bare plane ``[c, h2, w2]``, 0 outside it."""
    return shift(plane, *offset, axes=(1, 2))


def _planes(v, subs):
    """The sub-position planes ``subs`` of a ``[c, h, w]`` array (odd sizes padded with 0)."""
    _, h, w = v.shape
    v = jnp.pad(v, ((0, 0), (0, h % 2), (0, w % 2)))
    return [v[:, a::2, b::2] for a, b in subs]


def _stacked(planes):
    return jnp.concatenate(planes, axis=1)


def _unstacked(v):
    half = v.shape[1] // 2
    return [v[:, :half], v[:, half:]]


def _bordered(planes):
    """The red layout ``[c, 2·(h2 + 2), w2 + 2]`` of two ``[c, h2, w2]`` planes."""
    return _stacked([jnp.pad(p, ((0, 0), (1, 1), (1, 1))) for p in planes])


def _interiors(v):
    """The two ``[c, h2, w2]`` planes of a red layout ``v`` (:func:`_bordered`)."""
    return [_shifted(plane, (0, 0)) for plane in _unstacked(v)]


def _shifted(bordered_plane, offset):
    """``out[I, J] = plane[I + di, J + dj]`` of one bordered plane ``[c, h2 + 2, w2 + 2]``: a
    slice (its border supplies the zeros outside the plane)."""
    (di, dj), (_, h, w) = offset, bordered_plane.shape
    return bordered_plane[:, 1 + di : h - 1 + di, 1 + dj : w - 1 + dj]


@struct.dataclass
class RedBlack:
    """``ℒ_α`` of one 4-neighbour graph reduced to its red pixels (see the module docstring).

    Build it with :func:`red_black`. Signals are ``[c, h, w]`` (channels first, as in the CG
    loops); their red parts ``[c, 2·(h2 + 2), w2 + 2]`` and black parts ``[c, 2·h2, w2]`` (see the
    module docstring).

    Attributes:
      alpha: α of ``ℒ_α``.
      diagonal: ``f32[2, g, h2, w2]``, the diagonal of ``M`` per red plane.
      couplings: ``f32[2, 8, g, h2, w2]``, ``M``'s other 8 coefficients per red plane
        (``_COUPLINGS`` order).
      to_red: ``f32[2, 4, g, h2, w2]``, ``B``'s coefficients per red plane (``_TO_RED`` order).
      to_black: ``f32[2, 4, g, h2, w2]``, ``Bᵀ``'s per black plane (``_TO_BLACK`` order).
      shape: the static ``(h, w)`` of the image.
    """

    alpha: jax.Array
    diagonal: jax.Array
    couplings: jax.Array
    to_red: jax.Array
    to_black: jax.Array
    shape: tuple[int, int] = struct.field(pytree_node=False)

    def red(self, v: jax.Array) -> jax.Array:
        """The red part ``[c, 2·(h2 + 2), w2 + 2]`` of ``v`` ``[c, h, w]``."""
        return _bordered(_planes(v, RED))

    def rhs(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(y, z_b)``: the reduced system's right-hand side ``z_r + αBz_b`` and ``z``'s black
        part, which :meth:`merge` needs."""
        black = _planes(z, BLACK)
        coupled = _stencil(self.to_red, black, _TO_RED, _padded)
        red = [zr + self.alpha * bz for zr, bz in zip(_planes(z, RED), coupled)]
        return _bordered(red), _stacked(black)

    def matvec(self, v: jax.Array) -> jax.Array:
        """``M·v`` for a red part ``v`` (its border zero, as is the product's)."""
        planes = _unstacked(v)
        coupled = _stencil(self.couplings, planes, _COUPLINGS_TABLE, _shifted)
        return _bordered(
            [d * _shifted(p, (0, 0)) + c for d, p, c in zip(self.diagonal, planes, coupled)]
        )

    def merge(self, s_red: jax.Array, z_black: jax.Array) -> jax.Array:
        """The full solution ``[c, h, w]``: ``s_r`` and ``s_b = (1 − α)z_b + αBᵀs_r``."""
        red = _interiors(s_red)
        to_black = _stacked(_stencil(self.to_black, _unstacked(s_red), _TO_BLACK, _shifted))
        black = _unstacked((1.0 - self.alpha) * z_black + self.alpha * to_black)
        h, w = self.shape
        # Interleave the four planes back into blocks: [c, h2, 2, w2, 2] → [c, 2·h2, 2·w2].
        rows = [jnp.stack([red[0], black[0]], -1), jnp.stack([black[1], red[1]], -1)]
        c, h2, w2 = red[0].shape
        return jnp.stack(rows, 2).reshape(c, 2 * h2, 2 * w2)[:, :h, :w]


def red_black(graph: PixelGraph, alpha: jax.Array) -> RedBlack:
    """The red-black reduction of ``ℒ_α = (I − α𝒲)/(1 − α)`` for a 4-neighbour ``graph``.

    Args:
      graph: a 4-neighbour :class:`PixelGraph` (bipartite; an 8-neighbour graph is not).
      alpha: α in [0, 1) (may be traced).

    Returns:
      A :class:`RedBlack`.

    Raises:
      ValueError: if ``graph`` is not a 4-neighbour graph.
    """
    if len(graph.offsets) != 2:
        raise ValueError(
            "`graph` must be a 4-neighbour pixel graph for the red-black reduction (bipartite); "
            f"got one with offsets {graph.offsets} ({2 * len(graph.offsets)} neighbours)."
        )
    alpha = jnp.asarray(alpha, jnp.float32)
    weights = jnp.moveaxis(graph.weights, -1, 1)  # [2, g, h, w]
    toward = {}  # direction → the weight of each pixel's edge in that direction, [g, h, w]
    for weight, (di, dj) in zip(weights, graph.offsets):
        toward[(di, dj)] = weight
        toward[(-di, -dj)] = shift(weight, -di, -dj, axes=(1, 2))
    # planes[d][sub]: the weight of the edge from sub-position `sub` in direction d, [g, h2, w2]
    planes = {d: dict(zip(RED + BLACK, _planes(toward[d], RED + BLACK))) for d in _DIRECTIONS}

    def one_edge(outputs):
        return jnp.stack([jnp.stack([planes[d][sub] for d in _DIRECTIONS]) for sub in outputs])

    def two_edges(sub, d1, d2):
        """The weight of the path sub → (its neighbour at d1) → (that one's neighbour at d2)."""
        middle, offset = _neighbour(sub, d1)
        return planes[d1][sub] * shift(planes[d2][middle], *offset, axes=(1, 2))

    scale = -jnp.square(alpha) / (1.0 - alpha)
    diagonal, couplings = [], []
    for sub, terms in zip(RED, _COUPLINGS):
        itself = sum(jnp.square(planes[d][sub]) for d in _DIRECTIONS)  # the paths d, −d
        diagonal.append(1.0 / (1.0 - alpha) + scale * itself)
        couplings.append(
            jnp.stack([scale * sum(two_edges(sub, *p) for p in paths) for _, paths in terms])
        )
    return RedBlack(
        alpha=alpha,
        diagonal=jnp.stack(diagonal),
        couplings=jnp.stack(couplings),
        to_red=one_edge(RED),
        to_black=one_edge(BLACK),
        shape=graph.shape[:2],
    )
