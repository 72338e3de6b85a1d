"""SMBEA's input checks (one example or a batch): shapes, bounds, labels, targets or guides."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.attacks._ensembles import as_tuple


def check_smbea_inputs(attack, victim, x, label, target, lead: tuple[int, ...]):
    """``x``, ``label``, ``target`` checked against the first mini-batch's ensemble (``lead``:
    ``()`` for one example, ``(b,)`` for a batch) and cast; None label/target filled."""
    ens = as_tuple(victim)[0]
    what = "x0" if not lead else "images"
    if tuple(jnp.shape(x)) != lead + tuple(ens.input_shape):
        raise ValueError(
            f"`{what}` must have shape {lead + tuple(ens.input_shape)}; got "
            f"{tuple(jnp.shape(x))}."
        )
    _checks.check_in_bounds(what, x, ens.bounds)
    suffix = "s" if lead else ""
    if not attack.targeted and target is not None:
        raise ValueError(
            f"`target{suffix}` must be None for an untargeted SMBEA (it would be ignored); "
            "build the attack with `targeted=True` to reach a class or a guide."
        )
    if ens.output == "logits":
        goal = ("target" if attack.targeted else "label") + suffix
        value = target if attack.targeted else label
        if value is None:
            raise ValueError(f"`{goal}` (a class index) is required here; got None.")
        if jnp.shape(value) != lead:
            raise ValueError(f"`{goal}` must have shape {lead}; got {jnp.shape(value)}.")
        _checks.check_labels(goal, value, int(ens.output_shape[-1]))
        if attack.targeted and label is not None:
            _check_target_differs(label, target, suffix)
    elif attack.targeted:
        if target is None:
            raise ValueError(
                f"A targeted SMBEA needs `target{suffix}`, the guide image(s); got None."
            )
        if jnp.shape(target) != lead + tuple(ens.input_shape):
            raise ValueError(
                f"`target{suffix}` must be the guide image(s) of shape "
                f"{lead + tuple(ens.input_shape)}; got {jnp.shape(target)}."
            )
        _checks.check_in_bounds(f"target{suffix}", target, ens.bounds)
    x = jnp.asarray(x, jnp.float32)
    label = jnp.zeros(lead, jnp.int32) if label is None else jnp.asarray(label, jnp.int32)
    if ens.output != "logits":
        target = x if target is None else jnp.asarray(target, jnp.float32)
    else:
        target = label if target is None else jnp.asarray(target, jnp.int32)
    return x, label, target



def _check_target_differs(label, target, suffix: str) -> None:
    """A targeted classifier attack whose target is the true class would count the clean example
    as a success (AttackBase refuses it for the other families)."""
    if jnp.shape(label) != jnp.shape(target) or not _checks.is_concrete((label, target)):
        return  # a shape error is named by the label checks; values are unknown under jit
    same = np.flatnonzero(np.ravel(np.asarray(label) == np.asarray(target)))
    if same.size:
        where = f" at {same.size} position(s), first at index {same[0]}" if suffix else ""
        raise ValueError(
            f"`target{suffix}` must differ from the true `label{suffix}` in a targeted SMBEA; "
            f"they are equal{where}."
        )
