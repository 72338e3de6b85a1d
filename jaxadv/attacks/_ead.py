"""EAD, the elastic-net attack (Chen, Sharma, Zhang, Yi & Hsieh, AAAI 2018), as a compiled program."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._cw import constant_search
from jaxadv.attacks._minnorm import within_budget
from jaxadv.attacks._runner import Program, _Best, _finite, _keep_better
from jaxadv.losses import cw_margin

DECISIONS = ("en", "l1")


class EADParams(NamedTuple):
    """The numbers of :func:`ead`; every leaf is a float32 array and may be swept.

    Attributes:
      step_size: the initial step α₀ of (F)ISTA, decayed as ``α₀·√(1 − k/steps)``.
      kappa: the confidence κ of the margin loss.
      beta: β, the weight of the ℓ1 term (the shrinkage threshold).
      initial_const: the first trade-off constant c of the binary search.
      eps: the ℓ1 budget at which ``success`` is judged (fooled and ``‖delta‖₁ ≤ eps``); ``inf``:
        fooled. ``x_adv`` is the best adversarial found either way.
    """

    step_size: jax.Array
    kappa: jax.Array
    beta: jax.Array
    initial_const: jax.Array
    eps: jax.Array


class _Carry(NamedTuple):
    x: jax.Array  # the iterate x_k (in the box)
    y: jax.Array  # FISTA's slack y_k, where the gradient is taken (may leave the box)
    k: jax.Array  # iteration within the search step
    best: _Best
    steps: jax.Array
    queries: jax.Array


def shrink(z: jax.Array, x0: jax.Array, beta: jax.Array, low, high) -> jax.Array:
    """EAD's projected shrinkage-thresholding ``S_β`` (Eq. 6): entries of ``z − x0`` within
    ``±β`` return to ``x0``, the others move ``β`` toward ``x0`` and are clipped to the box."""
    d = z - x0
    up = jnp.minimum(z - beta, high)
    down = jnp.maximum(z + beta, low)
    return jnp.where(d > beta, up, jnp.where(d < -beta, down, x0))


@dataclasses.dataclass(frozen=True)
class EAD(AttackBase):
    """EAD (Chen, Sharma, Zhang, Yi & Hsieh, "EAD: elastic-net attacks to deep neural networks via
    adversarial examples", AAAI 2018), ℓ1-oriented minimum-norm attack.

    For a constant ``c``, minimises ``c·f(x) + ‖x − x0‖₂² + β‖x − x0‖₁`` over the pixel box, with
    ``f`` the C&W margin ``max(z_y − max_{j≠y} z_j, −κ)`` (targeted: ``max(max_{j≠t} z_j − z_t,
    −κ)``), by FISTA (Eqs. 5-7): ``x_{k+1} = S_β(y_k − α_k ∇g(y_k))`` with ``g = c·f + ‖·‖₂²``,
    ``y_{k+1} = x_{k+1} + k/(k+3)·(x_{k+1} − x_k)``, ``α_k = α₀√(1 − k/steps)``; ``fista=False``
    is ISTA (``y = x``). As in the paper (Eq. 5) and its code, the threshold of ``S_β`` is ``β``
    itself, not ``α_k·β`` as textbook ISTA has. The constant is found per example by C&W's
    binary search (:func:`~jaxadv.attacks.constant_search`: ×10 until a success, then
    bisection), each search step restarting from ``x0``. Among the successful iterates of all
    search steps the result is the one of smallest elastic-net distance ``‖δ‖₂² + β‖δ‖₁``
    (``decision="en"``) or ℓ1 (``"l1"``), the paper's two decision rules.

    Success is the victim's decision (the label loses, or the target wins), as C&W-ℓ2 judges it
    here; the reference code asks for a lead of κ (identical at the default κ = 0). ``eps``
    (default ``inf``) only decides ``success``: fooled AND ``‖delta‖₁ ≤ eps``.

    Each step costs one forward+backward pass at ``y_k`` (counted in ``queries``) and one forward
    pass at ``x_{k+1}`` to check it, as in the reference code (not counted).

    Defaults (the paper's): 9 search steps of 1,000 iterations, α₀ 0.01, β 1e-3, initial c 1e-3,
    κ 0, FISTA, the EN rule.

    Attributes:
      steps: (F)ISTA iterations per constant (1,000).
      search_steps: binary-search steps over the constant ``c`` (9).
      targeted: reach the given ``target`` (True) or leave the label (False).
      decision: which successful iterate is the result: ``"en"`` (smallest elastic-net distance)
        or ``"l1"`` (smallest ℓ1).
      fista: FISTA (True) or ISTA (False).
      defaults: per-instance overrides of the defaults of :class:`EADParams`, as
        ``((name, value), ...)`` (none by default).
      name: a label for tables.
    """

    steps: int = 1000
    search_steps: int = 9
    targeted: bool = False
    decision: str = "en"
    fista: bool = True
    defaults: tuple[tuple[str, float], ...] = ()
    name: str = "ead"
    params_type: ClassVar[type] = EADParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "step_size": Spec(1e-2, "positive"),
        "kappa": Spec(0.0),
        "beta": Spec(1e-3),
        "initial_const": Spec(1e-3, "positive"),
        "eps": Spec(float("inf"), "budget"),
    }

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("search_steps", self.search_steps)
        _checks.check_choice("decision", self.decision, DECISIONS)
        if not isinstance(self.fista, bool):
            raise ValueError(f"`fista` must be True or False; got {self.fista!r}.")

    @property
    def length(self) -> int:
        return self.steps * self.search_steps

    def program(self, victim, hp: EADParams, x0, label, target) -> Program:
        low, high = victim.bounds
        goal = target if self.targeted else label

        def search_step(const) -> Program:
            def smooth_part(y, logits):  # g = c·f + ‖y − x0‖₂²
                margin = cw_margin(logits, goal, kappa=hp.kappa, targeted=self.targeted)
                return const * margin + jnp.sum(jnp.square(y - x0))

            def candidate(x):
                logits = victim(x)
                delta = x - x0
                l1 = jnp.sum(jnp.abs(delta))
                loss = smooth_part(x, logits) + hp.beta * l1  # the elastic-net objective
                finite = _finite(logits, loss)
                fooled = self.success(logits, label, target) & finite
                size = l1 if self.decision == "l1" else jnp.sum(jnp.square(delta)) + hp.beta * l1
                rank = jnp.where(finite, jnp.where(fooled, size, loss), jnp.inf)
                return _Best(x, delta, logits, loss, fooled, rank)

            def init(key):
                del key
                placeholder = jax.eval_shape(candidate, x0)
                inf = jnp.full((), jnp.inf, jnp.float32)
                best = _Best(
                    x0,
                    jnp.zeros_like(x0),
                    jnp.zeros(placeholder.logits.shape, placeholder.logits.dtype),
                    inf,
                    jnp.zeros((), bool),
                    inf,
                )
                zero = jnp.zeros((), jnp.int32)
                return _Carry(x0, x0, zero, best, zero, zero)

            def step(c: _Carry):
                k = c.k.astype(jnp.float32)
                alpha = hp.step_size * jnp.sqrt(jnp.maximum(1.0 - k / self.steps, 0.0))
                grad = jax.grad(lambda y: smooth_part(y, victim(y)))(c.y)  # at the slack
                x = shrink(c.y - alpha * grad, x0, hp.beta, low, high)
                y = x + (k / (k + 3.0)) * (x - c.x) if self.fista else x
                new = candidate(x)
                carry = _Carry(x, y, c.k + 1, _keep_better(c.best, new), c.steps + 1, c.queries + 1)
                return carry, new.loss

            return Program(init=init, step=step, finish=None, length=self.steps)

        search = constant_search(
            search_step,
            initial_const=hp.initial_const,
            steps=self.steps,
            search_steps=self.search_steps,
            bounds=victim.bounds,
        )

        def finish(carry, trace):
            return within_budget(search.finish(carry, trace), "l1", hp.eps)

        return search._replace(finish=finish)


def ead(
    *,
    targeted: bool = False,
    steps: int = 1000,
    search_steps: int = 9,
    decision: str = "en",
    fista: bool = True,
) -> EAD:
    """The EAD attack (see :class:`EAD` for the method, paper and defaults).

    Args:
      targeted: reach ``targets`` instead of leaving the labels.
      steps: (F)ISTA iterations per constant (the paper's 1,000).
      search_steps: binary-search steps over the constant (the paper's 9).
      decision: ``"en"`` (elastic-net) or ``"l1"``: which successful iterate is the result.
      fista: FISTA (the paper's default) or ISTA.

    Hyper-parameters (``attack.hparams``): ``step_size`` 0.01, ``kappa`` 0, ``beta`` 1e-3,
    ``initial_const`` 1e-3, ``eps`` inf (the ℓ1 budget at which ``success`` is judged).

    Returns:
      An :class:`EAD` named ``"ead"``.
    """
    return EAD(
        steps=steps, search_steps=search_steps, targeted=targeted, decision=decision, fista=fista
    )
