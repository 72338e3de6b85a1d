r"""The dual-perturbation paper's Segment-6 appendix (Tong et al., sections F, I, J) on the
generated segment scenes.

Victims (a zoo ResNet at width 8, trained here, cached with orbax under
``JAXADV_CACHE_DIR/dual_perturbation``): Clean; AT-PGD (ℓ∞ PGD at ε = 8/255); AT-Dual (ℓ∞ dual
attack at {ε_F, ε_B} = {8/255, 40/255}, λ = 0 as the paper on Segment-6); RS (Gaussian
augmentation at σ ∈ {0.25, 0.5, 1}, ``training.gaussian_noise``). Tables:

* Figure 17: accuracy under 20-step ℓ∞ dual attacks (ε_B = 5·ε_F) and ℓ∞ PGD (ε = ε_F) over
  ε_F ∈ {0, 4, 8, 12, 16}/255; one ``sweep`` per attack and victim structure (compiled once);
* Figure 18: transferability, the accuracy of each target on each source's adversarial examples
  (dual at {8, 40}/255, PGD at 8/255);
* the saliency analysis over λ (Figure 13's layout): foreground scores S = Σ map·F / Σ map of the
  dual examples and accuracy, with a zoo DeepGaze II trained here on the generated saliency scenes
  at 32×32. The paper skipped it on Segment-6 only because its pretrained DeepGaze II needs
  images of at least 35 px; a model trained at this size has no such limit;
* Tables 4 and 6: RS against EOT dual attacks (the expectation over the smoothing noise,
  ``attacks.with_eot``), scored by PREDICT with n noise samples (n = 1: the single draw's class,
  no test; abstain counts as wrong);
* the certified-accuracy curve of the smoothed victims (CERTIFY, n far below Cohen et al.'s
  100,000 on this CPU: the config says which).

With ``--norm l2`` the same run follows section F (AT budgets 0.5 and {0.5, 2.5}, ε_F ∈ {0, 0.25,
0.5, 0.75, 1}, 100 evaluation steps, 50 in training); not measured here.

The claim under test: AT-Dual is more robust to dual attacks than AT-PGD.

Deviations, to fit the shared 2-core CPU: a width-8 ResNet of the zoo (``models.ResNet``)
trained from scratch on 2000 scenes (the paper fine-tunes an ImageNet ResNet34 on 18,000); Clean
8 epochs and RS 12 epochs of Adam at 3e-3 with cosine decay (the paper: 1e-4 for Clean, 60
epochs). AT-PGD and AT-Dual fine-tune the Clean model for 3 epochs with Adam at 1e-3 (the paper's
AT step size) and 5 attack steps (the paper's 10), as the paper fine-tunes a pretrained network
(``train_adversarial(variables=...)``): from scratch (``at_init="scratch"``, 5 epochs at 2e-3)
AT-PGD reached only 26% clean / 10% adversarial training accuracy in this time. 96 test scenes (48 for
RS, CERTIFY and the saliency analysis; the paper 1,200); 4 EOT draws per step; CERTIFY with n0 =
50, n = 2,000 (Cohen et al.: 100 and 100,000), α = 0.001. The paper gives no step sizes: every
attack steps 2.5·ε/steps (per region for the dual one). λ of the saliency analysis: 0, 1, 10, 100.

Command:   JAXADV_CACHE_DIR=/work/cache-victims python experiments/dual_perturbation.py
           (tiny smoke run: --smoke; --norm l2 for section F)
Expected:  measured 2026-12-07 (experiments/README.md, "dual_perturbation.py"; 96 test scenes):
           clean accuracy Clean 91.7%, AT-PGD 46.9%, AT-Dual 21.9%; under dual attacks at
           ε_F = 4/255 (ε_B = 20/255) Clean 0.0%, AT-PGD 1.0%, AT-Dual 5.2%, everything ≤ 1% from
           8/255 on; PGD at 8/255: AT-PGD 7.3%, AT-Dual 9.4%. The claim (AT-Dual more robust to
           dual attacks than AT-PGD) is NOT supported at this training budget. RS under EOT dual
           attacks: σ = 0.25 56.2% → 0.0% at 4/255 (PREDICT, n = 100).
Cost:      ~25 min of training on the loaded 2-core CPU (load 10-20) on a first run, cached with
           orbax afterwards; evaluation ~7 min (white box + transfer), ~7 min (saliency), ~15 min
           (RS and CERTIFY). The smoke run (--smoke) still compiles every program: minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import attacks, certify, losses, models
from jaxadv.data import load_segment_scenes
from jaxadv.data.saliency import make_scenes
from jaxadv.training import gaussian_noise, train_adversarial, train_classifier, train_zoo_saliency

CONFIG = dict(
    width=8, train=2000, test=96, epochs=8, lr=3e-3, at_init="clean", at_epochs=3, at_lr=1e-3,
    at_drop=None, at_steps=5, eval_steps=20, sigmas=(0.25, 0.5, 1.0), rs_epochs=12, rs_images=48, eot=4,
    predict_n=(1, 25, 100), table6_sigma=0.5, certify_images=48, certify_n0=50,
    certify_n=2000, saliency_scenes=400, saliency_epochs=8, lams=(0.0, 1.0, 10.0, 100.0),
    saliency_images=48, batch_size=64,
)  # fmt: skip
SMOKE = dict(
    width=2, train=48, test=8, epochs=1, lr=2e-3, at_init="clean", at_epochs=1, at_lr=1e-3,
    at_drop=None,
    at_steps=1,
    eval_steps=2, sigmas=(0.5,), rs_epochs=1, rs_images=4, eot=2,
    predict_n=(1, 4), table6_sigma=0.5, certify_images=4, certify_n0=4,
    certify_n=16, saliency_scenes=8, saliency_epochs=1, lams=(0.0, 1.0),
    saliency_images=4, batch_size=16,
)  # fmt: skip
# Per norm: AT-PGD ε, AT-Dual (ε_F, ε_B), the ε_F grid (ε_B = 5·ε_F), steps in training and
# evaluation (appendix C), the radii of the certified-accuracy curve.
NORMS = {
    "linf": dict(at_eps=8 / 255, dual=(8 / 255, 40 / 255),
                 eps_f=tuple(e / 255 for e in (0, 4, 8, 12, 16)), unit=255, steps=(10, 20)),
    "l2": dict(at_eps=0.5, dual=(0.5, 2.5), eps_f=(0.0, 0.25, 0.5, 0.75, 1.0), unit=1,
               steps=(50, 100)),
}  # fmt: skip
RATIO = 5.0  # ε_B = 5·ε_F, as the paper's tables
RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
DETERMINISTIC = ("Clean", "AT-PGD", "AT-Dual")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- cached training -----------------------------------------------------------------------------


def _digest(settings: dict, *arrays: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def _cached(cache: Path, tag: str, settings: dict, data, module, train) -> Any:
    """``train()``'s variables, restored from ``cache/tag-fingerprint`` when there."""
    path = cache / f"{tag}-{_digest(settings, data.images, data.labels)}"
    with models.cache_lock(path):
        if path.exists():
            try:
                return models.restore_variables(path, module, data.images.shape[1:])
            except ValueError as err:
                _log(f"retraining {tag}: {err}")
                shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        variables = train()
        _log(f"{tag}: trained in {time.perf_counter() - start:.0f} s")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        models.save_variables(tmp, variables)
        os.replace(tmp, path) if not path.exists() else shutil.rmtree(tmp, ignore_errors=True)
    return variables


