"""The classic gradient attacks as recipes: each picks a loss, a step rule and a constraint.

Every recipe returns an :class:`Attack`; call ``attack.hparams(eps=...)`` for its numbers and
``attack.batch(victim, hp, images, labels, key)`` to run it. Defaults are the papers' (or the
reference implementations') settings for CIFAR-10-scale images in [0, 1]; set ``eps`` for your
data (e.g. 0.3 ℓ∞ / 2.0 ℓ2 on MNIST) and the step follows ``eps`` unless given.
"""

from __future__ import annotations

import dataclasses

import optax

from jaxadv import _checks
from jaxadv.attacks._attack import Attack, HParams
from jaxadv.constraints import NORMS, Constraint, norm_ball
from jaxadv.losses import classification_objective
from jaxadv.transforms import l1_steepest, mi_momentum, normalize_by_l2_norm, sign


@dataclasses.dataclass(frozen=True)
class SteepestStep:
    """``hp -> optax chain``: [MI momentum] → steepest direction of ``norm`` → ``scale(-α)``.

    ``α`` is ``hp.eps`` for single-step attacks (``step_is_eps``), else ``hp.step_size``.

    Attributes:
      norm: the norm whose steepest direction is taken: ``"linf"`` (sign), ``"l2"``
        (``g/‖g‖₂``) or ``"l1"`` (the sparse top-quantile step, quantile ``hp.sparsity``).
      momentum: accumulate MI-FGSM momentum (decay ``hp.decay``) before the direction.
      step_is_eps: step by ``hp.eps`` instead of ``hp.step_size`` (single-step attacks).
    """

    norm: str
    momentum: bool = False
    step_is_eps: bool = False

    def __call__(self, hp: HParams) -> optax.GradientTransformation:
        direction = {
            "linf": sign,
            "l2": normalize_by_l2_norm,
            "l1": lambda: l1_steepest(hp.sparsity),
        }[self.norm]()
        parts = [mi_momentum(hp.decay)] if self.momentum else []
        step = hp.eps if self.step_is_eps else hp.step_size
        return optax.chain(*parts, direction, optax.scale(-step))


@dataclasses.dataclass(frozen=True)
class Ball:
    """``hp -> Constraint``: the ``norm`` ball of radius ``hp.eps``.

    Attributes:
      norm: the ball's norm, one of ``jaxadv.constraints.NORMS``.
    """

    norm: str

    def __call__(self, hp: HParams) -> Constraint:
        return norm_ball(self.norm, hp.eps)


def _validated(norm: str, loss: str) -> None:
    _checks.check_choice("norm", norm, NORMS)
    classification_objective(loss, targeted=False)  # validates the loss name


def fgsm(*, norm: str = "linf", loss: str = "ce", targeted: bool = False) -> Attack:
    """Fast Gradient Sign Method: one step of length ``eps`` along the steepest direction.

    Goodfellow, Shlens & Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015
    (``norm="linf"``); the ℓ2 variant (FGM) steps along ``g/‖g‖₂``. Defaults: eps 8/255,
    cross-entropy. On a linear victim one ℓ∞ step is the exact optimum of the budget.

    Args:
      norm: the budget's norm, ``"linf"`` (default), ``"l2"`` or ``"l1"``.
      loss: the classification loss: ``"ce"`` (cross-entropy; default), ``"cw"`` (C&W margin,
        confidence ``hp.kappa``) or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).

    Returns:
      A one-step :class:`Attack` named ``fgsm-<norm>``.
    """
    _validated(norm, loss)
    return Attack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=SteepestStep(norm, step_is_eps=True),
        constraint=Ball(norm),
        steps=1,
        targeted=targeted,
        rel_step_size=1.0,
        name=f"fgsm-{norm}",
    )


