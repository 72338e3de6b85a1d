"""Bandits-TD (Ilyas, Engstrom & Madry, ICLR 2019) as a named query attack.

The attack is the query-budgeted descent loop of :class:`~jaxadv.attacks.QueryAttack` with the
Bandits-TD estimator (:class:`jaxadv.gradients.Bandits`: a learned prior with exponentiated-
gradient updates for ℓ∞, gradient steps for ℓ2), steepest steps along the prior (``sign`` for
ℓ∞, ``v/‖v‖₂`` for ℓ2), and projection onto the ball and the pixel box.
"""

from __future__ import annotations

from jaxadv import _checks
from jaxadv.attacks._query import QueryAttack, projected_query_attack
from jaxadv.gradients import Bandits
from jaxadv.losses import classification_objective

BANDITS_NORMS = ("linf", "l2")

# The published settings for ImageNet (Inception-v3, 299×299 images in [0, 1]), from the authors'
# configs (MadryLab/blackbox-bandits, src/configs/{linf,l2}.json), which the paper's tables use:
# norm: (eps, image lr h, online lr, fd_eta η, exploration δ).
BANDITS_DEFAULTS = {
    "linf": (0.05, 0.01, 100.0, 0.1, 1.0),
    "l2": (5.0, 0.5, 0.1, 0.01, 0.01),
}


def bandits(
    *,
    norm: str = "linf",
    tile: int = 1,
    max_queries: int = 10_000,
    targeted: bool = False,
    loss: str = "ce",
    published_code: bool = False,
    early_stop: bool = True,
) -> QueryAttack:
    """Bandits-TD: a black-box attack that learns its gradient estimate online (time prior) at a
    tiled resolution (data prior), 3 queries per step.

    Ilyas, Engstrom & Madry, "Prior Convictions: Black-box Adversarial Attacks with Bandits and
    Priors", ICLR 2019. See :mod:`jaxadv.gradients._bandits` for the estimator and how the paper
    and its published code differ (``published_code``).

    Args:
      norm: ``"linf"`` (EG prior updates, sign steps) or ``"l2"`` (gradient prior updates,
        normalised steps).
      tile: side in pixels of the data prior's blocks (1: no data prior); must divide the image's
        height and width. The ImageNet setting is a 50×50 prior on 299×299 images, blocks of
        about 6 pixels (the code's ``tile_size=50`` is the prior's side). Scale it with the image:
        about ``side/50`` pixels, i.e. ``tile=1`` for 8×8 to 28×28 images (2 or 4 on 28×28 keep
        14 or 7 blocks a side, a much coarser prior than the paper's).
      max_queries: the per-example budget (the paper's 10,000), the final evaluation included.
      targeted: move towards ``target`` (the paper's experiments are untargeted).
      loss: the objective (``"ce"``, the paper's cross-entropy; ``"cw"``, ``"dlr"``).
      published_code: form the estimate as the published code (module docstring of the estimator).
      early_stop: stop an example at its first success (as the paper counts queries).

    Defaults (``attack.hparams()``) are the published ImageNet numbers, for images in [0, 1]:
    ℓ∞: ε = 0.05, step h = 0.01 (``step_size`` = 0.2·ε unless given), online lr 100
    (``prior_lr``), η = 0.1 (``fd_step``), δ = 1.0 (``exploration``); ℓ2: ε = 5, h = 0.5
    (0.1·ε), online lr 0.1 in the code's scaling (``prior_lr`` = 0.1·δ = 0.001 in the paper's,
    the default unless ``published_code``), η = 0.01, δ = 0.01. Set ``eps`` for your data (e.g.
    0.3 ℓ∞ on MNIST); the step follows it.

    Small images: the prior's per-entry update is about ``lr·‖∇L‖/d`` (``d`` prior entries; 7,500
    for the ImageNet 50×50×3 prior), so the ℓ∞ online lr 100 is far too large on a small prior: on
    a 4×4×1 image (d = 16) it saturates the EG prior at ±1 within a few steps, after which
    ``sign(v)`` never changes (measured on the tests' MLP, ε = 0.1, 100 queries: 50% success with
    lr 100, 80-82% with lr 0.3-10). Scale ``prior_lr`` down with ``d`` for small images.

    Returns:
      A :class:`~jaxadv.attacks.QueryAttack` (projected steps on a
      :class:`~jaxadv.gradients.Bandits` estimate) named ``"bandits-{norm}"``, with the defaults
      above.
    """
    _checks.check_choice("norm", norm, BANDITS_NORMS)
    classification_objective(loss, targeted=False)  # validates the loss name
    eps, step, prior_lr, fd_eta, exploration = BANDITS_DEFAULTS[norm]
    if not published_code:  # the code's estimate is δ·Δ: the same steps take δ·lr on Δ
        prior_lr = prior_lr * exploration
    oracle = Bandits(
        prior_update="eg" if norm == "linf" else "gd",
        tile=tile,
        published_code=published_code,
        fd_eta=fd_eta,
        exploration=exploration,
        prior_lr=prior_lr,
    )
    return projected_query_attack(
        norm=norm,
        loss=loss,
        targeted=targeted,
        oracle=oracle,
        max_queries=max_queries,
        early_stop=early_stop,
        defaults=(
            ("eps", eps),
            ("prior_lr", prior_lr),
            ("fd_step", fd_eta),
            ("exploration", exploration),
        ),
        rel_step_size=step / eps,
        name=f"bandits-{norm}",
    )
