"""The evaluation protocol of "Smooth adversarial examples" (Zhang, Avrithis, Furon & Amsaleg,
EURASIP JIS 2020, §5.1): success probability, conditional average distortion, and the operating
characteristic.

Only the N test images the victim classifies correctly count (``clean_correct``). With
``X_suc`` the images where the attack succeeds and ``D(x) = ‖x_adv − x‖₂``:

- ``P_suc = |X_suc| / N``;
- ``D̄ = mean of D(x) over X_suc`` (conditional on success: distortion means nothing for a
  failure);
- ``P(D) = |{x ∈ X_suc : D(x) ≤ D}| / N``, rising from 0 to ``P_suc``.

Attacks that target a distortion (FGSM, I-FGSM, PGD2, qPGD2) are run at several budgets (one
``attack.sweep``); an image counts as a success if any budget succeeds, with the smallest
successful distortion (:func:`min_successful_distortion`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _flags(name: str, x: Any) -> np.ndarray:
    """A boolean array (or 0/1 numbers): 0.5 as True would be a silent wrong answer."""
    arr = np.asarray(x)
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"`{name}` must be booleans (or 0/1); got dtype {arr.dtype} with other values."
        )
    return arr.astype(bool)


def _validated(success: Any, distortion: Any, clean_correct: Any | None):
    success = _flags("success", success)
    distortion = np.asarray(distortion, np.float64)
    if success.ndim != 1 or distortion.shape != success.shape:
        raise ValueError(
            "`success` and `distortion` must be per-image vectors of the same shape (b,); got "
            f"{success.shape} and {distortion.shape}. Reduce a sweep first with "
            "`min_successful_distortion`."
        )
    if clean_correct is None:
        clean_correct = np.ones_like(success)
    clean_correct = _flags("clean_correct", clean_correct)
    if clean_correct.shape != success.shape:
        raise ValueError(
            f"`clean_correct` must have shape {success.shape}; got {clean_correct.shape}."
        )
    if np.any(success & ~np.isfinite(distortion)):
        raise ValueError("`distortion` must be finite wherever `success` is True.")
    return success[clean_correct], distortion[clean_correct]


def min_successful_distortion(success: Any, distortion: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reduces runs at K budgets, ``success[K, b]`` and ``distortion[K, b]``, to one per image.

    An image succeeds if any run does; its distortion is the smallest over the successful runs
    (``inf`` for images no run fooled). This is how the paper compares distortion-targeting
    attacks with attacks that minimise distortion.

    Args:
      success: ``[K, b]`` bool, run ``k`` fooled image ``i``.
      distortion: ``[K, b]`` the runs' distortions (finite where they succeeded).

    Returns:
      ``(any_success[b], smallest[b])``.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    success = _flags("success", success)
    distortion = np.asarray(distortion, np.float64)
    if success.ndim != 2 or distortion.shape != success.shape:
        raise ValueError(
            "`success` and `distortion` must be [K runs, b images] of the same shape; got "
            f"{success.shape} and {distortion.shape}."
        )
    if np.any(success & ~np.isfinite(distortion)):
        raise ValueError("`distortion` must be finite wherever `success` is True.")
    any_success = np.any(success, axis=0)
    smallest = np.min(np.where(success, distortion, np.inf), axis=0)
    return any_success, smallest


def success_probability(success: Any, distortion: Any, clean_correct: Any | None = None) -> float:
    """``P_suc``: the fraction of correctly classified images the attack fooled.

    Args:
      success: ``[b]`` bool, whether the attack fooled each image.
      distortion: ``[b]`` the distortion of each image's perturbation (finite where it succeeded).
      clean_correct: ``[b]`` bool, images the victim classifies correctly (None: all).

    Returns:
      ``P_suc`` as a float (NaN for no image).

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    ok, _ = _validated(success, distortion, clean_correct)
    return float(np.mean(ok)) if ok.size else float("nan")


def conditional_distortion(
    success: Any, distortion: Any, clean_correct: Any | None = None
) -> float:
    """``D̄``: the mean distortion over the images the attack fooled (NaN if none).

    Args:
      success: ``[b]`` bool, whether the attack fooled each image.
      distortion: ``[b]`` the distortion of each image's perturbation (finite where it succeeded).
      clean_correct: ``[b]`` bool, images the victim classifies correctly (None: all).

    Returns:
      ``D̄`` as a float.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    ok, dist = _validated(success, distortion, clean_correct)
    return float(np.mean(dist[ok])) if np.any(ok) else float("nan")


def operating_characteristic(
    success: Any, distortion: Any, clean_correct: Any | None = None, grid: Any | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(D, P(D))``: the probability of success within a distortion budget ``D``.

    Without ``grid`` the curve is returned exactly, at 0 and at every successful image's
    distortion (it is a step function, right-continuous); with ``grid`` it is evaluated there.

    Args:
      success: ``[b]`` bool, whether the attack fooled each image.
      distortion: ``[b]`` the distortion of each image's perturbation (finite where it succeeded).
      clean_correct: ``[b]`` bool, images the victim classifies correctly (None: all).
      grid: 1-D budgets to evaluate the curve at (None: the exact steps).

    Returns:
      ``(D, P)``: two 1-D arrays of the same length.

    Example:
      >>> from jaxadv.metrics import operating_characteristic
      >>> operating_characteristic([True, False, True, True], [0.5, 9.0, 1.5, 1.0])
      (array([0. , 0.5, 1. , 1.5]), array([0.  , 0.25, 0.5 , 0.75]))

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    ok, dist = _validated(success, distortion, clean_correct)
    n = max(ok.size, 1)
    found = np.sort(dist[ok])
    budgets = np.concatenate([[0.0], found]) if grid is None else np.asarray(grid, np.float64)
    if grid is not None and (budgets.ndim != 1 or not np.all(np.isfinite(budgets))):
        raise ValueError(f"`grid` must be a 1-D array of finite budgets; got {grid!r}.")
    return budgets, np.searchsorted(found, budgets, side="right") / n


def protocol_row(success: Any, distortion: Any, clean_correct: Any | None = None) -> dict:
    """``{"P_suc": ..., "D_bar": ...}`` for one attack (a row of the paper's Table 1).

    Args:
      success: ``[b]`` bool, whether the attack fooled each image.
      distortion: ``[b]`` the distortion of each image's perturbation (finite where it succeeded).
      clean_correct: ``[b]`` bool, images the victim classifies correctly (None: all).

    Returns:
      ``{"P_suc": float, "D_bar": float}``.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    return {
        "P_suc": success_probability(success, distortion, clean_correct),
        "D_bar": conditional_distortion(success, distortion, clean_correct),
    }


def plot_operating_characteristics(curves: dict[str, tuple[Any, Any]], ax: Any = None) -> Any:
    """Plots ``{name: (D, P)}`` as step curves (paper Fig. 5–7) on ``ax`` (new if None).

    Needs matplotlib (an optional dependency: ``pip install matplotlib``).

    Args:
      curves: ``{name: (D, P)}`` from :func:`operating_characteristic`.
      ax: a matplotlib axis to draw on (None: a new figure).

    Returns:
      The axis.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for name, (budgets, probability) in curves.items():
        ax.step(budgets, probability, where="post", label=name)
    ax.set_xlabel("distortion budget D (ℓ2)")
    ax.set_ylabel("P(D): probability of success")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
