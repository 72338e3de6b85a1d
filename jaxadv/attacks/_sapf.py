"""SAPF: sparse adversarial attack via perturbation factorization, compiled per example.

Fan, Wu, Li, Zhang, Li, Li, Yang, "Sparse Adversarial Attack via Perturbation Factorization",
ECCV 2020. The perturbation is ``ε = δ ⊙ G`` with magnitudes ``δ`` and a binary mask ``G`` of
exactly controlled size ``1ᵀG = k``; the mixed-integer problem (3)

    min_{δ, G}  ‖w ⊙ δ ⊙ G‖² + λ1·L(f(x + δ ⊙ G), t) [+ λ2 Σᵢ ‖Gⁱ‖₂]   s.t. 1ᵀG = k, G ∈ {0,1}ᴺ

is solved by alternating gradient descent on ``δ`` and ℓp-box ADMM on ``G``
(:func:`jaxadv.transforms._lp_box_admm.lp_box_admm`), then ``G`` is binarised and ``δ`` fine-tuned
with ``G`` fixed; an outer bisection searches λ1. The whole search is ONE fixed-length
:class:`~jaxadv.attacks._runner.Program`, so ``attack.batch``/``attack.sweep`` vmap it over
images, targets and hyper-parameter grids under one ``jit``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks, _compile
from jaxadv.attacks import _driver
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._ensembles import lockstep
from jaxadv.attacks._runner import Program, _Best, _keep_better, make_result
from jaxadv.image import SENSITIVITY_WEIGHTINGS as WEIGHTINGS
from jaxadv.image import check_sensitivity_weights as check_weights
from jaxadv.image import sensitivity_weights, slic
from jaxadv.image import slic_num_segments_bound as num_segments_bound
from jaxadv.losses import cross_entropy, cw_margin
from jaxadv.results import AttackResult
from jaxadv.transforms import ADMM_RHO_GROWTH as RHO_GROWTH
from jaxadv.transforms import ADMM_RHO_MAX as RHO_MAX
from jaxadv.transforms import binarize, check_groups, lp_box_admm, sapf_step_schedule

MASKS = ("element", "pixel")
SAPF_SELECTIONS = ("sparsest", "l2", "last")
SAPF_LOSSES = ("cw", "ce")
SAPF_SEARCHES = ("paper", "bisect")


class LambdaSearch(NamedTuple):
    """The state of SAPF's λ1 search (scalars; see :func:`next_lambda1`)."""

    lam: jax.Array  # λ1 of the running trial
    lower: jax.Array  # largest λ1 that failed (0 before any failure)
    upper: jax.Array  # smallest λ1 that succeeded (λ1_max before any success)
    found: jax.Array  # some trial succeeded
    stopped: jax.Array  # the search is over: later trials are not run


def start_lambda1(lambda1, lambda1_max) -> LambdaSearch:
    """The search before its first trial: λ1 = ``lambda1`` within [0, ``lambda1_max``]."""
    false = jnp.zeros((), bool)
    return LambdaSearch(
        jnp.asarray(lambda1, jnp.float32),
        jnp.zeros((), jnp.float32),
        jnp.asarray(lambda1_max, jnp.float32),
        false,
        false,
    )


