"""Named query attacks on finite-difference gradient estimates: NES, SPSA and RGF.

Each is a :class:`~jaxadv.attacks.QueryAttack` (a descent loop under a per-example query budget
that stops an example at its first success) with the estimator, step rule, loss and numbers of
its paper. The papers' numbers are for ImageNet-scale images in [0, 1]: set ``eps`` (and, for
``rgf_attack``, ``fd_step``) for your data; the step follows ``eps`` unless given. The estimator's
radius is ``hp.fd_step`` (NES σ, SPSA δ, RGF σ), so it can be swept like ``eps``.

Departures from the published code, on purpose: the budget counts every query (the probes, the
loss at the iterate, the final evaluation), and no attack adapts its step or radius on the fly
(Ilyas et al.'s code adds momentum 0.9, plateau annealing and a backtracking line search of the
step; Cheng et al.'s code doubles σ when all differences vanish).
"""

from __future__ import annotations

import dataclasses

import optax

from jaxadv import _checks
from jaxadv.attacks._query import QueryAttack, projected_query_attack
from jaxadv.attacks._recipes import Ball
from jaxadv.gradients import NES, RGF, SPSA
from jaxadv.losses import classification_objective

FD_NORMS = ("linf", "l2")


@dataclasses.dataclass(frozen=True)
class AdamStep:
    """``hp -> optax.adam(hp.step_size)``: Adam on the estimate (its updates descend)."""

    def __call__(self, hp) -> optax.GradientTransformation:
        return optax.adam(hp.step_size)


def _validated(norm: str, loss: str, targeted: bool) -> None:
    _checks.check_choice("norm", norm, FD_NORMS)
    classification_objective(loss, targeted=targeted)  # validates the loss name


# norm: (eps, step as a fraction of eps)
_NES_DEFAULTS = {
    "linf": (0.05, 0.2),  # Ilyas et al. 2018, ImageNet: ε = 0.05, η = 0.01
    "l2": (5.0, 0.06),  # Ilyas, Engstrom & Madry 2019's NES baseline, ImageNet: ε = 5, step 0.3
}


def nes_attack(
    *,
    norm: str = "linf",
    samples: int = 50,
    max_queries: int = 10_000,
    loss: str = "ce",
    targeted: bool = False,
) -> QueryAttack:
    """Projected gradient descent on the NES estimate (the query-limited attack).

    Ilyas, Engstrom, Athalye & Lin, "Black-box Adversarial Attacks with Limited Queries and
    Information", ICML 2018 (Algorithms 1-2): each step estimates the gradient from ``samples``
    antithetic Gaussian probes of radius σ (:class:`~jaxadv.gradients.NES`), takes a steepest
    step (``sign`` for ℓ∞, ``g/‖g‖₂`` for ℓ2) of length ``step_size`` and projects onto the ball
    and the pixel box. Defaults (ImageNet, images in [0, 1]): ℓ∞ ε = 0.05, step η = 0.01
    (= ε/5), σ = ``fd_step`` = 0.001, n = 50, cross-entropy, 10 000 queries (their code's
    budget). The 2018 paper is ℓ∞ only; the ℓ2 numbers are those of the NES baseline of Ilyas,
    Engstrom & Madry, "Prior Convictions", ICLR 2019 (ε = 5, step 0.3 = 0.06 ε; σ stays 0.001).
    Each step costs ``samples + 1`` queries.

    Args:
      norm: ``"linf"`` (default; sign steps) or ``"l2"`` (normalised steps).
      samples: probes per gradient estimate (antithetic pairs: an even count; 50).
      max_queries: the per-example query budget, the final evaluation included (10,000).
      loss: the objective, ``"ce"`` (cross-entropy, default), ``"cw"`` (C&W margin) or ``"dlr"``.
      targeted: reach the given ``target`` (True) or leave the label (False).

    Returns:
      A :class:`~jaxadv.attacks.QueryAttack` named ``"nes-{norm}"``, stopping an example at its
      first success.
    """
    _validated(norm, loss, targeted)
    eps, rel = _NES_DEFAULTS[norm]
    return projected_query_attack(
        norm=norm,
        loss=loss,
        targeted=targeted,
        oracle=NES(samples),
        max_queries=max_queries,
        defaults=(("eps", eps), ("fd_step", 1e-3)),
        rel_step_size=rel,
        name=f"nes-{norm}",
    )


