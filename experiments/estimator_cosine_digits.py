r"""How well each gradient estimator points along the white-box gradient (thesis Table 2.6's
analysis, for every estimator of the library): the mean cosine between one estimate and the
exact gradient of the C&W margin, per query budget, on the default digits victim; beside it the
meta attacker's prediction (no queries) and a randomly initialised one (Du et al., ICLR 2020).

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/estimator_cosine_digits.py
           (tiny smoke run: --smoke)
Protocol:  the first ``images`` test digits the victim classifies correctly; the loss is the
           untargeted C&W margin of the victim's logits with the floor removed (κ = 1e4), so
           every digit has a gradient; each estimator is called once at the clean digit with
           its own key (ZOO, AutoZOOM and bandits from their initial state); queries are what
           the oracle reports for that call.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import gradients, losses, metrics
from jaxadv.data import load_digits
from jaxadv.training import default_meta_attacker, default_victim, held_out_cosine

CONFIG = dict(images=64, budgets=(20, 100, 400), meta=True)
SMOKE = dict(images=4, budgets=(10,), meta=False)


def estimators(q: int) -> dict:
    """Each estimator at about ``q`` queries per call (its own accounting is reported)."""
    return {
        "NES": gradients.nes(samples=q - q % 2, sigma=1e-3),
        "RGF": gradients.rgf(samples=q - 1, sigma=1e-3),
        "SPSA": gradients.spsa(samples=q - q % 2, sigma=1e-2),
        "ZOO": gradients.zoo(coordinates=max(q // 2, 1), h=1e-4),
        "Bandits-TD": gradients.bandits(),
    }


def cosine_table(victim, images, labels, budgets, key) -> list[dict]:
    """Mean cosine and queries per (estimator, budget)."""
    def loss_for(label):
        return lambda x: (losses.cw_margin(victim(x), label, kappa=1e4), None)

    rows = []
    for q in budgets:
        for name, oracle in estimators(q).items():
            keys = jax.random.split(jax.random.fold_in(key, q), len(images))
            run = jax.jit(jax.vmap(
                lambda x, y, k, o=oracle: metrics.estimator_cosine(o, loss_for(y), x, k)))
            cos, queries = run(images, labels, keys)
            rows.append(dict(estimator=name, budget=q, cosine=float(jnp.mean(cos)),
                             cosine_std=float(jnp.std(cos)), queries=int(queries[0])))
            print(f"  {name:<10} q≈{q:<4} cosine {rows[-1]['cosine']:.3f} "
                  f"(queries {rows[-1]['queries']})", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = dict(SMOKE if args.smoke else CONFIG)
    if args.images:
        config["images"] = args.images
    victim, _ = default_victim("cw", progress=False)
    data = load_digits(size=28)
    predicted = np.argmax(np.asarray(victim.batch(jnp.asarray(data.test_images))), -1)
    keep = np.flatnonzero(predicted == data.test_labels)[: config["images"]]
    images, labels = jnp.asarray(data.test_images[keep]), jnp.asarray(data.test_labels[keep])
    rows = cosine_table(victim, images, labels, config["budgets"], jax.random.key(args.seed))
    if config["meta"]:
        module, variables, _ = default_meta_attacker("digits", progress=False)
        trained, random = held_out_cosine(module, variables, victim, images, labels,
                                          key=jax.random.key(7))  # fmt: skip
        rows += [dict(estimator="Meta attacker", budget=0, cosine=trained, queries=0),
                 dict(estimator="Meta attacker (random init)", budget=0, cosine=random,
                      queries=0)]  # fmt: skip
    print(f"{len(keep)} correctly classified digits, C&W margin (κ = 1e4), one call each")
    print(f"{'estimator':<28}{'queries':>8}{'mean cosine':>13}")
    for row in rows:
        print(f"{row['estimator']:<28}{row['queries']:>8}{row['cosine']:>13.3f}")
    return dict(rows=rows)


if __name__ == "__main__":
    main(sys.argv[1:])
