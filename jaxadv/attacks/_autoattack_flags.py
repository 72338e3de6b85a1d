"""AutoAttack's diagnostics (Croce & Hein 2020, and the checks its code runs before an evaluation),
computed in the same run as the ensemble: each is a :class:`Flag` in the report, never a silent
number.

* ``randomized``: the victim's outputs change between two calls on the same inputs (or it is a
  :class:`~jaxadv.models.RandomizedVictim` evaluated with a version other than ``rand``);
* ``probabilities``: the outputs look like probabilities (in [0, 1], summing to 1), on which CE and
  DLR give weak gradients: pass logits;
* ``zero_gradient``: the CE gradient is exactly zero at clean points the victim gets right;
* ``few_classes``: fewer classes than DLR (3) or the targeted attacks' top-k targets (k + 1) need;
* ``square_beat_white_box``: the black-box Square broke points that every attack before it (the
  gradient-based ones, in AutoAttack's versions) left robust — a sign of masked gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Flag(NamedTuple):
    """One diagnostic: ``name`` (see the module docstring), how many points it concerns (0 where it
    is about the victim as a whole) and a sentence saying what it means and what to do.

    Attributes:
      name: the diagnostic, e.g. ``"randomized"`` or ``"zero_gradient"`` (module docstring).
      count: how many points it concerns (0 where it is about the victim as a whole).
      message: what it means and what to do.
    """

    name: str
    count: int
    message: str


@jax.jit
def batch_logits(victim, images):
    """The victim's logits of a batch, compiled once per victim structure."""
    return victim.batch(images)


@jax.jit
def _ce_gradients(victim, images, labels):
    def ce(x, y):
        return -jax.nn.log_softmax(victim(x))[y]

    return jax.vmap(jax.grad(ce))(images, labels)


def output_flags(logits: np.ndarray, again: np.ndarray, randomized: bool) -> list[Flag]:
    """Flags read from the clean outputs: two calls that differ, probabilities instead of logits."""
    flags = []
    changed = np.any(np.abs(logits - again) > 1e-6, axis=-1)
    if randomized or changed.any():
        flags.append(
            Flag(
                "randomized",
                int(changed.sum()),
                "The victim's outputs change between calls on the same inputs: its robustness is "
                "random, and attacks without expectation over transformation overestimate it. "
                "Use version='rand' (APGD with EOT) on a RandomizedVictim.",
            )
        )
    in_unit = (logits >= -1e-6).all() and (logits <= 1 + 1e-6).all()
    if in_unit and np.allclose(logits.sum(-1), 1.0, atol=1e-3):
        flags.append(
            Flag(
                "probabilities",
                0,
                "The victim's outputs lie in [0, 1] and sum to 1: they look like probabilities. "
                "CE and DLR on probabilities give vanishing gradients; return logits instead.",
            )
        )
    return flags


def zero_gradient_flag(victim, images, labels, correct: np.ndarray) -> list[Flag]:
    """The CE gradient at the clean points the victim gets right, counted where exactly zero."""
    if not correct.any():
        return []
    grads = np.asarray(_ce_gradients(victim, images[correct], labels[correct]))
    zero = np.all(grads.reshape(len(grads), -1) == 0, axis=1)
    if not zero.any():
        return []
    return [
        Flag(
            "zero_gradient",
            int(zero.sum()),
            f"The cross-entropy gradient is exactly zero at {int(zero.sum())} of "
            f"{int(correct.sum())} correctly classified clean points: gradient-based attacks "
            "cannot move there, and their failure says nothing about robustness.",
        )
    ]


def class_flag(num_classes: int, needed: int, why: str) -> list[Flag]:
    if num_classes >= needed:
        return []
    return [Flag("few_classes", 0, f"The victim has {num_classes} classes: {why}")]


def square_flag(broken_by_square: int) -> list[Flag]:
    if not broken_by_square:
        return []
    return [
        Flag(
            "square_beat_white_box",
            broken_by_square,
            f"Square (black-box) broke {broken_by_square} point(s) that every attack before it "
            "(gradient-based, in AutoAttack's versions) left robust: the gradients may be masked "
            "or obfuscated.",
        )
    ]


def clean_logits(first_victim, second_victim, images) -> tuple[np.ndarray, np.ndarray]:
    """Clean logits from two separate calls (two draws of a randomized victim); a difference
    flags randomness."""
    first = np.asarray(batch_logits(first_victim, images))
    second = np.asarray(batch_logits(second_victim, jnp.asarray(images) + 0.0))
    return first, second
