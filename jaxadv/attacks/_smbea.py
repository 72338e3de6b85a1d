"""SMBEA: the serial mini-batch ensemble attack with long-term gradient memories.

Che, Borji, Zhai, Ling, Li, Le Callet, "A new ensemble adversarial attack powered by long-term
gradient memories", AAAI 2020. The source models come in N mini-batches, each an ensemble of K
models (:class:`~jaxadv.models._ensemble.Ensemble`; the mini-batches may hold different models of
different architectures). One adversarial example is crafted against them in turn:

* inside mini-batch ``i`` (Algorithm 1; Algorithm 2 for ``i > 1``), ``X`` steps on the minimised
  objective (their Eq. 2)::

      L_i(x) = L1[E_i(x), E_i(r)] + λ2·L3[Φ_i(x), Φ_i(r)] + λ1·D(x0, x)

  ``E_i`` the mini-batch's weighted output ensemble ``Σ σ_n F_n``, ``Φ_i`` its feature ensemble
  ``Σ ω_n S(D_n)`` (present when the ensemble names layers), ``r`` the guide image (targeted) or
  the clean image (untargeted: the loss terms enter with a minus sign, the objective is still
  minimised), ``D`` an optional perceptual penalty. The gradient is ℓ1-normalised and the
  step is :func:`jaxadv.transforms._smbea.smbea_step` (short-term momenta with bias correction,
  plus the carried long-term terms); the iterate is projected onto the budget ``T^(i)`` and the
  pixel box (Algorithm 1's ``Clip``).
* between mini-batches (Algorithm 2, step 1): the adversarial example seeds the next mini-batch,
  the memory is carried (``m_0 ← β1·m_X``, ``v_0 ← β2·v_X``; :func:`next_minibatch`), and the
  budget loosens, ``T^(i) = T^(i−1) + β3^i·T^(1)``.

With β1 = β2 = 0 and one mini-batch this is Algorithm 1. The whole attack is one compiled
program: a ``lax.scan`` over mini-batches of a ``lax.scan`` over steps. Mini-batches of one
structure (the same architectures, different weights) are stacked and scanned over; mini-batches
of different architectures are picked by ``lax.switch`` on the mini-batch index.

Differences from the paper, stated: the paper's loop *stops* a mini-batch once the distance
exceeds ``T^(i)`` (so its last iterate may lie outside); here the iterate is projected onto the
ball of radius ``T^(i)`` (ℓ∞, ℓ2 or ℓ1, the library's norms), so budgets hold exactly. The
published code (CZHQuality/AAA-Pix2pix, a preliminary version) has no long-term memory at all;
its ensemble is the raw sum of two models' outputs, which ``combine="raw"`` with equal weights
reproduces. ε sits outside the root as Algorithm 1 writes it (``eps_inside_root=True`` for the
subspace paper's form).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks, _compile
from jaxadv.constraints import NORMS, intersect, norm_ball, pixel_box
from jaxadv.image import PERCEPTUAL_DISTANCES, perceptual_distance
from jaxadv.losses import SALIENCY_LOSSES, classification_objective, to_saliency_map
from jaxadv.models import Ensemble
from jaxadv.transforms import (
    NORMALIZERS,
    RULES,
    LongTermMemoryState,
    RuleStep,
    check_unit_interval,
    constraint_schedule,
    next_minibatch,
    smbea_step,
)

OUTPUT_LOSSES = {
    "saliency": ("kl", "cc", "nss", "sim", "l1"),
    "logits": ("ce", "cw"),
    "dense": ("l1", "mse"),
}
FEATURE_LOSSES = ("mse", "l1", "cc", "kl")
FUSIONS = ("outputs", "losses")


class SMBEAHParams(NamedTuple):
    """SMBEA's numbers; every leaf is a float32 array and may be swept.

    Attributes:
      eps: ``T^(1)``, the budget of the first mini-batch (radius of the norm ball).
      step_size: α.
      mu1, mu2: decays μ1, μ2 ∈ [0, 1] of the short-term momenta.
      beta1, beta2: weights β1, β2 ∈ [0, 1] of the long-term momenta.
      beta3: decay β3 ∈ [0, 1] of the budget's loosening.
      smoothing: ε of ``m̂/(√v̂ + ε)``.
      feature_weight: λ2 of the feature-space term.
      penalty: λ1 of the perceptual penalty.
      kappa: confidence κ of the C&W margin (classifiers, ``loss="cw"``).
    """

    eps: jax.Array
    step_size: jax.Array
    mu1: jax.Array
    mu2: jax.Array
    beta1: jax.Array
    beta2: jax.Array
    beta3: jax.Array
    smoothing: jax.Array
    feature_weight: jax.Array
    penalty: jax.Array
    kappa: jax.Array


_DEFAULTS = dict(
    eps=17 / 255,
    mu1=0.9,
    mu2=0.999,
    beta1=0.5,
    beta2=0.5,
    beta3=0.7,
    smoothing=1e-8,
    feature_weight=1.0,
    penalty=0.0,
    kappa=0.0,
)


class SMBEAResult(NamedTuple):
    """SMBEA's outcome on ONE example (``vmap`` adds leading axes).

    Attributes:
      x_adv: the adversarial example after the last mini-batch, inside the pixel bounds.
      delta: ``x_adv − x0`` (the iterate; the budget ``budgets[-1]`` holds on it exactly).
      x_minibatches: ``[N, ...]``, the adversarial example after each mini-batch.
      budgets: ``f32[N]``, ``T^(1..N)``.
      trace: ``f32[N, X]``, the objective of each mini-batch at each step's iterate.
      m: ``[N, ...]``, the first momentum ``m_X^(i)`` at the end of each mini-batch.
      v: ``[N, ...]``, the second momentum ``v_X^(i)`` at the end of each mini-batch.
      linf, l2, l1: norms of ``delta``.
    """

    x_adv: jax.Array
    delta: jax.Array
    x_minibatches: jax.Array
    budgets: jax.Array
    trace: jax.Array
    m: jax.Array
    v: jax.Array
    linf: jax.Array
    l2: jax.Array
    l1: jax.Array


def _feature_loss(kind: str, a: jax.Array, b: jax.Array) -> jax.Array:
    if kind == "mse":
        return jnp.mean((a - b) ** 2)
    if kind == "l1":
        return jnp.mean(jnp.abs(a - b))
    if kind == "cc":
        return SALIENCY_LOSSES["cc"](a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))
    p = a / (jnp.sum(a) + 1e-12)  # kl: the features as one distribution (use a softmax strategy)
    q = b / (jnp.sum(b) + 1e-12)
    return jnp.sum(q * jnp.log(1e-12 + q / (p + 1e-12)))


def _check_ensembles(ensembles: Any) -> tuple[Ensemble, ...]:
    if isinstance(ensembles, Ensemble):
        return (ensembles,)
    ensembles = tuple(ensembles) if isinstance(ensembles, Sequence) else ()
    if not ensembles or not all(isinstance(e, Ensemble) for e in ensembles):
        raise ValueError(
            "`ensembles` must be an Ensemble (jaxadv.models._ensemble.ensemble) or a non-empty "
            "sequence of them, one per mini-batch; got "
            f"{[type(e).__name__ for e in ensembles] or ensembles!r}."
        )
    first = ensembles[0]
    for i, e in enumerate(ensembles[1:], 1):
        for field in ("input_shape", "bounds", "output", "map_kind", "output_shape"):
            if getattr(e, field) != getattr(first, field):
                raise ValueError(
                    f"`ensembles` (the mini-batches) must agree on {field}; mini-batch 0 has "
                    f"{getattr(first, field)!r}, mini-batch {i} has {getattr(e, field)!r}."
                )
    return ensembles


@dataclasses.dataclass(frozen=True)
class SMBEAttack:
    """SMBEA's static structure (module docstring); numbers live in :class:`SMBEAHParams`.

    Attributes:
      loss: the output-space loss L1: ``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``
        (saliency; NSS weights pixels by the reference map), ``"ce"``, ``"cw"`` (classifiers) or
        ``"l1"``, ``"mse"`` (dense outputs).
      targeted: pull toward the guide (saliency, dense) or the target class (classifiers).
      steps: X, steps per mini-batch.
      norm: the budget's norm, ``"linf"``, ``"l2"`` or ``"l1"``.
      feature_loss: L3 of the feature term (used when the ensembles name layers).
      penalty: kind of the perceptual penalty ``D`` (:data:`PERCEPTUAL_DISTANCES`) or None.
      normalizer: the gradient normaliser (``"l1"``: the paper's).
      eps_inside_root: ``m̂/√(v̂ + ε)`` instead of Algorithm 1's ``m̂/(√v̂ + ε)``.
      rule: ``"smbea"`` (the long-term memory), or a key of
        :data:`jaxadv.transforms.UPDATE_RULES` for the serial baselines of the paper's Table 1
        (``"sgd_ifgsm"``: ensemble PGD, ``"msgd_mim"``: ensemble MIM, ``"adam_decay_cw"``:
        ensemble C&W with a penalty): the same mini-batches, budgets and carried example, but the
        rule's state starts afresh in every mini-batch (no long-term memory).
      fusion: ``"outputs"`` — the loss of the weighted sum of the outputs (SMBEA's Eq. 2, Liu et
        al.'s ensemble of logits) — or ``"losses"`` — the weighted sum of each member's loss
        (the usual "ensemble PGD/MIM/C&W").
      unroll: the ``unroll`` of the scan over steps; None: the backend's choice
        (``jaxadv._compile.loop_unroll``: fully unrolled on CPU, which runs fastest but
        compiles slowest; 1 keeps the loop rolled).
      random_start: start from a random point of the first budget instead of ``x0``; None:
        only for untargeted saliency/dense attacks, whose objective has a zero gradient at the
        clean image (its output is the reference).
    """

    loss: str = "kl"
    targeted: bool = False
    steps: int = 10
    norm: str = "linf"
    feature_loss: str = "mse"
    penalty: str | None = None
    normalizer: str = "l1"
    eps_inside_root: bool = False
    random_start: bool | None = None
    rule: str = "smbea"
    fusion: str = "outputs"
    unroll: int | None = None

    def __post_init__(self):
        if self.unroll is not None:
            _checks.check_positive_int("unroll", self.unroll)
        _checks.check_choice("rule", self.rule, ("smbea",) + RULES)
        _checks.check_choice("fusion", self.fusion, FUSIONS)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("loss", self.loss, sorted(set(sum(OUTPUT_LOSSES.values(), ()))))
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_choice("feature_loss", self.feature_loss, FEATURE_LOSSES)
        _checks.check_choice("normalizer", self.normalizer, NORMALIZERS)
        if self.penalty is not None:
            _checks.check_choice("penalty", self.penalty, PERCEPTUAL_DISTANCES)

    # -- numbers ---------------------------------------------------------------------------------

    def hparams(self, **values: Any) -> SMBEAHParams:
        """Defaults (``eps`` 17/255, α = ``eps/4`` unless given, μ1 0.9, μ2 0.999, β1 = β2 =
        0.5, β3 0.7, ε 1e-8, λ2 1, λ1 0, κ 0) overridden by ``values``, validated."""
        unknown = set(values) - set(SMBEAHParams._fields)
        if unknown:
            raise ValueError(
                f"Unknown hyper-parameter(s) {sorted(unknown)}; expected some of "
                f"{SMBEAHParams._fields}."
            )
        merged = {**_DEFAULTS, **values}
        if "step_size" not in values:
            merged["step_size"] = np.asarray(merged["eps"], np.float32) / 4
        hp = SMBEAHParams(**{k: jnp.asarray(merged[k], jnp.float32) for k in SMBEAHParams._fields})
        self.check_params(hp)
        return hp

    def check_params(self, hp: Any) -> None:
        if not isinstance(hp, SMBEAHParams):
            raise ValueError(
                f"`hp` must be an SMBEAHParams (from `attack.hparams(...)`); got "
                f"{type(hp).__name__}."
            )
        for name in ("eps", "step_size", "smoothing", "feature_weight", "penalty", "kappa"):
            _checks.check_nonnegative(f"hp.{name}", getattr(hp, name))
        for name in ("mu1", "mu2", "beta1", "beta2", "beta3"):
            check_unit_interval(f"hp.{name}", getattr(hp, name))

    # -- the objective of one mini-batch ---------------------------------------------------------

    def _output_term(self, ens: Ensemble, out, ref, label, target, hp) -> jax.Array:
        if ens.output == "logits":
            objective = classification_objective(self.loss, targeted=self.targeted)
            return objective(out, label, target, hp)
        if ens.output == "dense":
            diff = out - ref
            value = jnp.mean(jnp.abs(diff)) if self.loss == "l1" else jnp.mean(diff * diff)
        else:
            p, q = to_saliency_map(out, ens.map_kind), to_saliency_map(ref, ens.map_kind)
            value = SALIENCY_LOSSES[self.loss](p, q)
        return value if self.targeted else -value

    def objective(self, ens: Ensemble, hp, x0, label, target, refs):
        """``delta -> L_i(x0 + delta)`` for one mini-batch's ensemble and its references."""
        ref_out, ref_feat = refs
        low, high = ens.bounds

        def loss(delta):
            x = x0 + delta
            if self.fusion == "outputs":
                value = self._output_term(ens, ens(x), ref_out, label, target, hp)
            else:
                value = 0.0
                for n, out in enumerate(ens.member_outputs(x)):
                    ref = None if ref_out is None else ref_out[n]
                    term = self._output_term(ens, out, ref, label, target, hp)
                    value = value + ens.weights[n] * term
            if ens.has_features:
                feat = _feature_loss(self.feature_loss, ens.features(x), ref_feat)
                value = value + hp.feature_weight * (feat if self.targeted else -feat)
            if self.penalty is not None:
                value = value + hp.penalty * perceptual_distance(
                    self.penalty, x0, x, data_range=high - low
                )
            return value

        return loss

    def references(self, ens: Ensemble, x0, guide):
        """What mini-batch ``ens`` compares against: its outputs (and features) of the guide
        (targeted) or of the clean image (untargeted); None for classifiers' outputs."""
        r = guide if (self.targeted and ens.output != "logits") else x0
        if ens.output == "logits":
            out = None
        else:
            out = ens(r) if self.fusion == "outputs" else tuple(ens.member_outputs(r))
        feat = ens.features(r) if ens.has_features else None
        return out, feat

    # -- the traced attack -----------------------------------------------------------------------

    def run(self, ensembles, hp, x0, label, target, key) -> SMBEAResult:
        """The attack on one example, traced and unvalidated (see :meth:`__call__`)."""
        ensembles = tuple(ensembles)
        n = len(ensembles)
        low, high = ensembles[0].bounds
        budgets = constraint_schedule(hp.eps, hp.beta3, n)
        eps_kw = (
            dict(eps=0.0, eps_root=hp.smoothing)
            if self.eps_inside_root
            else dict(eps=hp.smoothing)
        )
        if self.rule == "smbea":
            tx = smbea_step(hp.step_size, hp.mu1, hp.mu2, normalizer=self.normalizer, **eps_kw)
        else:
            tx = RuleStep(self.rule)(hp)
        stacked = _stack(ensembles)

        def feasible(budget):
            return intersect(norm_ball(self.norm, budget), pixel_box(low, high))

        delta = jnp.zeros_like(x0)
        random_start = self.random_start
        if random_start is None:
            random_start = not self.targeted and ensembles[0].output != "logits"
        if random_start:
            delta = feasible(budgets[0]).sample(key, x0)
        delta = feasible(budgets[0]).project(delta, x0)
        opt_state = tx.init(delta)

        if stacked is None:  # different structures: lax.switch picks the mini-batch's ensemble
            refs = [self.references(e, x0, target) for e in ensembles]
            grads = [
                jax.value_and_grad(self.objective(e, hp, x0, label, target, r))
                for e, r in zip(ensembles, refs)
            ]
            xs = jnp.arange(n)

            def gradient_of(i):
                return lambda d: jax.lax.switch(i, grads, d)

        else:  # one structure: the scan runs over the stacked ensembles themselves
            xs = (jnp.arange(n), stacked)

            def gradient_of(item):
                ens = item[1]
                refs = self.references(ens, x0, target)
                return jax.value_and_grad(self.objective(ens, hp, x0, label, target, refs))

        def minibatch(carry, item):
            delta, opt_state = carry
            constraint = feasible(budgets[item if stacked is None else item[0]])
            value_and_grad = gradient_of(item)

            def step(carry, _):
                delta, opt_state = carry
                value, grad = value_and_grad(delta)
                updates, opt_state = tx.update(grad, opt_state, delta)
                delta = constraint.project(optax.apply_updates(delta, updates), x0)
                return (delta, opt_state), value

            (delta, opt_state), trace = jax.lax.scan(
                step,
                (delta, opt_state),
                length=self.steps,
                unroll=_compile.loop_unroll(self.steps) if self.unroll is None else self.unroll,
            )
            if self.rule == "smbea":
                memory = _memory(opt_state)
                out = (x0 + delta, trace, memory.m, memory.v)
                return (delta, next_minibatch(opt_state, hp)), out
            zeros = jnp.zeros_like(delta)  # a baseline keeps no memory: it starts afresh
            return (delta, tx.init(delta)), (x0 + delta, trace, zeros, zeros)

        (delta, _), (xs, trace, ms, vs) = jax.lax.scan(minibatch, (delta, opt_state), xs)
        flat = jnp.ravel(delta)
        return SMBEAResult(
            x_adv=jnp.clip(x0 + delta, low, high),
            delta=delta,
            x_minibatches=jnp.clip(xs, low, high),
            budgets=budgets,
            trace=trace,
            m=ms,
            v=vs,
            linf=jnp.max(jnp.abs(flat)),
            l2=jnp.sqrt(jnp.sum(flat * flat)),
            l1=jnp.sum(jnp.abs(flat)),
        )

    # -- entry points ----------------------------------------------------------------------------

    def _check_call(self, ensembles, x_shape, label, target, batch: int | None):
        ensembles = _check_ensembles(ensembles)
        ens = ensembles[0]
        allowed = OUTPUT_LOSSES[ens.output]
        if self.loss not in allowed:
            raise ValueError(
                f"`loss` must be one of {allowed} for {ens.output!r} ensembles; got {self.loss!r}."
            )
        lead = () if batch is None else (batch,)
        what = "x0" if batch is None else "images"
        if tuple(x_shape) != lead + tuple(ens.input_shape):
            raise ValueError(
                f"`{what}` must have shape {lead + tuple(ens.input_shape)}; got {tuple(x_shape)}."
            )
        if ens.output == "logits":
            goal = "target" if self.targeted else "label"
            value = target if self.targeted else label
            if value is None:
                raise ValueError(f"`{goal}` (a class index) is required here; got None.")
            if jnp.shape(value) != lead:
                raise ValueError(f"`{goal}` must have shape {lead}; got {jnp.shape(value)}.")
            _checks.check_labels(goal, value, int(ens.output_shape[-1]))
        elif self.targeted:
            if target is None:
                raise ValueError("A targeted SMBEA needs `target`, the guide image; got None.")
            if jnp.shape(target) != lead + tuple(ens.input_shape):
                raise ValueError(
                    f"`target` must be the guide image(s) of shape "
                    f"{lead + tuple(ens.input_shape)}; got {jnp.shape(target)}."
                )
        return ensembles

    @staticmethod
    def _fill(x0, label, target, ens):
        label = jnp.zeros(jnp.shape(x0)[:-len(ens.input_shape)], jnp.int32) if label is None else (
            jnp.asarray(label, jnp.int32)
        )
        if target is None:
            target = label if ens.output == "logits" else jnp.asarray(x0, jnp.float32)
        elif ens.output == "logits":
            target = jnp.asarray(target, jnp.int32)
        else:
            target = jnp.asarray(target, jnp.float32)
        return label, target

    def __call__(self, ensembles, hp, x0, key, *, label=None, target=None) -> SMBEAResult:
        """Attacks ONE input ``x0`` with the N mini-batches ``ensembles`` (one Ensemble each;
        one Ensemble: N = 1). ``label``: the true class (untargeted classifiers); ``target``:
        the guide image (saliency/dense) or target class (classifiers). Compiled."""
        ensembles = self._check_call(ensembles, jnp.shape(x0), label, target, None)
        _checks.check_in_bounds("x0", x0, ensembles[0].bounds)
        self.check_params(hp)
        label, target = self._fill(x0, label, target, ensembles[0])
        return _single(self, ensembles, hp, jnp.asarray(x0, jnp.float32), label, target, key)

    def batch(self, ensembles, hp, images, key, *, labels=None, targets=None) -> SMBEAResult:
        """Attacks ``images[b, ...]`` in one compiled call (``vmap`` of :meth:`__call__`);
        example ``i`` uses ``jax.random.split(key, b)[i]``."""
        b = jnp.shape(images)[0] if jnp.ndim(images) else 0
        ensembles = self._check_call(ensembles, jnp.shape(images), labels, targets, b)
        _checks.check_in_bounds("images", images, ensembles[0].bounds)
        self.check_params(hp)
        labels, targets = self._fill(images, labels, targets, ensembles[0])
        keys = jax.random.split(key, b)
        images = jnp.asarray(images, jnp.float32)
        return _batched(self, ensembles, hp, images, labels, targets, keys)


def _stack(ensembles: tuple[Ensemble, ...]) -> Ensemble | None:
    """The ensembles stacked leaf-wise on a leading mini-batch axis when they share one
    structure (same architectures, layers and static fields; weights may differ), else None."""
    structure = jax.tree.structure(ensembles[0])
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(ensembles[0])]
    for e in ensembles[1:]:
        if jax.tree.structure(e) != structure:
            return None
        if [jnp.shape(leaf) for leaf in jax.tree.leaves(e)] != shapes:
            return None
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *ensembles)


