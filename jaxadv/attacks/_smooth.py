"""Smooth adversarial examples: qPGD2 and sC&W (Zhang, Avrithis, Furon & Amsaleg, EURASIP JIS
2020). Both shape the perturbation with the Laplacian smoothing ``ŝ_α`` guided by the clean image
(``jaxadv.image.smoother``), built once per example and kept in the program's carry.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._cw import constant_search
from jaxadv.attacks._runner import SELECTIONS, Program, descent, with_context
from jaxadv.constraints import l2_ball, unconstrained
from jaxadv.gradients import Exact, GradientOracle
from jaxadv.image import GRAPH_FEATURE_KERNELS as FEATURE_KERNELS
from jaxadv.image import GRAPH_OFFSETS as OFFSETS
from jaxadv.image import SMOOTHING_METHODS as METHODS
from jaxadv.image import PixelGraph, Smoother, pixel_graph, smoother, smoothness_penalty
from jaxadv.image import check_smoothing_alpha as check_alpha
from jaxadv.image import check_smoothing_preconditioner as check_preconditioner
from jaxadv.image import check_smoothing_reduction as check_reduction
from jaxadv.image import check_smoothing_warm_start as check_warm_start
from jaxadv.losses import classification_objective, cw_margin
from jaxadv.perturbations import Additive, Smoothed
from jaxadv.results import perturbation_norms
from jaxadv.transforms import normalize_by_l2_norm, smooth_updates


class SmoothHParams(NamedTuple):
    """The numbers of the smooth attacks; every leaf is a float32 array and may be swept.

    Attributes:
      eps: ℓ2 radius of qPGD2's budget (ignored by sC&W).
      step_size: qPGD2's step length; sC&W's Adam learning rate.
      kappa: confidence margin m of the C&W loss (paper Eq. 3).
      initial_const: sC&W's first trade-off constant c = 1/λ.
      alpha: α ∈ [0, 1) of the regularised Laplacian ℒ_α (0: no smoothing).
      bandwidth: σ_f of the feature kernel of the pixel graph.
      spatial_bandwidth: σ_s of the spatial kernel (matters for 8 neighbours only).
      mu: weight of the smoothness penalty of Eq. 14 (sC&W with ``smoothness="penalty"`` only),
        relative to the distortion ``‖r‖²`` (the paper's μ/λ).
    """

    eps: jax.Array
    step_size: jax.Array
    kappa: jax.Array
    initial_const: jax.Array
    alpha: jax.Array
    bandwidth: jax.Array
    spatial_bandwidth: jax.Array
    mu: jax.Array


# The paper's MNIST smoothing (α = 0.95, Laplacian kernel) with the published demo's λ = 10;
# eps, step_size and initial_const come from each attack (a value unused by one is harmless).
SMOOTH_SPEC = {
    "eps": Spec(0.0),
    "step_size": Spec(None),
    "kappa": Spec(0.0),
    "initial_const": Spec(1.0, "positive"),
    "alpha": Spec(0.95, "finite"),
    "bandwidth": Spec(0.1, "positive"),
    "spatial_bandwidth": Spec(1.0, "positive"),
    "mu": Spec(1.0, "nonnegative"),
}
SMOOTHNESS = ("constraint", "penalty")


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """The static choices of the smoothing (see :func:`jaxadv.image.smoother`).

    Defaults: 4 neighbours, Laplacian feature kernel over all channels, normalised (Eq. 9),
    Chebyshev semi-iteration to relative residual 1e-5 within 50 iterations with implicit
    differentiation. ``method="cg"`` is the paper's solver (the same tolerance; about 1.1× the
    step time at 32×32); ``"unrolled"`` runs exactly ``maxiter`` CG iterations and
    differentiates through them (the published code); ``"dense"`` inverts ℒ_α per image (small
    images, e.g. MNIST, as the paper does there). ``result.converged`` reports whether the
    smoother's own solve (of ``s_α(1)``, with the same operator as every step's solves) met the
    tolerance; ``strict`` checks every solve of the attack and raises when one misses it.

    Attributes:
      neighbors: the pixel graph's neighbourhood, 4 (default) or 8.
      kernel: the feature kernel, ``"laplacian"`` (default) or ``"gaussian"``.
      per_channel: one graph per channel (False: one graph over all channels).
      normalize: divide by ``s_α(1)`` (Eq. 9; True).
      method: the solver: ``"chebyshev"`` (default; a count of iterations fixed by α, see
        :func:`jaxadv.image.solve_laplacian`), ``"cg"``, ``"unrolled"`` or ``"dense"``.
      maxiter: solver iterations at most (50).
      tol: the relative residual aimed at (1e-5).
      strict: raise when a solve misses the tolerance (False).
      warm_start: start each iteration's CG solves (sC&W: the forward and adjoint ones;
        qPGD2: the gradient's) from the previous iteration's solutions rather than from 0
        (``"cg"`` only; None, the default: on for ``"cg"``, off for the methods that take no
        first iterate). Every solve still stops on its true residual, so the results agree
        with cold starts within the tolerance; fewer CG iterations are needed when the latent
        changes little between iterations.
      preconditioner: ``"none"`` (default) or ``"polynomial"`` (``method="cg"`` only): CG
        preconditioned by ``I + α𝒲`` (see :func:`jaxadv.image.solve_laplacian`; ``maxiter``
        then counts preconditioned iterations, two operator products each).
      reduction: ``"auto"`` (default): on a 4-neighbour graph, Chebyshev or CG solves the
        red-black reduced system on half the pixels, with about half the iterations
        (``maxiter`` counts those); ``"red-black"`` insists on it (4 neighbours only);
        ``"none"`` solves the full system (the form before issue 19's reduction). Both stop on
        the full system's true residual (see :func:`jaxadv.image.solve_laplacian`).
    """

    neighbors: int = 4
    kernel: str = "laplacian"
    per_channel: bool = False
    normalize: bool = True
    method: str = "chebyshev"
    maxiter: int = 50
    tol: float = 1e-5
    strict: bool = False
    warm_start: bool | None = None
    preconditioner: str = "none"
    reduction: str = "auto"

    def __post_init__(self):
        _checks.check_choice("neighbors", self.neighbors, tuple(OFFSETS))
        _checks.check_choice("kernel", self.kernel, FEATURE_KERNELS)
        _checks.check_choice("method", self.method, METHODS)
        check_preconditioner(self.preconditioner, method=self.method)
        _checks.check_positive_int("maxiter", self.maxiter)
        _checks.check_nonnegative("tol", self.tol)
        check_reduction(self.reduction, method=self.method, neighbors=self.neighbors)
        check_warm_start("warm_start", bool(self.warm_start), method=self.method)

    @property
    def warm_starts(self) -> bool:
        """Whether the runner carries the solves' warm starts (``warm_start``, resolved)."""
        return self.method == "cg" and self.warm_start is not False

    def graph(self, x0: jax.Array, hp: SmoothHParams) -> PixelGraph:
        """The pixel graph guided by ``x0`` (what the smoothness penalty needs; no solve)."""
        return pixel_graph(
            x0,
            hp.bandwidth,
            neighbors=self.neighbors,
            kernel=self.kernel,
            spatial_bandwidth=hp.spatial_bandwidth,
            per_channel=self.per_channel,
        )

    def build(self, x0: jax.Array, hp: SmoothHParams) -> Smoother:
        """The smoother guided by ``x0`` with the swept numbers of ``hp``."""
        return smoother(
            x0,
            hp.alpha,
            hp.bandwidth,
            spatial_bandwidth=hp.spatial_bandwidth,
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "warm_start"},
        )


