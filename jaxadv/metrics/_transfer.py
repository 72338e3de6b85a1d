"""Transfer: adversarial examples crafted on one model (the source: a substitute, a surrogate, an
ensemble) and shown to another (the target), which the attack never saw.

Papernot et al., "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017, §5: the
success of a black-box substitute attack is the fraction of the substitute's adversarial
examples that the victim misclassifies.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks


class TransferResult(NamedTuple):
    """What :func:`transfer_success` measured, per example and in total.

    Attributes:
      rate: fraction of the examples the target classifies correctly (clean) whose adversarial
        example fools it (untargeted: another class; targeted: the target class); NaN when it
        classifies none correctly.
      misclassification: fraction of ALL adversarial examples that fool the target (the paper's
        "misclassification rate", clean errors included).
      fooled: ``bool[b]``, whether each adversarial example fools the target.
      clean_correct: ``bool[b]``, whether the target classifies each clean image correctly.
      source_success: ``bool[b]``, whether the attack fooled its source (white-box success).
      result: the source attack's :class:`~jaxadv.results.AttackResult`.
    """

    rate: float
    misclassification: float
    fooled: np.ndarray
    clean_correct: np.ndarray
    source_success: np.ndarray
    result: Any


def _predictions(victim: Any, images: Any) -> np.ndarray:
    return np.asarray(jnp.argmax(_logits(victim, images), axis=-1))


@jax.jit
def _logits(victim, images):
    return victim.batch(images)


def transfer_success(
    attack: Any,
    source_victim: Any,
    target_victim: Any,
    hp: Any,
    images: Any,
    labels: Any,
    key: jax.Array,
    *,
    targets: Any = None,
) -> TransferResult:
    """Attacks ``source_victim`` white-box and measures how often its examples fool
    ``target_victim``.

    The target is only evaluated (forward passes; a :func:`~jaxadv.models.hard_label` or
    :func:`~jaxadv.models.score_only` view of it is fine). For Papernot's substitute attack the
    source is :func:`jaxadv.training.train_substitute`'s substitute and the target its victim.

    Args:
      attack: any classifier attack of :mod:`jaxadv.attacks` (``fgsm()``, ``pgd()``, ...).
      source_victim: the model the attack sees (white-box).
      target_victim: the model the examples are shown to; same input shape and classes.
      hp: the attack's hyper-parameters (one setting, no sweep axis).
      images: ``f32[b, *input_shape]`` clean images.
      labels: ``int[b]`` their true classes.
      key: PRNG key of the attack.
      targets: ``int[b]`` target classes of a targeted attack (success on the target means
        reaching them); None for an untargeted attack.

    Returns:
      :class:`TransferResult`.
    """
    for name, victim in (("source_victim", source_victim), ("target_victim", target_victim)):
        if not hasattr(victim, "num_classes"):
            raise ValueError(f"`{name}` must be a classifier victim; got {type(victim).__name__}.")
    if (
        tuple(source_victim.input_shape) != tuple(target_victim.input_shape)
        or source_victim.num_classes != target_victim.num_classes
    ):
        raise ValueError(
            "`source_victim` and `target_victim` must take the same inputs and classes; got "
            f"{tuple(source_victim.input_shape)}/{source_victim.num_classes} classes and "
            f"{tuple(target_victim.input_shape)}/{target_victim.num_classes} classes."
        )
    _checks.check_batch_shape("images", np.shape(images), target_victim.input_shape)
    _checks.check_labels("labels", labels, target_victim.num_classes)
    result = attack.batch(source_victim, hp, images, labels, key, targets)
    labels = np.asarray(labels)
    adversarial = _predictions(target_victim, result.x_adv)
    if targets is None:
        fooled = adversarial != labels
    else:
        fooled = adversarial == np.asarray(targets)
    clean_correct = _predictions(target_victim, jnp.asarray(images)) == labels
    kept = int(np.sum(clean_correct))
    rate = float(np.sum(fooled & clean_correct) / kept) if kept else float("nan")
    return TransferResult(
        rate=rate,
        misclassification=float(np.mean(fooled)),
        fooled=fooled,
        clean_correct=clean_correct,
        source_success=np.asarray(result.success),
        result=result,
    )
