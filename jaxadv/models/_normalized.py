"""The per-channel normalisation RobustBench models carry in front of the network."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """``model((x - mean) / std)``: a classifier taking pixels in [0, 1] though trained on
    standardised inputs, as RobustBench wraps its models (``normalize_model``, or the ``mu`` /
    ``sigma`` buffers of its CIFAR models), so attack budgets stay in pixel units.

    The wrapped model's variables sit under ``"model"``, as in RobustBench's ImageNet state dicts
    (``model.conv1.weight``); :func:`from_torch_state_dict` also reads state dicts whose weights
    are at the top level beside ``mu``/``sigma``.

    Attributes:
      model: the classifier; called as ``model(x, train)``.
      mean: per-channel mean, one value per input channel.
      std: per-channel standard deviation (positive), as many values as ``mean``.
    """

    model: nn.Module
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __post_init__(self):
        mean, std = np.asarray(self.mean, float), np.asarray(self.std, float)
        if mean.ndim != 1 or mean.shape != std.shape or mean.size == 0:
            raise ValueError(
                "`mean` and `std` must be sequences of one value per channel, of equal length; "
                f"got {len(np.atleast_1d(mean))} and {len(np.atleast_1d(std))} values."
            )
        if not (np.all(std > 0) and np.all(np.isfinite(std)) and np.all(np.isfinite(mean))):
            raise ValueError(f"`std` must be finite and positive (and `mean` finite); got {std}.")
        object.__setattr__(self, "mean", tuple(float(m) for m in mean))
        object.__setattr__(self, "std", tuple(float(s) for s in std))
        super().__post_init__()

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits of a batch ``x: [b, h, w, c]`` with ``c == len(mean)``."""
        if x.shape[-1] != len(self.mean):
            raise ValueError(
                f"`mean`/`std` have {len(self.mean)} channels but the inputs have "
                f"{x.shape[-1]} (shape {tuple(x.shape)}); pass one value per input channel."
            )
        mean = jnp.asarray(self.mean, x.dtype)
        std = jnp.asarray(self.std, x.dtype)
        return self.model((x - mean) / std, train)
