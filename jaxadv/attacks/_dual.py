"""The dual-perturbation attack: one budget on the foreground, a larger one on the background.

Tong, Guo, Prakash, Vorobeychik et al., "Towards robustness against unsuspicious adversarial
examples" (appendix A, Eqs. 1-4). The attack maximises

    L(h(x + δ), y) + λ·S(x + δ)   s.t.  ‖δ∘F‖_p ≤ ε_F,  ‖δ∘B‖_p ≤ ε_B,

where ``F`` is the example's foreground mask, ``B = 1 − F``, and ``S`` the foreground score of a
saliency model's map of ``x + δ`` (:func:`jaxadv.losses.foreground_score`), which keeps the eye
on the object. The library minimises, so the objective is ``−L − λ·S`` (``L`` any classification
loss of ``jaxadv.losses``). Each step splits the gradient by the masks, takes each region's
normalised steepest step with its own step size (:func:`jaxadv.transforms.region_steepest`),
projects each region onto its own ball and merges (:func:`jaxadv.constraints.dual_ball`), then
the pixel box. The masks come in the labels slot: :class:`DualLabels` ``(label, mask)``.

No official code exists; the paper gives no step sizes. With ``F = 1`` everywhere the attack is
``pgd`` at ``ε = ε_F`` step for step (same key, same draws).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks
from jaxadv.attacks._attack import Attack
from jaxadv.attacks._base import Spec
from jaxadv.constraints import DUAL_NORMS, Constraint, dual_ball
from jaxadv.losses import classification_objective, foreground_score, to_saliency_map
from jaxadv.models import saliency_of
from jaxadv.transforms import region_scale, region_steepest


class DualLabels(NamedTuple):
    """The labels of the dual attack: the true class and the foreground mask of each example.

    Attributes:
      label: int32 class, ``()`` per example (``(n,)`` for a batch).
      mask: float32 foreground mask ``F``, ``(h, w, 1)`` for an input ``(h, w, c)`` (``(n, h, w,
        1)`` for a batch), values in {0, 1}; 1 = foreground.
    """

    label: Any
    mask: Any


class DualHParams(NamedTuple):
    """The numbers of the dual attack; every leaf is a float32 array and may be swept.

    Attributes:
      eps_f: foreground radius ε_F (``‖δ∘F‖ ≤ ε_F``).
      eps_b: background radius ε_B.
      step_size_f: foreground step α_F; 0 with a relative step (then
        ``α_F = step_size_f + rel_step_size_f · eps_f``, derived in the trace).
      step_size_b: background step α_B (likewise with ``rel_step_size_b · eps_b``).
      rel_step_size_f: α_F as a multiple of ε_F (0: ``step_size_f`` is absolute).
      rel_step_size_b: α_B as a multiple of ε_B.
      lam: weight λ of the foreground score S (needs a victim from ``models.with_saliency``
        when > 0).
      kappa: confidence κ of the C&W margin loss (``loss="cw"``).
    """

    eps_f: jax.Array
    eps_b: jax.Array
    step_size_f: jax.Array
    step_size_b: jax.Array
    rel_step_size_f: jax.Array
    rel_step_size_b: jax.Array
    lam: jax.Array
    kappa: jax.Array


DUAL_SPEC = {
    "eps_f": Spec(4 / 255),
    "eps_b": Spec(20 / 255),
    "step_size_f": Spec(0.0),
    "step_size_b": Spec(0.0),
    "rel_step_size_f": Spec(0.0),
    "rel_step_size_b": Spec(0.0),
    "lam": Spec(0.0),
    "kappa": Spec(0.0),
}

_DEFAULT_EPS = {  # the paper's STL-10 / ImageNet-10 settings (appendix, Figs. 2, 9, 13)
    "linf": (4 / 255, 20 / 255),
    "l2": (1.0, 5.0),
}


@dataclasses.dataclass(frozen=True)
class DualStep:
    """``hp -> optax chain``: per-region steepest direction → per-region ``scale(−α)``.
    ``mask`` is bound per example by :meth:`DualAttack.program` (None on the user's attack)."""

    norm: str
    mask: Any = None

    def __call__(self, hp: DualHParams) -> optax.GradientTransformation:
        return optax.chain(
            region_steepest(self.mask, self.norm),
            region_scale(self.mask, -hp.step_size_f, -hp.step_size_b),
        )


@dataclasses.dataclass(frozen=True)
class DualBall:
    """``hp -> Constraint``: ``dual_ball(norm, hp.eps_f, hp.eps_b, mask)`` (mask bound per
    example, as :class:`DualStep`'s)."""

    norm: str
    mask: Any = None

    def __call__(self, hp: DualHParams) -> Constraint:
        return dual_ball(self.norm, hp.eps_f, hp.eps_b, self.mask)


@dataclasses.dataclass(frozen=True)
class DualAttack(Attack):
    """The dual-perturbation attack (module docstring): an :class:`Attack` whose step rule and
    constraint are built per example from its mask, and whose objective adds ``−λ·S``. Its attributes beyond :class:`Attack`'s:

    Attributes:
      norm: ``"linf"`` or ``"l2"``, the norm of both balls and of the steps.
      mask: the example's foreground mask, bound inside the trace by :meth:`program`; None on
        the attack a user holds.
    """

    norm: str = "linf"
    mask: Any = None
    params_type = DualHParams
    hparam_spec = DUAL_SPEC

    def hparams(self, **values: Any) -> DualHParams:
        """As :meth:`AttackBase.hparams`; a given ``step_size_f``/``step_size_b`` is absolute
        (its relative step becomes 0), else the step follows its ε (see :func:`dual_perturbation`).
        """
        for region in ("f", "b"):
            absolute, relative = f"step_size_{region}", f"rel_step_size_{region}"
            if absolute in values and relative in values:
                raise ValueError(
                    f"Give `{absolute}` (absolute) or `{relative}` (a multiple of eps_{region}), "
                    "not both."
                )
            if absolute in values:
                values = {**values, relative: 0.0}
        return super().hparams(**values)

    def derive(self, hp: DualHParams) -> DualHParams:
        zero = jnp.zeros_like(hp.rel_step_size_f)
        return hp._replace(
            step_size_f=hp.step_size_f + hp.rel_step_size_f * hp.eps_f,
            step_size_b=hp.step_size_b + hp.rel_step_size_b * hp.eps_b,
            rel_step_size_f=zero,
            rel_step_size_b=zero,
        )

    def check_victim(self, victim, hp) -> None:
        if saliency_of(victim) is None and _checks.is_concrete(hp.lam):
            if np.any(np.asarray(hp.lam) > 0):
                raise ValueError(
                    f"`hp.lam` is {_checks.show(np.asarray(hp.lam))} but the victim carries no "
                    "saliency model for the foreground score; pass "
                    "`models.with_saliency(victim, saliency_victim)`, or set lam=0."
                )

    def check_inputs(self, victim, images, labels, targets):
        labels = _dual_labels("labels", labels)
        images, label, targets = super().check_inputs(victim, images, labels.label, targets)
        mask = _check_mask("labels.mask", labels.mask, jnp.shape(images))
        return images, DualLabels(label, mask), targets

    def check_example(self, victim, x0, label, target):
        label = _dual_labels("label", label)
        x0, cls, target = super().check_example(victim, x0, label.label, target)
        mask = _check_mask("label.mask", label.mask, jnp.shape(x0))
        return x0, DualLabels(cls, mask), target

    def clean_correct(self, victim, x0, label) -> jax.Array:
        return super().clean_correct(victim, x0, label.label)

    def program(self, victim, hp, x0, label, target):
        bound = dataclasses.replace(
            self,
            step_rule=DualStep(self.norm, label.mask),
            constraint=DualBall(self.norm, label.mask),
            mask=label.mask,
        )
        return Attack.program(bound, victim, hp, x0, label.label, target)

    def loss_fn(self, victim, hp, x0, label, target):
        saliency = saliency_of(victim)
        if saliency is None:
            return super().loss_fn(victim, hp, x0, label, target)
        mask = self.mask

        def loss(x, logits):
            score = foreground_score(_map_at(saliency, x, mask.shape[:2]), mask)
            return self.objective(logits, label, target, hp) - hp.lam * score

        return loss


def _map_at(saliency, x, shape) -> jax.Array:
    """The saliency model's non-negative map of ``x``, resized (bilinearly) to the mask's
    ``(h, w)`` when the model's maps have another size."""
    smap = to_saliency_map(saliency(x), saliency.output)
    if smap.shape != tuple(shape):
        smap = jax.image.resize(smap, tuple(shape), "linear")
    return smap


def _dual_labels(name: str, labels: Any) -> DualLabels:
    if not isinstance(labels, DualLabels):
        raise ValueError(
            f"`{name}` must be a jaxadv.attacks.DualLabels(label, mask) (the classes and the "
            f"foreground masks); got {type(labels).__name__}."
        )
    return labels


def _check_mask(name: str, mask: Any, input_shape: tuple) -> jax.Array:
    if mask is None:
        raise ValueError(f"`{name}` must be the foreground masks; got None.")
    _checks.check_masks(name, mask, input_shape)
    return jnp.asarray(mask, jnp.float32)


def dual_perturbation(
    *,
    norm: str = "linf",
    steps: int = 20,
    random_start: bool = True,
    restarts: int = 1,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> DualAttack:
    """The dual-perturbation attack of Tong, Guo, Prakash, Vorobeychik et al. (module docstring).

    Run it as ``attack.batch(victim, hp, images, DualLabels(labels, masks), key)`` with masks
    ``(n, h, w, 1)`` in {0, 1}; for λ > 0 the victim is ``models.with_saliency(classifier,
    saliency_model)``. Hyper-parameters (``attack.hparams(...)``): ``eps_f``, ``eps_b``, ``lam``,
    the steps ``step_size_f``/``step_size_b`` (absolute) or ``rel_step_size_f``/``rel_step_size_b``
    (multiples of their ε), and ``kappa`` for ``loss="cw"``.

    Defaults: the paper's STL-10/ImageNet-10 budgets (ℓ∞: ε_F = 4/255, ε_B = 20/255; ℓ2: ε_F =
    1.0, ε_B = 5.0), its 20 steps, λ = 0 (no saliency model needed; the paper uses 0.1-1.0 with
    DeepGaze II). The paper gives no step sizes: each region's step is Madry et al.'s 2.5·ε/steps
    (so a sweep over ε_F or ε_B moves its step). Random start in both balls, as the paper's step 1.

    Args:
      norm: ``"linf"`` (sign steps, box balls) or ``"l2"`` (each region's gradient over its own ℓ2
        norm; ℓ2 balls).
      steps: gradient steps per run.
      random_start: start from a uniform point of each region's ball (the paper's initialisation).
      restarts: independent random starts; the best is kept per example.
      loss: ``"ce"``, ``"cw"`` or ``"dlr"`` (``jaxadv.losses``), the L maximised.
      targeted: reach ``targets`` (then minimise the target's loss) instead of leaving the label.
      early_stop: freeze an example at its first success.

    Returns:
      A :class:`DualAttack` named ``"dual-{norm}"``, with the defaults above.
    """
    _checks.check_choice("norm", norm, DUAL_NORMS)
    _checks.check_positive_int("steps", steps)
    objective = classification_objective(loss, targeted=targeted)  # validates the loss name
    eps_f, eps_b = _DEFAULT_EPS[norm]
    rel = 2.5 / steps
    return DualAttack(
        objective=objective,
        step_rule=DualStep(norm),
        constraint=DualBall(norm),
        steps=steps,
        targeted=targeted,
        random_start=random_start,
        restarts=restarts,
        early_stop=early_stop,
        defaults=(
            ("eps_f", eps_f),
            ("eps_b", eps_b),
            ("rel_step_size_f", rel),
            ("rel_step_size_b", rel),
        ),
        norm=norm,
        name=f"dual-{norm}",
    )
