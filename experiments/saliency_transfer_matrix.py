r"""The saliency transfer matrix: untargeted saliency PGD crafted on one zoo model, shown to others.

Three zoo saliency models are trained on the generated scenes (``jaxadv.data.saliency.load_scenes``;
cached with orbax under ``$JAXADV_CACHE_DIR/saliency`` and restored when present). Held-out scenes
are attacked on each source with ``jaxadv.attacks.saliency_pgd`` (ℓ∞ 17/255, untargeted: push the
source's map away from its clean map; Che et al., arXiv 1904.01231) and, optionally, the same PGD
with a transfer booster (``with_transfer(..., di=...)``). Every target's maps of the adversarial
images are scored against the scenes' ground truth (MIT conventions) with
``jaxadv.transfer.saliency_transfer_matrix``.

Printed: per attack, the drop of CC and of sAUC (clean − adversarial, positive = the target got
worse) per (source, target) cell, with each target's clean score in the header; the diagonal is
white-box.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/saliency_transfer_matrix.py
           [--models salgan sam deepgaze] [--images 16] [--booster]
Cost:      first run trains the models (~1 min each at the default size on 2 CPU cores), then
           ~1 min of attacks and scoring.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import jax

from jaxadv import attacks, transfer
from jaxadv.data.saliency import load_scenes
from jaxadv.models import default_cache_dir
from jaxadv.training import train_zoo_saliency

CONFIG = dict(width=4, size=(32, 32), train_scenes=300, epochs=5, steps=10, eps=17 / 255)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trained(name: str, train, config: dict, cache: bool = True):
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["salgan", "sam", "deepgaze"])
    parser.add_argument("--images", type=int, default=16, help="held-out scenes attacked")
    parser.add_argument("--booster", action="store_true", help="add PGD + DI (p = 0.5)")
    args = parser.parse_args(argv)
    config = dict(CONFIG)
    train = load_scenes("train", n=config["train_scenes"], size=config["size"])
    victims = {name: _trained(name, train, config) for name in args.models}
    test = load_scenes("test", n=args.images, size=config["size"])
    pgd = attacks.saliency_pgd(loss="kl", steps=config["steps"])
    chosen = {"saliency PGD (KL)": pgd}
    if args.booster:
        chosen["saliency PGD + DI"] = attacks.with_transfer(pgd, diversity=0.5)
    hparams = {name: a.hparams(eps=config["eps"]) for name, a in chosen.items()}
    start = time.perf_counter()
    m = transfer.saliency_transfer_matrix(
        chosen, victims, None, test, jax.random.key(3), hparams=hparams
    )
    _log(f"matrix: {time.perf_counter() - start:.1f} s")
    print(
        f"\n{len(victims)} zoo models (width {config['width']}, {config['size'][0]}×"
        f"{config['size'][1]}, {config['train_scenes']} scenes × {config['epochs']} epochs); "
        f"{args.images} held-out scenes, ℓ∞ {config['eps'] * 255:.0f}/255, "
        f"{config['steps']} steps\n"
    )
    for name in m.attacks:
        success = m.source_success[m.attacks.index(name)].mean(axis=-1)
        print(
            f"{name} (white-box success on each source: {', '.join(f'{s:.2f}' for s in success)})"
        )
        for metric in ("cc", "sauc"):
            print("\n" + m.table(name, metric) + "\n")
    return {"matrix": m}


if __name__ == "__main__":
    main(sys.argv[1:])