class _SmoothAttack(AttackBase):
    params_type: ClassVar[type] = SmoothHParams
    hparam_spec: ClassVar[dict[str, Spec]] = SMOOTH_SPEC

    def validate(self, hp) -> None:
        if _checks.is_concrete(hp.alpha):
            try:
                check_alpha(hp.alpha)
            except ValueError as err:
                raise ValueError(f"`hp.alpha`: {err}") from None


@dataclasses.dataclass(frozen=True)
class QuickSmoothPGD(_SmoothAttack):
    """qPGD2: PGD-ℓ2 whose gradient is smoothed like the clean image before normalisation.

    Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, §4.1.1,
    Eq. 12: ``x ← c(x − α·n(ŝ_α(g)))`` with ``n`` the ℓ2 normalisation and ``c`` the projection
    onto the ℓ2 ball of radius ``eps`` and the pixel box. The step rule is the optax chain
    ``smooth_updates(ŝ_α) → normalize_by_l2_norm → scale(−α)``. Paper's MNIST settings:
    ``eps`` 5, step 3, C&W margin loss (Eq. 3), α = 0.95 with a Laplacian kernel; target
    distortions D ∈ [1, 6] are swept with :meth:`sweep`. No random start (the paper's PGD2 is
    the ℓ2 version of I-FGSM).

    Attributes:
      steps: gradient steps (10).
      loss: the classification loss, ``"cw"`` (default; margin ``hp.kappa``), ``"ce"`` or
        ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      early_stop: freeze an example at its first success (False).
      select: which successful iterate is best: lowest ``"loss"`` (default) or smallest ``"l2"``.
      smoothing: the static choices of the smoothing (:class:`SmoothingConfig`).
      defaults, rel_step_size, name: as in :class:`AttackBase` (``eps`` 5, ``step_size`` 3).
    """

    steps: int = 10
    loss: str = "cw"
    targeted: bool = False
    early_stop: bool = False
    select: str = "loss"
    smoothing: SmoothingConfig = SmoothingConfig()
    defaults: tuple[tuple[str, float], ...] = (("eps", 5.0), ("step_size", 3.0))
    rel_step_size: float | None = None
    name: str = "qpgd2"

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("select", self.select, SELECTIONS)
        classification_objective(self.loss, targeted=self.targeted)  # validates the name

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp, x0, label, target) -> Program:
        objective = classification_objective(self.loss, targeted=self.targeted)

        def build(smooth: Smoother) -> Program:
            tx = optax.chain(
                smooth_updates(smooth, warm_start=self.smoothing.warm_starts),
                normalize_by_l2_norm(),
                optax.scale(-hp.step_size),
            )
            inner = descent(
                victim,
                x0,
                loss_fn=lambda x, logits: objective(logits, label, target, hp),
                success_fn=lambda logits: self.success(logits, label, target),
                tx=tx,
                constraint=l2_ball(hp.eps),
                perturbation=Additive(),
                oracle=Exact(),
                steps=self.steps,
                early_stop=self.early_stop,
                select=self.select,
            )
            return _report_convergence(inner, smooth)

        return with_context(lambda: self.smoothing.build(x0, hp), build, self.steps)


