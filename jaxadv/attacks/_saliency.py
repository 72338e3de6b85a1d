"""Attacks on saliency models, through the same engine as the classifier attacks.

A saliency victim maps an image to a map (``jaxadv.models.saliency.SaliencyVictim``). Its attacks
are the same :class:`~jaxadv.attacks._attack.Attack` — a minimised objective, an optax step
rule, a norm ball, the compiled descent loop, ``batch``/``sweep`` over images and budgets — with
maps where a classifier attack has classes:

* untargeted: push the victim's output AWAY from its clean output (``labels`` = the clean
  outputs, computed when not given): minimise ``−loss(f(x), f(x0))``;
* targeted: pull the output TOWARD a guide's (``targets`` = guide images, or their outputs):
  minimise ``loss(f(x), f(guide))``;
* Hot&Cold (``SaliencyObjective(..., hot_cold=True)``, as ``rule_attack("hot_cold", loss=...)``
  builds it; targeted): pull toward the guide's ("hot") output and push away from the clean
  ("cold") one: minimise ``loss(f(x), f(guide)) − loss(f(x), f(x0))``;
* image-space (the map, turned into a non-negative saliency map by the victim's output kind) or
  feature-space (``layer=`` a named hidden layer of the victim; the loss is then ``feature_loss``
  between activations: mean squared (default) or absolute distance, −CC, or KL of the
  activations read as one distribution, which needs non-negative activations);
* Eq. 1's perceptual term: ``penalty=`` a kind of :data:`jaxadv.image.PERCEPTUAL_DISTANCES` adds
  ``λ1·L2(x0, x)`` (λ1 = ``hp.penalty``) to every objective above.

The image-space losses are :mod:`jaxadv.losses._saliency`'s (KL, CC, SIM, L1, NSS). NSS needs
fixations, which an attack does not have: the reference map (clean or guide) weights the pixels
instead (``nss_loss(map, reference)``: the mean standardised map under the reference's density),
so untargeted NSS lowers the map where the clean map is salient. Success is the same rule in
both spaces, on the Pearson correlation (CC) of the flattened outputs: untargeted, CC to the clean
output below ``threshold``; targeted, the output correlates more with the guide's than with the
clean one. ``result.logits`` holds the adversarial output (the map, or the layer's activation).

Che, Borji, Zhai, Min, Guo, Le Callet, "How is Gaze Influenced by Image Transformations? Dataset
and Model", TIP 2019, and Che et al., "Adversarial attacks against deep saliency models"
(arXiv 1904.01231): ℓ∞ budgets of up to 17/255, CC/KL/L1 attack losses on the map.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxadv import _checks
from jaxadv.attacks._attack import HPARAM_SPEC, Attack
from jaxadv.attacks._base import Spec
from jaxadv.attacks._ensembles import FEATURE_LOSSES, feature_loss
from jaxadv.attacks._penalty import PerceptualPenalty
from jaxadv.attacks._recipes import Ball, SteepestStep
from jaxadv.constraints import NORMS
from jaxadv.image import PERCEPTUAL_DISTANCES
from jaxadv.losses import SALIENCY_LOSSES, to_saliency_map

SALIENCY_ATTACK_LOSSES = ("kl", "cc", "sim", "l1", "nss")  # ACS ignores position: no attack loss
FEATURES = "features"  # the output kind of a feature-space view


class SaliencyHParams(NamedTuple):
    """The numbers of the saliency attacks (float32 leaves, sweepable).

    Attributes: ``eps``, ``step_size``, ``decay``, ``sparsity``, ``rel_step_size`` as in
    :class:`~jaxadv.attacks.HParams`, and ``penalty``: λ1 of Eq. 1's ``λ1·L2(x0, x)`` (used when
    the attack has a ``penalty`` kind).
    """

    eps: jax.Array
    step_size: jax.Array
    decay: jax.Array
    sparsity: jax.Array
    penalty: jax.Array
    rel_step_size: jax.Array = 0.0


SALIENCY_SPEC = {
    **{k: HPARAM_SPEC[k] for k in ("eps", "step_size", "decay", "sparsity")},
    "penalty": Spec(0.0, "nonnegative"),
    "rel_step_size": HPARAM_SPEC["rel_step_size"],
}


class SaliencyObjective(NamedTuple):
    """``(output, clean_output, guide_output, hp) -> scalar`` to minimise (hashable).

    Attributes:
      loss: one of :data:`SALIENCY_ATTACK_LOSSES` (image space).
      targeted: pull toward the guide (True) or push away from the clean output (False).
      output: the victim's output kind (``"log_density"``, ``"unit"``, ``"signed"``) or
        ``"features"``; set from the victim by :meth:`SaliencyAttack.program` (None before).
      feature_loss: the loss in feature space, one of :data:`FEATURE_LOSSES`.
      hot_cold: Hot&Cold (targeted): ``loss(out, guide) − loss(out, clean)``.
    """

    loss: str
    targeted: bool
    output: str | None = None
    feature_loss: str = "mse"
    hot_cold: bool = False

    def distance(self, out: jax.Array, reference: jax.Array) -> jax.Array:
        """The loss between an output and a reference (small when they agree)."""
        if self.output == FEATURES:
            return feature_loss(self.feature_loss, out, reference)
        return SALIENCY_LOSSES[self.loss](
            to_saliency_map(out, self.output), to_saliency_map(reference, self.output)
        )

    def __call__(self, out: jax.Array, clean: jax.Array, guide: jax.Array, hp: Any) -> jax.Array:
        if self.hot_cold:
            return self.distance(out, guide) - self.distance(out, clean)
        value = self.distance(out, guide if self.targeted else clean)
        return value if self.targeted else -value


def pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pearson's correlation of two arrays over all their entries (0 if either is constant)."""
    a, b = jnp.ravel(a) - jnp.mean(a), jnp.ravel(b) - jnp.mean(b)
    norm = jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))
    return jnp.where(norm > 0, jnp.sum(a * b) / jnp.where(norm > 0, norm, 1.0), 0.0)


