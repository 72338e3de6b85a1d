r"""MAD (Larson & Chandler 2010) on fixed image pairs with IQA-PyTorch's port (``pyiqa``), the
values that tests/test_mad_reference.py freezes.

The pairs are made here with numpy alone (``pairs``, imported by the test), so the test
regenerates them without torch: 64×64 grey scenes on the 0–255 scale, rounded to integers as
the released MATLAB code expects, each with one distortion (additive pseudo-noise at three levels,
a 3×3 box blur, 8-level quantisation, a contrast stretch).

Command:   python -m venv /tmp/venv-pyiqa && /tmp/venv-pyiqa/bin/pip install torch pyiqa
           /tmp/venv-pyiqa/bin/python experiments/mad_pyiqa_reference.py
Expected:  one line per pair: pyiqa's d_detect (HI), d_appear (LO) and MAD, as Python literals.
Cost:      a few seconds.

pyiqa's ``hi_index``/``lo_index`` are called directly on float32 [1, 1, 64, 64] tensors in
0–255, and ``MAD(channels=1).mad`` on the same divided by 255 (it multiplies grey input by 255).
"""

from __future__ import annotations

import numpy as np

SIZE = 64


def _hash_noise(shape, seed: float) -> np.ndarray:
    """Deterministic pseudo-noise in [-0.5, 0.5) from a closed form (no RNG stream to drift)."""
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    v = np.sin(i * 12.9898 + j * 78.233 + seed * 37.719) * 43758.5453
    return (v - np.floor(v)) - 0.5


def scene(size: int = SIZE) -> np.ndarray:
    """A grey test scene, 0–255 integers as float64: a flat field with a gentle ramp (where the
    detection stage sees noise), a bright disk, and a grating with texture in one quadrant
    (where contrast masking hides it)."""
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    img = 90 + 0.5 * y
    img += 70 * (((x - 42) ** 2 + (y - 40) ** 2) < 12**2)
    quadrant = (x < size // 2) & (y < size // 2)
    grating = 40 * np.sin(2 * np.pi * x / 7.0) * np.cos(2 * np.pi * y / 13.0)
    img += quadrant * (grating + 16 * _hash_noise((size, size), 0.0))
    return np.clip(np.round(img), 0, 255)


def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed (reference, distorted) pairs, float64 [64, 64] with integer values 0–255."""
    ref = scene()
    blur = ref.copy()
    k = np.ones(3) / 3
    blur = np.apply_along_axis(
        lambda r: np.convolve(np.pad(r, 1, mode="edge"), k, "valid"), 1, blur
    )
    blur = np.apply_along_axis(
        lambda c: np.convolve(np.pad(c, 1, mode="edge"), k, "valid"), 0, blur
    )
    out = {
        "noise2": ref + 4 * _hash_noise(ref.shape, 1.0),
        "noise8": ref + 16 * _hash_noise(ref.shape, 3.0),
        "noise30": ref + 60 * _hash_noise(ref.shape, 2.0),
        "blur3": blur,
        "quant8": np.floor(ref / 32) * 32 + 16,
        "contrast": 128 + 1.3 * (ref - 128),
    }
    return {name: (ref, np.clip(np.round(d), 0, 255)) for name, d in out.items()}


def main() -> dict:
    import pyiqa
    import torch
    from pyiqa.archs import mad_arch

    print(f"pyiqa {pyiqa.__version__}, torch {torch.__version__}")
    values = {}
    for name, (ref, dst) in pairs().items():
        r = torch.from_numpy(ref).float()[None, None]
        d = torch.from_numpy(dst).float()[None, None]
        with torch.no_grad():
            hi = float(mad_arch.hi_index(r, d).item())
            lo = float(mad_arch.lo_index(r, d).item())
            score = float(mad_arch.MAD(channels=1).mad(r / 255, d / 255).item())  # ×255 inside
        values[name] = (hi, lo, score)
        print(f'    "{name}": ({hi!r}, {lo!r}, {score!r}),')
    return values


if __name__ == "__main__":
    main()