def _memory(opt_state) -> LongTermMemoryState:
    is_memory = lambda node: isinstance(node, LongTermMemoryState)  # noqa: E731
    return next(n for n in jax.tree.leaves(opt_state, is_leaf=is_memory) if is_memory(n))


@_compile.jit_static(0)
def _single(attack, ensembles, hp, x0, label, target, key):
    return attack.run(ensembles, hp, x0, label, target, key)


@_compile.jit_static(0)
def _batched(attack, ensembles, hp, images, labels, targets, keys):
    run = lambda x, y, t, k: attack.run(ensembles, hp, x, y, t, k)  # noqa: E731
    return jax.vmap(run)(images, labels, targets, keys)


def smbea(
    *,
    loss: str = "kl",
    targeted: bool = False,
    steps: int = 10,
    norm: str = "linf",
    feature_loss: str = "mse",
    penalty: str | None = None,
    random_start: bool | None = None,
) -> SMBEAttack:
    """SMBEA (module docstring) with the paper's ℓ1 normaliser and Algorithm 1's ε placement.

    Call ``attack(ensembles, hp, x0, key, label=..., target=...)`` with one
    :class:`~jaxadv.models._ensemble.Ensemble` per mini-batch and ``hp = attack.hparams(...)``;
    ``attack.batch`` for a batch of images. Returns :class:`SMBEAResult` (the example after
    every mini-batch, the budgets, the memories).
    """
    return SMBEAttack(
        loss=loss,
        targeted=targeted,
        steps=steps,
        norm=norm,
        feature_loss=feature_loss,
        penalty=penalty,
        random_start=random_start,
    )