@struct.dataclass
class _LayerApply:
    """``(variables, x_batch) -> activation [b, ...]`` of one named hidden layer (hashable)."""

    capture_fn: Any = struct.field(pytree_node=False)
    layer: str = struct.field(pytree_node=False)

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        return self.capture_fn(variables, x)[self.layer]


def _check_saliency_victim(victim: Any) -> None:
    if not all(hasattr(victim, a) for a in ("output", "map_shape", "layer_names", "capture_fn")):
        raise ValueError(
            "`victim` must be a saliency victim (jaxadv.models.saliency.from_flax_saliency); got "
            f"{type(victim).__name__}. Classifiers are attacked with the classification attacks."
        )


@dataclasses.dataclass(frozen=True)
class SaliencyAttack(PerceptualPenalty, Attack):
    """An :class:`Attack` on a saliency victim (module docstring).

    ``label``/``labels`` are the clean outputs (None: computed from the images), ``target``/
    ``targets`` the guide images (``input_shape``) or the guides' outputs (the output's shape).

    Besides :class:`Attack`'s:

    Attributes:
      layer: attack the named hidden layer instead of the map (feature space).
      threshold: untargeted success when the CC to the clean output falls below this.
      penalty: Eq. 1's ``L2``, a kind of :data:`jaxadv.image.PERCEPTUAL_DISTANCES` (None: none);
        its weight λ1 is ``hp.penalty``.
    """

    layer: str | None = None
    threshold: float = 0.5
    params_type: ClassVar[type] = SaliencyHParams
    hparam_spec: ClassVar[dict[str, Spec]] = SALIENCY_SPEC

    def __post_init__(self):
        super().__post_init__()
        if getattr(self.objective, "hot_cold", False) and not self.targeted:
            raise ValueError(
                "Hot&Cold pulls toward a guide: build it with `targeted=True`; got "
                "`targeted=False`."
            )

    def view(self, victim):
        """The victim whose output the attack works on: the map, or the named layer."""
        _check_saliency_victim(victim)
        if self.layer is None:
            return victim
        if self.layer not in victim.layer_names:
            raise ValueError(
                f"`layer` must name a hidden layer of the victim; got {self.layer!r}. Available "
                f"layers: {', '.join(victim.layer_names) or '(none)'}."
            )
        return victim.replace(apply_fn=_LayerApply(victim.capture_fn, self.layer))

    def _similarity(self, a: jax.Array, b: jax.Array) -> jax.Array:
        kind = self.objective.output
        if kind != FEATURES:
            a, b = to_saliency_map(a, kind), to_saliency_map(b, kind)
        return pearson(a, b)

    def success(self, out: jax.Array, clean: jax.Array, guide: jax.Array) -> jax.Array:
        if self.targeted:
            return self._similarity(out, guide) > self._similarity(out, clean)
        return self._similarity(out, clean) < self.threshold

    def program(self, victim, hp, x0, label, target):
        # The objective and the success rule read the output kind from the victim attacked.
        kind = FEATURES if self.layer is not None else victim.output
        resolved = dataclasses.replace(self, objective=self.objective._replace(output=kind))
        return Attack.program(resolved, self.view(victim), hp, x0, label, target)

    # -- references: clean outputs and guides ----------------------------------------------------

    def check_inputs(self, victim, images, labels, targets):
        """``(images, clean_outputs, guide_outputs)`` for a batch, validated."""
        view = self.view(victim)
        if not self.targeted and targets is not None:
            raise ValueError(
                "`targets` must be None for an untargeted saliency attack (it would be ignored); "
                "build it with `targeted=True` to follow guides."
            )
        _checks.check_batch_shape("images", jnp.shape(images), victim.input_shape)
        _checks.check_in_bounds("images", images, victim.bounds)
        images = jnp.asarray(images, jnp.float32)
        n = images.shape[0]
        out_shape = jax.eval_shape(view, jax.ShapeDtypeStruct(victim.input_shape, jnp.float32))
        out_shape = tuple(out_shape.shape)
        clean = view.batch(images) if labels is None else jnp.asarray(labels, jnp.float32)
        if clean.shape != (n,) + out_shape:
            raise ValueError(
                f"`labels` must be the clean outputs, of shape {(n,) + out_shape}, or None; got "
                f"{clean.shape}."
            )
        # NaN maps would make every loss and the success rule NaN: a silent failure.
        _checks.check_finite("labels (the clean outputs)" if labels is None else "labels", clean)
        if not self.targeted:
            return images, clean, clean
        if targets is None:
            raise ValueError("A targeted saliency attack needs `targets` (guide images); got None.")
        targets = jnp.asarray(targets, jnp.float32)
        if targets.shape == (n,) + victim.input_shape:
            _checks.check_in_bounds("targets", targets, victim.bounds)
            guides = view.batch(targets)
            _checks.check_finite("targets (the guides' outputs)", guides)
            return images, clean, guides
        if targets.shape != (n,) + out_shape:
            raise ValueError(
                f"`targets` must be guide images of shape {(n,) + victim.input_shape} or their "
                f"outputs of shape {(n,) + out_shape}; got {targets.shape}."
            )
        _checks.check_finite("targets", targets)
        return images, clean, targets

    def check_example(self, victim, x0, label, target):
        """ONE image ``x0``; ``label`` its clean output (None: computed), ``target`` the guide
        image or its output (targeted)."""
        _checks.check_example_shape("x0", jnp.shape(x0), victim.input_shape)
        batch = lambda a: None if a is None else jnp.asarray(a)[None]  # noqa: E731
        images, clean, guide = self.check_inputs(victim, batch(x0), batch(label), batch(target))
        return images[0], clean[0], guide[0]


