"""APGD's step-size schedules as pure functions of one example's state (tested against numpy
transcriptions of the papers in tests/test_apgd.py).

Losses here are the library's MINIMISED objectives: APGD's "the objective increased" is "the
loss went down", its ``f_max`` is the lowest loss so far.

* ℓ∞/ℓ2 (Croce & Hein, ICML 2020, Sec. 3.2): checkpoints ``w_j = ⌈p_j·N⌉`` with ``p_0 = 0``,
  ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``. At ``w_j`` the step is
  halved, and the iterate restarts from the best point, if (1) the objective rose in fewer than
  ``ρ·(w_j − w_{j−1})`` of the steps since ``w_{j−1}``, or (2) neither the step nor the best
  objective changed since ``w_{j−1}``. The decision is taken once ``x^(w_j)`` is evaluated, and
  ``x^(w_j)`` is the point replaced: the window of condition 1 (``f(x^(i+1)) > f(x^(i))`` for
  ``i = w_{j−1} … w_j − 1``) and AutoAttack's code agree on this; Algorithm 1's loop index runs
  one ahead of it.
* ℓ1 (Croce & Hein, ICML 2021, ℓ1-APGD): every ``⌊0.04·N⌋`` steps the sparsity of the next steps
  becomes ``‖x_best − x0‖₀ / 1.5``; if that count fell by more than 5% since the last check the
  step is reset to its initial value and the iterate restarts from the best point, otherwise the
  step is divided by 1.5, staying within ``[η₀/10, η₀]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks

SCHEDULES = ("paper", "reference")

# ℓ1-APGD's constants (the 2021 paper's reference code): checks every 4% of the steps, initial
# sparsity 20% of the coordinates, step divided by 1.5 (at least η₀/10), "shrunk" = below 95%.
L1_CHECK_FRACTION = 0.04
L1_INITIAL_SPARSITY = 0.2
L1_STEP_DECAY = 1.5
L1_SPARSITY_DIVISOR = 1.5  # next sparsity: ‖x_best − x0‖₀ / 1.5
L1_MIN_STEP_RATIO = 10.0
L1_SHRINK = 0.95


def checkpoints(steps: int, schedule: str = "paper") -> tuple[int, ...]:
    """APGD's checkpoints ``w_1 < w_2 < …`` that fall inside ``steps`` iterations (``≤ steps − 1``).

    ``"paper"``: ``w_j = ⌈p_j·steps⌉`` with the ``p_j`` of the paper, in exact arithmetic (``p_j``
    are whole hundredths; a float ``0.22·100`` would round up to 23); repeated values of a short
    run collapse into one. ``"reference"``: AutoAttack's code, windows of ``⌊0.22·N⌋`` steps
    shrinking by ``⌊0.03·N⌋`` down to ``⌊0.06·N⌋`` (each at least 1). Both give
    22, 41, 57, 70, 80, 87, 93, 99 for 100 steps.

    Args:
      steps: the run's number of iterations, a positive int.
      schedule: ``"paper"`` (default) or ``"reference"`` (AutoAttack's code).

    Returns:
      The checkpoints as a strictly increasing tuple of ints, each at most ``steps − 1`` (empty
      for a run too short to reach the first).
    """
    _checks.check_positive_int("steps", steps)
    _checks.check_choice("schedule", schedule, SCHEDULES)
    out: list[int] = []
    if schedule == "paper":
        p_prev, p = 0, 22  # hundredths
        while True:
            w = -(-p * steps // 100)  # ⌈p·steps/100⌉
            if w > steps - 1:
                return tuple(out)
            if not out or w > out[-1]:
                out.append(w)
            p_prev, p = p, p + max(p - p_prev - 3, 6)
    window = max(int(0.22 * steps), 1)
    shrink, floor = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    w = window
    while w <= steps - 1:
        out.append(w)
        window = max(window - shrink, floor)
        w += window
    return tuple(out)


def l1_checkpoints(steps: int) -> tuple[int, ...]:
    """ℓ1-APGD's checks: every ``max(⌊0.04·steps⌋, 1)`` steps, up to ``steps − 1``."""
    _checks.check_positive_int("steps", steps)
    every = max(int(L1_CHECK_FRACTION * steps), 1)
    return tuple(range(every, steps, every))


def checkpoint_tables(points: tuple[int, ...], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per step ``k``: whether it is a checkpoint, and its window ``w_j − w_{j−1}`` (0 elsewhere)."""
    is_check = np.zeros(steps, bool)
    window = np.zeros(steps, np.float32)
    previous = 0
    for w in points:
        is_check[w], window[w] = True, w - previous
        previous = w
    return is_check, window


class StepSchedule(NamedTuple):
    """The ℓ∞/ℓ2 schedule's state of one example (all scalars)."""

    step_size: jax.Array  # η
    best_loss: jax.Array  # lowest loss so far (f_max)
    last_loss: jax.Array  # loss of the point the current step started from
    rises: jax.Array  # steps since the last checkpoint in which the objective rose (loss fell)
    best_at_check: jax.Array  # best loss at the last checkpoint (w_0 = 0: the first iterate)
    halved_at_check: jax.Array  # whether the step was halved at the last checkpoint


def step_schedule_init(step_size, schedule: str = "paper") -> StepSchedule:
    """The state before the first iterate is evaluated.

    ``"reference"`` (AutoAttack's code) never applies condition 2 at the first checkpoint (its flag
    "reduced at the last check" starts true); the paper's ``η(w_0) ≡ η(w_1)`` holds there.
    """
    inf = jnp.asarray(jnp.inf, jnp.float32)
    return StepSchedule(
        step_size=jnp.asarray(step_size, jnp.float32),
        best_loss=inf,
        last_loss=inf,
        rises=jnp.zeros((), jnp.int32),
        best_at_check=inf,
        halved_at_check=jnp.asarray(schedule == "reference"),
    )


def step_schedule_update(
    state: StepSchedule, loss, k, is_check, window, rho, schedule: str = "paper"
) -> tuple[StepSchedule, jax.Array, jax.Array]:
    """One iterate's loss into the ℓ∞/ℓ2 schedule; returns ``(state, improved, halve)``.

    ``k`` is the iterate's index (0 for the start), ``is_check``/``window`` its entries of
    :func:`checkpoint_tables`. ``improved``: the iterate is the new best (the caller keeps it);
    ``halve``: at a checkpoint, the step was halved and the caller restarts from the best point.

    Condition 1 is ``rises < ρ·window`` (paper) or ``rises ≤ ρ·window`` (``"reference"``, the
    code's). After a restart the next rise is measured from the best point the step starts from
    (the paper's ``x^{(k+1)} ← x_max``); ``"reference"`` measures it from the evaluated iterate
    (the code's stored loss).
    """
    improved = loss < state.best_loss  # NaN never improves
    best = jnp.where(improved, loss, state.best_loss)
    rises = state.rises + ((k > 0) & (loss < state.last_loss)).astype(jnp.int32)
    best_at_check = jnp.where(k == 0, best, state.best_at_check)
    limit = rho * window
    cond1 = rises < limit if schedule == "paper" else rises <= limit
    cond2 = ~state.halved_at_check & (best >= best_at_check)  # f_max unchanged since w_{j−1}
    halve = is_check & (cond1 | cond2)
    restart_loss = best if schedule == "paper" else loss
    new = StepSchedule(
        step_size=jnp.where(halve, 0.5 * state.step_size, state.step_size),
        best_loss=best,
        last_loss=jnp.where(halve, restart_loss, loss),
        rises=jnp.where(is_check, 0, rises),
        best_at_check=jnp.where(is_check, best, best_at_check),
        halved_at_check=jnp.where(is_check, halve, state.halved_at_check),
    )
    return new, improved, halve


class SparsitySchedule(NamedTuple):
    """ℓ1-APGD's state of one example (all scalars)."""

    step_size: jax.Array  # η
    best_loss: jax.Array  # lowest loss so far
    sparsity: jax.Array  # fraction of coordinates the next steps move (k/d)
    count_at_check: jax.Array  # ‖x_best − x0‖₀ at the last check (d at the start)


def sparsity_schedule_init(step_size, size: int) -> SparsitySchedule:
    return SparsitySchedule(
        step_size=jnp.asarray(step_size, jnp.float32),
        best_loss=jnp.asarray(jnp.inf, jnp.float32),
        sparsity=jnp.asarray(L1_INITIAL_SPARSITY, jnp.float32),
        count_at_check=jnp.asarray(size, jnp.float32),
    )


def sparsity_schedule_update(
    state: SparsitySchedule, loss, is_check, count, best_count, initial_step, size: int
) -> tuple[SparsitySchedule, jax.Array, jax.Array]:
    """One iterate into ℓ1-APGD's schedule; returns ``(state, improved, restart)``.

    ``count``/``best_count``: ``‖δ‖₀`` of the iterate and of the best point before it.
    """
    improved = loss < state.best_loss
    best = jnp.where(improved, loss, state.best_loss)
    count = jnp.where(improved, count, best_count).astype(jnp.float32)
    shrunk = count / state.count_at_check < L1_SHRINK
    step = jnp.where(shrunk, initial_step, state.step_size / L1_STEP_DECAY)
    step = jnp.clip(step, initial_step / L1_MIN_STEP_RATIO, initial_step)
    new = SparsitySchedule(
        step_size=jnp.where(is_check, step, state.step_size),
        best_loss=best,
        sparsity=jnp.where(is_check, count / size / L1_SPARSITY_DIVISOR, state.sparsity),
        count_at_check=jnp.where(is_check, count, state.count_at_check),
    )
    return new, improved, is_check & shrunk
