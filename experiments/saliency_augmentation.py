r"""Valid vs invalid data augmentation for saliency models (Che et al., TIP 2019; the saliency
robustness paper's "1st Challenge: Data Augmentation Application"): one zoo model trained on the
generated scenes with no augmentation, with the label-preserving set (Reference, Mirroring,
Inversion, Contrast1, Shearing1, JPEG1, Noise1) and with the label-damaging set (Rotation1/2,
Shearing2/3, Cropping1/2, MotionBlur2), then scored on test scenes under every transformation.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/saliency_augmentation.py
           (tiny smoke run: --smoke; another model: --model sam)
Protocol:  augmentation adds, for each transformation of the set, a transformed copy of every
           training scene labelled the way augmentation is practised: the reference density and
           fixations carried through the same geometric map (``image.transform_density`` /
           ``transform_points``). The test scenes are the same scenes as a viewer sees them after
           each transformation (``data.saliency.load_scenes(transformation=...)``: objects move
           with the image, the centre bias stays on the screen's centre), so a carried label is
           right for the objects and wrong for the centre bias wherever the transformation moves
           the centre's content (rotations, crops, strong shears). Every condition takes the same
           number of gradient steps (epochs scaled by the training set's size), same key.
Paper:     valid augmentation improves sAUC/CC/NSS and KL on transformed scenes; invalid
           augmentation does not (it hurts). Measured values: experiments/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.data.saliency import SaliencyDataset, load_scenes
from jaxadv.image import (
    INVALID_AUGMENTATIONS,
    TRANSFORMATION_NAMES,
    VALID_AUGMENTATIONS,
    transform_density,
    transform_image,
    transform_points,
)
from jaxadv.training import evaluate_saliency, train_zoo_saliency

CONFIG = dict(model="salgan", size=(64, 64), train=250, test=50, width=8, epochs=2, batch_size=16)
SMOKE = dict(model="deepgaze", size=(32, 32), train=8, test=4, width=2, epochs=1, batch_size=8,
             transformations=("Reference", "Mirroring", "Rotation1"))  # fmt: skip
SETS = {"none": ("Reference",), "valid": VALID_AUGMENTATIONS, "invalid": INVALID_AUGMENTATIONS}
METRICS = ("sauc", "cc", "nss", "kl")  # evaluate_saliency's keys


def augmented(data: SaliencyDataset, names: tuple[str, ...], key: jax.Array) -> SaliencyDataset:
    """``data`` plus a transformed copy per name (Reference is ``data`` itself), the labels
    carried through each transformation's geometry."""
    h, w = data.images.shape[1:3]
    images, maps, fixations = [data.images], [data.maps], list(data.fixations)
    for i, name in enumerate(n for n in names if n != "Reference"):
        keys = jax.random.split(jax.random.fold_in(key, i), len(data.images))
        images.append(np.asarray(jax.jit(jax.vmap(
            lambda x, k, n=name: transform_image(n, x, key=k)))(jnp.asarray(data.images), keys)))
        maps.append(np.asarray(jax.jit(jax.vmap(
            lambda m, n=name: transform_density(n, m)))(jnp.asarray(data.maps))))
        for xy in data.fixations:
            moved = np.rint(transform_points(name, xy, h, w)).astype(np.int32)
            inside = (moved[:, 0] >= 0) & (moved[:, 0] < w) & (moved[:, 1] >= 0) & (moved[:, 1] < h)
            fixations.append(moved[inside] if inside.any() else xy)  # all cropped: keep as is
    n = len(fixations)
    return SaliencyDataset(images=np.concatenate(images), maps=np.concatenate(maps),
                           fixations=tuple(fixations), names=tuple(f"aug/{i}" for i in range(n)),
                           name=f"{data.name}-augmented")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the per-transformation table as JSON")
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.model:
        config["model"] = args.model
    names = config.get("transformations", TRANSFORMATION_NAMES)
    key = jax.random.key(args.seed)
    train = load_scenes("train", config["train"], size=config["size"])
    tests = {t: load_scenes("test", config["test"], size=config["size"], transformation=t)
             for t in names}  # fmt: skip
    largest = max(len(s) for s in SETS.values())
    table = {}
    for condition, aug_names in SETS.items():
        start = time.perf_counter()
        data = augmented(train, aug_names, jax.random.fold_in(key, 3))
        epochs = max(1, round(config["epochs"] * largest / len(aug_names)))  # equal steps
        victim, _ = train_zoo_saliency(
            config["model"], data, key=jax.random.fold_in(key, 2), width=config["width"],
            epochs=epochs, batch_size=config["batch_size"], progress=False,
        )  # fmt: skip
        table[condition] = {t: evaluate_saliency(victim, test, key=jax.random.fold_in(key, 1))
                            for t, test in tests.items()}  # fmt: skip
        print(f"  {condition}: {len(data.images)} training images, {epochs} epochs, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    groups = {"Reference": ("Reference",), "valid set": VALID_AUGMENTATIONS[1:],
              "invalid set": INVALID_AUGMENTATIONS, "all 19": TRANSFORMATION_NAMES}  # fmt: skip
    summary = {}
    print(f"{config['model']} on {config['train']} scenes; test scenes under each transformation "
          f"({config['test']} each): mean over the transformations of each group")
    print(f"{'trained with':<14}{'tested on':<13}" + "".join(f"{m:>8}" for m in METRICS)
          + "   (sauc, cc, nss: higher is better; kl: lower)")
    for condition, scores in table.items():
        for group, members in groups.items():
            members = [t for t in members if t in scores]
            if not members:
                continue
            row = {m: float(np.mean([scores[t][m] for t in members])) for m in METRICS}
            summary[(condition, group)] = row
            print(f"{condition:<14}{group:<13}" + "".join(f"{row[m]:8.3f}" for m in METRICS))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(table, f, indent=1)
    return dict(table=table, summary=summary)


if __name__ == "__main__":
    main(sys.argv[1:])
