"""The red-black reduction of ℒ_α against the dense Schur complement, and the reduced CG solves
against the full system's and the dense solve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks
from jaxadv.image import _red_black
from jaxadv.image._graph import pixel_graph
from jaxadv.image._smoothing import solve_laplacian

ALPHA = 0.95


def _colours(h, w):
    """Flat indices of the red (i + j even) and black pixels, row-major."""
    parity = (np.arange(h)[:, None] + np.arange(w)[None, :]).ravel() % 2
    return np.flatnonzero(parity == 0), np.flatnonzero(parity == 1)


def _dense_reduction(graph, alpha):
    """``M = (I − α²BBᵀ)/(1 − α)`` and ``B`` per graph, in float64 from the dense 𝒲."""
    h, w, _ = graph.shape
    red, black = _colours(h, w)
    adjacency = np.asarray(graph.dense(), np.float64)  # [g, n, n]
    b = adjacency[:, red][:, :, black]
    # The grid is bipartite: no edge joins two pixels of one colour.
    assert not np.any(adjacency[:, red][:, :, red]) and not np.any(adjacency[:, black][:, :, black])
    m = (np.eye(len(red)) - alpha**2 * b @ np.swapaxes(b, 1, 2)) / (1 - alpha)
    return m, b


def _from_red_layout(v, h, w):
    """The red layout ``[c, 2·(h2 + 2), w2 + 2]`` → ``[c, n_red]``, red pixels in row-major
    order; asserts that each plane's border of one block is zero."""
    v = np.asarray(v, np.float64)
    c = v.shape[0]
    grid = np.zeros((c, h + h % 2, w + w % 2))
    for (a, b), plane in zip(_red_black.RED, np.split(v, 2, axis=1)):
        border = plane.copy()
        border[:, 1:-1, 1:-1] = 0
        assert not np.any(border), "a red plane's border must stay zero"
        grid[:, a::2, b::2] = plane[:, 1:-1, 1:-1]
    red, _ = _colours(h, w)
    return grid[:, :h, :w].reshape(c, -1)[:, red]


def _to_red_layout(values, h, w):
    """``[c, n_red]`` in row-major pixel order → the red layout ``[c, 2·(h2 + 2), w2 + 2]``."""
    c = values.shape[0]
    red, _ = _colours(h, w)
    flat = np.zeros((c, h * w))
    flat[:, red] = values
    grid = np.zeros((c, h + h % 2, w + w % 2))
    grid[:, :h, :w] = flat.reshape(c, h, w)
    planes = [np.pad(grid[:, a::2, b::2], ((0, 0), (1, 1), (1, 1))) for a, b in _red_black.RED]
    return np.concatenate(planes, axis=1)


