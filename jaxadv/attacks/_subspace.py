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

The prior ``u`` (:attr:`SubspaceResult.prior`, shape of the input, float32) is the sum of the
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
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxadv import _checks, _compile
from jaxadv.attacks._smbea import FEATURE_LOSSES, _feature_loss
from jaxadv.constraints import NORMS, intersect, norm_ball, pixel_box
from jaxadv.transforms import (
    check_unit_interval,
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
      step_size: α1.
      mu1, mu2: the Adam decays μ1, μ2 ∈ [0, 1].
      smoothing: ε (inside the root).
      penalty: λ1 of ``λ1·‖x − x0‖∞``.
    """

    eps: jax.Array
    step_size: jax.Array
    mu1: jax.Array
    mu2: jax.Array
    smoothing: jax.Array
    penalty: jax.Array


_DEFAULTS = dict(eps=17 / 255, mu1=0.9, mu2=0.999, smoothing=1e-20, penalty=0.0)


class SubspaceResult(NamedTuple):
    """The subspace attack's outcome on ONE example (``vmap`` adds leading axes).

    Attributes:
      x_adv: the adversarial example (inside the budget and the pixel box).
      delta: ``x_adv − x0``.
      prior: the gradient prior ``u_X = Σ_t α·m̂_t/√(v̂_t + ε)``, ``f32[input_shape]``.
      channels: the sampled channel indices, ``i32[p]`` (``i32[steps, p]`` with ``resample``).
      trace: ``f32[steps]``, the subspace objective at each step's iterate.
      linf: ``‖delta‖∞``.
    """

    x_adv: jax.Array
    delta: jax.Array
    prior: jax.Array
    channels: jax.Array
    trace: jax.Array
    linf: jax.Array


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
class SubspaceAttack:
    """The subspace attack's static structure (module docstring).

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

    def __post_init__(self):
        _checks.check_positive_int("channels", self.channels)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("loss", self.loss, FEATURE_LOSSES)
        _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)
        _checks.check_choice("norm", self.norm, NORMS)

    def hparams(self, **values: Any) -> SubspaceHParams:
        """Defaults (``eps`` 17/255, α = ``eps/4``, μ1 0.9, μ2 0.999, ε 1e-20, λ1 0), overridden."""
        unknown = set(values) - set(SubspaceHParams._fields)
        if unknown:
            raise ValueError(
                f"Unknown hyper-parameter(s) {sorted(unknown)}; expected some of "
                f"{SubspaceHParams._fields}."
            )
        merged = {**_DEFAULTS, **values}
        merged.setdefault("step_size", jnp.asarray(merged["eps"], jnp.float32) / 4)
        hp = SubspaceHParams(
            **{k: jnp.asarray(merged[k], jnp.float32) for k in SubspaceHParams._fields}
        )
        self.check_params(hp)
        return hp

    def check_params(self, hp: Any) -> None:
        if not isinstance(hp, SubspaceHParams):
            raise ValueError(
                f"`hp` must be a SubspaceHParams (from `attack.hparams(...)`); got "
                f"{type(hp).__name__}."
            )
        for name in ("eps", "step_size", "smoothing", "penalty"):
            _checks.check_nonnegative(f"hp.{name}", getattr(hp, name))
        check_unit_interval("hp.mu1", hp.mu1)
        check_unit_interval("hp.mu2", hp.mu2)

    def check_victim(self, victim: Any) -> None:
        """Raises a ValueError for an unknown layer or ``p`` above its channel count."""
        available = _layer_channels(victim, self.layer)
        if self.channels > available:
            raise ValueError(
                f"`channels` (p) must be at most the {available} channels of layer "
                f"{self.layer!r}; got {self.channels}."
            )

    # -- traced ----------------------------------------------------------------------------------

    def subspace(self, victim, x, idx) -> jax.Array:
        """``S_i(x)``: the sampled, normalised channels ``[h, w, p]`` of ONE input."""
        a = victim.capture_fn(victim.variables, x[None])[self.layer][0]
        a = a[..., None] if a.ndim == 2 else a
        return _normalise(jnp.take(a, idx, axis=-1), self.normalization)

    def run(self, victim, hp, x0, guide, key) -> SubspaceResult:
        """The attack on one example, traced and unvalidated (see :meth:`__call__`)."""
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
        sample_key, start_key, step_key = jax.random.split(key, 3)
        reference = guide if self.targeted else x0

        def sample(k):
            return jnp.sort(jax.random.permutation(k, c)[: self.channels]).astype(jnp.int32)

        def objective(delta, idx):
            x = x0 + delta
            value = _feature_loss(
                self.loss, self.subspace(victim, x, idx), self.subspace(victim, reference, idx)
            )
            value = value if self.targeted else -value
            return value + hp.penalty * jnp.max(jnp.abs(delta))

        random_start = (not self.targeted) if self.random_start is None else self.random_start
        delta = constraint.sample(start_key, x0) if random_start else jnp.zeros_like(x0)
        delta = constraint.project(delta, x0)
        fixed = sample(sample_key)

        def step(carry, t):
            delta, opt_state, prior = carry
            idx = sample(jax.random.fold_in(step_key, t)) if self.resample else fixed
            value, grad = jax.value_and_grad(objective)(delta, idx)
            updates, opt_state = tx.update(grad, opt_state, delta)
            delta = constraint.project(delta + updates, x0)
            return (delta, opt_state, prior - updates), (value, idx)

        carry = (delta, tx.init(delta), jnp.zeros_like(x0))
        (delta, _, prior), (trace, idxs) = jax.lax.scan(
            step, carry, jnp.arange(self.steps), unroll=_compile.loop_unroll(self.steps)
        )
        return SubspaceResult(
            x_adv=jnp.clip(x0 + delta, low, high),
            delta=delta,
            prior=prior,
            channels=idxs if self.resample else fixed,
            trace=trace,
            linf=jnp.max(jnp.abs(delta)),
        )

    # -- entry points ----------------------------------------------------------------------------

    def _check(self, victim, hp, x, guide, lead):
        self.check_victim(victim)
        self.check_params(hp)
        shape = lead + tuple(victim.input_shape)
        if tuple(jnp.shape(x)) != shape:
            raise ValueError(f"the input(s) must have shape {shape}; got {tuple(jnp.shape(x))}.")
        _checks.check_in_bounds("x0", x, victim.bounds)
        if self.targeted:
            if guide is None or tuple(jnp.shape(guide)) != shape:
                got = None if guide is None else tuple(jnp.shape(guide))
                raise ValueError(f"`guide` must be guide image(s) of shape {shape}; got {got}.")
            _checks.check_in_bounds("guide", guide, victim.bounds)
        x = jnp.asarray(x, jnp.float32)
        return x, x if guide is None else jnp.asarray(guide, jnp.float32)

    def __call__(self, victim, hp, x0, key, guide=None) -> SubspaceResult:
        """Attacks ONE image ``x0`` of the substitute ``victim`` (a saliency victim, or any
        victim with ``capture_fn``/``layer_names``); ``guide`` is required when targeted."""
        x0, guide = self._check(victim, hp, x0, guide, ())
        return _single(self, victim, hp, x0, guide, key)

    def batch(self, victim, hp, images, key, guides=None) -> SubspaceResult:
        """Attacks ``images[b, ...]`` in one compiled call; example ``i`` uses
        ``jax.random.split(key, b)[i]``."""
        b = jnp.shape(images)[0] if jnp.ndim(images) else 0
        images, guides = self._check(victim, hp, images, guides, (b,))
        return _batched(self, victim, hp, images, guides, jax.random.split(key, b))


@_compile.jit_static(0)
def _single(attack, victim, hp, x0, guide, key):
    return attack.run(victim, hp, x0, guide, key)


@_compile.jit_static(0)
def _batched(attack, victim, hp, images, guides, keys):
    return jax.vmap(lambda x, g, k: attack.run(victim, hp, x, g, k))(images, guides, keys)


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
    of hidden layer ``layer`` of a substitute model; returns its :class:`SubspaceAttack`."""
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
