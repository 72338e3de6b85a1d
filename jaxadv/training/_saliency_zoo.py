"""Training the saliency zoo's models by name."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxadv.data.saliency import SaliencyDataset
from jaxadv.models.saliency import (
    SaliencyVictim,
    from_flax_saliency,
    saliency_model,
    with_log_center_bias,
)
from jaxadv.training._keys import check_key
from jaxadv.training._saliency_data import check_dataset, mean_density
from jaxadv.training._saliency_eval import predict_saliency
from jaxadv.training._saliency_train import SaliencyTraining, train_saliency

_INIT_ATTEMPTS = 8


def train_zoo_saliency(
    name: str,
    data: SaliencyDataset,
    *,
    key: jax.Array,
    width: int = 8,
    **train_kwargs: Any,
) -> tuple[SaliencyVictim, SaliencyTraining]:
    """Initialises the zoo model ``name`` for ``data``'s images and trains it.

    The key is split into an initialisation key and the data-order key of
    :func:`train_saliency`. An initialisation whose maps are all exactly 0 on the first 32
    training images is redrawn (``fold_in(init_key, attempt)``): such a model gets no gradient
    and never learns (SAM's ReLU head is off everywhere for some draws). DeepGaze's log centre
    bias is set to the log of the training data's mean fixation density (with a floor of 1% of
    the uniform density), as DeepGaze fits its centre bias to its training fixations.

    Args:
      name: one of ``SALIENCY_MODEL_NAMES``.
      data: stacked training data (its image size must suit the model, see ``saliency_model``).
      key: PRNG key.
      width: the model's base width.
      **train_kwargs: the keyword arguments of :func:`train_saliency` (``epochs``,
        ``batch_size``, ``learning_rate``, ``loss``, ``checkpoint_dir``, ``resume``, ...).

    Returns:
      ``(victim, training)``: the trained model as a ``SaliencyVictim`` (inference mode) and
      the :class:`SaliencyTraining` record.
    """
    check_key(key)
    data = check_dataset("data", data)
    init_key, train_key = jax.random.split(key)
    shape = tuple(data.images.shape[1:])
    for attempt in range(_INIT_ATTEMPTS):
        module, variables = saliency_model(
            name, key=jax.random.fold_in(init_key, attempt), input_shape=shape, width=width
        )
        if "log_center_bias" in variables.get("constants", {}):
            prior = mean_density(data)
            variables = with_log_center_bias(variables, np.log(prior + 0.01 / prior.size))
        if not _dead(module, variables, data):
            break
    else:
        raise ValueError(
            f"`name` {name!r}: every one of {_INIT_ATTEMPTS} initialisations gives all-zero maps "
            "on the training images (no gradient); try another `key` or `width`."
        )
    training = train_saliency(module, variables, data, key=train_key, **train_kwargs)
    victim = from_flax_saliency(module, training.variables, input_shape=shape)
    return victim, training

def _dead(module: nn.Module, variables: Any, data: SaliencyDataset) -> bool:
    """True when the maps of the first (up to) 32 images are all exactly 0: a ReLU head that is
    off everywhere, or a saturated tanh, passes no gradient."""
    victim = from_flax_saliency(module, variables, input_shape=data.images.shape[1:])
    return not np.any(predict_saliency(victim, data.images[:32]))
