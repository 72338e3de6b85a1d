"""A fully connected ReLU network: small enough for exact (mixed-integer) robustness checks."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import numpy as np


class ReluMLP(nn.Module):
    """``flatten → [Dense → ReLU] × len(hidden) → Dense`` (logits).

    A piecewise-linear network whose exact minimum adversarial perturbation a mixed-integer
    program can compute (:func:`jaxadv.metrics.exact_min_norm`); :func:`relu_mlp_layers` gives its
    weights as plain ``(W, b)`` pairs. Layers are named ``hidden_0, hidden_1, …`` and ``logits``.

    Attributes:
      hidden: widths of the hidden layers.
      num_classes: number of output logits.
    """

    hidden: Sequence[int] = (32,)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no dropout or normalisation: train and inference modes coincide
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(width, name=f"hidden_{i}")(x))
        return nn.Dense(self.num_classes, name="logits")(x)


def relu_mlp_layers(variables: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(W[in, out], b[out])`` pairs of a :class:`ReluMLP`'s variables, input layer first.

    Args:
      variables: a ``ReluMLP``'s Flax variables (``{"params": ...}``) or their ``params`` dict,
        with exactly the layers ``hidden_0, ..., hidden_{n-1}`` and ``logits``.

    Returns:
      A list of ``(kernel, bias)`` numpy ``float64`` arrays, one per layer, ``logits`` last.

    Raises:
      ValueError: if ``variables`` are not those of a ``ReluMLP`` (no ``hidden_i``/``logits``).
    """
    params = variables.get("params", variables) if isinstance(variables, dict) else None
    if not isinstance(params, dict) or "logits" not in params:
        raise ValueError(
            "`variables` must be those of a ReluMLP (params named hidden_0, …, logits); got "
            f"{type(variables).__name__} with keys {sorted(params) if params else None}."
        )
    names = [f"hidden_{i}" for i in range(len(params) - 1)] + ["logits"]
    if sorted(names) != sorted(params):
        raise ValueError(
            f"`variables` must hold the layers {names} of a ReluMLP; got {sorted(params)}."
        )
    return [
        (np.asarray(params[n]["kernel"], np.float64), np.asarray(params[n]["bias"], np.float64))
        for n in names
    ]