def check_saliency_options(threshold: Any, feature_loss: str) -> None:
    """Validates the options every saliency attack factory takes."""
    _checks.check_choice("feature_loss", feature_loss, FEATURE_LOSSES)
    if not (isinstance(threshold, (int, float)) and -1.0 <= threshold <= 1.0):
        raise ValueError(f"`threshold` must be a CC value in [-1, 1]; got {threshold!r}.")


_DEFAULT_EPS = {"linf": 17 / 255, "l2": 2.0, "l1": 40.0}  # Table 2's ℓ∞ budget; others: scaled


def saliency_pgd(
    *,
    loss: str = "kl",
    norm: str = "linf",
    targeted: bool = False,
    layer: str | None = None,
    steps: int = 20,
    momentum: bool = False,
    random_start: bool = True,
    restarts: int = 1,
    threshold: float = 0.5,
    penalty: str = "none",
    feature_loss: str = "mse",
) -> SaliencyAttack:
    """PGD (or MI-FGSM with ``momentum=True``) against a saliency model, in image or feature space.

    Madry et al.'s projected steepest descent (sign steps for ℓ∞, normalised for ℓ2) on a
    saliency loss (module docstring); the default budget is ℓ∞ 17/255, the largest of Che et
    al.'s Table 2, with steps of ``eps/4`` (``eps/steps`` with momentum). The output kind (how a
    map becomes a saliency map) is read from the victim when the attack runs, so one attack
    serves any saliency victim.

    ``penalty``: Eq. 1's ``λ1·L2(x0, x)`` term, a kind of :data:`jaxadv.image.PERCEPTUAL_DISTANCES`
    or ``"none"``; λ1 = ``hp.penalty`` (default 1 when a kind is given). ``feature_loss``: the
    loss at ``layer`` (:data:`FEATURE_LOSSES`; ``loss`` is the image-space one).

    Args:
      loss: the image-space loss, one of :data:`SALIENCY_ATTACK_LOSSES` (``"kl"``: default).
      norm: the ball's norm, ``"linf"`` (default; eps 17/255), ``"l2"`` (2.0) or ``"l1"`` (40).
      targeted: pull the output toward the guides' (``targets``); else push it away from the
        clean output.
      layer: a named hidden layer of the victim to attack (feature space); None: the map.
      steps: gradient steps per run (20).
      momentum: MI-FGSM momentum (decay ``hp.decay``) with steps ``eps/steps``; else PGD steps
        of ``eps/4``.
      random_start: start each run from a random point of the ball (True).
      restarts: independent runs; the best is kept per example (1).
      threshold: untargeted success when the CC to the clean output falls below this (0.5).
      penalty: Eq. 1's perceptual term, a kind of :data:`jaxadv.image.PERCEPTUAL_DISTANCES`, or
        ``"none"`` (default).
      feature_loss: the loss at ``layer``, one of :data:`FEATURE_LOSSES` (``"mse"``: default).

    Returns:
      A :class:`SaliencyAttack` named ``saliency-<pgd|mi>-<norm>-<loss>[@<layer>]``.
    """
    _checks.check_choice("loss", loss, SALIENCY_ATTACK_LOSSES)
    _checks.check_choice("norm", norm, NORMS)
    _checks.check_choice("penalty", penalty, PERCEPTUAL_DISTANCES + ("none",))
    check_saliency_options(threshold, feature_loss)
    defaults = {"eps": _DEFAULT_EPS[norm], "penalty": 0.0 if penalty == "none" else 1.0}
    return SaliencyAttack(
        objective=SaliencyObjective(loss, targeted, feature_loss=feature_loss),
        step_rule=SteepestStep(norm, momentum=momentum),
        constraint=Ball(norm),
        steps=steps,
        targeted=targeted,
        random_start=random_start,
        restarts=restarts,
        defaults=tuple(sorted(defaults.items())),
        rel_step_size=1.0 / steps if momentum else 0.25,
        layer=layer,
        threshold=float(threshold),
        penalty=None if penalty == "none" else penalty,
        name=f"saliency-{'mi' if momentum else 'pgd'}-{norm}-{loss}"
        + (f"@{layer}" if layer else ""),
    )


def clean_outputs(attack: SaliencyAttack, victim, images) -> jax.Array:
    """The victim's outputs the attack compares against (maps, or the layer's activations).

    Args:
      attack: the saliency attack; its ``layer`` picks the map or a hidden layer.
      victim: the saliency victim.
      images: a batch of images, ``[batch, *victim.input_shape]``.

    Returns:
      The float32 outputs of the attack's view of ``victim``, one per image: what an untargeted
      attack takes as ``labels``.
    """
    return attack.view(victim).batch(jnp.asarray(images, jnp.float32))
