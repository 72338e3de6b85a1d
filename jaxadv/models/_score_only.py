"""Black-box views of a victim: its outputs only (score-based), or its top-1 class only
(hard-label), never its gradients.

A query-based attack must not see the victim's gradients. ``score_only(victim)`` keeps the victim's
type and call signature (a classifier stays a :class:`~jaxadv.models.Victim`, a saliency model a
``SaliencyVictim``), so every attack accepts it, but any attempt to differentiate through it (an
exact-gradient attack, ``jax.grad`` in a user's code) raises :class:`GradientAccessError` at trace
time instead of returning a gradient. Queries are counted by the attack that makes them (in its
compiled state, per example: ``AttackResult.queries``), since a pure function cannot count its
own calls.

``hard_label(victim)`` goes one step further for decision-based attacks: a classifier's output is
the one-hot vector of its predicted class, so only the top-1 decision leaks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxadv import _checks
from jaxadv.models._randomized import RandomizedVictim

OUTPUTS = ("logits", "probabilities", "log_probabilities")


class GradientAccessError(ValueError):
    """An attack or user code tried to differentiate through a black-box (score-only) victim.

    Raised at trace time by the JVP rule of a :func:`score_only` or :func:`hard_label` view.

    Args:
      *args: the message, as for ``ValueError`` (the view's message names the remedies: a
        query-based attack, or the unwrapped victim).
    """


def _refuse(name: str) -> Callable:
    def refuse(*_):
        raise GradientAccessError(
            f"The victim is a black-box ({name}) view: its gradient is not available. Use a "
            "query-based attack (a gradient estimator of `jaxadv.gradients`, or a direct-search "
            "attack such as `jaxadv.attacks.square`), or attack the unwrapped victim."
        )

    return refuse


def _no_derivative(fn: Callable, name: str) -> Callable:
    """``fn`` with a JVP rule that raises: forward- and reverse-mode differentiation both refuse."""
    wrapped = jax.custom_jvp(fn)
    wrapped.defjvp(_refuse(name))
    return wrapped


@struct.dataclass
class _ScoreOnlyApply:
    """The wrapped apply: outputs transformed as asked, no derivative. Hashable by value."""

    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)
    output: str = struct.field(pytree_node=False, default="logits")

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        def scores(variables, x):
            out = self.apply_fn(variables, x)
            if self.output == "probabilities":
                return jax.nn.softmax(out, axis=-1)
            if self.output == "log_probabilities":
                return jax.nn.log_softmax(out, axis=-1)
            if self.output == "hard_label":
                return jax.nn.one_hot(jnp.argmax(out, axis=-1), out.shape[-1], dtype=out.dtype)
            return out

        return _no_derivative(scores, f"{self.output} only")(variables, x)


def _wrap(victim: Any, output: str) -> Any:
    if isinstance(victim, RandomizedVictim):
        raise ValueError(
            "`victim` is a RandomizedVictim; fix one draw with `victim.with_key(key)` before "
            "taking a black-box view of it."
        )
    if not dataclasses.is_dataclass(victim) or not hasattr(victim, "apply_fn"):
        raise ValueError(
            "`victim` must be a jaxadv victim (a `Victim` or a `SaliencyVictim`); got "
            f"{type(victim).__name__}."
        )
    if isinstance(victim.apply_fn, _ScoreOnlyApply):
        raise ValueError(
            f"`victim` is already a black-box view ({victim.apply_fn.output}); wrap the original "
            "victim instead."
        )
    return victim.replace(apply_fn=_ScoreOnlyApply(victim.apply_fn, output))


def score_only(victim: Any, output: str = "logits") -> Any:
    """A black-box view of ``victim``: its outputs, never its gradients.

    Args:
      victim: a classifier (:class:`~jaxadv.models.Victim`) or a saliency model; the view has the
        same type, shapes and bounds, so every attack and metric takes it.
      output: what a query returns for a classifier: ``"logits"`` (the model's own scores),
        ``"probabilities"`` (softmax, as most black-box APIs return) or ``"log_probabilities"``.
        A saliency model's map is returned as is (use ``"logits"``).

    Returns:
      The view. Differentiating through it raises :class:`GradientAccessError`.
    """
    _checks.check_choice("output", output, OUTPUTS)
    if output != "logits" and not hasattr(victim, "num_classes"):
        raise ValueError(
            f"`output={output!r}` is for classifiers; a saliency victim returns its map: use "
            "`output='logits'`."
        )
    return _wrap(victim, output)


def hard_label(victim: Any) -> Any:
    """A decision-only view of a classifier: each query returns the one-hot vector of the
    predicted class (top-1 label only), and no gradient (:class:`GradientAccessError`).

    Args:
      victim: a classifier (a :class:`~jaxadv.models.Victim` with ``num_classes``), not a
        randomized victim (fix a draw with ``with_key`` first) nor an existing black-box view.

    Returns:
      The view, of ``victim``'s type, shapes and bounds; its outputs are one-hot
      ``[num_classes]`` vectors in the logits' dtype.

    Raises:
      ValueError: if ``victim`` has no ``num_classes`` (e.g. a saliency model), is randomized,
        is not a jaxadv victim, or is already a black-box view.
    """
    if not hasattr(victim, "num_classes"):
        raise ValueError(
            f"`victim` must be a classifier for a hard-label view; got {type(victim).__name__} "
            "(a saliency map has no top-1 class)."
        )
    return _wrap(victim, "hard_label")


def is_black_box(victim: Any) -> bool:
    """Whether ``victim`` is a score-only or hard-label view.

    Args:
      victim: any object; a victim made by :func:`score_only` or :func:`hard_label` is a view.

    Returns:
      True if ``victim``'s ``apply_fn`` is such a view's, else False.
    """
    return isinstance(getattr(victim, "apply_fn", None), _ScoreOnlyApply)