def bim(
    *, steps: int = 10, loss: str = "ce", targeted: bool = False, early_stop: bool = False
) -> Attack:
    """Basic Iterative Method / I-FGSM: ℓ∞ sign steps from the clean input, projected each step.

    Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR-W 2017.
    Defaults (as torchattacks): eps 8/255, step 2/255 (= eps/4), 10 steps, no random start.

    Args:
      steps: sign steps (10).
      loss: the classification loss: ``"ce"`` (cross-entropy; default), ``"cw"`` (C&W margin,
        confidence ``hp.kappa``) or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      early_stop: stop moving an example at its first success (False).

    Returns:
      An ℓ∞ :class:`Attack` named ``bim``.
    """
    _validated("linf", loss)
    return Attack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=SteepestStep("linf"),
        constraint=Ball("linf"),
        steps=steps,
        targeted=targeted,
        early_stop=early_stop,
        rel_step_size=0.25,
        name="bim",
    )


_PGD_DEFAULTS = {
    # norm: (eps, step as a fraction of eps)
    "linf": (8 / 255, 0.25),  # Madry et al. 2018 CIFAR setting: 8/255, 2/255
    "l2": (0.5, 0.2),  # torchattacks PGDL2: α = eps/5
    "l1": (10.0, 0.25),  # SLIDE-style sparse ℓ1 steps, α = eps/4
}


def pgd(
    *,
    norm: str = "linf",
    steps: int = 10,
    random_start: bool = True,
    restarts: int = 1,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """Projected Gradient Descent in the ℓ∞, ℓ2 or ℓ1 ball, with random start and restarts.

    Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant to
    adversarial attacks", ICLR 2018. Steps are steepest-descent directions of the ball's norm
    (sign for ℓ∞, ``g/‖g‖₂`` for ℓ2, the sparse top-quantile sign step of Tramèr & Boneh 2019 for
    ℓ1, quantile ``hp.sparsity`` = 0.99), then projection onto the ball and the pixel box.
    Restarts run in parallel (``vmap`` over keys) and the best result is kept per example.
    Defaults: ℓ∞ eps 8/255 step 2/255; ℓ2 eps 0.5 step eps/5; ℓ1 eps 10 step eps/4; 10 steps.

    Args:
      norm: the ball's norm, ``"linf"`` (default), ``"l2"`` or ``"l1"``; it sets the defaults.
      steps: gradient steps per run (10).
      random_start: start each run from a random point of the ball (True).
      restarts: independent runs, in parallel; the best is kept per example (1).
      loss: the classification loss: ``"ce"`` (cross-entropy; default), ``"cw"`` (C&W margin,
        confidence ``hp.kappa``) or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      early_stop: stop moving an example at its first success (False).

    Returns:
      An :class:`Attack` named ``pgd-<norm>``.
    """
    _validated(norm, loss)
    eps, rel = _PGD_DEFAULTS[norm]
    return Attack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=SteepestStep(norm),
        constraint=Ball(norm),
        steps=steps,
        targeted=targeted,
        random_start=random_start,
        restarts=restarts,
        early_stop=early_stop,
        defaults=(("eps", eps),),
        rel_step_size=rel,
        name=f"pgd-{norm}",
    )


def mi_fgsm(
    *, steps: int = 10, loss: str = "ce", targeted: bool = False, early_stop: bool = False
) -> Attack:
    """Momentum Iterative FGSM: sign steps along an accumulated, ℓ1-normalised gradient.

    Dong, Liao, Pang, Su, Zhu, Hu & Li, "Boosting adversarial attacks with momentum", CVPR 2018
    (Algorithm 1): ``m ← μ·m + g/‖g‖₁``, ``x ← clip(x − α·sign(m))`` on the minimised objective.
    Defaults as the paper: μ = 1.0, 10 steps, α = eps/steps; eps 8/255.

    Args:
      steps: momentum sign steps (10); the default step is ``eps/steps``.
      loss: the classification loss: ``"ce"`` (cross-entropy; default), ``"cw"`` (C&W margin,
        confidence ``hp.kappa``) or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      early_stop: stop moving an example at its first success (False).

    Returns:
      An ℓ∞ :class:`Attack` named ``mi-fgsm``.
    """
    _checks.check_positive_int("steps", steps)
    _validated("linf", loss)
    return Attack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=SteepestStep("linf", momentum=True),
        constraint=Ball("linf"),
        steps=steps,
        targeted=targeted,
        early_stop=early_stop,
        rel_step_size=1.0 / steps,
        name="mi-fgsm",
    )
