"""Block motion vectors: the jitted full search against a brute-force numpy search (integer
frames, so every SAD is exact and ties are decided by the documented order), a known translation,
the per-pixel layout, the ME-Sampler motion source, and clear errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxadv.attacks._me_sampler import motion_function
from jaxadv.image import block_motion_vectors


def _brute_force(video, block, search):
    """Per block of frame t, the first (|dx|+|dy|, dy, dx)-ordered displacement of least SAD
    among those inside frame t + 1; each pixel gets its block's (the last block extended)."""
    gray = video.astype(np.float64).mean(-1)
    t, h, w = gray.shape
    by, bx = h // block, w // block
    order = sorted(
        ((dx, dy) for dy in range(-search, search + 1) for dx in range(-search, search + 1)),
        key=lambda d: (abs(d[0]) + abs(d[1]), d[1], d[0]),
    )
    out = np.zeros((t, h, w, 2), np.float32)
    for k in range(t - 1):
        vectors = np.zeros((by, bx, 2))
        for i in range(by):
            for j in range(bx):
                y, x = i * block, j * block
                ref = gray[k, y : y + block, x : x + block]
                best = np.inf
                for dx, dy in order:
                    if not (0 <= y + dy <= h - block and 0 <= x + dx <= w - block):
                        continue
                    cost = np.abs(
                        gray[k + 1, y + dy : y + dy + block, x + dx : x + dx + block] - ref
                    ).sum()
                    if cost < best:
                        best, vectors[i, j] = cost, (dx, dy)
        for y in range(h):
            for x in range(w):
                out[k, y, x] = vectors[min(y // block, by - 1), min(x // block, bx - 1)]
    out[-1] = out[-2]
    return out


def test_matches_brute_force_search_on_integer_frames():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 4, size=(3, 13, 18, 1)).astype(np.float32)  # many ties
    video[1] = np.roll(video[0], (1, -2), axis=(0, 1))  # a real shift between frames 0 and 1
    run = jax.jit(lambda v: block_motion_vectors(v, block=4, search=2))
    np.testing.assert_array_equal(run(video), _brute_force(video, 4, 2))


def test_recovers_a_translation_inside_the_frame():
    rng = np.random.default_rng(1)
    frame = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    video = np.stack([frame, np.roll(frame, (-1, 3), axis=(0, 1))])  # content moves x +3, y −1
    field = np.asarray(jax.jit(lambda v: block_motion_vectors(v, block=8, search=4))(video))
    assert field.shape == (2, 32, 32, 2)
    # Blocks whose moved copy stays inside the frame (not the top row or right column of blocks).
    np.testing.assert_array_equal(field[0, 8:, :24], np.broadcast_to([3.0, -1.0], (24, 24, 2)))
    assert motion_function("vectors") is block_motion_vectors


def test_bad_input():
    with pytest.raises(ValueError, match="`video`"):
        block_motion_vectors(np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="`block`"):
        block_motion_vectors(np.zeros((2, 8, 8, 1)), block=16)
    with pytest.raises(ValueError, match="`search`"):
        block_motion_vectors(np.zeros((2, 16, 16, 1)), search=-1)
