"""Minimum-norm attacks judged at a budget (AutoAttack-style evaluation of DeepFool, EAD, ...).

A minimum-norm attack returns the smallest adversarial input it found, whatever its size; for a
robust-accuracy table at radius ``eps`` it counts as a success only where that input is within
the budget. ``eps = inf`` (the default of these families) judges plain success.
"""

from __future__ import annotations

import jax

from jaxadv.results import AttackResult


def within_budget(result: AttackResult, norm: str, eps: jax.Array) -> AttackResult:
    """``result`` with ``success`` = fooled and ``‖delta‖_norm ≤ eps`` (``x_adv`` unchanged).

    ``norm`` names a norm field of the result (``"l1"``, ``"l2"``, ``"linf"``).
    """
    return result._replace(success=result.success & (getattr(result, norm) <= eps))
