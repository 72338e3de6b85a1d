"""The Motion-Excited Sampler (ME-Sampler): a black-box video attack with a "sparked" noise prior.

Zhang, Zhu, Zhu & Yang, "Motion-Excited Sampler: Video Adversarial Attack with Sparked Prior",
ECCV 2020 (thesis chapter 3; published code xiaofanustc/ME-Sampler, ``blackbox_attack.py``).

The attack is a bandits-style query attack (Ilyas et al., ICLR 2019) on ONE video ``(T, H, W, C)``
whose exploration noise follows the video's motion. Per iteration, with ``v`` the learned prior
(zero at first), ``n`` a noise draw, η the finite-difference step (``hp.fd_step``), δ the
exploration (``hp.exploration``) and ``lr`` the prior's learning rate (``hp.prior_lr``)::

    q1, q2 = v + δ n, v − δ n
    Δ = [L(θ + η q1/‖q1‖) − L(θ + η q2/‖q2‖)] / (η δ) · n      (the code: (l1−l2)/(η δ²) · δn)
    v ← v + lr Δ;   θ ← Π_ε(θ − h sign(v))                     (ℓ∞ ball, pixel box)

3 queries per iteration (the two probes and ``L(θ)`` at the iterate) plus the final evaluation;
an example stops at its first success. ``L`` is minimised (jaxadv's convention; the prior tracks
the gradient of the minimised loss, so the step needs no sign flip).

The noise (``sampler``):

* ``"sparked"`` (the paper's): ONE Gaussian noise frame ``z ~ N(0, I)`` of shape ``(H, W, C)``,
  repeated over the T frames and warped frame by frame by the clean video's motion field:
  ``n[t] = warp(z, motion[t])`` (:func:`jaxadv.image.warp`). The motion is computed from the
  clean video INSIDE the program (``motion="flow"``: pyramidal Lucas–Kanade;
  ``"difference"``: the frame-difference normal flow; ``"vectors"``: codec-style block motion
  vectors, :func:`jaxadv.image.block_motion_vectors`; ``"codec"``: a real MPEG-4 encoder's
  vectors, :func:`jaxadv.image.codec_motion_vectors`, through PyAV when it is installed; or any
  ``video -> (T, H, W, 2)`` function), once per run.
* ``"single"``: the same noise frame repeated, no motion (Table 3.3's "one-noise" baseline).
* ``"multi"``: independent noise per frame (Table 3.3's "multi-noise" baseline).

Paper and published code differ in two places, both options here:

* The code warps with ``grid_sample`` reading the (min-shifted, rescaled) motion vectors as
  ABSOLUTE sampling coordinates, not as displacements from the pixel grid; the default is the
  paper's warp by the motion (``coordinates="displacement"``), ``coordinates="absolute"`` the code's.
* The code's loss ("CWLoss") is ``1 − (second-highest probability)``, whatever the class
  (``loss="published"``, untargeted only). The losses Table 3.5 compares are implemented:
  cross-entropy (``"ce"``), the C&W margin on probabilities (``"probability"``, the default) and
  on logits (``"logits"``). The thesis text behind Table 3.5 is not among the papers here (only
  its caption is); the default follows the code's loss being computed on probabilities.

The code also refreshes its MPEG-4 motion vectors every 10 iterations from a codec (here
``motion="codec"`` encodes the clean clip once per run, without B-frames, and reads its vectors
back; they are not refreshed) and averages logits over clips (the victim's
business).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._query import QueryAttack
from jaxadv.attacks._recipes import Ball, SteepestStep
from jaxadv.gradients import probe_losses
from jaxadv.image import (
    WARP_COORDINATES,
    check_video,
    block_motion_vectors,
    codec_motion_vectors,
    frame_difference_motion,
    optical_flow,
    warp_video,
)
from jaxadv.losses import classification_objective, cw_margin

SAMPLERS = ("sparked", "single", "multi")
MOTION_SOURCES = ("flow", "difference", "vectors", "codec")
ME_LOSSES = ("probability", "logits", "ce", "published")

# The published settings (blackbox_attack.py): ε, image step h, exploration δ, η, prior lr, budget.
ME_DEFAULTS = dict(eps=0.03, step=0.025, exploration=0.1, fd_step=0.1, prior_lr=0.1)
ME_MAX_QUERIES = 60_000


def sparked_noise(frame: jax.Array, motion: jax.Array, *, coordinates: str = "displacement"):
    """One noise ``frame`` (H, W, C) repeated over the T frames of ``motion`` (T, H, W, 2) and
    warped frame by frame: ``n[t] = warp(frame, motion[t])``.

    Args:
      frame: the noise frame, ``(H, W, C)``.
      motion: the motion field, ``(T, H, W, 2)``: one field per frame.
      coordinates: how the warp reads the motion: ``"displacement"`` (default) or
        ``"absolute"`` (the published code's ``grid_sample`` reading, as coordinates).

    Returns:
      The warped noise video, ``(T, H, W, C)``.
    """
    repeated = jnp.broadcast_to(frame, motion.shape[:1] + frame.shape)
    return warp_video(repeated, motion, coordinates=coordinates)


def _unit(q: jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(q)))
    return q / jnp.where(norm > 0, norm, 1.0)


@dataclasses.dataclass(frozen=True)
class MotionBandits:
    """The ME-Sampler's gradient oracle: a bandits prior explored with motion-shaped noise.

    Attributes:
      sampler: ``"sparked"``, ``"single"`` or ``"multi"`` (module docstring). Static.
      coordinates: how the warp reads the motion (``"displacement"`` or the code's
        ``"absolute"``). Static.
      motion: a fixed motion field ``(T, H, W, 2)`` (``with_motion``), or None.
      source, video: the attack's way (``with_motion_source``): ``source(video)`` is the clean
        video's field, computed ONCE per run by :meth:`init` and carried in the state (the
        program is rebuilt for every compiled chunk of a long run; the flow is not).
      fd_eta, exploration, prior_lr: η, δ and the prior's learning rate (``hp.fd_step``,
        ``hp.exploration``, ``hp.prior_lr``).
    """

    sampler: str = "sparked"
    coordinates: str = "displacement"
    motion: Any = None
    source: Any = None
    video: Any = None
    fd_eta: float = ME_DEFAULTS["fd_step"]
    exploration: float = ME_DEFAULTS["exploration"]
    prior_lr: float = ME_DEFAULTS["prior_lr"]
    forward_query = 1

    def __post_init__(self):
        _checks.check_choice("sampler", self.sampler, SAMPLERS)
        _checks.check_choice("coordinates", self.coordinates, WARP_COORDINATES)

    @property
    def queries_per_call(self) -> int:
        return 2 + self.forward_query

    def with_params(self, hp) -> MotionBandits:
        return dataclasses.replace(
            self, fd_eta=hp.fd_step, exploration=hp.exploration, prior_lr=hp.prior_lr
        )

    def with_motion(self, motion) -> MotionBandits:
        return dataclasses.replace(self, motion=motion)

    def with_motion_source(self, source: Callable, video: jax.Array) -> MotionBandits:
        return dataclasses.replace(self, source=source, video=video)

    def init(self, theta):
        """``(prior, motion)``: a zero prior, and the sparked sampler's motion field."""
        motion = self.motion
        if self.sampler == "sparked" and motion is None and self.source is not None:
            motion = jax.lax.stop_gradient(self.source(self.video).astype(theta.dtype))
        return jnp.zeros_like(theta), motion

    def noise(self, key, shape, dtype, motion=None) -> jax.Array:
        """One draw of the exploration noise for a video of ``shape`` (T, H, W, C), sparked by
        ``motion`` (default: the oracle's fixed field)."""
        motion = self.motion if motion is None else motion
        if self.sampler == "multi":
            return jax.random.normal(key, shape, dtype)
        frame = jax.random.normal(key, shape[1:], dtype)
        if self.sampler == "single":
            return jnp.broadcast_to(frame, shape)
        if motion is None:
            raise ValueError(
                "The sparked sampler needs the video's motion (`with_motion` or "
                "`with_motion_source`)."
            )
        return sparked_noise(frame, motion, coordinates=self.coordinates)

    def __call__(self, loss_fn, theta, key, state):
        prior, motion = state
        (loss, aux) = loss_fn(theta)
        n = self.noise(key, theta.shape, theta.dtype, motion)
        delta = jnp.asarray(self.exploration, theta.dtype)
        q1, q2 = _unit(prior + delta * n), _unit(prior - delta * n)
        l1, l2 = probe_losses(loss_fn, theta + self.fd_eta * jnp.stack([q1, q2]))
        prior = prior + self.prior_lr * (l1 - l2) / (self.fd_eta * delta) * n
        queries = jnp.asarray(self.queries_per_call, jnp.int32)
        return (loss, aux), prior, (prior, motion), queries


