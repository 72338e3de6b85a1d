r"""SMBEA's two ablations (Che et al., AAAI 2020, ``shared/papers/000``, "2nd Challenge: Ablation
studies", Figs. 5 and 6), on the zoo models of ``smbea_transfer.py`` (its cache, scenes and
budgets; issue 20).

**Fig. 5 — ensemble strategy × depth of the feature layer.** One mini-batch fusing four source
models, the paper's GazeGAN, Global-pix2pix, SAM-ResNet and SalGAN: here the pix2pixHD global
generator, SAM, SalGAN and, in GazeGAN's place, the two-stream pix2pixHD enhancer with a ConvLSTM
refinement (``pix2pix_local_lstm``: GazeGAN's local/global generator pair; the zoo's GazeGAN
needs sides that are multiples of 64, these scenes are 32×32). SMBEA (Algorithm 1, one
mini-batch) attacks them untargeted with the output term and the feature term of Eq. 2
(λ2 = 1), the features taken at a shallow, a middle or a deep layer of every member (``LAYERS``:
the first encoder stage, a middle one, the bottleneck) and fused by each ensemble strategy of
the paper's Fig. 2 (CU+BI, CU+BI+SN, APC+BI, APC+BI+SN; ``jaxadv.models.FEATURE_STRATEGIES``);
plus the output term alone. Fooling ability against the source models (white-box, as the
paper's figure): the drop of each source model's CC with the scenes' ground truth, averaged over
the four, and the mean CC between each model's adversarial and clean maps. The feature loss is
CC (``--feature-loss``), which weighs SN's distributions and raw activations alike.

**Fig. 6 — the number of mini-batches.** The serial scheme of ``smbea_transfer.py --library``
with the same four models in two alternating mini-batches (A = SalGAN + pix2pixHD global,
B = SAM + two-stream pix2pixHD with ConvLSTM), budgets growing as Algorithm 2's step 1
(``T^(i) = T^(i−1) + β3^i·T^(1)``, Table 1's Cityscapes ℓ1 schedule), every competitor at the
same budget in the same mini-batch (the paper's "fair comparison"); the fooling ability (ΔCC,
ΔsAUC, ΔSIM) of a held-out black-box model (the paper's target is the online SALICON; the zoo's
SALICON also needs 64-pixel sides, so DeepGaze II of another seed, a family absent from the
sources) after EVERY mini-batch.

Command:   JAXADV_CACHE_DIR=... python experiments/smbea_ablation.py [--smoke]
           [--figure 5|6|both] [--minibatches 5] [--feature-loss cc]
           [--depths shallow,middle,deep] [--strategies cu_bi,cu_bi_sn,apc_bi,apc_bi_sn]
           [--methods "ensemble PGD,ensemble MIM,Liu's ensemble,SMBEA"]
Cost:      the source models as ``smbea_transfer.py --library`` trains and caches them (SAM is
           new: ~3 min); Fig. 5 compiles 13 one-mini-batch attacks, Fig. 6 one five-mini-batch
           attack per method (~1.5 min each on the loaded CPU). Smoke: width 2, 8 scenes, one
           epoch, 2 images, one strategy at one depth, 2 mini-batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smbea_transfer as smbea  # noqa: E402  (the zoo, its cache, budgets and attack rows)

from jaxadv.data.saliency import load_scenes  # noqa: E402
from jaxadv.models import FEATURE_STRATEGIES, default_cache_dir, ensemble  # noqa: E402
from jaxadv.training import evaluate_saliency_maps, predict_saliency  # noqa: E402

# the four source models of Fig. 5 (GazeGAN's place: pix2pix_local_lstm, module docstring)
SOURCES = (("pix2pix_local_lstm", 0), ("pix2pix_global", 0), ("sam", 0), ("salgan", 0))
# per model: its first encoder stage, a middle stage and the bottleneck
LAYERS = {
    "pix2pix_local_lstm": ("global/stem", "global/down2", "global/res"),
    "pix2pix_global": ("stem", "down2", "res"),
    "sam": ("backbone/relu1_2", "backbone/relu3_3", "backbone/relu5_3"),
    "salgan": ("encoder/relu1_2", "encoder/relu3_3", "encoder/relu5_3"),
}
DEPTHS = ("shallow", "middle", "deep")
STRATEGY_LABELS = {"cu_bi": "CU+BI", "cu_bi_sn": "CU+BI+SN", "apc_bi": "APC+BI",
                   "apc_bi_sn": "APC+BI+SN"}  # fmt: skip
# Fig. 6: the four sources in two alternating mini-batches, a held-out model of another family
FIG6 = dict(
    library=((("salgan", 0), ("pix2pix_global", 0)), (("sam", 0), ("pix2pix_local_lstm", 0))),
    held_out=(("deepgaze", 2),),
)  # fmt: skip
FIG6_METHODS = ("ensemble PGD", "ensemble MIM", "Liu's ensemble", "SMBEA")
SMOKE = dict(sources=(("pix2pix_global", 0), ("salgan", 0)), strategies=("cu_bi",),
             depths=("deep",), minibatches=2,
             library=((("salgan", 0),), (("pix2pix_global", 0),)),
             held_out=(("pix2pix_global", 2),))  # fmt: skip


def _mean_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's CC of each pair of maps ``a[i]``, ``b[i]``, averaged."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)) + 1e-12
    return float(np.mean((a * b).sum(axis=1) / den))


def _config(smoke: bool) -> dict[str, Any]:
    """``smbea_transfer``'s ``--library`` configuration (scenes, widths, epochs, ℓ1 budgets)."""
    if smoke:
        return {**smbea.SMOKE, **smbea.L1, **smbea.LIBRARY_SMOKE, **SMOKE}
    return {**smbea.CONFIG, **smbea.L1, **smbea.LIBRARY, "sources": SOURCES,
            "strategies": tuple(FEATURE_STRATEGIES), "depths": DEPTHS}  # fmt: skip