def next_lambda1(s: LambdaSearch, ok, lambda1, lambda1_max, search: str) -> LambdaSearch:
    """The λ1 search after a trial at ``s.lam`` that succeeded (``ok``) or not.

    ``"paper"`` (§4.1, "following C&W"): stop at the first success; after a failure λ1 ← 10·λ1,
    capped at ``lambda1_max``; a failure at ``lambda1_max`` ends the search (a repeat would rerun
    the same deterministic trial). ``"bisect"`` (the published code's ``train_adptive``): after a
    success the upper bound drops to λ1 and λ1 bisects [lower, upper]; after a failure the lower
    bound rises to λ1 and λ1 bisects once a success is known, else ×10 capped at ``lambda1_max``
    (the code goes past it); a failure at ``lambda1_max`` before any success ends the search, and
    so does, as in the code, a success with λ1 < 0.01·``lambda1``. A stopped search stays put.
    """
    lam = s.lam
    upper = jnp.where(ok, jnp.minimum(s.upper, lam), s.upper)
    lower = jnp.where(ok, s.lower, jnp.maximum(s.lower, lam))
    found = s.found | ok
    at_cap = lam >= lambda1_max
    grow = jnp.minimum(10.0 * lam, lambda1_max)
    if search == "paper":
        new, stop = grow, ok | at_cap
    else:
        new = jnp.where(found, 0.5 * (upper + lower), grow)
        stop = (ok & (lam < 0.01 * lambda1)) | (~found & at_cap)
    keep = lambda a, b: jnp.where(s.stopped, a, b)  # noqa: E731
    return LambdaSearch(
        keep(s.lam, jnp.where(stop, lam, new)),
        keep(s.lower, lower),
        keep(s.upper, upper),
        keep(s.found, found),
        s.stopped | stop,
    )


class SAPFParams(NamedTuple):
    """SAPF's numbers; every leaf is a float32 array and may be swept (``attack.sweep``).

    Attributes:
      k: the cardinality ``1ᵀG = k`` (an integer value; see ``SAPF.mask`` for what it counts).
      lambda1: the first λ1 of the bisection (paper: 1e-3 on CIFAR-10, 1e-2 on ImageNet).
      lambda1_max: the upper bound of the bisection (100; the lower bound is 0).
      lambda2: weight of the group-sparsity term (SAPF-GS only; code default 1e-3).
      step_size: initial step of the δ descent (0.1).
      mask_step_size: initial step of the G descent inside the ADMM (0.1).
      min_step_size: floor of both decaying steps (1e-3).
      decay: step decay factor applied every ``SAPF.decay_every`` steps (0.9).
      rho_box, rho_sphere, rho_group, rho_card: initial ADMM penalties (5e-3, 5e-3, 5e-3, 1e-4).
      kappa: confidence of the C&W margin (0).
    """

    k: jax.Array
    lambda1: jax.Array
    lambda1_max: jax.Array
    lambda2: jax.Array
    step_size: jax.Array
    mask_step_size: jax.Array
    min_step_size: jax.Array
    decay: jax.Array
    rho_box: jax.Array
    rho_sphere: jax.Array
    rho_group: jax.Array
    rho_card: jax.Array
    kappa: jax.Array


SAPF_SPEC = {
    "k": Spec(200.0, "count"),
    "lambda1": Spec(1e-3, "positive"),
    "lambda1_max": Spec(100.0, "positive"),
    "lambda2": Spec(1e-3, "positive"),
    "step_size": Spec(0.1, "positive"),
    "mask_step_size": Spec(0.1, "positive"),
    "min_step_size": Spec(1e-3, "positive"),
    "decay": Spec(0.9, "positive"),
    "rho_box": Spec(5e-3, "positive"),
    "rho_sphere": Spec(5e-3, "positive"),
    "rho_group": Spec(5e-3, "positive"),
    "rho_card": Spec(1e-4, "positive"),
    "kappa": Spec(0.0),
}


class _SapfCarry(NamedTuple):
    delta: jax.Array  # magnitudes δ, shape of x0
    mask: jax.Array  # the relaxed mask G
    admm: Any  # LpBoxADMMState
    binary: jax.Array  # the binarised mask used while fine-tuning
    search: LambdaSearch
    lambdas: jax.Array  # λ1 of every trial run, NaN for trials the search skipped
    trial_ok: jax.Array  # some fine-tuning iterate of the running trial succeeded
    best: _Best  # best over the finished trials
    t: jax.Array
    steps: jax.Array


