"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), as a compiled program."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._fab_projection import NORMS, dual_norm, hyperplane_box_projection, lp_norm
from jaxadv.attacks._minnorm import within_budget
from jaxadv.attacks._runner import Program, _Best, make_result
from jaxadv.losses import cw_margin

# AutoAttack's FAB radii per norm (its ``eps`` defaults): random restarts start at half of it when
# neither a fooling point, nor a finite ``eps``, nor a ``restart_radius`` gives a smaller one.
RESTART_RADIUS = {"linf": 0.3, "l2": 1.0, "l1": 5.0}
_TINY = 1e-12  # guards the distance ratio against a zero gradient (as the reference code)
_FLOOR = 1e-8  # least projection norm in the bias α (as the reference code)


class FABParams(NamedTuple):
    """The numbers of :func:`fab`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the success budget: a result succeeds when it fools the victim AND its norm is
        ``≤ eps``. ``inf`` (the default): pure minimum norm. It never limits the search.
      alpha_max: the cap on the bias α toward the projection of the original point.
      eta: the extrapolation factor of each projection step (η ≥ 1 overshoots the boundary).
      beta: the backward step ``x ← x0 + β (x − x0)`` taken once the iterate fools the victim.
      restart_radius: a cap on the random restarts' radius (default inf: none); see :class:`FAB`.
    """

    eps: jax.Array
    alpha_max: jax.Array
    eta: jax.Array
    beta: jax.Array
    restart_radius: jax.Array


class _Run(NamedTuple):
    """One FAB run (for one target class under FAB-T)."""

    x: jax.Array  # the iterate the next step linearises at
    checked: jax.Array  # the point the last step moved to and checked (before any step back)
    key: jax.Array
    best_x: jax.Array  # the smallest fooling point so far (x0 while there is none)
    best_logits: jax.Array
    best_fooled: jax.Array
    best_norm: jax.Array  # its norm; inf while nothing fooled the victim
    moved: jax.Array  # whether any boundary normal so far was non-zero

    def record(self, x, logits, fooled, size) -> _Run:
        """Keeps ``x`` if it fools the victim with a smaller norm than the best so far."""
        better = fooled & (size < self.best_norm)
        keep = lambda new, old: jnp.where(better, new, old)  # noqa: E731
        return self._replace(
            best_x=keep(x, self.best_x),
            best_logits=keep(logits, self.best_logits),
            best_fooled=self.best_fooled | fooled,
            best_norm=keep(size, self.best_norm),
        )


class _Carry(NamedTuple):
    runs: _Run  # one run, or one per target class (leading axis) under FAB-T
    goals: jax.Array  # per run: the class whose boundary it linearises (unused when nearest)
    i: jax.Array  # program steps taken
    done: jax.Array  # the clean input already fools the victim: nothing to do
    steps: jax.Array
    queries: jax.Array


