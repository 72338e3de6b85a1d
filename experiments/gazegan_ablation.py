r"""GazeGAN's two proposals ablated: the cross-scale centre-surround connections (CSC) and the
alternative chi-square histogram loss (ACS), Che et al., "How is gaze influenced by image
transformations? Dataset and model", IEEE TIP 2019 (``shared/papers/000``, "1st Challenge:
Solution 1").

Four GazeGAN generators, equal in everything else (width, data, key, steps): with and without
CSC (``GazeGAN(csc=False)`` drops the four 1×1 CSC convolutions and their features, leaving the
pix2pixHD-style local/global U-Nets), each trained with GazeGAN's content loss
``10·KL − 10·CC − NSS + L1 + ACS`` and without its ACS term. Scored on held-out generated scenes
(sAUC / CC / NSS / KL) as generated and averaged over the scenes as seen after each of the 19
transformations (``load_scenes(..., transformation=name)``), plus the ACS distance between the
predicted maps and the ground-truth densities (how well the histogram of map values matches the
ground truth's, which is what the histogram loss trains: the paper's histogram figure).

Command:   JAXADV_CACHE_DIR=... python experiments/gazegan_ablation.py [--smoke] [--epochs 4]
           [--acs-weight 0.1] [--acs-variant smooth] [--csc with]; --gradient-norms prints each
           content term's gradient norm at GazeGAN's initialisation instead (why ACS dominates
           the preset's loss). ``--acs-variant smooth`` trains with
           :func:`jaxadv.losses.smooth_acs_loss` (Gaussian kernel, no min-max rescaling) in place
           of the paper's ACS; ``--csc with`` trains only the generators with CSC
Cost:      four trainings of GazeGAN at 64×64 (width 4, 400 scenes) and 20 test sets: about
           15 min on 2 idle CPU cores. Smoke: width 2, 8 scenes, 1 epoch, 2 transformations.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.data.saliency import load_scenes
from jaxadv.image import TRANSFORMATION_NAMES
from jaxadv.losses import GAZEGAN_LOSS, acs_loss
from jaxadv.models.saliency import GazeGAN, from_flax_saliency
from jaxadv.training import (
    evaluate_saliency,
    fixation_counts,
    predict_saliency,
    saliency_image_loss,
    train_saliency,
)

CONFIG = dict(size=(64, 64), train=400, test=48, width=4, epochs=4, batch_size=16,
              transformations=TRANSFORMATION_NAMES)  # fmt: skip
SMOKE = dict(size=(64, 64), train=8, test=4, width=2, epochs=1, batch_size=8,
             transformations=("Reference", "Mirroring"))  # fmt: skip
METRICS = ("sauc", "cc", "nss", "kl")  # evaluate_saliency's keys


def histogram_distance(victim, data) -> float:
    """Mean ACS distance between the predicted maps and the ground-truth densities."""
    maps = jnp.asarray(predict_saliency(victim, data.images))
    return float(jnp.mean(jax.jit(jax.vmap(acs_loss))(maps, jnp.asarray(data.maps))))


ACS_VARIANTS = {"paper": "acs", "smooth": "acs_smooth"}  # --acs-variant: the loss term trained


def gradient_norms(module, variables, data,
                   terms=("kl", "cc", "nss", "l1", "acs", "acs_smooth")) -> dict:  # fmt: skip
    """The norm of each content term's gradient (weight 1) with respect to the parameters, on
    ``data`` at ``variables``: how much each term steers the first steps."""
    x, maps = jnp.asarray(data.images), jnp.asarray(data.maps)
    counts = jnp.asarray(fixation_counts(data))

    def loss(params, term):
        out = module.apply({**variables, "params": params}, x)
        per_image = functools.partial(saliency_image_loss, kind=module.output_kind,
                                      weights={term: 1.0})  # fmt: skip
        return jnp.mean(jax.vmap(per_image)(out, maps, counts))

    norms = {}
    for term in terms:
        grads = jax.grad(loss)(variables["params"], term)
        norms[term] = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))))
    return norms


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--acs-weight", type=float, default=GAZEGAN_LOSS["acs"],
                        help="weight of the ACS term (the loss preset's 1.0)")
    parser.add_argument("--acs-variant", choices=sorted(ACS_VARIANTS), default="paper",
                        help="the histogram term: the paper's ACS, or smooth_acs_loss")
    parser.add_argument("--csc", choices=("both", "with", "without"), default="both",
                        help="train the generators with CSC, without, or both")
    parser.add_argument("--gradient-norms", action="store_true",
                        help="only print each content term's gradient norm at initialisation")
    args = parser.parse_args(argv)
    if not args.acs_weight > 0:
        parser.error(f"--acs-weight must be > 0; got {args.acs_weight}")
    content = {t: w for t, w in GAZEGAN_LOSS.items() if t != "acs"}
    term = ACS_VARIANTS[args.acs_variant]
    tag = "ACS" if args.acs_variant == "paper" else "smooth ACS"
    losses = {f"with {tag}": {**content, term: args.acs_weight},
              "without ACS": {**content, "acs": 0.0}}  # fmt: skip
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.epochs:
        config["epochs"] = args.epochs
    key = jax.random.key(args.seed)
    train = load_scenes("train", config["train"], size=config["size"])
    if args.gradient_norms:  # GazeGAN with CSC at its initialisation, on (up to) 16 scenes
        module = GazeGAN(width=config["width"])
        shape = train.images.shape[1:]
        variables = module.init(jax.random.fold_in(key, 1), jnp.zeros((1,) + shape))
        scenes = train.subset(range(min(16, len(train))))
        norms = gradient_norms(module, variables, scenes)
        print(f"gradient norm of each content term (weight 1) at initialisation, {len(scenes)} "
              "scenes: " + ", ".join(f"{t} {n:.3g}" for t, n in norms.items()))  # fmt: skip
        return norms
    tests = {t: load_scenes("test", config["test"], size=config["size"], transformation=t)
             for t in config["transformations"]}  # fmt: skip
    shape = train.images.shape[1:]
    rows = {}
    cscs = {"both": (True, False), "with": (True,), "without": (False,)}[args.csc]
    for csc in cscs:
        module = GazeGAN(width=config["width"], csc=csc)
        variables = module.init(jax.random.fold_in(key, 1), jnp.zeros((1,) + shape))
        for loss_name, loss in losses.items():
            start = time.perf_counter()
            run = train_saliency(module, variables, train, key=jax.random.fold_in(key, 2),
                                 epochs=config["epochs"], batch_size=config["batch_size"],
                                 loss=loss, progress=False)  # fmt: skip
            victim = from_flax_saliency(module, run.variables, input_shape=shape)
            scores = {t: evaluate_saliency(victim, d, key=jax.random.fold_in(key, 3))
                      for t, d in tests.items()}  # fmt: skip
            label = f"{'CSC' if csc else 'no CSC'}, {loss_name}"
            rows[label] = {
                "reference": {m: scores["Reference"][m] for m in METRICS},
                "transformed": {m: float(np.mean([s[m] for t, s in scores.items()
                                                  if t != "Reference"])) for m in METRICS},
                "acs": histogram_distance(victim, tests["Reference"]),
            }  # fmt: skip
            print(f"  {label}: {time.perf_counter() - start:.0f} s, final loss "
                  f"{run.losses[-1]:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    n_t = len(config["transformations"]) - 1
    print(f"GazeGAN (width {config['width']}, {config['size'][0]}×{config['size'][1]}, "
          f"{config['train']} scenes × {config['epochs']} epochs); {config['test']} test scenes, "
          f"as generated and averaged over {n_t} transformations")  # fmt: skip
    head = "".join(f"{m:>7}" for m in METRICS)
    print(f"{'variant':<24}{head}  |{head}  | ACS to truth ↓")
    for label, r in rows.items():
        print(f"{label:<24}" + "".join(f"{r['reference'][m]:7.3f}" for m in METRICS) + "  |"
              + "".join(f"{r['transformed'][m]:7.3f}" for m in METRICS)
              + f"  | {r['acs']:.3f}")  # fmt: skip
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