def figure5(config: dict, cache_dir: Path, feature_loss: str = "cc") -> dict[str, Any]:
    """``{row label: {depth: scores}}``: fooling ability against the source models of SMBEA
    with the feature term at each depth and strategy, and with the output term alone."""
    size = config["size"]
    train = load_scenes("train", n=config["train_scenes"], size=size, off_center=True)
    test = load_scenes("test", n=config["images"], size=size, off_center=True)
    sources = {f"{n}#{s}": smbea._saliency_model(n, s, train, config, cache_dir)
               for n, s in config["sources"]}  # fmt: skip
    names = [n for n, _ in config["sources"]]
    images = jnp.asarray(test.images)
    key = jax.random.key(1)
    clean_maps = {m: predict_saliency(v, images) for m, v in sources.items()}
    clean_cc = {m: evaluate_saliency_maps(clean_maps[m], test, key=key)["cc"] for m in sources}

    def scores(x_adv) -> dict[str, float]:
        drops, kept = [], []
        for m, victim in sources.items():
            adv = predict_saliency(victim, x_adv)
            drops.append(clean_cc[m] - evaluate_saliency_maps(adv, test, key=key)["cc"])
            kept.append(_mean_pearson(np.asarray(adv), np.asarray(clean_maps[m])))
        return {"dcc": float(np.mean(drops)), "map_cc": float(np.mean(kept))}

    smbea_row = (("SMBEA", dict(rule="smbea", fusion="outputs", feature_loss=feature_loss),
                  dict(beta1=0.0, beta2=0.0, feature_weight=1.0)),)  # fmt: skip
    one = dict(config, minibatches=1)
    rows: dict[str, dict] = {}
    plain = ensemble(list(sources.values()), combine="density")
    outputs, budgets = smbea._run_methods([plain], images, one, loss="kl", methods=smbea_row)
    rows["random noise"] = {"-": scores(outputs["random noise"][0])}
    rows["outputs only"] = {"-": scores(outputs["SMBEA"][0])}
    smbea._log(f"Fig. 5: random noise {rows['random noise']}, outputs only {rows['outputs only']}")
    for strategy in config["strategies"]:
        label = STRATEGY_LABELS[strategy]
        rows[label] = {}
        for depth in config["depths"]:
            layers = [LAYERS[n][DEPTHS.index(depth)] for n in names]
            ens = ensemble(list(sources.values()), combine="density", layers=layers,
                           strategy=strategy)  # fmt: skip
            smbea._log(f"Fig. 5: {label} at the {depth} layers")
            outputs, _ = smbea._run_methods([ens], images, one, loss="kl", methods=smbea_row)
            rows[label][depth] = scores(outputs["SMBEA"][0])
            smbea._log(f"Fig. 5: {label} at the {depth} layers: {rows[label][depth]}")
    return {"rows": rows, "clean_cc": clean_cc, "budget": float(budgets[0]),
            "depths": tuple(config["depths"])}  # fmt: skip


