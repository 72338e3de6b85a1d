"""``python -m jaxadv demo``: train (or restore) the default victim, attack it, print a table.

The default victim is the C&W net trained on the embedded handwritten digits (28×28 grey, pixels
in [0, 1]); budgets are the usual MNIST-scale ones (ℓ∞ 0.3, ℓ2 2.0, ℓ1 10). Each attack is
compiled ahead of time so that its images/second exclude compilation (reported apart). Compiled
programs are kept in the persistent XLA compilation cache (``jaxadv.enable_compilation_cache``),
so a second run loads them instead of compiling; the table marks those attacks ``cached``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

import jax
import numpy as np

from jaxadv import attacks, metrics
from jaxadv._compile_cache import count_cache_use, enable_compilation_cache
from jaxadv.data import load_digits
from jaxadv.training import default_victim

# (label, attack factory, hyper-parameters)
DEMO_ATTACKS: tuple[tuple[str, Callable[[], Any], dict[str, float]], ...] = (
    ("FGSM ℓ∞ 0.3", lambda: attacks.fgsm(), dict(eps=0.3)),
    ("BIM ℓ∞ 0.3", lambda: attacks.bim(steps=10), dict(eps=0.3)),
    ("PGD ℓ∞ 0.3", lambda: attacks.pgd(steps=20), dict(eps=0.3, step_size=0.03)),
    ("MI-FGSM ℓ∞ 0.3", lambda: attacks.mi_fgsm(steps=10), dict(eps=0.3)),
    ("PGD ℓ2 2.0", lambda: attacks.pgd(norm="l2", steps=20), dict(eps=2.0, step_size=0.25)),
    ("PGD ℓ1 10", lambda: attacks.pgd(norm="l1", steps=20), dict(eps=10.0, step_size=2.5)),
    # 5 binary-search steps of the constant, 50 Adam steps each: 9 × 50 found ℓ2 1.276 on the
    # same digits (README) but took more than half of the demo's running time.
    (
        "C&W ℓ2 (5×50)",
        lambda: attacks.cw_l2(steps=50, search_steps=5),
        dict(step_size=0.1, initial_const=1.0),
    ),
)

def unmatched(only: tuple[str, ...] | None) -> list[str]:
    """The words of ``only`` that start no demo attack's label (case-insensitive).

    Args:
      only: words given to ``--only`` (None: none).

    Returns:
      The words that select no attack (empty when every word selects one).
    """
    return [
        word
        for word in only or ()
        if not any(label.lower().startswith(word.lower()) for label, _, _ in DEMO_ATTACKS)
    ]


COLUMNS = ("attack", "robust acc", "success", "ℓ0", "ℓ1", "ℓ2", "ℓ∞", "img/s", "compile s")


def run_demo(
    *,
    model: str = "cw",
    num_images: int = 128,
    seed: int = 0,
    cache_dir: str | None = None,
    only: tuple[str, ...] | None = None,
    epochs: int | None = None,
    out: TextIO = sys.stdout,
) -> list[dict[str, Any]]:
    """Runs the demo and prints its table to ``out``; returns the rows as dicts.

    Args:
      model: the default victim's name (``"cw"``, ``"c4"`` or ``"resnet"``).
      num_images: test digits attacked.
      seed: PRNG seed of the attacks.
      cache_dir: where trained victims are kept (None: the default cache).
      only: keep the attacks whose label starts with one of these words (case-insensitive).
      epochs: overrides the victim's training length (a different cached checkpoint).
      out: where the table is printed.

    Returns:
      One dict per attack: ``attack``, ``robust_accuracy``, ``success_rate``, the mean norms,
      ``images_per_s``, ``compile_s``.
    """
    missing = unmatched(only)
    if missing:
        labels = ", ".join(repr(label) for label, _, _ in DEMO_ATTACKS)
        raise ValueError(
            f"`only` has {missing}, which start no demo attack; the attacks: {labels}."
        )
    data = load_digits(size=28)
    available = len(data.test_labels)
    if isinstance(num_images, bool) or not isinstance(num_images, int) or not (
        1 <= num_images <= available
    ):
        raise ValueError(
            f"`num_images` must be an integer in [1, {available}] (the test split); got "
            f"{num_images!r}."
        )
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    compile_cache = enable_compilation_cache()
    log(f"jaxadv demo: victim '{model}' on the embedded digits (backend: {jax.default_backend()})")
    victim, info = default_victim(model, cache_dir=cache_dir, epochs=epochs, progress=True)
    how = (
        "restored from"
        if info["restored"]
        else f"trained in {info['train_seconds']:.1f} s, saved to"
    )
    log(f"victim {how} {info['path']}")
    # A trained victim's arrays are uncommitted, a restored one's committed to their device: the
    # programs (and their keys in the compilation cache) differ. Committed, the first run's
    # programs are the ones later runs load.
    victim = victim.replace(variables=jax.device_put(victim.variables, jax.devices()[0]))

    images = data.test_images[:num_images]
    labels = data.test_labels[:num_images]
    clean_logits = np.asarray(victim.batch(images))
    clean_correct = np.argmax(clean_logits, axis=-1) == labels
    print(
        f"\nclean accuracy on {len(labels)} test digits: {clean_correct.mean():.1%} "
        f"(whole test split: {info['test_accuracy']:.1%})\n",
        file=out,
    )

    rows = []
    key = jax.random.key(seed)
    for label, make, values in DEMO_ATTACKS:
        if only and not any(label.lower().startswith(o.lower()) for o in only):
            continue
        attack = make()
        hp = attack.hparams(**values)
        log(f"attacking: {label} ... compiling")
        start = time.perf_counter()
        with count_cache_use() as cache_use:
            run = attack.compile_batch(victim, hp, images, labels)
        compile_s = time.perf_counter() - start
        log(f"attacking: {label} ... running on {len(labels)} images")
        start = time.perf_counter()
        result = jax.block_until_ready(run(hp, images, labels, key))
        seconds = time.perf_counter() - start
        row = metrics.summarize(result, labels, clean_correct)
        row.update(
            attack=label,
            images_per_s=len(labels) / seconds,
            compile_s=compile_s,
            compile_cached=cache_use.cached,
        )
        rows.append(row)
        log(f"attacking: {label} ... done in {seconds:.1f} s")
    print(format_table(rows), file=out)
    print(
        "\nrobust acc: correct before and after the attack; success and norms: over the clean-"
        "correct images (norms over successful ones); ℓ0 counts changed pixels.",
        file=out,
    )
    print(_compile_legend(compile_cache, any(r["compile_cached"] for r in rows)), file=out)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The demo's rows as an aligned text table.

    Args:
      rows: the dicts :func:`run_demo` returns.

    Returns:
      The table, one line per row under a header of :data:`COLUMNS`.
    """
    lines = [COLUMNS]
    for r in rows:
        lines.append(
            (
                r["attack"],
                f"{r['robust_accuracy']:.1%}",
                f"{r['success_rate']:.1%}",
                f"{r['l0']:.0f}",
                f"{r['l1']:.2f}",
                f"{r['l2']:.3f}",
                f"{r['linf']:.3f}",
                f"{r['images_per_s']:.0f}",
                f"{r['compile_s']:.1f}" + (" cached" if r.get("compile_cached") else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]

    def fmt(line):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
        )

    rule = tuple("-" * w for w in widths)
    return "\n".join([fmt(lines[0]), fmt(rule)] + [fmt(line) for line in lines[1:]])


def _compile_legend(cache_dir, any_cached: bool) -> str:
    if cache_dir is None:
        return "compile s: tracing and compiling each attack (persistent compilation cache off)."
    what = (
        "cached: its compiled programs were loaded from"
        if any_cached
        else "compiled programs are saved for the next run in"
    )
    return f"compile s: tracing and compiling each attack; {what} {cache_dir}."