def _attack_for(kind: str, norm: str, steps: int):
    return attacks.pgd(norm=norm, steps=steps) if kind == "pgd" else attacks.dual_perturbation(
        norm=norm, steps=steps
    )


def _hparams(attack, kind: str, eps_f, steps: int, **extra):
    """Madry's step 2.5·ε/steps for both attacks (per region for the dual one)."""
    eps_f = np.asarray(eps_f, np.float32)
    rel = 2.5 / steps
    if kind == "pgd":
        return attack.hparams(eps=eps_f, rel_step_size=rel)
    return attack.hparams(eps_f=eps_f, eps_b=np.float32(RATIO) * eps_f, rel_step_size_f=rel,
                          rel_step_size_b=rel, **extra)  # fmt: skip


def train_victims(
    config: dict, norm: str, train, cache: Path, reverse: bool = False, at: bool = True
) -> dict[str, models.Victim]:
    """Clean, AT-PGD, AT-Dual and the RS base classifiers (``RS σ=...``), cached. ``reverse``
    trains AT-Dual before AT-PGD (a second process can train the other one meanwhile)."""
    module = models.ResNet(width=config["width"], num_classes=train.num_classes)
    spec = NORMS[norm]
    common = dict(module=models.describe_module(module), batch_size=config["batch_size"])
    key = jax.random.key(0)
    out: dict[str, Any] = {}

    def plain(epochs, augment=None):
        return lambda: train_classifier(
            module, train.images, train.labels, key=key, epochs=epochs,
            batch_size=config["batch_size"], learning_rate=config["lr"], augment=augment,
        )  # fmt: skip

    settings = dict(common, kind="clean", epochs=config["epochs"], lr=config["lr"])
    out["Clean"] = _cached(cache, "clean", settings, train, module, plain(config["epochs"]))
    for sigma in config["sigmas"]:
        settings = dict(common, kind="rs", sigma=sigma, epochs=config["rs_epochs"], lr=config["lr"])
        out[f"RS σ={sigma:g}"] = _cached(
            cache, f"rs{sigma:g}", settings, train, module,
            plain(config["rs_epochs"], gaussian_noise(sigma)),
        )  # fmt: skip
    steps = config["at_steps"] or spec["steps"][0]
    order = (("AT-PGD", "pgd"), ("AT-Dual", "dual"))
    for name, kind in (order[::-1] if reverse else order) if at else ():
        attack = _attack_for(kind, norm, steps)
        eps = spec["at_eps"] if kind == "pgd" else spec["dual"][0]
        hp = _hparams(attack, kind, eps, steps)
        labels = attacks.DualLabels(train.labels, train.masks) if kind == "dual" else None
        settings = dict(common, kind=f"at-{kind}", norm=norm, eps=eps, steps=steps,
                        epochs=config["at_epochs"], lr=config["at_lr"], drop=config["at_drop"],
                        init=config["at_init"], trainer="train_adversarial")  # fmt: skip

        def fit(attack=attack, hp=hp, labels=labels):
            start = out["Clean"] if config["at_init"] == "clean" else None
            return train_adversarial(
                module, train.images, train.labels, attack=attack, hp=hp, key=key,
                attack_labels=labels, variables=start, epochs=config["at_epochs"],
                batch_size=config["batch_size"], learning_rate=config["at_lr"],
                lr_drop_every=config["at_drop"],
            ).variables  # fmt: skip

        out[name] = _cached(cache, f"at-{kind}-{norm}", settings, train, module, fit)
    shape = train.images.shape[1:]
    return {
        name: models.from_flax(module, v, input_shape=shape, num_classes=train.num_classes)
        for name, v in out.items()
    }