@dataclasses.dataclass(frozen=True)
class FAB(AttackBase):
    """FAB (Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary
    attack", ICML 2020, Algorithm 1): a minimum-norm attack in ℓ∞, ℓ2 or ℓ1.

    Per step, from the iterate ``x`` (first ``x0``): linearise the decision boundary at ``x``;
    project both ``x`` and ``x0`` onto that hyperplane intersected with the pixel box, in the
    attack's norm (:func:`hyperplane_box_projection`: ``δ``, ``δ_orig``); move to

        ``x ← clip((1 − α)(x + η δ) + α (x0 + η δ_orig))``,
        ``α = min(‖δ‖ / (‖δ‖ + ‖δ_orig‖), alpha_max)``,

    (the bias toward ``x0``'s projection keeps the result close to ``x0``; η overshoots the
    boundary). Once ``x`` fools the victim it is recorded if it is the smallest so far, and
    ``x ← x0 + β (x − x0)`` steps back toward ``x0``. The result is the smallest fooling point
    found, never merely the last iterate. Every point whose logits the attack computes counts,
    also the linearisation point after a step back or at a restart (the reference code checks
    only the point right after each projection step; this finds no larger results).

    Which boundary:

    * untargeted (``targeted=False, n_target_classes=0``): the nearest linearised one, the class
      ``l ≠ y`` minimising ``|f_l| / ‖∇f_l‖_q`` with ``f_l = z_l − z_y`` and ``q`` the dual norm;
      this needs the Jacobian of the logit differences, ``C − 1`` gradients per step.
    * FAB-T, AutoAttack's targeted FAB (``targeted=False, n_target_classes=k``): k runs, the
      boundary ``z_t − z_y`` for each of the ``k`` classes of largest clean logit other than ``y``
      (vmapped side by side in the program); success is still untargeted (any class but ``y``),
      and the smallest fooling point over the k runs is kept. One gradient per run and step.
    * targeted (``targeted=True``): the user's target ``t``, boundary ``z_t − max_{j≠t} z_j``
      (so crossing it makes ``t`` win); success means the victim predicts ``t``.

    ``success`` is True only when ``x_adv`` fools the victim and ``‖x_adv − x0‖ ≤ eps``; a
    fooling point larger than ``eps`` is a failure at that budget but is still returned as
    ``x_adv`` (with ``eps = inf``, the default, any fooling point succeeds). A clean input that
    already fools the victim is returned as is, after one forward pass.

    Restarts run one after another in the same program (``restarts × steps`` steps); restart
    ``r > 0`` starts from a random point of the ℓp sphere of radius ``ρ / 2`` around ``x0``
    (uniform noise for ℓ∞, Gaussian for ℓ2/ℓ1, normalised), clipped to the box, with
    ``ρ = min(‖best‖, eps, restart_radius)``, or AutoAttack's default FAB radius for the norm
    (ℓ∞ 0.3, ℓ2 1, ℓ1 5) while all three are infinite. That is AutoAttack's ``min(‖best‖,
    eps) / 2`` (where it restarts, ``‖best‖ > eps``), and Croce & Hein's original code's
    ``min(‖best‖, ε) / 2`` with ``ε`` the budget or the default radius, so a restart searches
    near the best point so far.

    Queries: one forward pass for the clean input, then per step and run: the boundary's
    gradients (``C − 1`` untargeted, 1 otherwise) and one forward pass that checks the new
    iterate (``steps`` and ``queries`` add up every run of FAB-T). Defaults: α_max 0.1, η 1.05,
    β 0.9 (the paper's and AutoAttack's), 100 steps. On an affine classifier these defaults end
    at 1.0052 × the minimal distance (the fixed point of the step-back cycle; η closer to 1 and β
    closer to 1 get closer: 1.0002 with η = 1.01, β = 0.98; tests/test_fab.py).

    Attributes:
      norm: the norm minimised, ``"linf"``, ``"l2"`` or ``"l1"``.
      steps: FAB steps per restart (100).
      restarts: runs one after another; restarts after the first start at random (above).
      targeted: reach the user's ``target`` class (success: the victim predicts it).
      n_target_classes: k > 0 with ``targeted=False`` is FAB-T (k runs); 0: untargeted FAB.
      defaults: per-instance overrides of the defaults of :class:`FABParams`, as
        ``((name, value), ...)`` (none by default).
      rel_step_size: unused: :class:`FABParams` has no ``step_size``.
      name: a label for tables.
    """

    norm: str = "linf"
    steps: int = 100
    restarts: int = 1
    targeted: bool = False
    n_target_classes: int = 0
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "fab"
    params_type: ClassVar[type] = FABParams
    hparam_spec: ClassVar[dict[str, Spec]] = {
        "eps": Spec(float("inf"), "budget"),
        "alpha_max": Spec(0.1, "unit"),
        "eta": Spec(1.05, "positive"),
        "beta": Spec(0.9, "open_unit"),
        "restart_radius": Spec(float("inf"), "budget"),
    }

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("restarts", self.restarts)
        if isinstance(self.n_target_classes, bool) or not isinstance(self.n_target_classes, int):
            raise ValueError(
                f"`n_target_classes` must be an integer >= 0; got {self.n_target_classes!r}."
            )
        if self.n_target_classes < 0:
            raise ValueError(f"`n_target_classes` must be >= 0; got {self.n_target_classes}.")
        if self.targeted and self.n_target_classes:
            raise ValueError(
                "Give `targeted=True` (the user's target classes) or `n_target_classes=k` "
                f"(AutoAttack's FAB-T over the top-k classes), not both; got "
                f"n_target_classes={self.n_target_classes}."
            )

    @property
    def length(self) -> int:
        return self.steps * self.restarts

    @property
    def _runs(self) -> int:
        return self.n_target_classes or 1

    def check_victim(self, victim, hp) -> None:
        if self.n_target_classes > victim.num_classes - 1:
            raise ValueError(
                f"`n_target_classes` must be at most num_classes - 1 = {victim.num_classes - 1} "
                f"(the classes other than the label); got {self.n_target_classes}."
            )

    def program(self, victim, hp: FABParams, x0, label, target) -> Program:
        low, high = victim.bounds
        num_classes = victim.num_classes
        classes = jnp.arange(num_classes)
        nearest = not self.targeted and not self.n_target_classes
        per_step = (num_classes - 1 if nearest else 1) + 1  # gradients + the forward check
        norm = lambda v: lp_norm(v, self.norm)  # noqa: E731

        def fooled(logits):  # the victim's verdict (NaN outputs never count as fooled)
            return self.success(logits, label, target) & jnp.all(jnp.isfinite(logits))

        def margin(logits):  # how far from fooling (≤ 0 once fooled): the trace and the loss
            goal = target if self.targeted else label
            return cw_margin(logits, goal, kappa=jnp.inf, targeted=self.targeted)

        def boundary(x, goal):
            """Logits at ``x`` and the linearised boundary ``f + ⟨w, z − x⟩ = 0`` there."""
            logits, pullback = jax.vjp(victim, x)
            if nearest:
                others = jnp.arange(num_classes - 1)
                others = others + (others >= label)  # every class but the label
                rows = jax.nn.one_hot(others, num_classes) - jax.nn.one_hot(label, num_classes)
                (grads,) = jax.vmap(pullback)(rows.astype(logits.dtype))
                diffs = logits[others] - logits[label]
                dual = jax.vmap(lambda g: dual_norm(g, self.norm))(grads)
                s = jnp.argmin(jnp.abs(diffs) / (dual + _TINY))
                return logits, diffs[s], grads[s]
            if self.targeted:
                rival = jnp.argmax(jnp.where(classes == goal, -jnp.inf, logits))
            else:  # FAB-T: the boundary between the target and the true class
                rival = label
            row = jax.nn.one_hot(goal, num_classes) - jax.nn.one_hot(rival, num_classes)
            (grad,) = pullback(row.astype(logits.dtype))
            return logits, logits[goal] - logits[rival], grad

        def restart_point(key, best_norm):
            if self.norm == "linf":
                noise = jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0)
            else:
                noise = jax.random.normal(key, x0.shape, x0.dtype)
            radius = jnp.minimum(jnp.minimum(best_norm, hp.eps), hp.restart_radius)
            radius = 0.5 * jnp.where(jnp.isinf(radius), RESTART_RADIUS[self.norm], radius)
            return jnp.clip(x0 + radius * noise / jnp.maximum(norm(noise), _TINY), low, high)

        def run_step(run: _Run, goal, restart):
            key, sub = jax.random.split(run.key)
            x = jnp.where(restart, restart_point(sub, run.best_norm), run.x)
            logits, f, w = boundary(x, goal)
            # x was evaluated anyway (a point after a step back, or a restart): it counts too
            run = run.record(x, logits, fooled(logits), norm(x - x0))
            b = f - jnp.vdot(w, x)  # the hyperplane ⟨w, z⟩ + b = 0
            d_x = hyperplane_box_projection(x, w, b, low, high, self.norm)
            d_0 = hyperplane_box_projection(x0, w, b, low, high, self.norm)
            a_x, a_0 = jnp.maximum(norm(d_x), _FLOOR), jnp.maximum(norm(d_0), _FLOOR)
            alpha = jnp.minimum(a_x / (a_x + a_0), hp.alpha_max)
            x_new = (1 - alpha) * (x + hp.eta * d_x) + alpha * (x0 + hp.eta * d_0)
            x_new = jnp.clip(x_new, low, high)
            new_logits = victim(x_new)
            hit = fooled(new_logits)
            run = run.record(x_new, new_logits, hit, norm(x_new - x0))
            run = run._replace(
                x=jnp.where(hit, x0 + hp.beta * (x_new - x0), x_new),
                checked=x_new,
                key=key,
                moved=run.moved | jnp.any(w != 0),
            )
            return run, margin(logits)

        def init(key):
            clean = victim(x0)
            done = fooled(clean)
            if self.n_target_classes:  # FAB-T: the top-k clean classes other than the label
                goals = jax.lax.top_k(jnp.where(classes == label, -jnp.inf, clean), self._runs)[1]
            else:
                goals = jnp.broadcast_to(target, (1,))
            run = _Run(
                x=x0,
                checked=x0,
                key=key,
                best_x=x0,
                best_logits=clean,
                best_fooled=done,
                best_norm=jnp.where(done, 0.0, jnp.inf).astype(x0.dtype),
                moved=jnp.zeros((), bool),
            )
            runs = jax.vmap(lambda k: run._replace(key=k))(jax.random.split(key, self._runs))
            zero = jnp.zeros((), jnp.int32)
            return _Carry(runs, goals.astype(jnp.int32), zero, done, zero, jnp.ones((), jnp.int32))

        def step(c: _Carry):
            restart = (c.i > 0) & (c.i % self.steps == 0)
            runs, margins = jax.vmap(run_step, in_axes=(0, 0, None))(c.runs, c.goals, restart)
            runs = jax.tree.map(lambda old, new: jnp.where(c.done, old, new), c.runs, runs)
            live = jnp.where(c.done, 0, 1).astype(jnp.int32)
            c = c._replace(
                runs=runs,
                i=c.i + 1,
                steps=c.steps + live * self._runs,
                queries=c.queries + live * self._runs * per_step,
            )
            return c, jnp.min(margins)

        def finish(c: _Carry, trace):
            runs = c.runs
            pick = jnp.argmin(jnp.where(runs.best_fooled, runs.best_norm, jnp.inf))
            best = jax.tree.map(lambda leaf: leaf[pick], runs)
            loss = margin(best.best_logits)
            result = _Best(
                best.best_x, best.best_x - x0, best.best_logits, loss, best.best_fooled, loss
            )
            result = make_result(
                result, victim.bounds, c.steps, c.queries, trace,
                zero_gradient=~jnp.any(runs.moved) & ~c.done,
            )  # fmt: skip
            return within_budget(result, self.norm, hp.eps)

        return Program(init=init, step=step, finish=finish, length=self.length)


