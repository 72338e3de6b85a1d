"""Smooth random texture shared by the generated data sets (saliency scenes, segment scenes).

A texture is bilinear interpolation of a coarse grid of independent standard-normal values, one
grid per colour channel, spread evenly from edge to edge of the image. Its fineness is the
number of grid points ("knots") per side; its amplitude is the caller's factor.
"""

from __future__ import annotations

import numpy as np


class SmoothNoise:
    """Bilinear noise of one image size and one grid size; ``draw(rng)`` gives ``f64[h, w, 3]``.

    The interpolation weights are built once per size, so drawing costs two small matrix
    products. Each draw takes ``knots[0] * knots[1] * 3`` standard normals from ``rng``.
    """

    def __init__(self, h: int, w: int, knots: tuple[int, int]) -> None:
        self.knots = knots
        self.rows = linear_interpolation(knots[0], h)  # [h, k0]
        self.cols = linear_interpolation(knots[1], w)  # [w, k1]

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        values = rng.normal(size=(*self.knots, 3))
        smooth = self.rows @ values.transpose(2, 0, 1) @ self.cols.T  # [3, h, w]
        return smooth.transpose(1, 2, 0)


def linear_interpolation(n_knots: int, n_out: int) -> np.ndarray:
    """``[n_out, n_knots]`` weights interpolating knots spread evenly from edge to edge."""
    position = np.linspace(0.0, n_knots - 1, n_out)
    low = np.minimum(np.floor(position).astype(int), n_knots - 2)
    frac = position - low
    weights = np.zeros((n_out, n_knots))
    weights[np.arange(n_out), low] = 1.0 - frac
    weights[np.arange(n_out), low + 1] = frac
    return weights
