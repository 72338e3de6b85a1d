"""The partially-white-box subspace attack, which also crafts a gradient prior.

Che et al., "Boosting black-box attack by using partially-white-box subspace gradient priors
against deep saliency models" (the companion of SMBEA, AAAI 2020; their Algorithm 1). Only a
hidden layer ``i`` of a substitute model ``F`` is needed. Each step:

1. sample ``p`` channels of layer ``i`` (the same indices for the adversarial example and the
   guide): ``S_i(x) = D_i(x)[..., idx]``;
2. normalise each sampled channel over its spatial positions (``normalization``);
3. ``g_t = ∇ L3[S_i(x), S_i(r)] + λ1·‖x − x0‖∞`` (``r`` the guide, targeted; untargeted: the
   clean image and ``−L3``, still minimised);
4. Adam on the ℓ1-normalised gradient ``ĝ = g/‖g‖₁``: ``m_t = μ1·m + (1 − μ1)·ĝ``,
   ``v_t = μ2·v + (1 − μ2)·ĝ²``, bias corrections, ``step = m̂/√(v̂ + ε)`` (ε inside the root, as
   this algorithm writes it);
5. ``x ← Clip(x − α·step)`` (the budget ball and the pixel box) and the gradient prior
   ``u ← u + α·step``.

The prior ``u`` (``result.extras["prior"]``, shape of the input, float32) is the sum of the
unprojected steps: a direction along which the objective *increases* (``x0 − u`` is where the
unconstrained descent would have gone). A query-based attack consumes it as the paper's
Algorithm 2 does, probing ``g̃ ± τ·u`` (the separate issue).

Sampling: ``resample=False`` draws the ``p`` channels once per run from its key (a fixed
subspace, the reading under which ``u`` is one subspace's prior); ``resample=True`` draws afresh
at every step, as step 4 of the algorithm sits inside its loop. The "sampling strategies" and
"normalisations" of their Fig. 4 are not specified in the text; ours are uniform sampling
without replacement and ``"none"``, ``"l2"``, ``"softmax"``, ``"standardize"`` per channel.
The paper stops when the distance exceeds the budget; here the iterate is projected (ℓ∞ by
default) so the budget holds exactly.

Eq. 3, the ensemble objective ``L3[Σ_n ω_n·S_{n,i}(x), Σ_n ω_n·S_{n,i}(r)] + λ1·L2``: pass an
:class:`~jaxadv.models.Ensemble` of substitutes built with ``layers=`` (every member with a layer
at the same ``layer``). Its members' activations are brought to one shape by the ensemble's
strategy (SMBEA's Fig. 2; ``"cu_bi_sn"`` also normalises each member's channels by a spatial
softmax, the per-member normalisation of Eq. 3) and weighted by its ω; the ``p`` channels are
sampled from that common shape, the same indices for every member (sampling is linear, so this is
``Σ_n ω_n·S_{n,i}``), and ``normalization`` applies to the fused maps (``"none"`` for Eq. 3 as
written). Success is judged on the ensemble's map.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program
from jaxadv.attacks._saliency import pearson
from jaxadv.attacks._ensembles import FEATURE_LOSSES, feature_loss
from jaxadv.constraints import NORMS, intersect, norm_ball, pixel_box
from jaxadv.losses import to_saliency_map
from jaxadv.models import Ensemble
from jaxadv.results import AttackResult, perturbation_norms
from jaxadv.transforms import (
    first_momentum,
    normalize_gradient,
    scale_by_momenta,
    second_momentum,
)

NORMALIZATIONS = ("none", "l2", "softmax", "standardize")


class SubspaceHParams(NamedTuple):
    """The subspace attack's numbers (float32 leaves, sweepable).

    Attributes:
      eps: the budget ``T1`` (radius of the norm ball).
      step_size: α1. With a relative step it is 0 and α1 is derived in the trace:
        ``step_size + rel_step_size · eps`` (the default: ``eps/4``).
      mu1, mu2: the Adam decays μ1, μ2 ∈ [0, 1].
      smoothing: ε (inside the root).
      penalty: λ1 of ``λ1·‖x − x0‖∞``.
      rel_step_size: α1 as a multiple of ``eps`` (0: ``step_size`` is absolute).
    """

    eps: jax.Array
    step_size: jax.Array
    mu1: jax.Array
    mu2: jax.Array
    smoothing: jax.Array
    penalty: jax.Array
    rel_step_size: jax.Array = 0.0


HPARAM_SPEC = {
    "eps": Spec(17 / 255),
    "step_size": Spec(None),  # default: rel_step_size = 0.25, i.e. eps/4
    "mu1": Spec(0.9, "unit"),
    "mu2": Spec(0.999, "unit"),
    "smoothing": Spec(1e-20),
    "penalty": Spec(0.0),
    "rel_step_size": Spec(0.0),
}


class _Carry(NamedTuple):
    t: jax.Array
    delta: jax.Array
    opt_state: Any
    prior: jax.Array
    fixed: jax.Array  # the channels drawn once (used unless ``resample``)
    step_key: jax.Array
    channels: jax.Array  # i32[steps, p]: the channels of each step (``resample``)


def _normalise(s: jax.Array, kind: str) -> jax.Array:
    """Per-channel normalisation of ``[h, w, p]`` sampled maps over their spatial positions."""
    if kind == "none":
        return s
    flat = s.reshape(-1, s.shape[-1])
    if kind == "softmax":
        flat = jax.nn.softmax(flat, axis=0)
    elif kind == "l2":
        flat = flat / (jnp.sqrt(jnp.sum(flat * flat, axis=0, keepdims=True)) + 1e-12)
    else:
        centred = flat - jnp.mean(flat, axis=0, keepdims=True)
        flat = centred / jnp.sqrt(jnp.mean(centred**2, axis=0, keepdims=True) + 1e-12)
    return flat.reshape(s.shape)


def _layer_channels(victim: Any, layer: str) -> int:
    if isinstance(victim, Ensemble):  # Eq. 3: the channels of the members' unified features
        layers = {name for name in victim.layers if name is not None}
        if layers != {layer}:
            raise ValueError(
                f"`layer` must be the hidden layer of every ensemble member that has one (Eq. 3's "
                f"i; build the ensemble with `layers=`); got {layer!r}, the members' layers are "
                f"{victim.layers}."
            )
        return int(victim.feature_shape[-1])
    names = tuple(getattr(victim, "layer_names", ()))
    if layer not in names:
        raise ValueError(
            f"`layer` must name a hidden layer of the victim; got {layer!r}. Available layers: "
            f"{', '.join(names) or '(none: the victim exposes no layers)'}."
        )
    x = jax.ShapeDtypeStruct((1,) + tuple(victim.input_shape), jnp.float32)
    shape = jax.eval_shape(lambda x: victim.capture_fn(victim.variables, x), x)[layer].shape
    return int(shape[-1]) if len(shape) >= 4 else 1


@dataclasses.dataclass(frozen=True)
class SubspaceAttack(AttackBase):
    """The subspace attack's static structure (module docstring).

    Called as every attack, ``attack(victim, hp, x0, label, key, target=None)``: ``victim`` the
    substitute (a saliency victim, or any victim with ``capture_fn``/``layer_names``), ``label``
    unused (None), ``target`` the guide image (required when targeted). The result is an
    :class:`~jaxadv.attacks.AttackResult`: ``loss`` the subspace objective at ``x_adv`` (on the
    last step's channels), ``logits`` the substitute's map at ``x_adv``, ``trace`` ``f32[steps]``
    the objective at each step's iterate, ``steps = queries`` the gradient evaluations; its
    ``extras`` hold ``prior``, the gradient prior ``u_X = Σ_t α·m̂_t/√(v̂_t + ε)``
    (``f32[input_shape]``), and ``channels``, the sampled channel indices (``i32[p]``;
    ``i32[steps, p]`` with ``resample``).

    ``success`` is judged on the substitute's map as :class:`~jaxadv.attacks.SaliencyAttack`
    judges it, on the Pearson correlation (CC) of the saliency maps: untargeted, CC to the clean
    map below ``threshold``; targeted, the map correlates more with the guide's than with the
    clean one.

    Attributes:
      layer: the hidden layer ``i`` (a name of the victim's ``layer_names``).
      channels: ``p``, how many of its channels are sampled.
      loss: L3, one of ``"mse"``, ``"l1"``, ``"cc"``, ``"kl"`` (``"kl"`` wants ``"softmax"``).
      normalization: one of :data:`NORMALIZATIONS`.
      targeted: pull toward the guide (True) or push away from the clean image (False).
      steps: X1.
      norm: the budget's norm (ℓ∞ in the paper).
      resample: draw fresh channels at every step.
      random_start: start from a random point of the budget (default: untargeted only — the
        untargeted objective has a zero gradient at the clean image).
      threshold: untargeted success when the CC to the clean map falls below this.
      rel_step_size: the default α1 as a multiple of ``eps`` (``eps/4``).
    """

    layer: str
    channels: int
    loss: str = "mse"
    normalization: str = "standardize"
    targeted: bool = True
    steps: int = 10
    norm: str = "linf"
    resample: bool = False
    random_start: bool | None = None
    threshold: float = 0.5
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = 0.25
    name: str = "subspace"
    params_type: ClassVar[type] = SubspaceHParams
    hparam_spec: ClassVar[dict[str, Spec]] = HPARAM_SPEC

    def __post_init__(self):
        _checks.check_positive_int("channels", self.channels)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("loss", self.loss, FEATURE_LOSSES)
        _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)
        _checks.check_choice("norm", self.norm, NORMS)
        if not (isinstance(self.threshold, (int, float)) and -1.0 <= self.threshold <= 1.0):
            raise ValueError(f"`threshold` must be a CC value in [-1, 1]; got {self.threshold!r}.")

    @property
    def length(self) -> int:
        return self.steps

    def check_victim(self, victim: Any, hp: Any = None) -> None:
        """Raises a ValueError for an unknown layer or ``p`` above its channel count."""
        available = _layer_channels(victim, self.layer)
        if self.channels > available:
            raise ValueError(
                f"`channels` (p) must be at most the {available} channels of layer "
                f"{self.layer!r}; got {self.channels}."
            )

    # -- traced ----------------------------------------------------------------------------------

    def subspace(self, victim, x, idx) -> jax.Array:
        """``S_i(x)``: the sampled, normalised channels ``[h, w, p]`` of ONE input (of an
        ensemble: of ``Σ_n ω_n·S(D_n(x))``, Eq. 3)."""
        if isinstance(victim, Ensemble):
            a = victim.features(x)
        else:
            a = victim.capture_fn(victim.variables, x[None])[self.layer][0]
        a = a[..., None] if a.ndim == 2 else a
        return _normalise(jnp.take(a, idx, axis=-1), self.normalization)

    def program(self, victim, hp, x0, label, target) -> Program:
        """The attack on one example (``target``: the guide image, or ``x0`` untargeted)."""
        low, high = victim.bounds
        c = _layer_channels(victim, self.layer)
        constraint = intersect(norm_ball(self.norm, hp.eps), pixel_box(low, high))
        tx = optax.chain(
            normalize_gradient("l1"),
            scale_by_momenta(
                first_momentum(hp.mu1, ema=True, debias=True),
                second_momentum("plus", hp.mu2, debias=True),
                eps_root=hp.smoothing,
            ),
            optax.scale(-hp.step_size),
        )
        reference = target if self.targeted else x0

        def sample(k):
            return jnp.sort(jax.random.permutation(k, c)[: self.channels]).astype(jnp.int32)

        def objective(delta, idx):
            x = x0 + delta
            value = feature_loss(
                self.loss, self.subspace(victim, x, idx), self.subspace(victim, reference, idx)
            )
            value = value if self.targeted else -value
            return value + hp.penalty * jnp.max(jnp.abs(delta))

        random_start = (not self.targeted) if self.random_start is None else self.random_start

        def init(key):
            sample_key, start_key, step_key = jax.random.split(key, 3)
            delta = constraint.sample(start_key, x0) if random_start else jnp.zeros_like(x0)
            delta = constraint.project(delta, x0)
            fixed = sample(sample_key)
            return _Carry(
                t=jnp.zeros((), jnp.int32),
                delta=delta,
                opt_state=tx.init(delta),
                prior=jnp.zeros_like(x0),
                fixed=fixed,
                step_key=step_key,
                channels=jnp.zeros((self.steps if self.resample else 0, self.channels), jnp.int32),
            )

        def step(carry: _Carry):
            if self.resample:
                idx = sample(jax.random.fold_in(carry.step_key, carry.t))
                channels = carry.channels.at[carry.t].set(idx)
            else:
                idx, channels = carry.fixed, carry.channels
            value, grad = jax.value_and_grad(objective)(carry.delta, idx)
            updates, opt_state = tx.update(grad, carry.opt_state, carry.delta)
            delta = constraint.project(carry.delta + updates, x0)
            new = carry._replace(
                t=carry.t + 1,
                delta=delta,
                opt_state=opt_state,
                prior=carry.prior - updates,
                channels=channels,
            )
            return new, value

        def finish(carry: _Carry, trace) -> AttackResult:
            channels = carry.channels if self.resample else carry.fixed
            last = channels[-1] if self.resample else channels
            x_adv = jnp.clip(x0 + carry.delta, low, high)
            out = victim(x_adv)
            total = jnp.asarray(self.steps, jnp.int32)
            loss = objective(carry.delta, last)
            finite = jnp.all(jnp.isfinite(out)) & jnp.isfinite(loss)
            return AttackResult(
                x_adv=x_adv,
                delta=carry.delta,
                success=self._success(victim, out, x0, target) & finite,
                finite=finite,
                loss=loss,
                logits=out,
                steps=total,
                queries=total,
                trace=trace,
                extras=dict(prior=carry.prior, channels=channels),
                **perturbation_norms(carry.delta),
            )

        return Program(init=init, step=step, finish=finish, length=self.steps)

    def _success(self, victim, out, x0, guide) -> jax.Array:
        kind = victim.map_kind if isinstance(victim, Ensemble) else getattr(victim, "output", None)

        def similarity(a, b):
            if kind is not None:
                a, b = to_saliency_map(a, kind), to_saliency_map(b, kind)
            return pearson(a, b)

        clean = victim(x0)
        if self.targeted:
            return similarity(out, victim(guide)) > similarity(out, clean)
        return similarity(out, clean) < self.threshold

    def clean_correct(self, victim, x0, label) -> jax.Array:
        """No classes: every clean example counts (True)."""
        return jnp.ones((), bool)

    # -- inputs ----------------------------------------------------------------------------------

    def _check(self, victim, x, guide, lead):
        shape = lead + tuple(victim.input_shape)
        if tuple(jnp.shape(x)) != shape:
            raise ValueError(f"the input(s) must have shape {shape}; got {tuple(jnp.shape(x))}.")
        _checks.check_in_bounds("x0" if not lead else "images", x, victim.bounds)
        if not self.targeted and guide is not None:
            raise ValueError(
                f"`target{'s' if lead else ''}` must be None for an untargeted subspace attack "
                "(it would be ignored); build it with `targeted=True` to follow a guide."
            )
        if self.targeted:
            if guide is None or tuple(jnp.shape(guide)) != shape:
                got = None if guide is None else tuple(jnp.shape(guide))
                raise ValueError(
                    f"`target{'s' if lead else ''}` must be guide image(s) of shape {shape}; got "
                    f"{got}."
                )
            _checks.check_in_bounds("guide", guide, victim.bounds)
        x = jnp.asarray(x, jnp.float32)
        guide = x if guide is None else jnp.asarray(guide, jnp.float32)
        return x, jnp.zeros(lead, jnp.int32), guide

    def check_inputs(self, victim, images, labels, targets):
        """A batch: ``labels`` unused (None), ``targets`` the guide images (targeted)."""
        b = jnp.shape(images)[0] if jnp.ndim(images) else 0
        return self._check(victim, images, targets, (b,))

    def check_example(self, victim, x0, label, target):
        """ONE image: ``label`` unused (None), ``target`` the guide image (targeted)."""
        return self._check(victim, x0, target, ())


def subspace_attack(
    layer: str,
    channels: int,
    *,
    loss: str = "mse",
    normalization: str = "standardize",
    targeted: bool = True,
    steps: int = 10,
    norm: str = "linf",
    resample: bool = False,
) -> SubspaceAttack:
    """The partially-white-box subspace attack (module docstring) on ``channels`` (p) channels
    of hidden layer ``layer`` of a substitute model; returns its :class:`SubspaceAttack`.

    Args:
      layer: the hidden layer ``i`` (a name of the victim's ``layer_names``).
      channels: ``p``, how many of its channels are sampled.
      loss: L3, one of ``"mse"`` (default), ``"l1"``, ``"cc"``, ``"kl"`` (``"kl"`` wants
        ``normalization="softmax"``).
      normalization: one of :data:`NORMALIZATIONS` (``"standardize"``: default).
      targeted: pull toward the guide (True; default) or push away from the clean image.
      steps: X1, the gradient steps (10).
      norm: the budget's norm (``"linf"``, the paper's; default).
      resample: draw fresh channels at every step (False: one draw per run).

    Returns:
      A :class:`SubspaceAttack` (random start for untargeted attacks only).
    """
    return SubspaceAttack(
        layer=layer,
        channels=channels,
        loss=loss,
        normalization=normalization,
        targeted=targeted,
        steps=steps,
        norm=norm,
        resample=resample,
    )