@dataclasses.dataclass(frozen=True)
class SmoothCarliniWagner(_SmoothAttack):
    """sC&W: C&W-ℓ2 on a latent ``z`` whose perturbation ``r = ŝ_α(z)`` is smooth like ``x0``.

    Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, §4.2,
    Eq. 18: minimise ``‖ŝ_α(z)‖² + c·ℓ(f(clip(x0 + ŝ_α(z))), t)`` over ``z`` (from ``z = 0``) by
    Adam, with C&W's per-example binary search over ``c = 1/λ`` compiled into the program
    (``constant_search``). There is no tanh change of variables: the perturbation is clipped to
    the pixel box in front of the victim, and the penalty acts on the unclipped ``r`` so that
    clipped pixels can return (paper §4.2.4). Among successful iterates the one with the
    smallest ``‖r‖`` is kept (``‖r‖`` bounds the reported distortion ``‖x_adv − x0‖`` from
    above). The smoothing is differentiated implicitly by default (one CG solve forward, one
    backward per step); ``SmoothingConfig(method="unrolled")`` differentiates through 50 CG
    iterations like the published code.

    ``smoothness="penalty"`` is the paper's first, "straightforward" variant (§4.2.1): no latent
    variable, C&W over ``r`` itself (Eq. 13) plus the pairwise penalty of Eq. 14, i.e. minimise
    ``‖r‖² + μ·Σ_{i,j} w_ij ‖r̂_i − r̂_j‖² + c·ℓ(f(clip(x0 + r)), t)`` with ``μ = hp.mu``
    (:func:`jaxadv.image.smoothness_penalty`; ``hp.alpha`` and the solver settings are unused).
    The paper argues it propagates smoothness only locally, one graph edge per step.

    Defaults: the paper's MNIST settings for C&W, margin m (``kappa``) 1, Adam learning rate 0.1,
    initial constant 15, α = 0.95; 9 search steps of 100 iterations (the published code's
    counts). ``result.converged`` says whether the smoothing's CG met its tolerance (always
    True for the penalty, which solves nothing).

    Attributes:
      steps: Adam iterations per search step (100).
      search_steps: steps of the binary search over ``c`` (9).
      targeted: move towards ``target`` (else away from ``label``).
      smoothing: the static choices of the smoothing (:class:`SmoothingConfig`).
      oracle: how the gradient is obtained (exact by default).
      smoothness: ``"constraint"`` (``r = ŝ_α(z)``, the paper's sC&W; default) or ``"penalty"``
        (Eq. 14's penalty on ``r``).
      defaults, rel_step_size, name: as in :class:`AttackBase` (``kappa`` 1, ``step_size`` 0.1,
        ``initial_const`` 15).
    """

    steps: int = 100
    search_steps: int = 9
    targeted: bool = False
    smoothing: SmoothingConfig = SmoothingConfig()
    oracle: GradientOracle = Exact()
    smoothness: str = "constraint"
    defaults: tuple[tuple[str, float], ...] = (
        ("kappa", 1.0),
        ("step_size", 0.1),
        ("initial_const", 15.0),
    )
    rel_step_size: float | None = None
    name: str = "scw"

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("search_steps", self.search_steps)
        _checks.check_choice("smoothness", self.smoothness, SMOOTHNESS)

    @property
    def length(self) -> int:
        return self.steps * self.search_steps

    def program(self, victim, hp, x0, label, target) -> Program:
        goal = target if self.targeted else label
        clipped = _ClipInput(victim)

        penalty = self.smoothness == "penalty"

        def search_step(const, context) -> Program:
            def loss_fn(x, logits):  # x = x0 + r, unclipped
                margin = cw_margin(logits, goal, kappa=hp.kappa, targeted=self.targeted)
                r = x - x0
                extra = hp.mu * smoothness_penalty(context, r) if penalty else 0.0
                return jnp.sum(jnp.square(r)) + extra + const * margin

            return descent(
                clipped,
                x0,
                loss_fn=loss_fn,
                success_fn=lambda logits: self.success(logits, label, target),
                tx=optax.adam(hp.step_size),
                constraint=unconstrained(),
                perturbation=(
                    Additive()
                    if penalty
                    else Smoothed(context, warm_start=self.smoothing.warm_starts)
                ),
                oracle=self.oracle,
                steps=self.steps,
                select="l2",
            )

        def build(context) -> Program:
            search = constant_search(
                lambda const: search_step(const, context),
                initial_const=hp.initial_const,
                steps=self.steps,
                search_steps=self.search_steps,
                bounds=victim.bounds,
            )
            search = _distortion_of_clipped_input(search, x0)
            return search if penalty else _report_convergence(search, context)

        prepare = self.smoothing.graph if penalty else self.smoothing.build
        return with_context(lambda: prepare(x0, hp), build, self.length)