def format_figure5(fig: dict) -> str:
    depths = fig["depths"]
    head = " | ".join(f"ΔCC {d}" for d in depths) + " | " + " | ".join(
        f"map CC {d}" for d in depths
    )
    lines = [
        "Fig. 5: fooling ability against the 4 source models (mean over them; white-box), one "
        f"mini-batch, ℓ1 budget {fig['budget']:.2e} mean |δ|; clean CC "
        + ", ".join(f"{m} {c:.3f}" for m, c in fig["clean_cc"].items()),
        "",
        f"| strategy | {head} |",
        "|---" * (1 + 2 * len(depths)) + "|",
    ]
    for label, by_depth in fig["rows"].items():
        cells = [by_depth.get(d, by_depth.get("-")) for d in depths]
        lines.append(f"| {label} | " + " | ".join(f"{c['dcc']:+.3f}" for c in cells) + " | "
                     + " | ".join(f"{c['map_cc']:.3f}" for c in cells) + " |")  # fmt: skip
    return "\n".join(lines)


def figure6(config: dict, cache_dir: Path, methods: tuple[str, ...]) -> dict[str, Any]:
    """``smbea_transfer.saliency_table`` on Fig. 6's mini-batches, scored after every one."""
    rows = tuple(row for row in smbea.METHODS if row[0] in methods)
    return smbea.saliency_table(dict(config, methods=rows), cache_dir)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the tests")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--figure", choices=("5", "6", "both"), default="both")
    parser.add_argument("--minibatches", type=int, default=None, help="Fig. 6's N (default 5)")
    parser.add_argument("--feature-loss", choices=("mse", "l1", "cc", "kl"), default="cc",
                        help="Fig. 5's feature loss L3")
    parser.add_argument("--depths", default=None,
                        help="Fig. 5's layer depths, a comma-separated subset of " + ",".join(DEPTHS))
    parser.add_argument("--strategies", default=None,
                        help="Fig. 5's strategies, a comma-separated subset of "
                        + ",".join(FEATURE_STRATEGIES))  # fmt: skip
    parser.add_argument("--methods", default=",".join(FIG6_METHODS),
                        help="Fig. 6's attacks (labels of smbea_transfer.METHODS)")
    args = parser.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(","))
    known = [label for label, _, _ in smbea.METHODS]
    for label in methods:
        if label not in known:
            raise ValueError(f"`--methods` must name attacks of {known}; got {label!r}.")
    config = _config(args.smoke)
    if args.minibatches is not None:
        if args.minibatches < 1:
            raise ValueError(f"`--minibatches` must be >= 1; got {args.minibatches}.")
        config["minibatches"] = args.minibatches
    for flag, known_values in (("depths", DEPTHS), ("strategies", tuple(FEATURE_STRATEGIES))):
        value = getattr(args, flag)
        if value is not None:
            chosen = tuple(v.strip() for v in value.split(","))
            if not chosen or any(v not in known_values for v in chosen):
                raise ValueError(f"`--{flag}` must be a comma-separated subset of {known_values}; "
                                 f"got {value!r}.")  # fmt: skip
            config[flag] = chosen
    cache_dir = default_cache_dir() if args.cache_dir is None else Path(args.cache_dir)
    began = time.perf_counter()
    out: dict[str, Any] = {"config": config}
    text = []
    if args.figure in ("5", "both"):
        out["figure5"] = figure5(config, cache_dir, args.feature_loss)
        text.append(format_figure5(out["figure5"]))
        smbea._log(f"Fig. 5: {time.perf_counter() - began:.0f} s")
    if args.figure in ("6", "both"):
        fig6_config = {**config, **({} if args.smoke else FIG6), "every_minibatch": True}
        out["figure6"] = figure6(fig6_config, cache_dir, methods)
        text.append(
            f"Fig. 6: fooling ability of a held-out model after each of {config['minibatches']}"
            " mini-batches (the same budget for every attack in a mini-batch)\n"
            + smbea.format_tables(out["figure6"], None)
        )  # fmt: skip
    out["table"] = "\n\n".join(text)
    print(out["table"] + f"\n\ntotal {time.perf_counter() - began:.0f} s")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
