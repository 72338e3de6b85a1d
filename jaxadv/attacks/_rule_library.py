"""Che et al.'s attack library as attacks: each update rule with a perceptual budget and penalty.

Che et al., "A new ensemble adversarial attack powered by long-term gradient memories", AAAI
2020, and the slides of its attack library (Table 1: attacks 1–13; SMBEA, attack 14, is built
elsewhere). :func:`rule_attack` assembles an :class:`~jaxadv.attacks.Attack` from

* a step rule of :data:`jaxadv.transforms.UPDATE_RULES` (a :class:`RuleStep`);
* a perceptual budget (:class:`PerceptualBudget`): an ℓ∞/ℓ2/ℓ1 ball (projection), an SSIM or
  MS-SSIM budget ``1 − SSIM(x0, x) ≤ eps`` (a retraction toward ``x0``, ``ssim_budget``), or none
  (only the victim's pixel box, C&W-style);
* an objective: a classification loss, plus optionally ``λ·D(x0, x)`` with ``D`` a perceptual
  distance (the paper's Eq. 1); Hot&Cold's own hot/cold objective;
* the pixel box: clipping (every rule of Table 1 but the C&W ones), or C&W's change of variables
  ``x = low + (high − low)·(tanh(w) + 1)/2`` (``box="tanh"``, the "automatic" box of attacks 12
  and 13; the step rule then moves ``w``).

The same rules attack saliency victims (the library's targets): a saliency loss (``loss="kl"``,
``"cc"``, ``"sim"``, ``"l1"``, ``"nss"``) or ``layer=`` builds a :class:`SaliencyRuleAttack`, which
judges and references maps as :class:`~jaxadv.attacks.SaliencyAttack` does; Hot&Cold then
minimises ``L(map, hot map) − L(map, clean map)`` (``L`` the saliency loss, KL in the library).

The numbers live in :class:`RuleHParams`; every one of them may be swept (``attack.sweep``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import optax

from jaxadv import _checks
from jaxadv.attacks._attack import Attack
from jaxadv.attacks._base import Spec
from jaxadv.attacks._penalty import PerceptualPenalty
from jaxadv.attacks._runner import Program
from jaxadv.attacks._saliency import (
    SALIENCY_ATTACK_LOSSES,
    SaliencyAttack,
    SaliencyObjective,
    check_saliency_options,
)
from jaxadv.constraints import NORMS, Constraint, l0_ball, norm_ball, unconstrained
from jaxadv.image import PERCEPTUAL_DISTANCES, ssim_budget
from jaxadv.losses import LOSSES, classification_objective
from jaxadv.perturbations import tanh_box
from jaxadv.transforms import RULES, RuleStep

BUDGETS = NORMS + ("l0", "ssim", "msssim", "none")
BOXES = ("clip", "tanh")
_CW_RULES = ("adam_decay_cw", "adaeq2m_cw")
_ACCUMULATING = ("msgd_mim", "adaeq2m", "adaeq2m_v2", "adaeq2m_cw")  # m grows like Σ ĝ


class RuleHParams(NamedTuple):
    """The numbers of the rule-library attacks; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the budget: radius of an ℓp ball, the number of pixels of an ℓ0 budget, or the allowed
        ``1 − SSIM`` (``1 − MS-SSIM``).
      step_size: α.
      mu1: decay μ1 of the first momentum.
      mu2: decay μ2 of the second momentum.
      smoothing: ε of ``m/√(V + ε)``.
      noise: σ of AdaEq2M's Gaussian term (relative to ``mean|ĝ|``).
      penalty: λ of the perceptual penalty ``λ·D(x0, x)``.
      kappa: confidence κ of the C&W margin loss.
      rel_step_size: the step as a multiple of ``eps`` (0: ``step_size`` is absolute; the step
        is ``step_size + rel_step_size · eps``, derived in the trace).
    """

    eps: jax.Array
    step_size: jax.Array
    mu1: jax.Array
    mu2: jax.Array
    smoothing: jax.Array
    noise: jax.Array
    penalty: jax.Array
    kappa: jax.Array
    rel_step_size: jax.Array = 0.0


RULE_SPEC = {
    "eps": Spec(8 / 255),
    "step_size": Spec(None),
    "mu1": Spec(0.9, "unit"),
    "mu2": Spec(0.9, "unit"),
    "smoothing": Spec(1e-20),
    "noise": Spec(0.0),
    "penalty": Spec(0.0),
    "kappa": Spec(0.0),
    "rel_step_size": Spec(0.0),
}


@dataclasses.dataclass(frozen=True)
class PerceptualBudget:
    """``hp -> Constraint``: the budget of ``kind`` at level ``hp.eps`` (hashable).

    ``"linf"``, ``"l2"``, ``"l1"``: norm balls (exact projections); ``"l0"``: at most ``eps``
    perturbed pixels (all channels of a position count once; the exact ℓ0 ∩ box projection of
    :func:`jaxadv.constraints.l0_ball`, which keeps the pixels the step moved most); ``"ssim"``, ``"msssim"``:
    ``1 − SSIM(x0, x0 + delta) ≤ eps``, enforced by backtracking along ``delta``
    (:func:`jaxadv.image.ssim_budget`, ``bisection_steps`` halvings); ``"none"``: no budget
    (the runner still keeps the pixel box).

    Attributes:
      kind: the budget, one of :data:`BUDGETS`.
      bisection_steps: halvings of the SSIM budgets' backtracking (12; unused by the others).
    """

    kind: str
    bisection_steps: int = 12

    def __post_init__(self):
        _checks.check_choice("norm", self.kind, BUDGETS)
        _checks.check_positive_int("bisection_steps", self.bisection_steps)

    def __call__(self, hp: Any, bounds: tuple[float, float] = (0.0, 1.0)) -> Constraint:
        if self.kind in NORMS:
            return norm_ball(self.kind, hp.eps)
        if self.kind == "l0":
            return l0_ball(hp.eps, unit="pixel", bounds=bounds)
        if self.kind == "none":
            return unconstrained()
        return ssim_budget(
            hp.eps,
            multiscale=self.kind == "msssim",
            bounds=bounds,
            bisection_steps=self.bisection_steps,
        )


@dataclasses.dataclass(frozen=True)
class HotColdObjective:
    """Hot/Cold's objective on a classifier: pull toward the hot class (the target), push away
    from the cold one (the true label): ``CE(z, target) − CE(z, label) = z_label − z_target``.

    Rozsa, Rudd & Boult, "Adversarial diversity and hard positive generation", CVPR-W 2016; the
    saliency version of the library uses ``KL(map, hot map) − KL(map, clean map)``.
    Called as ``(logits, label, target, hp)``; ``hp`` is unused.
    """

    def __call__(self, logits, label, target, hp) -> jax.Array:
        del hp
        return logits[label] - logits[target]


def _reseeded(program: Program) -> Program:
    """Seeds every ``noise_key`` of the step rule's state from the run's key (so examples and
    restarts draw independent Gaussian terms, reproducibly from their keys)."""

    def init(key):
        key, noise_key = jax.random.split(key)
        carry = program.init(key)
        if optax.tree.get_all_with_path(carry.opt_state, "noise_key"):
            carry = carry._replace(opt_state=optax.tree.set(carry.opt_state, noise_key=noise_key))
        return carry

    return program._replace(init=init)


@dataclasses.dataclass(frozen=True)
class RuleAttack(PerceptualPenalty, Attack):
    """An :class:`Attack` whose numbers are :class:`RuleHParams` and whose objective may carry a
    perceptual penalty ``hp.penalty · D(x0, x)`` (``penalty``: a kind of
    :func:`jaxadv.image.perceptual_distance`, or None). SSIM and ℓ0 budgets get the victim's
    pixel box. The Gaussian term of the AdaEq2M rules is seeded from each run's key.

    ``box="tanh"`` optimises C&W's variable ``w`` (``x = low + (high − low)·(tanh(w) + 1)/2``)
    instead of clipping ``x``; no budget can be projected in ``w``, so it needs the ``"none"``
    budget (the penalty bounds the perturbation) and no random start.

    Attributes:
      box: ``"clip"`` (clip ``x`` to the pixel box; default) or ``"tanh"`` (C&W's variable).
      penalty: the kind of ``D`` of the penalty, one of
        :data:`jaxadv.image.PERCEPTUAL_DISTANCES`, or None (no penalty). The other fields are
        those of :class:`Attack`; ``constraint`` is usually a :class:`PerceptualBudget`.
    """

    box: str = "clip"
    params_type: ClassVar[type] = RuleHParams
    hparam_spec: ClassVar[dict[str, Spec]] = RULE_SPEC

    def __post_init__(self):
        super().__post_init__()
        _checks.check_choice("box", self.box, BOXES)
        if self.box == "tanh":
            kind = getattr(self.constraint, "kind", None)
            if kind != "none":
                raise ValueError(
                    "`box='tanh'` moves C&W's latent w, where no budget can be projected: it "
                    f"needs `norm='none'` (the penalty bounds the perturbation); got {kind!r}."
                )
            if self.random_start:
                raise ValueError(
                    "`box='tanh'` starts from the clean image; `random_start` must be False, "
                    "got True."
                )

    def feasible_set(self, hp, victim) -> Constraint:
        if isinstance(self.constraint, PerceptualBudget):
            return self.constraint(hp, bounds=victim.bounds)
        return self.constraint(hp)

    def _check_classifier(self, victim) -> None:
        if not hasattr(victim, "num_classes"):  # a saliency (or dense) victim: no classes
            raise ValueError(
                f"`victim` must be a classifier for a classification loss; got "
                f"{type(victim).__name__}. Saliency victims take a saliency loss: "
                "`rule_attack(rule, loss='kl')` (or 'cc', 'sim', 'l1', 'nss')."
            )

    def check_inputs(self, victim, images, labels, targets):
        self._check_classifier(victim)
        return super().check_inputs(victim, images, labels, targets)

    def check_example(self, victim, x0, label, target):
        self._check_classifier(victim)
        return super().check_example(victim, x0, label, target)

    def single_run(self, victim, hp, x0, label, target) -> Program:
        run = self
        if self.box == "tanh":
            run = dataclasses.replace(self, box="clip", perturbation=tanh_box(*victim.bounds))
        return _reseeded(super(RuleAttack, run).single_run(victim, hp, x0, label, target))


@dataclasses.dataclass(frozen=True)
class SaliencyRuleAttack(SaliencyAttack, RuleAttack):
    """A rule-library attack on a saliency victim: :class:`RuleAttack`'s numbers, budgets, box
    and penalty; :class:`~jaxadv.attacks.SaliencyAttack`'s references (clean maps, guides),
    objective (a :class:`~jaxadv.attacks.SaliencyObjective`), feature space and success rule."""

    params_type: ClassVar[type] = RuleHParams
    hparam_spec: ClassVar[dict[str, Spec]] = RULE_SPEC


_DEFAULT_EPS = {
    "linf": 8 / 255, "l2": 0.5, "l1": 10.0, "l0": 10.0, "ssim": 0.05, "msssim": 0.05, "none": 0.0
}  # fmt: skip


def _objective(rule: str, loss: str, targeted: bool, saliency: bool, feature_loss: str):
    """The objective of ``rule`` (resolving ``loss="auto"``)."""
    cw, hot_cold = rule in _CW_RULES, rule == "hot_cold"
    if hot_cold and not targeted:
        raise ValueError(
            "Hot&Cold is a targeted attack (the library's Table 1): pass `targeted=True`; "
            "got `targeted=False`."
        )
    if saliency:
        loss = "kl" if loss == "auto" else loss
        _checks.check_choice("loss", loss, SALIENCY_ATTACK_LOSSES)
        return SaliencyObjective(loss, targeted, feature_loss=feature_loss, hot_cold=hot_cold)
    if hot_cold:
        if loss != "auto":
            raise ValueError(
                f"Hot&Cold on a classifier has its own objective (pull toward the target, push "
                f"away from the true label); `loss` must be 'auto' (or a saliency loss, "
                f"{', '.join(SALIENCY_ATTACK_LOSSES)}, for saliency victims); got {loss!r}."
            )
        return HotColdObjective()
    loss = ("cw" if cw else "ce") if loss == "auto" else loss
    _checks.check_choice("loss", loss, LOSSES + SALIENCY_ATTACK_LOSSES)
    return classification_objective(loss, targeted=targeted)


def rule_attack(
    rule: str,
    *,
    norm: str = "auto",
    steps: int = 10,
    loss: str = "auto",
    targeted: bool = False,
    penalty: str = "auto",
    variant: str = "paper",
    normalizer: str | None = None,
    random_start: bool | None = None,
    restarts: int = 1,
    early_stop: bool = False,
    bisection_steps: int = 12,
    box: str = "clip",
    layer: str | None = None,
    threshold: float = 0.5,
    feature_loss: str = "mse",
) -> RuleAttack:
    """One attack of Che et al.'s library (module docstring), on a classifier or a saliency model.

    Args:
      rule: a key of :data:`jaxadv.transforms.UPDATE_RULES` (``"adaeq2m"``, ``"msgd_mim"``, …).
      norm: the budget, one of :data:`BUDGETS`; ``"auto"``: ``"none"`` for the C&W rules (their
        penalty replaces a budget), ``"ssim"`` for Hot&Cold, else ``"linf"``.
      steps: gradient steps.
      loss: classifiers: ``"ce"``, ``"cw"`` or ``"dlr"``; ``"auto"``: ``"cw"`` (C&W margin,
        ``hp.kappa``) for the C&W rules, Hot&Cold's own objective (:class:`HotColdObjective`)
        for ``"hot_cold"`` (which accepts no other), else ``"ce"``. Saliency victims: one of
        :data:`~jaxadv.attacks.SALIENCY_ATTACK_LOSSES` (``"kl"`` when ``layer`` is given and
        ``loss="auto"``); the attack is then a :class:`SaliencyRuleAttack` (module docstring).
      targeted: move toward ``target`` (Hot&Cold requires it): the target class, or the guide
        image (or its output) of a saliency victim.
      penalty: the perceptual penalty ``hp.penalty·D(x0, x)``: a kind of
        :data:`jaxadv.image.PERCEPTUAL_DISTANCES` or ``"none"``; ``"auto"``: ``"l2"`` (the mean
        squared perturbation) for the C&W rules, ``"ssim"`` (``1 − SSIM``) for Hot&Cold, else
        none. Default weight λ = 1 where a penalty is on by default, else 0 (set ``penalty=``).
      variant: ``"code"`` for the published code's AdaEq2M family (see
        :func:`jaxadv.transforms.adaeq2m`); ε then defaults to 1e-8.
      normalizer: override the rule's gradient normaliser.
      random_start: start from a random point of the budget; None: only for ``"pgd"``.
      restarts: independent random starts, best kept (needs ``random_start``).
      early_stop: freeze an example at its first success.
      bisection_steps: halvings of the SSIM budgets' backtracking.
      box: ``"clip"`` or ``"tanh"`` (C&W's change of variables; needs ``norm="none"``).
      layer: a saliency victim's hidden layer to attack (feature space).
      threshold: a saliency victim's untargeted success: CC to the clean map below this.
      feature_loss: the loss at ``layer`` (``"mse"``, ``"l1"``, ``"cc"``, ``"kl"``).

    Defaults of the numbers: μ1 = 1 for MSGD-MIM and the AdaEq2M rules, 0.9 for the Adam rules;
    μ2 = 0.9; σ = 0.01 for AdaEq2M (0 elsewhere); ε = 1e-20 (1e-8 with ``variant="code"``);
    eps 8/255 (ℓ∞), 0.5 (ℓ2), 10 (ℓ1), 10 pixels (ℓ0), 0.05 (``1 − SSIM``); step ``eps/steps``
    for the rules whose momentum accumulates (MSGD-MIM, AdaEq2M), ``eps/4`` otherwise, and 0.01
    under the ℓ0, SSIM and "none" budgets (pixel units; in ``w`` with ``box="tanh"``).

    Returns:
      A :class:`RuleAttack`, or a :class:`SaliencyRuleAttack` for a saliency loss or ``layer``;
      named ``<rule>[-code]-<norm>[-tanh]`` (saliency: ``-<loss>[@<layer>]`` appended).
    """
    _checks.check_choice("rule", rule, RULES)
    _checks.check_positive_int("steps", steps)
    step_rule = RuleStep(rule, variant=variant, normalizer=normalizer)  # validates both
    cw = rule in _CW_RULES
    hot_cold = rule == "hot_cold"
    if norm == "auto":
        norm = "none" if cw else ("ssim" if hot_cold else "linf")
    _checks.check_choice("norm", norm, BUDGETS)
    saliency = layer is not None or loss in SALIENCY_ATTACK_LOSSES
    check_saliency_options(threshold, feature_loss)
    objective = _objective(rule, loss, targeted, saliency, feature_loss)
    if penalty == "auto":
        penalty = "l2" if cw else ("ssim" if hot_cold else "none")
    _checks.check_choice("penalty", penalty, PERCEPTUAL_DISTANCES + ("none",))
    default_weight = 1.0 if (cw or hot_cold) and penalty != "none" else 0.0
    random_start = rule == "pgd" if random_start is None else bool(random_start)

    defaults = {"eps": _DEFAULT_EPS[norm], "penalty": default_weight}
    if rule in _ACCUMULATING:
        defaults["mu1"] = 1.0
    if rule in ("adaeq2m", "adaeq2m_cw"):
        defaults["noise"] = 0.01
    if variant == "code":
        defaults["smoothing"] = 1e-8
    rel_step_size = None
    if norm in NORMS:
        rel_step_size = 1.0 / steps if rule in _ACCUMULATING else 0.25
    else:
        defaults["step_size"] = 0.01
    fields = dict(
        objective=objective,
        step_rule=step_rule,
        constraint=PerceptualBudget(norm, bisection_steps),
        steps=steps,
        targeted=targeted,
        random_start=random_start,
        restarts=restarts,
        early_stop=early_stop,
        defaults=tuple(sorted(defaults.items())),
        rel_step_size=rel_step_size,
        penalty=None if penalty == "none" else penalty,
        box=box,
        name=f"{rule}{'-code' if variant == 'code' else ''}-{norm}" + "-tanh" * (box == "tanh"),
    )
    if not saliency:
        return RuleAttack(**fields)
    fields["name"] += f"-{objective.loss}" + (f"@{layer}" if layer else "")
    return SaliencyRuleAttack(layer=layer, threshold=float(threshold), **fields)
