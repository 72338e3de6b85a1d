r"""Saliency robustness to Che et al.'s 19 image transformations: every zoo model × every one.

The saliency paper's transformation table (``shared/papers/000``, "1st Challenge") scores saliency
models on CAT2000 images after each transformation; here every zoo model is trained on the
generated scenes (``jaxadv.data.saliency.load_scenes``, as ``saliency_transfer_matrix.py`` trains
them; cached with orbax under ``$JAXADV_CACHE_DIR/saliency`` and restored when present) and
scored on held-out scenes put through each transformation (``jaxadv.image.transform_image``),
against ground truth moved with the image (``transform_density``; fixations moved by
``transform_points``, those cropped out dropped). Printed: per model a row of sAUC / CC / NSS /
KL per transformation, and the CC and SIM matrices between the transformed ground-truth
densities (the paper's similarity matrices compare human gaze on transformed vs reference
stimuli; with generated scenes the gaze of a transformed scene is its moved density, so only
the geometric transformations differ from the reference there).

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/saliency_robustness.py
           [--models salgan sam] [--images 32] [--smoke]
Cost:      first run trains the models (~1 min each at 32×32 on 2 idle CPU cores), then a few
           minutes of transformations and scoring. Smoke: one model, 4 scenes, 1 epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.data.saliency import load_scenes
from jaxadv.image import TRANSFORMATION_NAMES, transform_density, transform_image, transform_points
from jaxadv.metrics.saliency import similarity_matrix
from jaxadv.models import default_cache_dir
from jaxadv.models.saliency import SALIENCY_MODEL_NAMES
from jaxadv.training import evaluate_saliency, train_zoo_saliency

CONFIG = dict(width=4, size=(32, 32), train_scenes=300, epochs=5, images=32)
SMOKE = dict(width=2, size=(32, 32), train_scenes=8, epochs=1, images=4)
METRICS = (("sauc", "sAUC ↑"), ("cc", "CC ↑"), ("nss", "NSS ↑"), ("kl", "KL ↓"))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trained(name: str, train, config: dict, cache: bool):
    tag = "{}-w{width}-{size[0]}x{size[1]}-n{train_scenes}-e{epochs}".format(name, **config)
    start = time.perf_counter()
    victim, training = train_zoo_saliency(
        name,
        train,
        key=jax.random.key(0),
        width=config["width"],
        epochs=config["epochs"],
        checkpoint_dir=default_cache_dir() / "saliency" / tag if cache else None,
        resume=cache,  # a cached finished run is restored
    )
    _log(f"{name}: {time.perf_counter() - start:.1f} s, final loss {training.losses[-1]:.3f}")
    return victim


def transformed_scenes(test, name: str, key: jax.Array):
    """``test`` with every image put through ``name`` and its ground truth moved with it."""
    n, h, w, _ = test.images.shape
    keys = jax.random.split(key, n)
    images = jax.jit(jax.vmap(lambda x, k: transform_image(name, x, key=k)))(
        jnp.asarray(test.images), keys
    )
    maps = jax.jit(jax.vmap(lambda d: transform_density(name, d)))(jnp.asarray(test.maps))
    fixations = []
    for fix in test.fixations:
        moved = np.floor(transform_points(name, fix, h, w) + 0.5).astype(np.int32)
        inside = (moved[:, 0] >= 0) & (moved[:, 0] < w) & (moved[:, 1] >= 0) & (moved[:, 1] < h)
        fixations.append(moved[inside])
    return dataclasses.replace(
        test,
        images=np.asarray(images, np.float32),
        maps=np.asarray(maps, np.float32),
        fixations=tuple(fixations),
        object_masks=None,  # not scored; the objects' masks are not moved
    )


def density_similarity(test) -> dict[str, np.ndarray]:
    """Mean (over scenes) CC and SIM matrices between the 19 transformed ground-truth densities."""
    out = {}
    stacks = np.stack(
        [
            np.asarray(jax.vmap(lambda d, t=t: transform_density(t, d))(test.maps))
            for t in TRANSFORMATION_NAMES
        ],
        1,
    )  # [n, 19, h, w]
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
    parser.add_argument("--models", nargs="+", default=list(SALIENCY_MODEL_NAMES))
    parser.add_argument("--images", type=int, default=None, help="held-out scenes scored")
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.smoke:
        args.models = args.models[:1] if argv and "--models" in argv else ["deepgaze"]
    n_images = args.images or config["images"]
    train = load_scenes("train", n=config["train_scenes"], size=config["size"])
    test = load_scenes("test", n=n_images, size=config["size"])
    victims = {m: _trained(m, train, config, cache=not args.smoke) for m in args.models}
    key = jax.random.key(7)
    rows: dict[str, dict[str, dict[str, float]]] = {m: {} for m in victims}
    start = time.perf_counter()
    for i, t in enumerate(TRANSFORMATION_NAMES):
        scenes = transformed_scenes(test, t, jax.random.fold_in(key, i))
        for m, victim in victims.items():
            rows[m][t] = evaluate_saliency(victim, scenes, key=jax.random.fold_in(key, 100))
    _log(f"scoring: {time.perf_counter() - start:.1f} s")
    sims = density_similarity(test)
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