def motion_function(motion) -> Callable[[jax.Array], jax.Array]:
    """The ``video -> (T, H, W, 2)`` map named by ``motion`` (a name or the function itself)."""
    if callable(motion):
        return motion
    _checks.check_choice("motion", motion, MOTION_SOURCES)
    if motion == "vectors":  # encoder-style block matching, MPEG's 16-pixel macroblocks
        return block_motion_vectors
    if motion == "codec":  # a real MPEG-4 encoder's vectors (PyAV, optional)
        return codec_motion_vectors
    return optical_flow if motion == "flow" else frame_difference_motion


@dataclasses.dataclass(frozen=True)
class MESampler(QueryAttack):
    """The ME-Sampler attack (module docstring): a :class:`QueryAttack` whose oracle is
    :class:`MotionBandits`, fed with the motion of the clean video of each run.

    Attributes: those of :class:`QueryAttack`, plus ``motion``: ``"flow"``, ``"difference"`` or a
    ``video -> (T, H, W, 2)`` function (static; read only by the ``"sparked"`` sampler).
    """

    motion: Any = "flow"

    def __post_init__(self):
        super().__post_init__()
        motion_function(self.motion)  # validates the name

    def check_victim(self, victim, hp) -> None:
        super().check_victim(victim, hp)
        frames = 2 if self.oracle.sampler == "sparked" else 1
        shape = jax.ShapeDtypeStruct(tuple(victim.input_shape), jnp.float32)
        check_video(shape, name="victim.input_shape", min_frames=frames)

    def oracle_for(self, victim, hp, x0, label, target):
        oracle = super().oracle_for(victim, hp, x0, label, target)
        if oracle.sampler != "sparked":
            return oracle
        check_video(x0, name="x0")
        source = motion_function(self.motion)
        want = tuple(x0.shape[:3]) + (2,)
        got = tuple(jax.eval_shape(source, x0).shape)  # shapes only: the field comes in init
        if got != want:
            raise ValueError(
                f"`motion` must map a video of shape {tuple(x0.shape)} to a field of shape "
                f"{want}; got {got}."
            )
        return oracle.with_motion_source(source, x0)