def spsa_attack(
    *,
    norm: str = "linf",
    samples: int = 256,
    max_queries: int = 10_000,
    loss: str = "cw",
    targeted: bool = False,
    random_start: bool = True,
) -> QueryAttack:
    """Adam on the SPSA estimate, projected onto the ball (the SPSA adversary).

    Uesato, O'Donoghue, van den Oord & Kohli, "Adversarial Risk and the Dangers of Evaluating
    Against Weak Attacks", ICML 2018: each step estimates the gradient of the margin (logit
    difference) loss from ``samples`` antithetic ±δ Rademacher probes
    (:class:`~jaxadv.gradients.SPSA`), feeds it to Adam (learning rate ``step_size``) and
    projects onto the ball and the pixel box. Defaults are those of CleverHans' ``spsa``:
    δ = ``fd_step`` = 0.01, Adam learning rate 0.01, the margin loss, a uniform random start in
    the ball, and ``samples`` = 256 probes (its ``spsa_samples=128`` directions, each evaluated
    at ±δ). ``eps`` defaults to the library's PGD values (ℓ∞ 8/255, ℓ2 0.5). Each step costs
    ``samples + 1`` queries.

    Args:
      norm: ``"linf"`` (default) or ``"l2"``: the ball projected onto.
      samples: probes per gradient estimate (±δ pairs: an even count; 256).
      max_queries: the per-example query budget, the final evaluation included (10,000).
      loss: the objective, ``"cw"`` (C&W margin, default), ``"ce"`` (cross-entropy) or ``"dlr"``.
      targeted: reach the given ``target`` (True) or leave the label (False).
      random_start: start from a uniform point of the ball (True, default) or the clean input.

    Returns:
      A :class:`~jaxadv.attacks.QueryAttack` named ``"spsa-{norm}"``, stopping an example at its
      first success.
    """
    _validated(norm, loss, targeted)
    eps = {"linf": 8 / 255, "l2": 0.5}[norm]
    return QueryAttack(
        objective=classification_objective(loss, targeted=targeted),
        step_rule=AdamStep(),
        constraint=Ball(norm),
        oracle=SPSA(samples),
        max_queries=max_queries,
        targeted=targeted,
        random_start=random_start,
        defaults=(("eps", eps), ("step_size", 0.01), ("fd_step", 0.01)),
        name=f"spsa-{norm}",
    )


# norm: (eps, step as a fraction of eps); Cheng et al.'s ImageNet settings (D = 299·299·3)
_RGF_DEFAULTS = {
    "l2": (16.38, 0.1221),  # ε = √(0.001 D) = 16.38, an ℓ2 step of 2.0
    "linf": (0.05, 0.1),  # ε = 0.05, step 0.005
}


def rgf_attack(
    *,
    norm: str = "l2",
    samples: int = 50,
    max_queries: int = 10_000,
    loss: str = "ce",
    targeted: bool = False,
    orthogonal: bool = False,
) -> QueryAttack:
    """Projected gradient descent on the RGF estimate (the prior-free baseline of P-RGF).

    Cheng, Dong, Pang, Su & Zhu, "Improving Black-box Adversarial Attacks with a Transfer-based
    Prior", NeurIPS 2019 (RGF, after Nesterov & Spokoiny 2017): each step estimates the gradient
    from ``samples`` one-sided differences along unit directions
    (:class:`~jaxadv.gradients.RGF`; ``orthogonal=True`` orthonormalises them), takes a steepest
    step and projects onto the ball and the pixel box. Defaults (ImageNet, Inception-v3,
    D = 299·299·3): ℓ2 ε = √(0.001·D) = 16.38 with ℓ2 steps of 2.0 (0.122 ε), or ℓ∞ ε = 0.05
    with steps of 0.005; q = 50, cross-entropy, 10 000 queries. Their code draws directions of
    unit RMS (‖u‖₂ = √D) with σ = 10⁻⁴, i.e. probes of ℓ2 length 10⁻⁴·√D ≈ 0.05: here
    ``fd_step`` is that ℓ2 length, default 0.05 (use 10⁻⁴·√D for another input size D). Each
    step costs ``samples + 1`` queries.

    Args:
      norm: ``"l2"`` (default; normalised steps) or ``"linf"`` (sign steps).
      samples: directions per gradient estimate, ``q`` (50).
      max_queries: the per-example query budget, the final evaluation included (10,000).
      loss: the objective, ``"ce"`` (cross-entropy, default), ``"cw"`` (C&W margin) or ``"dlr"``.
      targeted: reach the given ``target`` (True) or leave the label (False).
      orthogonal: orthonormalise the directions (needs ``samples`` ≤ the input size; False:
        independent random unit directions).

    Returns:
      A :class:`~jaxadv.attacks.QueryAttack` named ``"rgf-{norm}"``, stopping an example at its
      first success.
    """
    _validated(norm, loss, targeted)
    eps, rel = _RGF_DEFAULTS[norm]
    return projected_query_attack(
        norm=norm,
        loss=loss,
        targeted=targeted,
        oracle=RGF(samples, orthogonal=orthogonal),
        max_queries=max_queries,
        defaults=(("eps", eps), ("fd_step", 0.05)),
        rel_step_size=rel,
        name=f"rgf-{norm}",
    )