def saliency_model(config: dict, cache: Path):
    """A zoo DeepGaze II (width 8) trained on generated saliency scenes at 32×32."""
    scenes = make_scenes(config["saliency_scenes"], size=(32, 32), seed=0)
    tag = f"deepgaze-w8-32-n{config['saliency_scenes']}-e{config['saliency_epochs']}"
    victim, _ = train_zoo_saliency(
        "deepgaze", scenes, key=jax.random.key(0), width=8, epochs=config["saliency_epochs"],
        checkpoint_dir=cache / tag, resume=True, progress=False,
    )  # fmt: skip
    return victim


# -- evaluation ----------------------------------------------------------------------------------


def _accuracy(logits, labels) -> np.ndarray:
    """Accuracy per leading index of ``logits [..., b, classes]``."""
    return np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(labels), axis=-1)


def whitebox(victims, test, norm: str, steps: int, key) -> tuple[list[dict], dict]:
    """Figure 17/6: accuracy of each deterministic victim under dual and PGD over ε_F; also
    returns the adversarial examples at the AT budget for the transfer table."""
    spec = NORMS[norm]
    grid = np.asarray(spec["eps_f"], np.float32)
    at_index = int(np.argmin(np.abs(grid - spec["dual"][0])))
    images, labels = jnp.asarray(test.images), jnp.asarray(test.labels)
    rows, examples = [], {}
    for kind in ("dual", "pgd"):
        attack = _attack_for(kind, norm, steps)
        hp = _hparams(attack, kind, grid, steps)
        y = attacks.DualLabels(labels, jnp.asarray(test.masks)) if kind == "dual" else labels
        for name in DETERMINISTIC:
            start = time.perf_counter()
            r = attack.sweep(victims[name], hp, images, y, key)
            acc = _accuracy(r.logits, labels)
            examples[(kind, name)] = np.asarray(r.x_adv[at_index])
            _log(f"  {kind} on {name}: {time.perf_counter() - start:.0f} s")
            rows += [dict(table="whitebox", attack=kind, victim=name, eps_f=float(e),
                          accuracy=float(a)) for e, a in zip(grid, acc)]  # fmt: skip
    return rows, examples