@dataclasses.dataclass(frozen=True)
class MEObjective:
    """A loss of :data:`ME_LOSSES` as an objective ``(logits, label, target, hp) -> scalar`` to
    minimise (hashable, so equal attacks compare equal). ``"probability"``: the C&W margin on
    softmax probabilities (reads ``hp.kappa``); ``"published"``: the code's "CWLoss",
    ``1 − (second-highest probability)``; ``"logits"``/``"ce"``: :mod:`jaxadv.losses`."""

    loss: str
    targeted: bool

    def __call__(self, logits, label, target, hp):
        if self.loss == "published":
            return 1.0 - jax.lax.top_k(jax.nn.softmax(logits), 2)[0][1]
        if self.loss == "probability":
            cls = target if self.targeted else label
            kappa = getattr(hp, "kappa", 0.0)
            return cw_margin(jax.nn.softmax(logits), cls, kappa=kappa, targeted=self.targeted)
        name = "cw" if self.loss == "logits" else "ce"
        return classification_objective(name, targeted=self.targeted)(logits, label, target, hp)


def me_objective(loss: str, *, targeted: bool) -> MEObjective:
    """The objective (minimised) of a loss of :data:`ME_LOSSES` (module docstring)."""
    _checks.check_choice("loss", loss, ME_LOSSES)
    if loss == "published" and targeted:
        raise ValueError(
            "`loss='published'` (the code's 1 − second-highest probability) is untargeted "
            "only; use 'probability', 'logits' or 'ce' for a targeted attack."
        )
    return MEObjective(loss, bool(targeted))


