"""Query attacks guided by transfer priors from white-box surrogates: P-RGF, Che et al.'s
prior-boosted attack (Algorithm 2), and Yan et al.'s subspace attack (bandits on reference-model
gradients). Attack ``models.with_surrogates(models.score_only(victim), *surrogates)``: queries go
to the black box, priors are computed on the surrogates (not counted as queries).

* P-RGF — Cheng, Dong, Pang, Su & Zhu, "Improving Black-box Adversarial Attacks with a
  Transfer-based Prior", NeurIPS 2019: ``gradients.prgf`` with the surrogate's gradient as prior.
  Defaults of their ImageNet setting (299×299×3, the authors' code): ℓ∞ ε = 0.05, step 0.005;
  ℓ2 ε = √(0.001·D) ≈ 16.38, step 2.0; σ = 1e-4 (per-pixel RMS of a probe); q = 50; the
  cross-entropy loss; 10 000 queries.
* Prior-boosted — Che et al., Algorithm 2 of the seed paper 000 (their subspace attack's priors
  boosting a query-based attack): ``gradients.prior_bandit("l1")``, priors from
  ``SubspacePrior`` (Algorithm 1, the paper's) or ``SurrogateGradient`` (cheap), and the step
  ``x ← Clip(x − α g̃)`` (``step="plain"``; ``"steepest"``: sign / ℓ2-normalised steps). τ =
  ``hp.exploration``, δ = ``hp.fd_step``, η = ``hp.prior_lr``; ℓ∞ budget 17/255 as their Table 2.
* Subspace bandits — Yan, Guo & Zhang, "Subspace Attack: Exploiting Promising Subspaces for
  Query-Efficient Black-box Attacks", NeurIPS 2019: ``gradients.prior_bandit("l2")`` with the
  gradient of a random reference model at the current point (``noise``: per-draw input noise in
  place of their dropout), sign steps (ℓ∞). Named so as not to clash with ``subspace_attack``
  (Che et al.'s Algorithm 1).

The bandit numbers (δ = 0.01, τ = 1, η = 0.1, steps of 0.01 or 1/255) are ours for images in
[0, 1], not taken from either paper; set them for your data.
"""

from __future__ import annotations

import dataclasses

import optax

from jaxadv import _checks
from jaxadv.attacks._priors import SubspacePrior, SurrogateGradient
from jaxadv.attacks._query import QueryAttack, SaliencyQueryAttack, projected_query_attack
from jaxadv.attacks._recipes import Ball, SteepestStep
from jaxadv.attacks._saliency import SALIENCY_ATTACK_LOSSES, SaliencyObjective
from jaxadv.constraints import NORMS
from jaxadv.gradients import prgf as prgf_estimator
from jaxadv.gradients import prior_bandit
from jaxadv.losses import classification_objective

PRIORS = ("subspace", "gradient")
STEPS = ("plain", "steepest")
_PRGF_DEFAULTS = {
    "linf": (("eps", 0.05), ("step_size", 0.005), ("fd_step", 1e-4)),
    "l2": (("eps", (0.001 * 299 * 299 * 3) ** 0.5), ("step_size", 2.0), ("fd_step", 1e-4)),
}


@dataclasses.dataclass(frozen=True)
class PlainStep:
    """``hp -> optax``: the raw gradient step ``−α·g`` (Algorithm 2's ``x − α_2 g̃``), with
    ``α = hp.step_size`` read when the step is built."""

    def __call__(self, hp) -> optax.GradientTransformation:
        return optax.scale(-hp.step_size)


def _check_norm(norm: str) -> None:
    _checks.check_choice("norm", norm, tuple(n for n in NORMS if n in ("linf", "l2")))


def prgf(
    *,
    norm: str = "linf",
    samples: int = 50,
    norm_samples: int = 10,
    norm_every: int = 1,
    loss: str = "ce",
    targeted: bool = False,
    max_queries: int = 10_000,
    noise: float = 0.0,
) -> QueryAttack:
    """P-RGF (module docstring): projected steepest descent on P-RGF estimates whose prior is a
    random surrogate's gradient of the same objective (``noise``: per-draw input noise).

    Args:
      norm: the budget's norm, ``"linf"`` (default) or ``"l2"``; it sets the defaults (module
        docstring).
      samples: ``q``, the biased directions per estimate (50).
      norm_samples: ``S``, the random directions of the ‖∇f‖ estimate (10).
      norm_every: re-estimate ‖∇f‖ every this many calls (1: every call).
      loss: the classification loss, ``"ce"`` (default), ``"cw"`` or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      max_queries: the per-example query budget (10 000).
      noise: standard deviation of the Gaussian input noise added, per draw, before the
        surrogate's gradient is taken (0: none).

    Returns:
      A :class:`QueryAttack` named ``prgf-<norm>``.
    """
    _check_norm(norm)
    return projected_query_attack(
        norm=norm,
        loss=loss,
        targeted=targeted,
        oracle=prgf_estimator(samples, norm_samples, norm_every),
        max_queries=max_queries,
        prior=SurrogateGradient(noise),
        defaults=_PRGF_DEFAULTS[norm],
        name=f"prgf-{norm}",
    )