@dataclasses.dataclass(frozen=True)
class SAPF(AttackBase):
    """SAPF, targeted, on ONE example (Fan, Wu et al., ECCV 2020; Algorithm 1 + the published
    code's schedule).

    One *trial* (for one λ1): start from ``G = 1``, ``δ = 0``; ``alternations`` times, ``steps``
    gradient steps on δ (Eq. 7) then ``mask_steps`` ℓp-box ADMM steps on G (Eqs. 10–15, linearised
    as in the code); binarise G; ``finetune_steps`` more steps on δ with G fixed. The δ step is
    ``step_size·decay^⌊n/50⌋`` floored at ``min_step_size`` with ``n`` counting all δ steps of the
    trial (it carries into fine-tuning, as in the code); the G step likewise over G steps. The
    perturbation is ``clip(x0 + δ⊙G) − x0`` and gradients flow through the clip (zero where it
    binds), as in the code. Every step costs one forward+backward pass: the gradient with respect
    to ``ε = δ⊙G`` gives both ``∂/∂δ = G·∂/∂ε`` and ``∂/∂G = δ·∂/∂ε``.

    Binarisation keeps the entries of G above ½ that are among its ``k`` largest, so ``1ᵀG ≤ k``
    holds exactly (the code keeps ``G > 0.5`` only). Every fine-tuning iterate (G binary) is a
    candidate (the code only looks at the last one), ranked across all trials as ``select`` says.

    The λ1 search (at most ``trials`` trials, bounds [0, ``lambda1_max``], from ``hp.lambda1``;
    :func:`next_lambda1`): by default the paper's (§4.1), which stops at the first successful
    trial and after a failure multiplies λ1 by 10 up to ``lambda1_max`` (from 1e-3: 1e-3, 1e-2,
    …, 100, then stop); ``search="bisect"`` is the published code's bisection, which goes on
    after a success to lower λ1. Trials after the search stops are not run (their steps are not
    counted); ``result.extras["lambda1"]`` holds the λ1 of every trial run (NaN after the stop).
    The result is the sparsest successful iterate (fewest non-zero entries, then smallest ℓ2; ``select="l2"``:
    smallest ℓ2; ``select="last"``: the code's rule, an iterate of the last successful trial, the
    smallest-ℓ2 one); without success, the iterate with the lowest attack loss (margin or CE,
    without λ1, so trials compare). ``result.loss`` is the objective at that iterate with its
    trial's λ1; ``result.trace`` the objective at every step.

    Attributes:
      steps: δ steps per alternation (code: 2000).
      mask_steps: ADMM steps on G per alternation (code: 2000).
      finetune_steps: δ steps with G binary (code: 1000).
      alternations: δ/G rounds per trial (code: 1; the paper's Algorithm 1 mentions up to 10). The
        ADMM state and the step schedules carry across rounds.
      trials: λ1 values tried (6).
      loss: ``"cw"`` (the margin ``max(max_{j≠t} z_j − z_t, −κ)``; the code's ``max(·+κ, 0)``
        differs only by a constant) or ``"ce"``.
      mask: ``"element"`` (G has the image's shape and k counts channel elements: the code's
        choice) or ``"pixel"`` (G is shared across channels, k counts pixels; ``result.l0`` still
        counts changed channel elements, at most k·c).
      select: which successful trial is returned (see above).
      search: the λ1 search, ``"paper"`` (stop at the first success) or ``"bisect"`` (the code's).
      segments: SAPF-GS when > 0: group sparsity over a SLIC segmentation of x0 with about this
        many segments (code: 150), computed inside the compiled attack.
      weighting: SAPF-VI weights ``w`` (``"uniform"``, ``"variance"``, ``"variance_mean"``; see
        :func:`jaxadv.image._sensitivity.sensitivity_weights`).
      decay_every: the step decay interval (50).
      rho_max: caps of the ADMM penalties (box, sphere, group, card): the paper's (20, 10, ·, 100),
        with the code's 100 for the group term the paper does not list;
        ``jaxadv.transforms.ADMM_RHO_MAX_CODE`` is the published code's (20, 20, 100, 0.01), whose
        small cardinality cap leaves ``1ᵀG = k`` mostly to ``binarize``.
      rho_growth: per-step factor of the penalties (1.01).

    Defaults are the paper's/code's: 6 × (2000 + 2000 + 1000) steps per example, which is
    expensive; tests and smoke runs use far fewer.
    """

    steps: int = 2000
    mask_steps: int = 2000
    finetune_steps: int = 1000
    alternations: int = 1
    trials: int = 6
    loss: str = "cw"
    mask: str = "element"
    select: str = "sparsest"
    search: str = "paper"
    segments: int = 0
    weighting: str = "uniform"
    decay_every: int = 50
    rho_max: tuple[float, float, float, float] = RHO_MAX
    rho_growth: float = RHO_GROWTH
    name: str = "sapf"

    targeted: ClassVar[bool] = True
    defaults: ClassVar[tuple] = ()
    rel_step_size: ClassVar[None] = None
    params_type: ClassVar[type] = SAPFParams
    hparam_spec: ClassVar[dict[str, Spec]] = SAPF_SPEC
    # Steps per compiled chunk of the CPU host loop (attacks/_driver.py). A SAPF step has several
    # times the kernels of a PGD step, and XLA CPU's compile time grows faster than linearly in
    # unrolled steps (C&W net, 4 images: 1 step ~8 s, 5 steps ~28 s, 10 steps ~96 s on the loaded
    # 2-core machine); chunks of 2 compile in ~19 s and ran 100 steps × 36 images in 6 s, faster
    # than chunks of 5 (9 s).
    cpu_chunk: ClassVar[int] = 2

    def __post_init__(self):
        for name in ("steps", "mask_steps", "finetune_steps", "alternations", "trials"):
            _checks.check_positive_int(name, getattr(self, name))
        _checks.check_positive_int("decay_every", self.decay_every)
        _checks.check_choice("loss", self.loss, SAPF_LOSSES)
        _checks.check_choice("mask", self.mask, MASKS)
        _checks.check_choice("select", self.select, SAPF_SELECTIONS)
        _checks.check_choice("search", self.search, SAPF_SEARCHES)
        _checks.check_choice("weighting", self.weighting, WEIGHTINGS)
        if (
            isinstance(self.segments, bool)
            or not isinstance(self.segments, int)
            or self.segments < 0
        ):
            raise ValueError(f"`segments` must be an integer >= 0; got {self.segments!r}.")
        _checks.check_positive("rho_max", self.rho_max)
        if len(self.rho_max) != 4:
            raise ValueError(f"`rho_max` must hold 4 caps; got {self.rho_max!r}.")
        _checks.check_positive("rho_growth", self.rho_growth)

    # -- validation ------------------------------------------------------------------------------

    def validate(self, hp) -> None:
        if _checks.is_concrete((hp.lambda1, hp.lambda1_max)) and np.any(
            np.asarray(hp.lambda1) > np.asarray(hp.lambda1_max)
        ):
            raise ValueError(
                f"`hp.lambda1` must not exceed `hp.lambda1_max`; got {np.asarray(hp.lambda1)} > "
                f"{np.asarray(hp.lambda1_max)}."
            )

    def maskable(self, input_shape: tuple[int, ...]) -> int:
        """The number of mask entries for inputs of this shape (the largest valid ``k``)."""
        shape = self._mask_shape(input_shape)
        return int(np.prod(shape))

    def _mask_shape(self, input_shape):
        if self.mask == "pixel":
            if len(input_shape) != 3:
                raise ValueError(
                    "`mask='pixel'` needs images of shape (h, w, c); got input shape "
                    f"{input_shape}."
                )
            return tuple(input_shape[:-1]) + (1,)
        return tuple(input_shape)

    def check_victim(self, victim, hp) -> None:
        limit = self.maskable(victim.input_shape)
        if _checks.is_concrete(hp.k) and np.any(np.asarray(hp.k) > limit):
            raise ValueError(
                f"`hp.k` must be at most the number of maskable {self.mask}s ({limit} for input "
                f"shape {victim.input_shape}); got {np.asarray(hp.k)}."
            )
        if (self.segments or self.weighting != "uniform") and len(victim.input_shape) != 3:
            raise ValueError(
                "`segments` and `weighting` need images of shape (h, w, c); got input shape "
                f"{victim.input_shape}."
            )

    # -- the program -----------------------------------------------------------------------------

    @property
    def trial_length(self) -> int:
        return self.alternations * (self.steps + self.mask_steps) + self.finetune_steps

    @property
    def length(self) -> int:
        return self.trials * self.trial_length

    def program(self, victim, hp: SAPFParams, x0, label, target) -> Program:
        groups = num_groups = weights = None
        if self.segments:
            groups = slic(x0, self.segments)
            num_groups = num_segments_bound(x0.shape, self.segments)
        if self.weighting != "uniform":
            weights = sensitivity_weights(x0, self.weighting)
        return self._program(victim, hp, x0, target, groups, num_groups, weights)

    def solve(
        self, victim, hp, x0, label, target, key, *, groups=None, weights=None
    ) -> AttackResult:
        """One example with the caller's group map and/or weights (instead of ``segments`` and
        ``weighting``): ``groups`` an integer label map of shape ``x0.shape[:-1]`` with labels
        ``0..m−1``, ``weights`` non-negative, broadcastable to ``x0``. Validated, then compiled.
        """
        self.check_params(hp)
        self.check_victim(victim, hp)
        _checks.check_example_shape("x0", jnp.shape(x0), victim.input_shape)
        _checks.check_in_bounds("x0", x0, victim.bounds)
        if _checks.is_concrete((label, target)) and np.any(np.asarray(label) == np.asarray(target)):
            raise ValueError(
                "`target` must differ from the true `label`; got "
                f"{int(np.asarray(target))} for both."
            )
        num_groups = None
        if groups is not None:
            if len(victim.input_shape) != 3:
                raise ValueError(
                    f"`groups` needs images of shape (h, w, c); got {victim.input_shape}."
                )
            num_groups = check_groups("groups", groups, tuple(victim.input_shape[:-1]))
            groups = jnp.asarray(groups, jnp.int32)
        if weights is not None:
            check_weights("weights", weights, tuple(victim.input_shape))
            weights = jnp.asarray(weights, jnp.float32)
        return _solve(
            self,
            num_groups,
            victim,
            hp,
            jnp.asarray(x0, jnp.float32),
            jnp.asarray(target),
            key,
            groups,
            weights,
        )

    def _program(self, victim, hp, x0, target, groups, num_groups, weights) -> Program:
        lo, hi = victim.bounds
        mshape = self._mask_shape(x0.shape)
        w2 = 1.0 if weights is None else jnp.broadcast_to(jnp.square(weights), x0.shape)
        if groups is not None:
            groups = jnp.broadcast_to(groups[..., None], mshape)
        admm = lp_box_admm(
            hp.k,
            sapf_step_schedule(
                hp.mask_step_size, decay=hp.decay, every=self.decay_every, floor=hp.min_step_size
            ),
            rho=jnp.stack([hp.rho_box, hp.rho_sphere, hp.rho_group, hp.rho_card]),
            rho_max=self.rho_max,
            rho_growth=self.rho_growth,
            groups=groups,
            num_groups=num_groups,
            lambda2=hp.lambda2,
        )
        delta_step = sapf_step_schedule(
            hp.step_size, decay=hp.decay, every=self.decay_every, floor=hp.min_step_size
        )
        E, M, A = self.steps, self.mask_steps, self.alternations
        relaxed = A * (E + M)
        T = self.trial_length

        def attack_loss(logits):
            if self.loss == "ce":
                return cross_entropy(logits, target)
            return cw_margin(logits, target, kappa=hp.kappa, targeted=True)

        def to_mask(a):  # a quantity of the input's shape, summed onto the mask's entries
            return jnp.sum(a, axis=-1, keepdims=True) if self.mask == "pixel" else a

        def placeholder():
            zeros = jnp.zeros_like(x0)
            inf = jnp.full((), jnp.inf, jnp.float32)
            logits = jax.eval_shape(victim, x0)
            return _Best(
                x0, zeros, jnp.zeros(logits.shape, logits.dtype), inf, jnp.zeros((), bool), inf
            )

        def fresh_trial():
            mask = jnp.ones(mshape, jnp.float32)
            return dict(
                delta=jnp.zeros_like(x0),
                mask=mask,
                admm=admm.init(mask),
                binary=mask,
            )

        def init(key):
            del key
            zero = jnp.zeros((), jnp.int32)
            return _SapfCarry(
                **fresh_trial(),
                trial_ok=jnp.zeros((), bool),
                search=start_lambda1(hp.lambda1, hp.lambda1_max),
                lambdas=jnp.full((self.trials,), jnp.nan, jnp.float32),
                best=placeholder(),
                t=zero,
                steps=zero,
            )

        def step(c: _SapfCarry):
            tt = c.t % T
            j = tt % (E + M)
            in_relaxed = tt < relaxed
            on_mask = in_relaxed & (j >= E)
            finetune = ~in_relaxed
            # G is binarised once per trial, when fine-tuning starts. The counter is the same for
            # every example, so `lockstep` keeps this a branch under vmap: the two sorts of
            # `binarize` run at that one step, not at every step (they were ~15% of a step).
            binary = jax.lax.cond(
                lockstep(tt) == relaxed,
                lambda: binarize(c.mask, hp.k),
                lambda: c.binary,
            )
            g = jnp.broadcast_to(jnp.where(finetune, binary, c.mask), x0.shape)

            def adversarial(eps):
                x = jnp.clip(x0 + eps, lo, hi)
                logits = victim(x)
                ell = attack_loss(logits)
                return c.search.lam * ell, (x, logits, ell)

            eps = c.delta * g
            (scaled, (x, logits, ell)), g_eps = jax.value_and_grad(adversarial, has_aux=True)(eps)
            objective = jnp.sum(w2 * jnp.square(eps)) + scaled

            # δ: plain gradient descent on (6); n counts the δ steps taken in this trial.
            n_delta = jnp.where(
                in_relaxed, (tt // (E + M)) * E + jnp.minimum(j, E), tt - relaxed + A * E
            )
            grad_delta = 2.0 * c.delta * g * g * w2 + g * g_eps
            delta = c.delta - delta_step(n_delta) * grad_delta
            # G: one ℓp-box ADMM iteration on (8) given δ.
            grad_mask = to_mask(2.0 * g * jnp.square(c.delta) * w2 + c.delta * g_eps)
            update, admm_state = admm.update(grad_mask, c.admm, c.mask)
            pick = lambda new, old: jnp.where(on_mask, new, old)  # noqa: E731
            delta = pick(c.delta, delta)
            mask = pick(c.mask + update, c.mask)
            admm_state = jax.tree.map(pick, admm_state, c.admm)

            # Only fine-tuning iterates have a binary mask: they are the candidates, merged straight
            # into the overall best with a rank that orders trials as `select` asks.
            perturbation = x - x0
            success = jnp.argmax(logits) == target
            l2 = jnp.sqrt(jnp.sum(jnp.square(perturbation)))
            within = l2 / (1.0 + l2)  # in [0, 1): orders iterates of equal primary score by ℓ2
            if self.select == "last":
                score = -(c.t // T).astype(jnp.float32) + within
            elif self.select == "sparsest":
                score = jnp.sum(perturbation != 0).astype(jnp.float32) + within
            else:
                score = l2
            candidate = _Best(
                x, perturbation, logits, objective, success, jnp.where(success, score, ell)
            )
            best = jax.tree.map(
                lambda n, o: jnp.where(finetune & ~c.search.stopped, n, o),
                _keep_better(c.best, candidate),
                c.best,
            )
            ok = c.trial_ok | (finetune & success)

            # End of a trial: move λ1 (bisection), start afresh from G = 1, δ = 0.
            end = tt == T - 1
            moved = next_lambda1(c.search, ok, hp.lambda1, hp.lambda1_max, self.search)
            search = jax.tree.map(lambda n, o: jnp.where(end, n, o), moved, c.search)
            trial = c.t // T
            lambdas = c.lambdas.at[trial].set(
                jnp.where(c.search.stopped, c.lambdas[trial], c.search.lam)
            )
            fresh = fresh_trial()
            restart = lambda f, r: jnp.where(end, f, r)  # noqa: E731
            new = _SapfCarry(
                delta=restart(fresh["delta"], delta),
                mask=restart(fresh["mask"], mask),
                admm=jax.tree.map(restart, fresh["admm"], admm_state),
                binary=restart(fresh["binary"], binary),
                trial_ok=ok & ~end,
                search=search,
                lambdas=lambdas,
                best=best,
                t=c.t + 1,
                steps=c.steps + jnp.where(c.search.stopped, 0, 1),
            )
            return new, objective

        def finish(c: _SapfCarry, trace):
            # The program ends on a trial boundary, so `best` covers every trial.
            result = make_result(c.best, victim.bounds, c.steps, c.steps, trace)
            return result._replace(extras={"lambda1": c.lambdas})

        return Program(init=init, step=step, finish=finish, length=self.length)


@_compile.jit_static(0, 1)
def _solve(attack, num_groups, victim, hp, x0, target, key, groups, weights):
    program = attack._program(victim, hp, x0, target, groups, num_groups, weights)
    return _driver.run_program(program, key, _driver.unroll(attack))


def sapf(
    *,
    steps: int = 2000,
    mask_steps: int = 2000,
    finetune_steps: int = 1000,
    trials: int = 6,
    **options: Any,
) -> SAPF:
    """The SAPF attack (see :class:`SAPF` for the method, the paper and the defaults).

    Args:
      steps: δ steps per alternation (the code's 2000).
      mask_steps: ADMM steps on G per alternation (2000).
      finetune_steps: δ steps with G binary (1000).
      trials: λ1 values tried at most (6).
      **options: the other fields of :class:`SAPF` (``loss``, ``mask``, ``select``, ``search``,
        ``segments``, ``weighting``, …).

    Returns:
      A :class:`SAPF` (targeted).
    """
    return SAPF(
        steps=steps, mask_steps=mask_steps, finetune_steps=finetune_steps, trials=trials, **options
    )


def sapf_gs(*, segments: int = 150, **options: Any) -> SAPF:
    """SAPF-GS: SAPF with group sparsity over about ``segments`` SLIC superpixels (paper §3.4).

    Args:
      segments: about how many SLIC segments of each image form the groups (the code's 150).
      **options: the arguments of :func:`sapf` and the other fields of :class:`SAPF`.

    Returns:
      A :class:`SAPF` with ``segments`` set (its weight ``hp.lambda2``).
    """
    return sapf(segments=segments, **options)


def sapf_vi(*, weighting: str = "variance", **options: Any) -> SAPF:
    """SAPF-VI: SAPF with perceptual weights ``w`` in ``‖w ⊙ δ ⊙ G‖²`` (paper §3.4).

    Args:
      weighting: the weights ``w``: ``"variance"`` (default), ``"variance_mean"`` or
        ``"uniform"`` (:func:`jaxadv.image.sensitivity_weights`).
      **options: the arguments of :func:`sapf` and the other fields of :class:`SAPF`.

    Returns:
      A :class:`SAPF` with ``weighting`` set.
    """
    return sapf(weighting=weighting, **options)


def common_positions(deltas: jax.Array) -> jax.Array:
    """Positions perturbed in EVERY one of ``deltas[n, ...]`` (paper Fig. 2, right column).

    Args:
      deltas: ``n`` perturbations stacked on axis 0, ``[n, ...]``.

    Returns:
      A boolean array of shape ``deltas.shape[1:]``: True where every perturbation is non-zero.
    """
    return jnp.all(jnp.asarray(deltas) != 0, axis=0)