class _ClipInput:
    """The victim behind the clip to its pixel box (what sC&W's objective sees)."""

    def __init__(self, victim):
        self.victim = victim
        self.bounds = victim.bounds

    def __call__(self, x):
        return self.victim(jnp.clip(x, *self.bounds))


def _report_convergence(program: Program, smooth: Smoother) -> Program:
    def finish(carry, trace):
        return program.finish(carry, trace)._replace(converged=smooth.status.converged)

    return program._replace(finish=finish)


def _distortion_of_clipped_input(program: Program, x0) -> Program:
    """Reports ``delta = x_adv − x0`` (the clipped input's distortion) and its norms."""

    def finish(carry, trace):
        result = program.finish(carry, trace)
        delta = result.x_adv - x0
        return result._replace(delta=delta, **perturbation_norms(delta))

    return program._replace(finish=finish)


def qpgd2(
    *,
    steps: int = 10,
    loss: str = "cw",
    targeted: bool = False,
    early_stop: bool = False,
    smoothing: SmoothingConfig = SmoothingConfig(),
) -> QuickSmoothPGD:
    """qPGD2 (see :class:`QuickSmoothPGD` for the method, paper and defaults).

    Args:
      steps: gradient steps (10).
      loss: the classification loss, ``"cw"`` (default), ``"ce"`` or ``"dlr"``.
      targeted: move towards ``target`` (else away from ``label``).
      early_stop: freeze an example at its first success (False).
      smoothing: the static choices of the smoothing (default: :class:`SmoothingConfig`'s).

    Returns:
      A :class:`QuickSmoothPGD`.
    """
    return QuickSmoothPGD(
        steps=steps, loss=loss, targeted=targeted, early_stop=early_stop, smoothing=smoothing
    )


def scw(
    *,
    steps: int = 100,
    search_steps: int = 9,
    targeted: bool = False,
    smoothing: SmoothingConfig = SmoothingConfig(),
    smoothness: str = "constraint",
) -> SmoothCarliniWagner:
    """sC&W (see :class:`SmoothCarliniWagner` for the method, paper and defaults).

    Args:
      steps: Adam iterations per search step (100).
      search_steps: steps of the binary search over ``c = 1/λ`` (9).
      targeted: move towards ``target`` (else away from ``label``).
      smoothing: the static choices of the smoothing (default: :class:`SmoothingConfig`'s).
      smoothness: ``"constraint"`` (default) or ``"penalty"`` (§4.2.1's variant).

    Returns:
      A :class:`SmoothCarliniWagner`.
    """
    return SmoothCarliniWagner(
        steps=steps,
        search_steps=search_steps,
        targeted=targeted,
        smoothing=smoothing,
        smoothness=smoothness,
    )
