r"""Attacks on a trained saliency model at ℓ∞ = 17/255: how far the benchmark scores fall.

Che et al. attack deep saliency models in image and feature space, untargeted (push the map away
from its clean prediction) and targeted (pull it toward a guide image's map), with budgets up to
ℓ∞ 17/255 (the largest of their Table 2). Here a zoo model is trained on the embedded scenes
(``jaxadv.data.saliency.load_scenes``; cached with orbax and resumed when present), and held-out
scenes are attacked with ``jaxadv.attacks.saliency_pgd``:

* untargeted, image space, with the KL, CC and L1 losses; untargeted in feature space (a hidden
  layer of the victim); random ±eps sign noise of the same budget as the reference;
* targeted toward a guide (the next held-out scene), in image and in feature space.

Printed: the benchmark scores of the clean and the adversarial maps against the scenes' ground
truth (CC, sAUC, SIM; MIT conventions, ``jaxadv.metrics.saliency``) and their drops; for the
targeted attacks the CC of the map to the guide's clean map, before and after.

Command:   python experiments/saliency_attacks.py [--model salgan] [--images 32]
           (tiny smoke run: --smoke)
Expected:  the untargeted attacks cut CC, sAUC and SIM far more than random noise of the same
           budget does; the targeted attacks raise the CC to the guide's map well above its clean
           value.
Cost:      default: training ~1–3 min on 2 CPU cores (cached afterwards), attacks ~1–2 min
           (each attack compiles once, ~10–20 s). Smoke: ~1 min.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxadv import attacks
from jaxadv.attacks._saliency import pearson
from jaxadv.data.saliency import load_scenes
from jaxadv.models import default_cache_dir
from jaxadv.training import (
    evaluate_saliency_maps,
    predict_saliency,
    train_zoo_saliency,
)

CONFIG = dict(
    model="salgan",
    width=8,
    size=(64, 64),
    train_scenes=600,
    epochs=10,
    images=32,
    steps=20,
    eps=17 / 255,
)
SMOKE = dict(
    model="salgan", width=4, size=(32, 32), train_scenes=16, epochs=1, images=4, steps=2,
    eps=17 / 255,
)  # fmt: skip
ATTACKS = (
    # label, saliency_pgd options (``layer=True``: the victim's feature layer, chosen below)
    ("untargeted KL", dict(loss="kl")),
    ("untargeted CC", dict(loss="cc")),
    ("untargeted L1", dict(loss="l1")),
    ("untargeted feature", dict(layer=True)),
    ("targeted CC", dict(loss="cc", targeted=True)),
    ("targeted feature", dict(layer=True, targeted=True)),
)
SMOKE_ATTACKS = ("targeted CC",)  # as notebook 04 runs it: the test run compiles it once
SCORES = ("cc", "sauc", "sim")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _feature_layer(victim) -> str:
    """A middle hidden layer: deep enough to carry content, not yet the readout."""
    return victim.layer_names[len(victim.layer_names) // 2]


def _trained_victim(config: dict, cache_dir: str | None, progress: bool):
    train = load_scenes("train", n=config["train_scenes"], size=config["size"])
    tag = "{model}-w{width}-{size[0]}x{size[1]}-n{train_scenes}".format(**config)
    directory = (default_cache_dir() if cache_dir is None else cache_dir) / "saliency" / tag
    start = time.perf_counter()
    victim, training = train_zoo_saliency(
        config["model"],
        train,
        key=jax.random.key(0),
        width=config["width"],
        epochs=config["epochs"],
        checkpoint_dir=directory,
        resume=True,  # a cached finished run is restored, an interrupted one resumed
        progress=progress,
    )
    seconds = time.perf_counter() - start
    _log(f"{config['model']}: {seconds:.1f} s, final training loss {training.losses[-1]:.3f}")
    return victim


def _scores(maps, data) -> dict[str, float]:
    return evaluate_saliency_maps(maps, data, key=jax.random.key(1))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--model", default=None, help="a zoo model (SALIENCY_MODEL_NAMES)")
    parser.add_argument("--images", type=int, default=None, help="held-out scenes attacked")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    config["model"] = args.model or config["model"]
    config["images"] = args.images or config["images"]
    cache_dir = None if args.cache_dir is None else Path(args.cache_dir)

    victim = _trained_victim(config, cache_dir, progress=not args.smoke)
    test = load_scenes("test", n=config["images"] + 1, size=config["size"])
    images = jnp.asarray(test.images[:-1])
    guides = jnp.asarray(test.images[1:])  # each scene's guide: the next one
    data = test.subset(range(config["images"]))
    clean_maps = predict_saliency(victim, images)
    guide_maps = predict_saliency(victim, guides)
    clean = _scores(clean_maps, data)
    rows: dict[str, dict[str, float]] = {"clean": clean}

    noise = config["eps"] * jnp.sign(jax.random.normal(jax.random.key(2), images.shape))
    noisy = predict_saliency(victim, jnp.clip(images + noise, 0.0, 1.0))
    rows["random ±eps noise"] = _scores(noisy, data)

    layer = _feature_layer(victim)
    to_guide: dict[str, tuple[float, float]] = {}
    key = jax.random.key(3)
    for label, options in ATTACKS:
        if args.smoke and label not in SMOKE_ATTACKS:
            continue
        options = dict(options, layer=layer if options.get("layer") else None)
        attack = attacks.saliency_pgd(steps=config["steps"], **options)
        hp = attack.hparams(eps=config["eps"])
        targets = guides if attack.targeted else None
        start = time.perf_counter()
        result = jax.block_until_ready(attack.batch(victim, hp, images, None, key, targets))
        _log(f"{label}: {time.perf_counter() - start:.1f} s (compilation included)")
        assert float(jnp.max(result.linf)) <= config["eps"] + 1e-6  # the budget holds
        adv_maps = predict_saliency(victim, result.x_adv)
        rows[label] = _scores(adv_maps, data)
        if attack.targeted:
            cc = jax.vmap(pearson)
            to_guide[label] = (
                float(jnp.mean(cc(jnp.asarray(clean_maps), jnp.asarray(guide_maps)))),
                float(jnp.mean(cc(jnp.asarray(adv_maps), jnp.asarray(guide_maps)))),
            )

    print(
        f"\n{config['model']} (width {config['width']}) trained on {config['train_scenes']} "
        f"scenes of {config['size'][0]}×{config['size'][1]}; {config['images']} held-out scenes, "
        f"ℓ∞ = {config['eps'] * 255:.0f}/255, {config['steps']} steps; feature layer {layer!r}\n"
    )
    print("| maps | CC | sAUC | SIM | ΔCC | ΔsAUC | ΔSIM |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        values = " | ".join(f"{row[s]:.3f}" for s in SCORES)
        drops = " | ".join(f"{clean[s] - row[s]:+.3f}" for s in SCORES)
        print(f"| {name} | {values} | {drops} |")
    print("\nCC to the guide's clean map (targeted): before → after")
    for name, (before, after) in to_guide.items():
        print(f"  {name}: {before:.3f} → {after:.3f}")
    return {"rows": rows, "to_guide": to_guide, "layer": layer, "config": config}


if __name__ == "__main__":
    main(sys.argv[1:])