def transfer(victims, test, examples) -> list[dict]:
    """Figure 18/7: the accuracy of each target on each source's adversarial examples."""
    rows = []
    for (kind, source), x in examples.items():
        for target in DETERMINISTIC:
            acc = float(_accuracy(victims[target].batch(jnp.asarray(x)), test.labels))
            rows.append(dict(table="transfer", attack=kind, source=source, target=target,
                             accuracy=acc))  # fmt: skip
    return rows


def saliency_analysis(victims, test, saliency, config, norm, steps, key) -> list[dict]:
    """Figure 13's layout: foreground score of the dual examples' maps and accuracy, over λ."""
    spec = NORMS[norm]
    n = config["saliency_images"]
    images, labels, masks = (jnp.asarray(a[:n]) for a in (test.images, test.labels, test.masks))
    attack = attacks.dual_perturbation(norm=norm, steps=steps)
    lams = np.asarray(config["lams"], np.float32)
    hp = _hparams(attack, "dual", np.full_like(lams, spec["dual"][0]), steps, lam=lams)

    @jax.jit
    def scores(x):  # x [..., n, h, w, c] -> foreground score per image
        flat = x.reshape((-1,) + x.shape[-3:])
        maps = losses.to_saliency_map(saliency.batch(flat), saliency.output)
        fs = jax.vmap(losses.foreground_score)(maps, jnp.tile(masks, (flat.shape[0] // n, 1, 1, 1)))
        return fs.reshape(x.shape[:-3])

    rows = [dict(table="saliency", victim="clean images", lam=float("nan"),
                 foreground_score=float(jnp.mean(scores(images))), accuracy=float("nan"))]
    for name in DETERMINISTIC:
        r = attack.sweep(models.with_saliency(victims[name], saliency), hp, images,
                         attacks.DualLabels(labels, masks), key)  # fmt: skip
        fs, acc = np.mean(np.asarray(scores(r.x_adv)), -1), _accuracy(r.logits, labels)
        rows += [dict(table="saliency", victim=name, lam=float(lam), foreground_score=float(f),
                      accuracy=float(a)) for lam, f, a in zip(lams, fs, acc)]  # fmt: skip
    return rows


def _smoothed_accuracy(base, x, labels, sigma, n, key) -> float:
    """PREDICT with ``n`` samples (n = 1: the draw's class, no test); abstain counts as wrong."""
    if n == 1:
        counts = np.asarray(certify.sample_counts(base, x, key, sigma=sigma, n=1))
        prediction = np.argmax(counts, -1)
    else:
        prediction = certify.predict(base, x, key, sigma=sigma, n=n).prediction
    return float(np.mean(np.asarray(prediction) == np.asarray(labels)))


def randomized_smoothing(victims, test, config, norm, steps, key) -> list[dict]:
    """Tables 4-6: RS under EOT dual attacks, PREDICT with n samples; and CERTIFY's curve."""
    spec = NORMS[norm]
    grid = np.asarray(spec["eps_f"], np.float32)
    k = config["rs_images"]
    images, labels, masks = (jnp.asarray(a[:k]) for a in (test.images, test.labels, test.masks))
    attack = attacks.with_eot(attacks.dual_perturbation(norm=norm, steps=steps), config["eot"])
    hp = _hparams(attack, "dual", grid, steps)
    rows = []
    for sigma in config["sigmas"]:
        base = victims[f"RS σ={sigma:g}"]
        start = time.perf_counter()
        r = attack.sweep(models.with_input_noise(base, sigma), hp, images,
                         attacks.DualLabels(labels, masks), key)  # fmt: skip
        _log(f"  EOT dual on RS σ={sigma:g}: {time.perf_counter() - start:.0f} s")
        x_adv = np.asarray(r.x_adv)
        ns = config["predict_n"] if sigma == config["table6_sigma"] else config["predict_n"][-1:]
        for n in ns:
            for e, x in zip(grid, x_adv):
                acc = _smoothed_accuracy(base, x, labels, sigma, n, jax.random.key(7))
                rows.append(dict(table="rs", sigma=sigma, n=n, eps_f=float(e), accuracy=acc))
        c = certify.certify(base, np.asarray(test.images[: config["certify_images"]]),
                            jax.random.key(11), sigma=sigma, n0=config["certify_n0"],
                            n=config["certify_n"])  # fmt: skip
        curve = certify.certified_accuracy(c, test.labels[: config["certify_images"]], RADII)
        rows += [dict(table="certified", sigma=sigma, radius=r_, accuracy=float(a))
                 for r_, a in zip(RADII, curve)]  # fmt: skip
    return rows


# -- tables --------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "—" if np.isnan(x) else f"{100 * x:.1f}%"


def format_tables(rows: list[dict], norm: str) -> str:
    unit = NORMS[norm]["unit"]
    eps = lambda e: f"{e * unit:g}" + ("/255" if unit == 255 else "")  # noqa: E731
    out = []
    grid = sorted({r["eps_f"] for r in rows if r["table"] == "whitebox"})
    whitebox_kinds = (("dual", f"dual (ε_B = {RATIO:g}·ε_F), ε_F"), ("pgd", "PGD, ε"))
    for kind, title in whitebox_kinds if grid else ():
        out.append(f"| {title} | " + " | ".join(eps(e) for e in grid) + " |")
        out.append("|---" * (len(grid) + 1) + "|")
        for name in DETERMINISTIC:
            acc = {r["eps_f"]: r["accuracy"] for r in rows
                   if r["table"] == "whitebox" and r["attack"] == kind and r["victim"] == name}
            out.append(f"| {name} | " + " | ".join(_pct(acc[e]) for e in grid) + " |")
        out.append("")
    for kind in ("dual", "pgd") if grid else ():
        out.append(f"| transfer ({kind}): source \\ target | " + " | ".join(DETERMINISTIC) + " |")
        out.append("|---" * (len(DETERMINISTIC) + 1) + "|")
        for source in DETERMINISTIC:
            acc = {r["target"]: r["accuracy"] for r in rows if r["table"] == "transfer"
                   and r["attack"] == kind and r["source"] == source}  # fmt: skip
            out.append(f"| {source} | " + " | ".join(_pct(acc[t]) for t in DETERMINISTIC) + " |")
        out.append("")
    sal = [r for r in rows if r["table"] == "saliency"]
    if sal:
        out.append("| saliency: victim | λ | foreground score | accuracy |\n|---|---|---|---|")
        out += [f"| {r['victim']} | {r['lam']:g} | {r['foreground_score']:.3f} | "
                f"{_pct(r['accuracy'])} |" for r in sal]  # fmt: skip
        out.append("")
    rs = [r for r in rows if r["table"] == "rs"]
    if rs:
        rgrid = sorted({r["eps_f"] for r in rs})
        out.append("| RS, EOT dual, ε_F | " + " | ".join(eps(e) for e in rgrid) + " |")
        out.append("|---" * (len(rgrid) + 1) + "|")
        for sigma, n in sorted({(r["sigma"], r["n"]) for r in rs}):
            acc = {r["eps_f"]: r["accuracy"] for r in rs if (r["sigma"], r["n"]) == (sigma, n)}
            out.append(f"| σ = {sigma:g}, n = {n} | " + " | ".join(_pct(acc[e]) for e in rgrid)
                       + " |")  # fmt: skip
        out.append("")
    cert = [r for r in rows if r["table"] == "certified"]
    if cert:
        out.append("| certified accuracy, ℓ2 radius | " + " | ".join(f"{r:g}" for r in RADII) + " |")
        out.append("|---" * (len(RADII) + 1) + "|")
        for sigma in sorted({r["sigma"] for r in cert}):
            acc = {r["radius"]: r["accuracy"] for r in cert if r["sigma"] == sigma}
            out.append(f"| RS σ = {sigma:g} | " + " | ".join(_pct(acc[r]) for r in RADII) + " |")
    return "\n".join(out)


def verdict(rows: list[dict]) -> str:
    """The claim: AT-Dual more robust to dual attacks than AT-PGD (per ε_F > 0)."""
    acc = {(r["victim"], r["eps_f"]): r["accuracy"] for r in rows
           if r["table"] == "whitebox" and r["attack"] == "dual"}  # fmt: skip
    grid = sorted({e for _, e in acc if e > 0})
    diffs = [acc[("AT-Dual", e)] - acc[("AT-PGD", e)] for e in grid]
    wins = sum(d > 0 for d in diffs)
    return ("AT-Dual − AT-PGD under dual attacks, per ε_F > 0: "
            + ", ".join(f"{100 * d:+.1f}" for d in diffs)
            + f" points; AT-Dual ahead at {wins} of {len(grid)} budgets.")  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run of every path")
    parser.add_argument("--norm", default="linf", choices=tuple(NORMS))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--parts", default="whitebox,saliency,rs",
                        help="comma list of whitebox (with transfer), saliency, rs")
    parser.add_argument("--train-only", action="store_true", help="train (or restore), then stop")
    parser.add_argument("--reverse", action="store_true", help="train AT-Dual before AT-PGD")
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else CONFIG
    root = models.default_cache_dir() if args.cache_dir is None else Path(args.cache_dir)
    cache = root / "dual_perturbation"
    steps = config["eval_steps"] if args.smoke else NORMS[args.norm]["steps"][1]
    train = load_segment_scenes("train", n=config["train"])
    test = load_segment_scenes("test", n=config["test"])
    start = time.perf_counter()
    parts = set(args.parts.split(","))
    victims = train_victims(config, args.norm, train, cache, args.reverse, parts != {"rs"})
    if args.train_only:
        return []
    rows = [dict(table="clean", victim=name, accuracy=float(_accuracy(v.batch(
        jnp.asarray(test.images)), test.labels))) for name, v in victims.items()]  # fmt: skip
    _log(f"victims ready ({time.perf_counter() - start:.0f} s); clean accuracy: "
         + ", ".join(f"{r['victim']} {_pct(r['accuracy'])}" for r in rows))  # fmt: skip
    key = jax.random.key(1)
    if "whitebox" in parts:
        more, examples = whitebox(victims, test, args.norm, steps, key)
        more += transfer(victims, test, examples)
        print(format_tables(more, args.norm), "\n" + verdict(more), flush=True)
        rows += more
    if "saliency" in parts:
        saliency = saliency_model(config, root / "dual_perturbation")
        more = saliency_analysis(victims, test, saliency, config, args.norm, steps, key)
        print(format_tables(more, args.norm), flush=True)
        rows += more
    if "rs" in parts:
        more = randomized_smoothing(victims, test, config, args.norm, steps, key)
        print(format_tables(more, args.norm), flush=True)
        rows += more
    _log(f"total {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