def prior_boosted(
    *,
    prior: str = "subspace",
    layer: str | None = None,
    channels: int | None = None,
    prior_steps: int = 10,
    norm: str = "linf",
    step: str = "plain",
    loss: str | None = None,
    saliency: bool = False,
    targeted: bool = False,
    max_queries: int = 10_000,
):
    """Che et al.'s prior-boosted query attack (Algorithm 2; module docstring).

    Args:
      prior: ``"subspace"`` (the paper's: Algorithm 1 for ``prior_steps`` steps on hidden layer
        ``layer``, ``channels`` channels, of a random substitute — saliency substitutes,
        untargeted) or ``"gradient"`` (a random surrogate's gradient at the current point).
      layer, channels, prior_steps: Algorithm 1's ``i``, ``p`` and ``X1`` (``"subspace"``).
      norm: the budget's norm (ℓ∞ in the paper; ``eps`` 17/255).
      step: ``"plain"`` (``x − α g̃``, the paper's) or ``"steepest"`` (sign / ℓ2-normalised).
      loss: the objective's loss: a saliency loss (``"kl"``, ``"cc"``, ``"sim"``, ``"l1"``;
        default ``"kl"``) when ``saliency``, else a classification loss (default ``"cw"``).
      saliency: attack a saliency victim (a :class:`SaliencyQueryAttack`) or a classifier.
      targeted: towards a guide (saliency) or a class; needs ``prior="gradient"``.
      max_queries: the per-example budget (3 queries per step: two probes and the iterate).

    Returns:
      A :class:`SaliencyQueryAttack` when ``saliency``, else a :class:`QueryAttack`; named
      ``prior-boosted-<prior>-<norm>``.
    """
    _checks.check_choice("prior", prior, PRIORS)
    _checks.check_choice("step", step, STEPS)
    _check_norm(norm)
    if prior == "subspace":
        if layer is None or channels is None:
            raise ValueError(
                "`prior='subspace'` (Algorithm 1, the paper's) needs the substitutes' hidden "
                f"`layer` and the number of `channels` to sample; got layer={layer!r}, "
                f"channels={channels!r}. Pass them, or use `prior='gradient'`."
            )
        if targeted:
            raise ValueError(
                "`prior='subspace'` is untargeted only (Algorithm 1 needs the guide image); "
                "use `prior='gradient'` for a targeted attack."
            )
        description = SubspacePrior(layer, channels, steps=prior_steps, norm=norm)
    else:
        description = SurrogateGradient()
    common = dict(
        step_rule=PlainStep() if step == "plain" else SteepestStep(norm),
        constraint=Ball(norm),
        steps=0,
        targeted=targeted,
        oracle=prior_bandit("l1"),
        max_queries=max_queries,
        prior=description,
        defaults=(("eps", 17 / 255), ("step_size", 0.01), ("fd_step", 0.01)),
        name=f"prior-boosted-{prior}-{norm}",
    )
    if saliency:
        loss = "kl" if loss is None else loss
        _checks.check_choice("loss", loss, SALIENCY_ATTACK_LOSSES)
        return SaliencyQueryAttack(objective=SaliencyObjective(loss, targeted), **common)
    return QueryAttack(
        objective=classification_objective("cw" if loss is None else loss, targeted=targeted),
        **common,
    )


def subspace_bandits(
    *,
    norm: str = "linf",
    loss: str = "cw",
    targeted: bool = False,
    noise: float = 0.0,
    max_queries: int = 10_000,
) -> QueryAttack:
    """Yan et al.'s subspace attack (module docstring): bandits whose exploration directions are
    gradients of a random reference model (``noise``: per-draw input noise), with steepest steps
    (sign for ℓ∞) inside the ``norm`` ball (ℓ∞ 8/255 by default).

    Args:
      norm: the budget's norm, ``"linf"`` (default) or ``"l2"``.
      loss: the classification loss, ``"cw"`` (default), ``"ce"`` or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      noise: standard deviation of the Gaussian input noise added, per draw, before the
        reference model's gradient is taken (0: none).
      max_queries: the per-example query budget (10 000).

    Returns:
      A :class:`QueryAttack` named ``subspace-bandits-<norm>``.
    """
    _check_norm(norm)
    return projected_query_attack(
        norm=norm,
        loss=loss,
        targeted=targeted,
        oracle=prior_bandit("l2"),
        max_queries=max_queries,
        prior=SurrogateGradient(noise),
        defaults=(("eps", 8 / 255), ("step_size", 1 / 255), ("fd_step", 0.01)),
        name=f"subspace-bandits-{norm}",
    )
