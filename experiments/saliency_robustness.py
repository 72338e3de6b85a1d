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
The default models are SalGAN, SAM and DeepGaze (SALICON and GazeGAN need 64×64 inputs, UNISAL
trains slowest; ``--models`` names any of ``SALIENCY_MODEL_NAMES``).

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/saliency_robustness.py
           [--models salgan sam] [--images 32] [--smoke]
Cost:      first run trains the models (~1 min each at 32×32 on 2 idle CPU cores), then a few
           minutes of transformations and scoring. Smoke: one model, 4 scenes, 1 epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from saliency_transfer_matrix import _log, _trained  # noqa: E402  (the zoo as that table trains it)

from jaxadv.data.saliency import load_scenes
from jaxadv.image import TRANSFORMATION_NAMES
from jaxadv.metrics.saliency import similarity_matrix
from jaxadv.models.saliency import SALIENCY_MODEL_NAMES
from jaxadv.training import evaluate_saliency

CONFIG = dict(width=4, size=(32, 32), train_scenes=300, epochs=5, images=32)
SMOKE = dict(width=2, size=(32, 32), train_scenes=8, epochs=1, images=4)
# SALICON and GazeGAN need 64×64 inputs at least; UNISAL trains slowest (--models adds any).
DEFAULT_MODELS = ("salgan", "sam", "deepgaze")
METRICS = (("sauc", "sAUC ↑"), ("cc", "CC ↑"), ("nss", "NSS ↑"), ("kl", "KL ↓"))


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
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.smoke:
        args.models = args.models[:1] if argv and "--models" in argv else ["deepgaze"]
    n_images = args.images or config["images"]
    train = load_scenes("train", n=config["train_scenes"], size=config["size"])
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
        f"{n_images} held-out scenes per transformation\n"
    )
    for metric, label in METRICS:
        print(format_table(rows, metric, label) + "\n")
    for metric in ("cc", "sim"):
        print(f"ground-truth density similarity ({metric.upper()}, mean over scenes)\n")
        print(format_matrix(sims[metric]) + "\n")
    return {"rows": rows, "similarity": sims}


if __name__ == "__main__":
    main(sys.argv[1:])