def me_sampler(
    *,
    sampler: str = "sparked",
    motion: Any = "flow",
    targeted: bool = False,
    loss: str = "probability",
    max_queries: int = ME_MAX_QUERIES,
    coordinates: str = "displacement",
    early_stop: bool = True,
) -> MESampler:
    """The Motion-Excited Sampler attack on videos (Zhang, Zhu, Zhu & Yang, ECCV 2020).

    A bandits-style ℓ∞ query attack whose exploration noise is one Gaussian frame warped by the
    clean video's motion over all frames (module docstring for the update, the samplers and how
    the paper and the published code differ). Examples are videos ``(T, H, W, C)`` in the
    victim's box; the victim is any classifier with that ``input_shape``.

    Args:
      sampler: ``"sparked"`` (the paper's), ``"single"`` (one noise frame, no motion) or
        ``"multi"`` (independent noise per frame): Table 3.3's comparison.
      motion: the motion map of the sparked sampler, computed from the clean video in the
        program: ``"flow"`` (:func:`jaxadv.image.optical_flow`), ``"difference"``
        (:func:`jaxadv.image.frame_difference_motion`), ``"vectors"``
        (:func:`jaxadv.image.block_motion_vectors`, 16-pixel blocks), ``"codec"``
        (:func:`jaxadv.image.codec_motion_vectors`, MPEG-4 through PyAV) or a function ``video ->
        (T, H, W, 2)`` (e.g. ``functools.partial(optical_flow, levels=2)``).
      targeted: move towards ``target`` (the paper's experiments are untargeted).
      loss: ``"probability"`` (C&W margin on softmax probabilities, default), ``"logits"`` (C&W
        margin on logits), ``"ce"`` (cross-entropy) or ``"published"`` (the code's
        1 − second-highest probability; untargeted).
      max_queries: the per-video budget, the final evaluation included (the code's 60,000).
      coordinates: ``"displacement"`` (warp by the motion; default) or ``"absolute"`` (the code's
        ``grid_sample`` reading of the motion as coordinates).
      early_stop: stop a video at its first success (as the paper counts queries).

    Defaults (``attack.hparams()``) are the published ones for frames in [0, 1]: ε = 0.03, step
    h = 0.025 (``rel_step_size`` 0.025/0.03), η = 0.1 (``fd_step``), δ = 0.1 (``exploration``),
    prior lr 0.1. The query count of a video is 3 per iteration plus the final evaluation.

    Returns:
      A :class:`MESampler` (a :class:`QueryAttack`) named ``me-sampler-<sampler>``: ℓ∞ ball,
      steepest (sign) steps, oracle :class:`MotionBandits`.
    """
    oracle = MotionBandits(sampler=sampler, coordinates=coordinates)
    return MESampler(
        objective=me_objective(loss, targeted=targeted),
        step_rule=SteepestStep("linf"),
        constraint=Ball("linf"),
        oracle=oracle,
        max_queries=max_queries,
        targeted=targeted,
        early_stop=early_stop,
        defaults=tuple((k, ME_DEFAULTS[k]) for k in ("eps", "fd_step", "exploration", "prior_lr")),
        rel_step_size=ME_DEFAULTS["step"] / ME_DEFAULTS["eps"],
        name=f"me-sampler-{sampler}",
        motion=motion,
    )
