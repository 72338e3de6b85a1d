r"""Saliency robustness to Che et al.'s 19 image transformations: every zoo model × every one.

The saliency paper's transformation table (``shared/papers/000``, "1st Challenge") scores saliency
models on CAT2000 images after each transformation; here every zoo model is trained on the
generated scenes (``jaxadv.data.saliency.load_scenes``, as ``saliency_transfer_matrix.py`` trains
them; cached with orbax under ``$JAXADV_CACHE_DIR/saliency`` and restored when present) and
scored on held-out scenes as seen after each transformation (``load_scenes(...,
transformation=name)``: the image put through ``jaxadv.image.transform_image``, the objects'
share of the viewer's density moved with the image, the centre bias left on the screen's centre,
fixations drawn afresh). Printed: per model a row of sAUC / CC / NSS / KL per transformation,
and the CC and SIM matrices between the ground-truth densities of the transformed scenes (the
paper's similarity matrices compare human gaze on transformed vs reference stimuli; here the
photometric transformations leave the density as it was, so only the geometric ones differ).
With ``--cat2000 ROOT`` the held-out images are CAT2000's annotated training set in its own
on-disk layout (``jaxadv.data.saliency.load_cat2000``, resized to the models' size), the models
still trained on the generated scenes. CAT2000 has no viewer model to redraw gaze from, so the
ground truth of a transformed image is its reference density moved with the image
(``transform_density``; fixations moved by ``transform_points``, those cropped out dropped):
the label-moving rule of the paper's augmentation, not the human gaze Che et al. recorded on the
transformed stimuli (their data set is not public here).

The default models are SalGAN, SAM and DeepGaze (SALICON and GazeGAN need 64×64 inputs, UNISAL
trains slowest; ``--models`` names any of ``SALIENCY_MODEL_NAMES``).

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/saliency_robustness.py
           [--models salgan sam] [--images 32] [--cat2000 /data/CAT2000] [--smoke]
Cost:      first run trains the models (~1 min each at 32×32 on 2 idle CPU cores), then a few
           minutes of transformations and scoring. Smoke: one model, 4 scenes, 1 epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from saliency_transfer_matrix import _log, _trained  # noqa: E402  (the zoo as that table trains it)

from jaxadv.data.saliency import load_cat2000, load_scenes
from jaxadv.image import TRANSFORMATION_NAMES, transform_density, transform_image, transform_points
from jaxadv.metrics.saliency import similarity_matrix
from jaxadv.models.saliency import SALIENCY_MODEL_NAMES
from jaxadv.training import evaluate_saliency

CONFIG = dict(width=4, size=(32, 32), train_scenes=300, epochs=5, images=32)
SMOKE = dict(width=2, size=(32, 32), train_scenes=8, epochs=1, images=4)
# SALICON and GazeGAN need 64×64 inputs at least; UNISAL trains slowest (--models adds any).
DEFAULT_MODELS = ("salgan", "sam", "deepgaze")
METRICS = (("sauc", "sAUC ↑"), ("cc", "CC ↑"), ("nss", "NSS ↑"), ("kl", "KL ↓"))


def moved_with_the_image(data, name: str, key: jax.Array):
    """``data`` (stacked) as seen after transformation ``name``, its ground truth moved with the
    image: the density by ``transform_density``, each fixation by ``transform_points`` (those
    that leave the image dropped)."""
    n, h, w, _ = data.images.shape
    keys = jax.random.split(key, n)
    images = jax.jit(jax.vmap(lambda x, k: transform_image(name, x, key=k)))(
        jnp.asarray(data.images), keys
    )
    maps = jax.jit(jax.vmap(lambda d: transform_density(name, d)))(jnp.asarray(data.maps))
    fixations = []
    for xy in data.fixations:
        moved = np.floor(transform_points(name, xy, h, w) + 0.5).astype(np.int32)
        inside = (moved[:, 0] >= 0) & (moved[:, 0] < w) & (moved[:, 1] >= 0) & (moved[:, 1] < h)
        fixations.append(moved[inside])
    return dataclasses.replace(data, images=np.asarray(images, np.float32),
                               maps=np.asarray(maps, np.float32), fixations=tuple(fixations),
                               object_masks=None)  # fmt: skip


def density_similarity(scenes: dict) -> dict[str, np.ndarray]:
    """Mean (over scenes) CC and SIM matrices between the ground-truth densities of the scenes
    under each transformation (``scenes``: name -> the transformed test split)."""
    stacks = np.stack([scenes[t].maps for t in TRANSFORMATION_NAMES], 1)  # [n, 19, h, w]
    out = {}
    for metric in ("cc", "sim"):
        per = np.stack([np.asarray(similarity_matrix(s, metric)) for s in stacks])
        out[metric] = np.nanmean(per, axis=0)
    return out


def format_table(rows: dict[str, dict[str, dict[str, float]]], metric: str, label: str) -> str:
    models = list(rows)
    lines = [f"| transformation | {' | '.join(models)} |", "|---" * (len(models) + 1) + "|"]
    for t in TRANSFORMATION_NAMES:
        lines.append(f"| {t} | " + " | ".join(f"{rows[m][t][metric]:.3f}" for m in models) + " |")
    return f"{label}\n\n" + "\n".join(lines)


def format_matrix(matrix: np.ndarray) -> str:
    short = [
        t.replace("Shearing", "Sh")
        .replace("Rotation", "Rot")
        .replace("Cropping", "Cr")
        .replace("MotionBlur", "MB")
        .replace("Contrast", "Con")
        .replace("Reference", "Ref")
        for t in TRANSFORMATION_NAMES
    ]
    lines = ["| | " + " | ".join(short) + " |", "|---" * (len(short) + 1) + "|"]
    for name, row in zip(short, matrix):
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        choices=SALIENCY_MODEL_NAMES)
    parser.add_argument("--images", type=int, default=None, help="held-out scenes scored")
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--cat2000", default=None, metavar="ROOT",
                        help="score on CAT2000's annotated training set under ROOT instead")
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.smoke:
        args.models = args.models[:1] if argv and "--models" in argv else ["deepgaze"]
    n_images = args.images or config["images"]
    train = load_scenes("train", n=config["train_scenes"], size=config["size"])
    if args.cat2000:
        reference = load_cat2000(args.cat2000, size=config["size"], limit=n_images)
        scenes = {t: moved_with_the_image(reference, t, jax.random.fold_in(jax.random.key(3), i))
                  for i, t in enumerate(TRANSFORMATION_NAMES)}  # fmt: skip
    else:
        scenes = {t: load_scenes("test", n=n_images, size=config["size"], transformation=t)
                  for t in TRANSFORMATION_NAMES}  # fmt: skip
    victims = {m: _trained(m, train, config, cache=not args.smoke) for m in args.models}
    key = jax.random.key(7)
    rows: dict[str, dict[str, dict[str, float]]] = {m: {} for m in victims}
    start = time.perf_counter()
    for t in TRANSFORMATION_NAMES:
        for m, victim in victims.items():
            rows[m][t] = evaluate_saliency(victim, scenes[t], key=jax.random.fold_in(key, 100))
    _log(f"scoring: {time.perf_counter() - start:.1f} s")
    sims = density_similarity(scenes)
    print(
        f"\n{len(victims)} zoo models (width {config['width']}, {config['size'][0]}×"
        f"{config['size'][1]}, {config['train_scenes']} scenes × {config['epochs']} epochs); "
        f"{len(scenes['Reference'])} held-out "
        f"{'CAT2000 images' if args.cat2000 else 'scenes'} per transformation\n"
    )
    for metric, label in METRICS:
        print(format_table(rows, metric, label) + "\n")
    for metric in ("cc", "sim"):
        print(f"ground-truth density similarity ({metric.upper()}, mean over scenes)\n")
        print(format_matrix(sims[metric]) + "\n")
    return {"rows": rows, "similarity": sims}


if __name__ == "__main__":
    main(sys.argv[1:])
