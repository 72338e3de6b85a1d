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

With β1 = β2 = 0 and one mini-batch this is Algorithm 1. The whole attack is ONE program of
``N·X`` steps (:class:`~jaxadv.attacks.AttackBase`, the one contract): a step counter in the
carry picks the mini-batch, its ensemble, references and budget, and at a mini-batch's last step
the example and memories are recorded and the memory is carried; the driver picks the loop form.
Mini-batches of one structure (the same architectures, different weights) are stacked and the
mini-batch's ensemble is a slice of them; mini-batches of different architectures are picked by
``lax.switch`` on the mini-batch index.

Differences from the paper, stated: the paper's loop *stops* a mini-batch once the distance
exceeds ``T^(i)`` (so its last iterate may lie outside); here the iterate is projected onto the
ball of radius ``T^(i)`` (ℓ∞, ℓ2 or ℓ1, the library's norms), so budgets hold exactly. The
published code (CZHQuality/AAA-Pix2pix, a preliminary version) has no long-term memory at all;
its ensemble is the raw sum of two models' outputs, which ``combine="raw"`` with equal weights
reproduces. ε sits outside the root as Algorithm 1 writes it (``eps_inside_root=True`` for the
subspace paper's form).

Transfer boosters (:func:`~jaxadv.attacks.with_transfer` on an SMBEAttack): TI smooths the
gradient before the normaliser (``translation``); DI takes it through a random resize-and-pad of
the ensemble's input (``diversity``; the trace keeps the objective at the plain iterate).
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
from jaxadv.attacks._ensembles import (
    FEATURE_LOSSES,
    as_tuple,
    check_ensembles,
    feature_loss,
    lockstep,
    stack,
)
from jaxadv.attacks._saliency import pearson
from jaxadv.attacks._smbea_inputs import check_smbea_inputs
from jaxadv.constraints import NORMS, intersect, norm_ball, pixel_box
from jaxadv.gradients import diverse_input
from jaxadv.image import PERCEPTUAL_DISTANCES, perceptual_distance
from jaxadv.losses import SALIENCY_LOSSES, classification_objective, to_saliency_map
from jaxadv.models import Ensemble
from jaxadv.results import AttackResult, perturbation_norms
from jaxadv.transforms import (
    NORMALIZERS,
    RULES,
    LongTermMemoryState,
    RuleStep,
    constraint_schedule,
    next_minibatch,
    smbea_step,
    translation_invariant,
)

OUTPUT_LOSSES = {
    "saliency": ("kl", "cc", "nss", "sim", "l1"),
    "logits": ("ce", "cw"),
    "dense": ("l1", "mse"),
}
FUSIONS = ("outputs", "losses")


class SMBEAHParams(NamedTuple):
    """SMBEA's numbers; every leaf is a float32 array and may be swept.

    Attributes:
      eps: ``T^(1)``, the budget of the first mini-batch (radius of the norm ball).
      step_size: α. With a relative step it is 0 and α is derived in the trace:
        ``step_size + rel_step_size · eps`` (the default: ``eps/4``).
      mu1, mu2: decays μ1, μ2 ∈ [0, 1] of the short-term momenta.
      beta1, beta2: weights β1, β2 ∈ [0, 1] of the long-term momenta.
      beta3: decay β3 ∈ [0, 1] of the budget's loosening.
      smoothing: ε of ``m̂/(√v̂ + ε)``.
      feature_weight: λ2 of the feature-space term.
      penalty: λ1 of the perceptual penalty.
      kappa: confidence κ of the C&W margin (classifiers, ``loss="cw"``).
      rel_step_size: α as a multiple of ``eps`` (0: ``step_size`` is absolute).
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
    rel_step_size: jax.Array = 0.0


HPARAM_SPEC = {
    "eps": Spec(17 / 255),
    "step_size": Spec(None),  # default: rel_step_size = 0.25, i.e. eps/4
    "mu1": Spec(0.9, "unit"),
    "mu2": Spec(0.999, "unit"),
    "beta1": Spec(0.5, "unit"),
    "beta2": Spec(0.5, "unit"),
    "beta3": Spec(0.7, "unit"),
    "smoothing": Spec(1e-8),
    "feature_weight": Spec(1.0),
    "penalty": Spec(0.0),
    "kappa": Spec(0.0),
    "rel_step_size": Spec(0.0),
}


class _Carry(NamedTuple):
    t: jax.Array  # steps taken (all mini-batches)
    delta: jax.Array
    opt_state: Any
    refs: Any  # per mini-batch: its outputs (and features) of the guide or the clean image
    xs: jax.Array  # [N, ...] the example after each finished mini-batch
    ms: jax.Array  # [N, ...] m_X of each finished mini-batch
    vs: jax.Array
    key: Any  # DI's key stream (None without DI)


@dataclasses.dataclass(frozen=True)
class SMBEAttack(AttackBase):
    """SMBEA's static structure (module docstring); numbers live in :class:`SMBEAHParams`.

    The victim is the tuple of the N mini-batches' ensembles (one
    :class:`~jaxadv.models._ensemble.Ensemble` each; one Ensemble: N = 1). ``label`` is the true
    class (classifier ensembles; unused, may be None, for saliency/dense ones), ``target`` the
    class to reach (targeted classifiers) or the guide image (targeted saliency/dense).

    Result (:class:`~jaxadv.attacks.AttackResult`): ``x_adv``/``delta`` after the last
    mini-batch; ``loss`` the last mini-batch's objective at ``x_adv``; ``logits`` the last
    mini-batch's fused output at ``x_adv`` (logits, map or dense output); ``trace``
    ``f32[N·X]`` the objective at each step's iterate (mini-batch after mini-batch);
    ``steps = queries = N·X`` (gradient evaluations of an ensemble); ``extras``:
    ``x_minibatches`` ``[N, ...]`` the example after each mini-batch, ``budgets`` ``f32[N]``
    ``T^(1..N)``, ``m``, ``v`` ``[N, ...]`` the momenta ``m_X^(i)``, ``v_X^(i)`` at the end of
    each mini-batch (zeros for the serial baselines, which keep no memory).

    ``success`` is judged against the last mini-batch's ensemble: classifiers as every classifier
    attack (untargeted: its fused logits no longer pick ``label``; targeted: they pick
    ``target``); saliency/dense outputs as :class:`~jaxadv.attacks.SaliencyAttack` judges maps,
    on the Pearson correlation (CC) of the outputs (saliency maps made non-negative by their
    kind first): untargeted, CC to the clean output below ``threshold``; targeted, the output
    correlates more with the guide's than with the clean one.

    Attributes:
      loss: the output-space loss L1: ``"kl"``, ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``
        (saliency; NSS weights pixels by the reference map), ``"ce"``, ``"cw"`` (classifiers) or
        ``"l1"``, ``"mse"`` (dense outputs).
      targeted: pull toward the guide (saliency, dense) or the target class (classifiers).
      steps: X, steps per mini-batch.
      minibatches: N, the number of mini-batches (ensembles) the victim holds; static, as the
        program's length ``N·X`` is.
      norm: the budget's norm, ``"linf"``, ``"l2"`` or ``"l1"``.
      feature_loss: L3 of the feature term (used when the ensembles name layers).
      penalty: kind of the perceptual penalty ``D`` (:data:`PERCEPTUAL_DISTANCES`) or None.
      normalizer: the gradient normaliser (``"l1"``: the paper's).
      eps_inside_root: ``m̂/√(v̂ + ε)`` instead of Algorithm 1's ``m̂/(√v̂ + ε)``.
      random_start: start from a random point of the first budget instead of ``x0``; None:
        only for untargeted saliency/dense attacks, whose objective has a zero gradient at the
        clean image (its output is the reference).
      rule: ``"smbea"`` (the long-term memory), or a key of
        :data:`jaxadv.transforms.UPDATE_RULES` for the serial baselines of the paper's Table 1
        (``"sgd_ifgsm"``: ensemble PGD, ``"msgd_mim"``: ensemble MIM, ``"adam_decay_cw"``:
        ensemble C&W with a penalty): the same mini-batches, budgets and carried example, but the
        rule's state starts afresh in every mini-batch (no long-term memory).
      fusion: ``"outputs"`` — the loss of the weighted sum of the outputs (SMBEA's Eq. 2, Liu et
        al.'s ensemble of logits) — or ``"losses"`` — the weighted sum of each member's loss
        (the usual "ensemble PGD/MIM/C&W").
      threshold: untargeted saliency/dense success when the CC to the clean output falls below.
      cpu_chunk: loop-form hint for the driver: steps per compiled chunk on CPU (None: its
        default). Large source models whose unrolled steps compile slowly ask for 1.
      rel_step_size: the default α as a multiple of ``eps`` (Algorithm 1's ``eps/4``).
      translation: TI's :class:`~jaxadv.attacks.Translation`, or None (set by ``with_transfer``).
      diversity: DI's :class:`~jaxadv.attacks.Diversity`, or None (set by ``with_transfer``).
    """

    loss: str = "kl"
    targeted: bool = False
    steps: int = 10
    minibatches: int = 1
    norm: str = "linf"
    feature_loss: str = "mse"
    penalty: str | None = None
    normalizer: str = "l1"
    eps_inside_root: bool = False
    random_start: bool | None = None
    rule: str = "smbea"
    fusion: str = "outputs"
    threshold: float = 0.5
    cpu_chunk: int | None = None
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = 0.25
    translation: Any = None
    diversity: Any = None
    name: str = "smbea"
    params_type: ClassVar[type] = SMBEAHParams
    hparam_spec: ClassVar[dict[str, Spec]] = HPARAM_SPEC

    def __post_init__(self):
        if self.cpu_chunk is not None:
            _checks.check_positive_int("cpu_chunk", self.cpu_chunk)
        _checks.check_choice("rule", self.rule, ("smbea",) + RULES)
        _checks.check_choice("fusion", self.fusion, FUSIONS)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("minibatches", self.minibatches)
        _checks.check_choice("loss", self.loss, sorted(set(sum(OUTPUT_LOSSES.values(), ()))))
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_choice("feature_loss", self.feature_loss, FEATURE_LOSSES)
        _checks.check_choice("normalizer", self.normalizer, NORMALIZERS)
        if self.penalty is not None:
            _checks.check_choice("penalty", self.penalty, PERCEPTUAL_DISTANCES)
        for field, kind, attr in (("translation", "Translation", "kernel_size"),
                                  ("diversity", "Diversity", "prob")):
            if getattr(self, field) is not None and not hasattr(getattr(self, field), attr):
                raise ValueError(f"`{field}` must be a jaxadv.attacks.{kind} or None (use "
                                 f"`with_transfer`); got {getattr(self, field)!r}.")
        if not (isinstance(self.threshold, (int, float)) and -1.0 <= self.threshold <= 1.0):
            raise ValueError(f"`threshold` must be a CC value in [-1, 1]; got {self.threshold!r}.")

    @property
    def length(self) -> int:
        return self.minibatches * self.steps

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

    def objective(self, ens: Ensemble, hp, x0, label, target, refs, view=None):
        """``delta -> L_i(x0 + delta)`` for one mini-batch's ensemble and its references; the
        ensemble sees ``view(x)`` where given (DI), the penalty always ``x``."""
        ref_out, ref_feat = refs
        low, high = ens.bounds

        def loss(delta):
            x = x0 + delta
            seen = x if view is None else view(x)
            if self.fusion == "outputs":
                value = self._output_term(ens, ens(seen), ref_out, label, target, hp)
            else:
                value = 0.0
                for n, out in enumerate(ens.member_outputs(seen)):
                    ref = None if ref_out is None else ref_out[n]
                    term = self._output_term(ens, out, ref, label, target, hp)
                    value = value + ens.weights[n] * term
            if ens.has_features:
                feat = feature_loss(self.feature_loss, ens.features(seen), ref_feat)
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

    def step_rule(self, hp) -> optax.GradientTransformation:
        """The step inside a mini-batch: SMBEA's (with the memory) or a baseline rule; TI's
        smoothing chained before it."""
        if self.rule != "smbea":
            tx = RuleStep(self.rule)(hp)
        else:
            eps_kw = dict(eps=0.0, eps_root=hp.smoothing) if self.eps_inside_root else dict(
                eps=hp.smoothing
            )
            tx = smbea_step(hp.step_size, hp.mu1, hp.mu2, normalizer=self.normalizer, **eps_kw)
        if self.translation is None:
            return tx
        t = self.translation
        return optax.chain(translation_invariant(t.kernel_size, t.sigma), tx)

    # -- the program: N mini-batches of X steps, one flat loop -----------------------------------

    def program(self, victim, hp, x0, label, target) -> Program:
        """The whole attack on one example as ONE program of ``N·X`` steps: a step counter in the
        carry picks the mini-batch (its ensemble, references and budget ``T^(i)``); at the last
        step of a mini-batch the example and the momenta are recorded and the memory is carried
        (``next_minibatch``; the baselines start their rule afresh)."""
        ensembles = as_tuple(victim)
        n, steps = len(ensembles), self.steps
        low, high = ensembles[0].bounds
        budgets = constraint_schedule(hp.eps, hp.beta3, n)
        tx = self.step_rule(hp)
        stacked = stack(ensembles)

        def feasible(budget):
            return intersect(norm_ball(self.norm, budget), pixel_box(low, high))

        def value_and_grad(ens, refs):
            loss = self.objective(ens, hp, x0, label, target, refs)
            d = self.diversity
            if d is None:
                return lambda delta, key: jax.value_and_grad(loss)(delta)

            def diverse(delta, key):  # DI's gradient; the value at the plain iterate
                view = lambda x: diverse_input(key, x, d.prob, d.resize_rate)  # noqa: E731
                grad = jax.grad(self.objective(ens, hp, x0, label, target, refs, view))(delta)
                return loss(delta), grad

            return diverse

        if stacked is None:  # different structures: lax.switch picks the mini-batch's ensemble

            def references():
                return tuple(self.references(e, x0, target) for e in ensembles)

            branches = [
                lambda delta, refs, key, k=k: value_and_grad(ensembles[k], refs[k])(delta, key)
                for k in range(n)
            ]

            def gradient(i, refs, delta, key):
                return jax.lax.switch(i, branches, delta, refs, key)

            def last_refs(refs):
                return refs[-1]

        else:  # one structure: the mini-batch's ensemble is a slice of the stacked ones

            def references():
                return jax.lax.map(lambda ens: self.references(ens, x0, target), stacked)

            def gradient(i, refs, delta, key):
                pick = lambda leaf: leaf[i]  # noqa: E731
                ens, refs = jax.tree.map(pick, stacked), jax.tree.map(pick, refs)
                return value_and_grad(ens, refs)(delta, key)

            def last_refs(refs):
                return jax.tree.map(lambda leaf: leaf[-1], refs)

        random_start = self.random_start
        if random_start is None:
            random_start = not self.targeted and ensembles[0].output != "logits"

        def init(key):
            delta = jnp.zeros_like(x0)
            if random_start:
                delta = feasible(budgets[0]).sample(key, x0)
            delta = feasible(budgets[0]).project(delta, x0)
            record = jnp.zeros((n,) + jnp.shape(x0), jnp.result_type(x0))
            return _Carry(
                t=jnp.zeros((), jnp.int32),
                delta=delta,
                opt_state=tx.init(delta),
                refs=references(),
                xs=record,
                ms=record,
                vs=record,
                key=None if self.diversity is None else jax.random.fold_in(key, 1),
            )

        def step(carry: _Carry):
            t = lockstep(carry.t)
            i = t // steps
            last = t % steps == steps - 1  # the mini-batch's last step
            key = draw = carry.key
            if key is not None:
                key, draw = jax.random.split(key)
            value, grad = gradient(i, carry.refs, carry.delta, draw)
            updates, opt_state = tx.update(grad, carry.opt_state, carry.delta)
            delta = feasible(budgets[i]).project(optax.apply_updates(carry.delta, updates), x0)
            if self.rule == "smbea":
                memory = _memory(opt_state)
                m, v = memory.m, memory.v
                carried = next_minibatch(opt_state, hp)
            else:  # a baseline keeps no memory: it starts afresh
                m = v = jnp.zeros_like(delta)
                carried = tx.init(delta)
            at_end = lambda new, old: jnp.where(last, new, old)  # noqa: E731
            carry = _Carry(
                t=carry.t + 1,
                delta=delta,
                opt_state=jax.tree.map(at_end, carried, opt_state),
                refs=carry.refs,
                xs=at_end(carry.xs.at[i].set(x0 + delta), carry.xs),
                ms=at_end(carry.ms.at[i].set(m), carry.ms),
                vs=at_end(carry.vs.at[i].set(v), carry.vs),
                key=key,
            )
            return carry, value

        def finish(carry: _Carry, trace) -> AttackResult:
            ens = ensembles[-1]
            delta = carry.delta
            x_adv = jnp.clip(x0 + delta, low, high)
            loss = self.objective(ens, hp, x0, label, target, last_refs(carry.refs))(delta)
            out = ens(x0 + delta)
            total = jnp.asarray(n * steps, jnp.int32)
            finite = jnp.all(jnp.isfinite(out)) & jnp.isfinite(loss)  # argmax(NaN) = class 0
            return AttackResult(
                x_adv=x_adv,
                delta=delta,
                success=self._success(ens, out, x0, label, target) & finite,
                finite=finite,
                loss=loss,
                logits=out,
                steps=total,
                queries=total,
                trace=trace,
                extras=dict(
                    x_minibatches=jnp.clip(carry.xs, low, high),
                    budgets=budgets,
                    m=carry.ms,
                    v=carry.vs,
                ),
                **perturbation_norms(delta),
            )

        return Program(init=init, step=step, finish=finish, length=n * steps)

    # -- success --------------------------------------------------------------------------------

    def _success(self, ens: Ensemble, out, x0, label, target) -> jax.Array:
        if ens.output == "logits":
            return self.success(out, label, target)

        def similarity(a, b):
            if ens.output == "saliency":
                a, b = to_saliency_map(a, ens.map_kind), to_saliency_map(b, ens.map_kind)
            return pearson(a, b)

        clean = ens(x0)
        if self.targeted:
            return similarity(out, ens(target)) > similarity(out, clean)
        return similarity(out, clean) < self.threshold

    def clean_correct(self, victim, x0, label) -> jax.Array:
        """Classifier ensembles: the last mini-batch's ensemble picks ``label`` on the clean
        example; saliency/dense ensembles (no classes): True."""
        ens = as_tuple(victim)[-1]
        if ens.output != "logits":
            return jnp.ones((), bool)
        return jnp.argmax(ens(x0)) == label

    # -- inputs ----------------------------------------------------------------------------------

    def check_victim(self, victim, hp) -> None:
        """The mini-batches agree with each other, their number with ``minibatches``, and the
        loss with their output kind."""
        ensembles = check_ensembles(victim)
        if len(ensembles) != self.minibatches:
            raise ValueError(
                f"`ensembles` must hold `minibatches`={self.minibatches} Ensemble(s), one per "
                f"mini-batch; got {len(ensembles)}. Build the attack with "
                f"`minibatches={len(ensembles)}`."
            )
        allowed = OUTPUT_LOSSES[ensembles[0].output]
        if self.loss not in allowed:
            raise ValueError(
                f"`loss` must be one of {allowed} for {ensembles[0].output!r} ensembles; got "
                f"{self.loss!r}."
            )

    def input_shape(self, victim) -> tuple[int, ...]:
        return tuple(as_tuple(victim)[0].input_shape)

    def bounds(self, victim) -> tuple[float, float]:
        return tuple(as_tuple(victim)[0].bounds)

    def num_classes(self, victim) -> int:
        ens = as_tuple(victim)[0]
        if ens.output != "logits":
            raise ValueError(
                f"`victim` must be classifier ensembles to have classes; got {ens.output!r} ones."
            )
        return int(ens.output_shape[-1])

    def check_inputs(self, victim, images, labels, targets):
        """A batch: ``labels`` the true classes (classifier ensembles, required untargeted;
        unused, may be None, for saliency/dense ones), ``targets`` the classes to reach
        (targeted classifiers) or the guide images (targeted saliency/dense)."""
        b = jnp.shape(images)[0] if jnp.ndim(images) else 0
        return check_smbea_inputs(self, victim, images, labels, targets, (b,))

    def check_example(self, victim, x0, label, target):
        """ONE input: ``label``/``target`` as :meth:`check_inputs` says for one example."""
        return check_smbea_inputs(self, victim, x0, label, target, ())


def _memory(opt_state) -> LongTermMemoryState:
    is_memory = lambda node: isinstance(node, LongTermMemoryState)  # noqa: E731
    return next(n for n in jax.tree.leaves(opt_state, is_leaf=is_memory) if is_memory(n))


def smbea(
    *,
    loss: str = "kl",
    targeted: bool = False,
    steps: int = 10,
    minibatches: int = 1,
    norm: str = "linf",
    feature_loss: str = "mse",
    penalty: str | None = None,
    random_start: bool | None = None,
) -> SMBEAttack:
    """SMBEA (module docstring) with the paper's ℓ1 normaliser and Algorithm 1's ε placement.

    Call ``attack(ensembles, hp, x0, label, key, target=None)`` with the ``minibatches``
    :class:`~jaxadv.models._ensemble.Ensemble`\\ s (one per mini-batch) and
    ``hp = attack.hparams(...)`` (``eps`` 17/255, α = ``eps/4`` unless ``step_size`` is given,
    μ1 0.9, μ2 0.999, β1 = β2 = 0.5, β3 0.7, ε 1e-8, λ2 1, λ1 0, κ 0); ``attack.batch``,
    ``attack.sweep`` and ``jaxadv.sweeps`` as for every attack. Returns an
    :class:`~jaxadv.attacks.AttackResult` whose ``extras`` hold the example after every
    mini-batch, the budgets and the memories (:class:`SMBEAttack`).

    Args:
      loss: the output-space loss: ``"kl"`` (default), ``"cc"``, ``"nss"``, ``"sim"``, ``"l1"``
        (saliency), ``"ce"``, ``"cw"`` (classifiers) or ``"l1"``, ``"mse"`` (dense outputs).
      targeted: pull toward the guide (saliency, dense) or the target class (classifiers).
      steps: X, steps per mini-batch (10).
      minibatches: N, the number of mini-batches (ensembles) the attack is called with (1).
      norm: the budget's norm, ``"linf"`` (default), ``"l2"`` or ``"l1"``.
      feature_loss: the loss of the feature term (used when the ensembles name layers;
        ``"mse"``: default).
      penalty: kind of the perceptual penalty (:data:`jaxadv.image.PERCEPTUAL_DISTANCES`), or
        None (default: none).
      random_start: start from a random point of the first budget; None: only for untargeted
        saliency/dense attacks.

    Returns:
      An :class:`SMBEAttack` with the ``"smbea"`` rule (its ``extras`` are described there).
    """
    return SMBEAttack(
        loss=loss,
        targeted=targeted,
        steps=steps,
        minibatches=minibatches,
        norm=norm,
        feature_loss=feature_loss,
        penalty=penalty,
        random_start=random_start,
    )
