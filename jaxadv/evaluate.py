"""``python -m jaxadv evaluate``: the AutoAttack report of a digits classifier, as a paper gives it.

The victim is a classifier of the zoo (``cw``, ``c4``, ``resnet``) for the embedded digits
(28×28 grey, pixels in [0, 1]): its weights come from a checkpoint written by
:func:`jaxadv.models.save_variables` (``--checkpoint``), or it is the default victim, trained
once and cached. Budgets default to the usual MNIST-scale ones (ℓ∞ 0.3, ℓ2 2.0, ℓ1 10).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import jax

from jaxadv import _checks
from jaxadv.attacks import AutoAttack, AutoAttackReport
from jaxadv.data import load_digits
from jaxadv.models import CLASSIFIER_NAMES, classifier, from_flax, restore_variables
from jaxadv.training import default_victim

DEFAULT_EPS = {"linf": 0.3, "l2": 2.0, "l1": 10.0}


def load_victim(model: str = "cw", checkpoint: str | None = None, cache_dir: str | None = None):
    """The digits classifier ``model`` with the weights at ``checkpoint`` (None: the default
    victim, restored from the cache or trained once).

    Args:
      model: the zoo architecture, one of :data:`jaxadv.models.CLASSIFIER_NAMES` (``"cw"``).
      checkpoint: a directory written by :func:`jaxadv.models.save_variables` for ``model`` at
        input shape ``(28, 28, 1)``; None: the default victim of
        :func:`jaxadv.training.default_victim`.
      cache_dir: where the default victim's variables are kept (only when ``checkpoint`` is
        None); None: :func:`jaxadv.models.default_cache_dir`.

    Returns:
      A victim (:func:`jaxadv.models.from_flax`) of 10 classes on ``28×28×1`` images in
      ``[0, 1]``.
    """
    _checks.check_choice("model", model, CLASSIFIER_NAMES)
    if checkpoint is None:
        victim, _ = default_victim(model, cache_dir=cache_dir)
        return victim
    module = classifier(model)
    variables = restore_variables(checkpoint, module, (28, 28, 1))
    return from_flax(module, variables, input_shape=(28, 28, 1), num_classes=10)


def evaluate_digits(
    *,
    model: str = "cw",
    checkpoint: str | None = None,
    norm: str = "linf",
    eps: float | None = None,
    version: str = "standard",
    attacks: tuple[str, ...] | None = None,
    num_images: int = 128,
    seed: int = 0,
    steps: int = 100,
    queries: int = 5000,
    cache_dir: str | None = None,
    out: TextIO = sys.stdout,
) -> AutoAttackReport:
    """Runs AutoAttack on the first ``num_images`` digits of the test split and prints its report
    (clean accuracy, each attack's points and breaks, robust accuracy, flags) to ``out``.

    Args:
      model: the zoo architecture (``"cw"``, ``"c4"``, ``"resnet"``), as in :func:`load_victim`.
      checkpoint: the victim's weights, as in :func:`load_victim` (None: the default victim).
      norm: ``"linf"``, ``"l2"`` or ``"l1"``.
      eps: the budget's radius; None: :data:`DEFAULT_EPS` of ``norm`` (0.3, 2.0, 10).
      version: AutoAttack's ``"standard"``, ``"plus"`` or ``"rand"``.
      attacks: a custom selection of AutoAttack's attacks, run in this order; None: the
        version's.
      num_images: how many test digits to attack, the first ones, in ``[1, test split size]``.
      seed: the seed of the attacks' ``jax.random.key``.
      steps: iterations of APGD and FAB.
      queries: Square's query budget per point.
      cache_dir: where the default victim is cached, as in :func:`load_victim`.
      out: the text stream the report table and total time are printed to (stdout).

    Returns:
      The :class:`jaxadv.attacks.AutoAttackReport` whose table was printed.

    Raises:
      ValueError: if ``num_images`` is not an integer in range, or an argument is out of
        AutoAttack's contract.
    """
    data = load_digits(size=28)
    available = len(data.test_labels)
    if not (isinstance(num_images, int) and 1 <= num_images <= available):
        raise ValueError(
            f"`num_images` must be an integer in [1, {available}] (the test split); got "
            f"{num_images!r}."
        )
    evaluation = AutoAttack(
        norm=norm, eps=DEFAULT_EPS.get(norm, 0.0) if eps is None else eps, version=version,
        attacks=attacks, steps=steps, queries=queries, progress=True,
    )  # fmt: skip
    victim = load_victim(model, checkpoint, cache_dir)
    start = time.perf_counter()
    report = evaluation(
        victim,
        data.test_images[:num_images],
        data.test_labels[:num_images],
        jax.random.key(seed),
    )
    print(report.table(), file=out)
    print(f"total {time.perf_counter() - start:.1f} s, seed {seed}", file=out)
    return report

