r"""Real codec motion vectors against the known motion of the generated moving digits.

The ME-Sampler thesis (chapter 3) sparks its noise with MPEG-4 motion vectors. This encodes the
generated test clips (``data.load_moving_digits``, whose per-pixel motion is known) with MPEG-4
and H.264 through PyAV (``image.codec_motion_vectors``), reads the encoders' vectors back, and
compares them, and the encoder-style full search (``image.block_motion_vectors``, 16- and 8-pixel
blocks) and the pyramidal optical flow, with the known field on the digits' pixels (frames
0..T−2, pixels brighter than 0.2): the mean endpoint error and the share within half a pixel.

Command:   /path/to/venv-with-av/bin/python experiments/codec_motion_digits.py [--clips 64]
           (needs PyAV: ``pip install av``; --smoke: 4 clips)
Expected:  see experiments/README.md, "Measured: codec motion vectors".
Cost:      seconds (32×32 clips; the encoders run on the host).
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from jaxadv import image
from jaxadv.data import load_moving_digits


def sources() -> dict:
    """Name → ``video -> (T, H, W, 2)`` of every motion source compared."""
    return {
        "codec mpeg4": lambda v: image.codec_motion_vectors(v, codec="mpeg4"),
        "codec h264": lambda v: image.codec_motion_vectors(v, codec="libx264"),
        "block matching 16": lambda v: image.block_motion_vectors(v, block=16, search=7),
        "block matching 8": lambda v: image.block_motion_vectors(v, block=8, search=7),
        "optical flow": image.optical_flow,
    }


def errors(field: np.ndarray, known: np.ndarray, video: np.ndarray) -> np.ndarray:
    """Endpoint errors on the digits' pixels of frames 0..T−2."""
    mask = video[:-1, ..., 0] > 0.2
    return np.linalg.norm(field[:-1] - known[:-1], axis=-1)[mask]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="4 clips")
    args = parser.parse_args(argv)
    if not image.have_pyav():
        raise SystemExit("PyAV is not installed: `pip install av` (an optional dependency).")
    data = load_moving_digits("test", 4 if args.smoke else args.clips)
    rows = []
    for name, fn in sources().items():
        run = jax.jit(fn)
        err = np.concatenate(
            [errors(np.asarray(run(v)), m, v) for v, m in zip(data.videos, data.motion)]
        )
        row = dict(source=name, epe=float(err.mean()), within_half=float(np.mean(err <= 0.5)))
        rows.append(row)
        print(f"{name:18s} mean endpoint error {row['epe']:.2f} px, within 0.5 px "
              f"{100 * row['within_half']:.1f}% ({err.size} digit pixels)", flush=True)  # fmt: skip
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