@pytest.mark.parametrize(
    "shape,per_channel",
    [((6, 8, 3), False), ((5, 7, 2), True), ((1, 9, 1), False), ((4, 1, 3), False)],
)
def test_the_reduced_operator_is_the_schur_complement(shape, per_channel):
    h, w, c = shape
    x0 = jax.random.uniform(jax.random.key(0), shape)
    graph = pixel_graph(x0, 0.2, per_channel=per_channel)
    reduced = _red_black.red_black(graph, ALPHA)
    m, b = _dense_reduction(graph, ALPHA)
    red, black = _colours(h, w)
    z = np.asarray(jax.random.normal(jax.random.key(1), (c, h, w)), np.float64)
    flat = z.reshape(c, -1)
    g = np.arange(c) if per_channel else np.zeros(c, int)  # the graph of each channel

    z32 = jnp.asarray(z, jnp.float32)
    # The red layout holds the red pixels.
    np.testing.assert_array_equal(_from_red_layout(reduced.red(z32), h, w), flat[:, red])

    # M·v: the 9-point stencil against the dense product.
    got = _from_red_layout(reduced.matvec(reduced.red(z32)), h, w)
    want = np.stack([m[g[k]] @ flat[k, red] for k in range(c)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())

    # The right-hand side y = z_r + αB z_b.
    y, z_black = reduced.rhs(z32)
    want = np.stack([flat[k, red] + ALPHA * b[g[k]] @ flat[k, black] for k in range(c)])
    np.testing.assert_allclose(_from_red_layout(y, h, w), want, rtol=0, atol=1e-6)

    # The exact reduced solution, merged with the black pixels' solve, solves the full system.
    s_red = np.stack([np.linalg.solve(m[g[k]], want[k]) for k in range(c)])
    merged = reduced.merge(jnp.asarray(_to_red_layout(s_red, h, w), jnp.float32), z_black)
    laplacian = (np.eye(h * w) - ALPHA * np.asarray(graph.dense(), np.float64)) / (1 - ALPHA)
    solution = np.stack([np.linalg.solve(laplacian[g[k]], flat[k]) for k in range(c)])
    got = np.asarray(merged, np.float64).reshape(c, -1)
    np.testing.assert_allclose(got, solution, rtol=0, atol=1e-5 * np.abs(solution).max())


def test_an_eight_neighbour_graph_is_refused():
    graph = pixel_graph(jax.random.uniform(jax.random.key(0), (4, 4, 3)), 0.2, neighbors=8)
    with pytest.raises(ValueError, match=r"`graph` must be a 4-neighbour .* got .*8 neighbours"):
        _red_black.red_black(graph, ALPHA)


@pytest.mark.parametrize("shape,per_channel", [((15, 18, 3), False), ((9, 11, 2), True)])
def test_reduced_cg_equals_the_dense_solve_in_half_the_iterations(shape, per_channel):
    """Cold, warm, polynomial-preconditioned and differentiated (the adjoint solve): every
    reduced solve meets the full system's tolerance and equals the dense solve, in about half
    the full system's CG iterations."""
    tol = 1e-6
    x0 = jax.random.uniform(jax.random.key(2), shape)
    z = jax.random.normal(jax.random.key(3), shape)
    weights = jax.random.normal(jax.random.key(4), shape)

    @jax.jit  # one program
    def run(x0, z):
        graph = pixel_graph(x0, 0.1, per_channel=per_channel)
        dense = solve_laplacian(graph, ALPHA, z, method="dense")[0]
        near = dense + 1e-3 * jnp.sign(z)

        def solve(reduction, start=None, pc="none"):
            return solve_laplacian(
                graph,
                ALPHA,
                z,
                method="cg",
                tol=tol,
                start=start,
                preconditioner=pc,
                reduction=reduction,
            )

        def grad(reduction, start=None):
            def loss(z):
                s = solve_laplacian(
                    graph, ALPHA, z, method="cg", tol=tol, start=start, reduction=reduction
                )[0]
                return jnp.sum(weights * s)

            return jax.grad(loss)(z)

        gdense = jax.grad(
            lambda z: jnp.sum(weights * solve_laplacian(graph, ALPHA, z, method="dense")[0])
        )(z)
        solves = dict(
            full=solve("none"),
            reduced=solve("red-black"),
            warm=solve("red-black", (near, near)),
            polynomial=solve("red-black", pc="polynomial"),
        )
        grads = dict(full=grad("none"), reduced=grad("red-black"), warm=grad("auto", (near, near)))
        return dense, gdense, solves, grads

    dense, gdense, solves, grads = run(x0, z)
    atol = 2e-5 * float(jnp.max(jnp.abs(dense)))
    for name, (s, status) in solves.items():
        assert bool(status.converged) and float(status.residual) <= tol, name
        np.testing.assert_allclose(s, dense, rtol=0, atol=atol, err_msg=name)
    gatol = 2e-5 * float(jnp.max(jnp.abs(gdense)))
    for name, g in grads.items():
        np.testing.assert_allclose(g, gdense, rtol=0, atol=gatol, err_msg=name)
    full, reduced = int(solves["full"][1].iterations), int(solves["reduced"][1].iterations)
    assert reduced <= 0.6 * full, (reduced, full)
    assert int(solves["warm"][1].iterations) < reduced
    assert int(solves["polynomial"][1].iterations) < reduced


def test_smoothing_config_names_a_reduction_it_cannot_apply():
    with pytest.raises(ValueError, match="`reduction`='red-black' needs a 4-neighbour"):
        attacks.SmoothingConfig(neighbors=8, reduction="red-black")
    with pytest.raises(ValueError, match="`reduction`='red-black' reduces"):
        attacks.SmoothingConfig(method="dense", reduction="red-black")
    with pytest.raises(ValueError, match="reduction"):
        attacks.SmoothingConfig(reduction="checkerboard")
    # "auto" reduces where it can and falls back elsewhere.
    attacks.SmoothingConfig(neighbors=8)
    attacks.SmoothingConfig(method="unrolled")