def fab(
    *,
    norm: str = "linf",
    targeted: bool = False,
    n_target_classes: int = 0,
    steps: int = 100,
    restarts: int = 1,
) -> FAB:
    """The FAB attack (see :class:`FAB` for the method, the modes and the paper).

    Args:
      norm: ``"linf"``, ``"l2"`` or ``"l1"``: the norm minimised.
      targeted: reach the user's ``target`` class (success: the victim predicts it).
      n_target_classes: k > 0 with ``targeted=False`` is AutoAttack's FAB-T: k runs, one per
        class of the k largest clean logits other than the label, untargeted success.
      steps: FAB steps per restart (each: the boundary's gradients, two projections, one forward).
      restarts: runs one after another; restarts after the first start at random (see FAB).

    Hyper-parameters (``attack.hparams``): ``eps`` inf (success budget), ``alpha_max`` 0.1,
    ``eta`` 1.05, ``beta`` 0.9, ``restart_radius`` inf (see :class:`FAB` for the restarts).

    Returns:
      A :class:`FAB` named ``"fab-{norm}"`` (``"fab-t-{norm}"`` for FAB-T).

    Example:
      >>> import jax
      >>> from jaxadv import attacks
      >>> attack = attacks.fab(norm="l2", steps=20)
      >>> float(attack.hparams().beta)
      0.8999999761581421
    """
    name = "fab-t" if n_target_classes else "fab"
    return FAB(
        norm=norm,
        steps=steps,
        restarts=restarts,
        targeted=targeted,
        n_target_classes=n_target_classes,
        name=f"{name}-{norm}",
    )
