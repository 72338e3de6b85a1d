"""All 19 transformations of the saliency paper on a batch, jaxadv against Pillow/scipy, side by side.

jaxadv runs every transformation on every image of an ``[N, 256, 256, 3]`` batch in ONE compiled
call (``vmap`` over images, the 19 names unrolled inside; images processed in chunks by
``lax.map`` so that the 19 outputs of all N images need not sit in memory at once: the call
returns each output's mean, which needs every output pixel). The peer chain does the same work
per image on one core with numpy, scipy.ndimage and Pillow (its JPEG is libjpeg itself), the way
a user without jaxadv would: ``ndimage.correlate`` for the motion blurs, ``ndimage.rotate`` and
``ndimage.affine_transform`` plus ``ndimage.zoom`` for the loose canvases, Pillow's encoder and
decoder for JPEG, and a Canny from ``ndimage`` (Gaussian gradients, non-maximum suppression,
hysteresis by ``ndimage.label``):

    python benchmarks/transformations.py                  # N = 256
    python benchmarks/transformations.py --images 32 --rounds 2
    python benchmarks/transformations.py --quick          # tiny, for a smoke run

Both rows are timed in interleaved rounds in this process (compilation apart); the ratio is
paired within a round. Prints images/s (each image through all 19) for both and their ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxadv.image import TRANSFORMATION_NAMES, motion_kernel, transform_image  # noqa: E402


def jaxadv_program(chunk: int):
    """The compiled all-19 program: ``[N, h, w, 3] → [19, N]`` means of each output."""

    def one(image, key):
        keys = jax.random.split(key, 2)
        outs = []
        for name in TRANSFORMATION_NAMES:
            k = keys[0] if name == "Noise1" else keys[1]
            outs.append(jnp.mean(transform_image(name, image, key=k)))
        return jnp.stack(outs)

    @jax.jit
    def run(images, keys):
        n = images.shape[0]
        xs = images.reshape(n // chunk, chunk, *images.shape[1:])
        ks = keys.reshape(n // chunk, chunk, *keys.shape[1:])
        out = jax.lax.map(lambda a: jax.vmap(one)(*a), (xs, ks))
        return out.reshape(n, -1).T

    return run


def _fit(canvas: np.ndarray, h: int, w: int) -> np.ndarray:
    from scipy import ndimage

    s = min(h / canvas.shape[0], w / canvas.shape[1])
    fh, fw = round(canvas.shape[0] * s), round(canvas.shape[1] * s)
    small = ndimage.zoom(canvas, (fh / canvas.shape[0], fw / canvas.shape[1], 1), order=1)
    out = np.zeros((h, w, canvas.shape[2]), canvas.dtype)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def _canny(gray: np.ndarray, high: float = 0.3, sigma: float = 2**0.5) -> np.ndarray:
    from scipy import ndimage

    gx = ndimage.gaussian_filter(gray, sigma, order=(0, 1))
    gy = ndimage.gaussian_filter(gray, sigma, order=(1, 0))
    mag = np.hypot(gx, gy)
    mag /= max(mag.max(), 1e-12)
    ang = (np.round(np.arctan2(gy, gx) / (np.pi / 4)) % 4).astype(int)
    keep = np.zeros_like(mag, bool)
    for a, (dy, dx) in enumerate([(0, 1), (1, 1), (1, 0), (1, -1)]):
        fwd = np.roll(mag, (-dy, -dx), (0, 1))
        bwd = np.roll(mag, (dy, dx), (0, 1))
        keep |= (ang == a) & (mag >= fwd) & (mag >= bwd)
    weak = keep & (mag > 0.4 * high)
    labels, _ = ndimage.label(weak, structure=np.ones((3, 3)))
    strong_labels = np.unique(labels[weak & (mag > high)])
    return np.isin(labels, strong_labels[strong_labels > 0]).astype(np.float32)


def peer_all(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 19 transformations of one image with numpy/scipy/Pillow; their means."""
    from PIL import Image
    from scipy import ndimage

    h, w, _ = image.shape
    outs = [image]
    for length, angle in ((15, 0), (35, 90)):
        k = motion_kernel(length, angle)
        outs.append(
            np.stack([ndimage.correlate(image[..., c], k, mode="constant") for c in range(3)], -1)
        )
    for var in (0.1, 0.2):
        outs.append(np.clip(image + np.sqrt(var) * rng.standard_normal(image.shape), 0, 1))
    u8 = Image.fromarray(np.round(image * 255).astype(np.uint8))
    for q in (5, 0):
        buf = io.BytesIO()
        u8.save(buf, "JPEG", quality=q)
        outs.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255)
    outs += [0.3 + 0.4 * image, 0.4 + 0.2 * image]
    for angle in (-45, -135):
        canvas = ndimage.rotate(image, angle, reshape=True, order=1, mode="grid-constant")
        outs.append(_fit(canvas, h, w))
    for mat in ([[1, 0], [-0.5, 1]], [[1, -0.5], [0, 1]], [[1, -0.5], [-0.5, 1]]):
        fwd = np.linalg.inv(np.array(mat, float))
        ext = np.ptp(np.array([[0, 0], [h, 0], [0, w], [h, w]]) @ fwd.T, axis=0)
        hh, ww = (int(e + 0.5) for e in ext)
        m = np.array(mat, float)
        off = np.array([(h - 1) / 2, (w - 1) / 2]) - m @ np.array([(hh - 1) / 2, (ww - 1) / 2])
        canvas = np.stack(
            [
                ndimage.affine_transform(
                    image[..., c],
                    m,
                    offset=off,
                    output_shape=(hh, ww),
                    order=1,
                    mode="grid-constant",
                )
                for c in range(3)
            ],
            -1,
        )
        outs.append(_fit(canvas, h, w))
    outs += [image[::-1, ::-1], image[:, ::-1]]
    gray = image @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    outs.append(np.repeat(_canny(gray)[..., None], 3, -1))
    band_w, band_h = max(1, round(200 / 1920 * w)), max(1, round(200 / 1080 * h))
    outs.append(_fit(image[:, band_w:], h, w))
    outs.append(_fit(image[band_h:], h, w))
    assert len(outs) == len(TRANSFORMATION_NAMES)
    return np.array([o.mean() for o in outs])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=256, help="batch size N (default 256)")
    p.add_argument("--size", type=int, default=256, help="image side (default 256)")
    p.add_argument("--chunk", type=int, default=8, help="images per vmapped chunk (divides N)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="N=4, 64×64, 1 round (smoke)")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.size, a.chunk, a.rounds = 4, 64, 2, 1
    if a.images % a.chunk:
        p.error(f"--chunk {a.chunk} must divide --images {a.images}")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : a.size, 0 : a.size] / a.size
    base = np.stack([np.sin(6 * xx + 3 * yy), np.cos(5 * yy), xx * yy], -1) * 0.4 + 0.5
    images = np.clip(base[None] + 0.1 * rng.standard_normal((a.images, a.size, a.size, 3)), 0, 1)
    images = images.astype(np.float32)
    keys = jax.random.split(jax.random.key(0), a.images)
    run = jaxadv_program(a.chunk)
    dev = jnp.asarray(images)
    t0 = time.perf_counter()
    compiled = run.lower(dev, keys).compile()
    compile_s = time.perf_counter() - t0
    means = np.asarray(compiled(dev, keys))
    peer_rng = np.random.default_rng(1)
    ref = np.stack([peer_all(im, peer_rng) for im in images[: min(4, a.images)]], 1)
    agree = np.abs(means[:, : ref.shape[1]] - ref).max(axis=1)
    ratios, jax_t, peer_t = [], [], []
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        compiled(dev, keys).block_until_ready()
        tj = time.perf_counter() - t0
        t0 = time.perf_counter()
        for im in images:
            peer_all(im, peer_rng)
        tp = time.perf_counter() - t0
        jax_t.append(tj)
        peer_t.append(tp)
        ratios.append(tp / tj)
    n = a.images
    print(
        f"all 19 transformations, N={n} images of {a.size}x{a.size}x3, {a.rounds} round(s), "
        f"{os.cpu_count()} CPUs visible, jax backend {jax.default_backend()}"
    )
    print(
        f"jaxadv (one compiled call, chunk {a.chunk}): {n / statistics.median(jax_t):8.1f} "
        f"images/s (compile {compile_s:.1f} s)"
    )
    print(
        f"numpy/scipy/Pillow (one core loop)       : {n / statistics.median(peer_t):8.1f} images/s"
    )
    print(
        f"ratio jaxadv/peer (paired, median [min, max]): {statistics.median(ratios):.2f} "
        f"[{min(ratios):.2f}, {max(ratios):.2f}]"
    )
    worst = int(np.argmax(agree))
    print(
        f"output means agree with the peer chain to {agree.max():.3f} at worst "
        f"({TRANSFORMATION_NAMES[worst]}; Noise differs by its draw, Boundary by the Canny kernel)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
