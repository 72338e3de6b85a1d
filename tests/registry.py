"""The conformance registry: every public attack factory of ``jaxadv.attacks`` and every step-rule
factory of ``jaxadv.transforms``, registered once with cheap settings and what the checks need to
know about it (as optax's ``contrib/_common_test.py`` lists its optimisers). The checks live in
``tests/test_conformance.py``; a public factory missing here fails a test there.

An attack entry says which tiny victim it runs on, which hyper-parameter is its budget (``eps``:
then ``eps = 0`` must be the identity), which norm the budget bounds (checked on ``delta``),
which field a sweep varies and over which values, and whether it also runs once op by op
(``eager``: 2-10 s each, so one entry per loop family). Targeted-ness and random starts are read
from the attack itself.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import attacks, gradients, transforms
from jaxadv.image import smoother
from jaxadv.models.saliency import SaliencyVictim

from conftest import make_mlp_victim, mlp_apply
from example_attack import RandomSignNoise

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository

# -- victims ---------------------------------------------------------------------------------------

SALIENCY_SHAPE = (4, 4, 2)
SALIENCY_CHANNELS = 5  # channels of the stub's hidden layer "feat"


def _stub_hidden(variables, x):
    return jnp.tanh(x @ variables["w"] + variables["b"])  # [b, 4, 4, C]


def stub_saliency_capture(variables, x):
    h = _stub_hidden(variables, x)
    return {"feat": h, "map": jnp.mean(h, axis=-1)}


def stub_saliency_apply(variables, x):
    return jax.nn.sigmoid(jnp.mean(_stub_hidden(variables, x), axis=-1))


@functools.lru_cache(maxsize=None)
def make_saliency_victim() -> SaliencyVictim:
    """A pure-function saliency victim (a per-pixel tanh layer and a sigmoid map): cheap to
    compile, with a named hidden layer for feature-space attacks."""
    k1, k2 = jax.random.split(jax.random.key(0))
    variables = {
        "w": jax.random.normal(k1, (SALIENCY_SHAPE[-1], SALIENCY_CHANNELS)),
        "b": 0.1 * jax.random.normal(k2, (SALIENCY_CHANNELS,)),
    }
    return SaliencyVictim(
        variables=variables,
        apply_fn=stub_saliency_apply,
        capture_fn=stub_saliency_capture,
        input_shape=SALIENCY_SHAPE,
        output="unit",
        map_shape=SALIENCY_SHAPE[:2],
        layer_names=("feat", "map"),
        bounds=(0.0, 1.0),
    )


@functools.lru_cache(maxsize=None)
def make_classifier() -> Any:
    return make_mlp_victim()  # 4×4×1 images in [0, 1], 3 classes


def make_ensembles() -> Any:
    """SMBEA's victims: two mini-batches of classifier ensembles."""
    from jaxadv.models import ensemble

    a, b = make_mlp_victim(seed=0), make_mlp_victim(seed=3)
    return (ensemble([a, b], [2.0, 1.0]), ensemble([make_mlp_victim(seed=5)]))


@functools.lru_cache(maxsize=None)
def make_black_box_with_surrogate() -> Any:
    """The classifier as a black box (score-only) carrying a differently seeded white-box MLP as
    its surrogate: the victim of the transfer-prior query attacks."""
    from jaxadv import models

    return models.with_surrogates(models.score_only(make_classifier()), make_mlp_victim(seed=1))


@functools.lru_cache(maxsize=None)
def make_saliency_black_box_with_surrogate() -> Any:
    """The saliency stub as a black box with a stub of other weights as its substitute."""
    from jaxadv import models

    stub = make_saliency_victim()
    other = stub.replace(variables=jax.tree.map(lambda a: -0.5 * a[::-1], stub.variables))
    return models.with_surrogates(models.score_only(stub), other)


@functools.lru_cache(maxsize=None)
def make_score_only_classifier() -> Any:
    """The classifier seen through its scores only (query-based attacks; no gradient)."""
    from jaxadv import models

    return models.score_only(make_classifier())


class DenseMetaAttacker(nn.Module):
    """A tiny meta attacker: one dense layer from the flattened input to a same-shaped output
    (``models.MetaAttacker``'s convolutions cost ~10× its compile time with per-example
    weights)."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(x.size, name="dense")(x.ravel()).reshape(x.shape)


@functools.lru_cache(maxsize=None)
def make_black_box_with_meta_attacker() -> Any:
    """The classifier as a black box carrying a tiny meta attacker: the Meta Attack's victim."""
    from jaxadv import models

    module = DenseMetaAttacker()
    variables = module.init(jax.random.key(5), jnp.zeros(make_classifier().input_shape))
    return models.with_meta_attacker(models.score_only(make_classifier()), module, variables)
@functools.lru_cache(maxsize=None)
def make_video_classifier() -> Any:
    """A tiny video classifier seen through its scores: the tests' tanh MLP (16 hidden units) on
    videos (T=3, 4, 4, 1), 3 classes, its weights drawn and centred in numpy (nothing to compile
    to build it). The ME-Sampler's victim: any classifier whose input is a video."""
    from jaxadv import models
    from jaxadv.models import Victim

    rng = np.random.default_rng(4)
    w1 = rng.normal(size=(48, 16)) * 2.0 / np.sqrt(48)
    w2 = rng.normal(size=(16, 3)) * 2.0
    sample = rng.uniform(size=(256, 48))  # centre the logits: every class is predicted somewhere
    b2 = -np.mean(np.tanh(sample @ w1) @ w2, axis=0)
    variables = {"w1": w1, "b1": np.zeros(16), "w2": w2, "b2": b2}
    mlp = Victim(
        variables={k: jnp.asarray(v, jnp.float32) for k, v in variables.items()},
        apply_fn=mlp_apply,
        input_shape=(3, 4, 4, 1),
        num_classes=3,
        bounds=(0.0, 1.0),
    )
    return models.score_only(mlp)


def dual_labels(images: jax.Array, labels: jax.Array) -> Any:
    """The dual attack's labels: the classes and a random foreground mask per image."""
    mask = jax.random.bernoulli(jax.random.key(44), 0.5, images.shape[:-1] + (1,))
    return attacks.DualLabels(labels, mask.astype(jnp.float32))


VICTIMS: dict[str, Callable[[], Any]] = {
    "classifier": make_classifier,
    "classifier+surrogate": make_black_box_with_surrogate,
    "classifier+meta": make_black_box_with_meta_attacker,
    "saliency+surrogate": make_saliency_black_box_with_surrogate,
    "score-only classifier": make_score_only_classifier,
    "saliency": make_saliency_victim,
    "ensembles": make_ensembles,
    "tiny video classifier": make_video_classifier,
}

# -- attacks ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AttackEntry:
    """One registered attack.

    Attributes:
      factory: the public factory this entry covers (``jaxadv.attacks.<name>``).
      make: builds the attack with cheap settings (2-4 steps).
      values: ``attack.hparams(**values)`` for the checks.
      victim: a key of :data:`VICTIMS`.
      eps: the field that is the budget's radius (``eps = 0`` must leave the input unchanged);
        None for attacks without a budget (C&W, SparseFool, SAPF's count is ``budget="l0"``).
      budget: the norm the budget bounds, checked on ``delta``: ``"linf"``, ``"l2"``, ``"l1"``,
        ``"l0"`` (radius field ``k``), ``"l0+linf"`` (``k`` and ``eps``) or None.
      sweep: ``(field, values)`` of the hyper-parameter grid (the first value of an ``eps``
        sweep is 0).
      eager: also run one example with ``jax.disable_jit`` (op by op, seconds each).
      full: all checks; False: the batch-level ones only (no loop over examples, no sweep).
      slow: the entry's conformance run is in the slow suite only (its paths are covered by
        other entries and its own tests).
      labels: ``(images, classes) -> labels`` for an attack whose labels are not the classes
        (the dual attack's ``DualLabels``); None: the classes.
      constant_search: rounds of a constant search can reach the same iterate (Adam's first
        step ignores the constant), so rounding decides which round's loss is reported; the
        loop-over-examples check then accepts the same step's loss from another round.
    """

    factory: Callable
    make: Callable[[], Any]
    values: dict = dataclasses.field(default_factory=dict)
    victim: str = "classifier"
    eps: str | None = "eps"
    budget: str | None = "linf"
    sweep: tuple[str, tuple[float, ...]] = ("eps", (0.0, 0.05, 0.2))
    eager: bool = False
    full: bool = True
    slow: bool = False
    labels: Callable[[jax.Array, jax.Array], Any] | None = None
    constant_search: bool = False


_SAPF_SMALL = dict(steps=1, mask_steps=1, finetune_steps=1, trials=1)  # 3 steps: host-driven

# One entry per public factory, all checks. Where a factory has structural options that take
# other code paths (norms, restarts, targets), the entry picks the one that covers most and the
# others are batch-level VARIANTS below (each check costs a compilation: ~1-3 s of CPU).
ATTACKS: dict[str, AttackEntry] = {
    "fgsm": AttackEntry(attacks.fgsm, lambda: attacks.fgsm(), dict(eps=0.1)),
    "bim": AttackEntry(  # targeted, C&W margin loss, no random start
        attacks.bim, lambda: attacks.bim(steps=2, targeted=True, loss="cw"), dict(eps=0.1)
    ),
    "pgd": AttackEntry(  # random start and restarts (the best of 2 per example)
        attacks.pgd, lambda: attacks.pgd(steps=2, restarts=2), dict(eps=0.1)
    ),
    "mi-fgsm": AttackEntry(
        attacks.mi_fgsm, lambda: attacks.mi_fgsm(steps=2), dict(eps=0.1), eager=True
    ),
    "cw-l2": AttackEntry(
        attacks.cw_l2, lambda: attacks.cw_l2(steps=2, search_steps=2), dict(step_size=0.1),
        eps=None, budget=None, sweep=("initial_const", (0.01, 1.0, 10.0)), eager=True,
    ),
    "cw-l0": AttackEntry(
        attacks.cw_l0, lambda: attacks.cw_l0(steps=2, search_steps=1, rounds=2, targeted=True),
        dict(step_size=0.5, initial_const=10.0, shrink=0.5),  # large steps: some succeed in 2
        eps=None, budget=None, sweep=("shrink", (0.3, 1.0)),
    ),
    "pgd-l0-linf": AttackEntry(  # its eps must be > 0 (Spec "positive"): no identity check
        attacks.pgd_l0_linf, lambda: attacks.pgd_l0_linf(steps=2), dict(k=3.0, eps=0.3),
        eps=None, budget="l0+linf", sweep=("eps", (0.1, 0.3)),
    ),
    "sparsefool": AttackEntry(
        attacks.sparsefool, lambda: attacks.sparsefool(steps=2, deepfool_steps=1, targeted=True),
        dict(lam=2.0), eps=None, budget=None, sweep=("lam", (1.0, 3.0)),
    ),
    "sapf": AttackEntry(
        attacks.sapf, lambda: attacks.sapf(**_SAPF_SMALL), dict(k=4.0, lambda1=1.0),
        eps=None, budget="l0", sweep=("k", (1.0, 8.0)),
    ),
    # issue 20: SAPF's Table 1 baselines (their own checks are in test_table1_baselines.py)
    "jsma": AttackEntry(
        attacks.jsma, lambda: attacks.jsma(steps=3), dict(gamma=0.5),
        eps=None, budget=None, sweep=("theta", (0.5, 1.0)), slow=True,
    ),
    "one-pixel": AttackEntry(
        attacks.one_pixel, lambda: attacks.one_pixel(steps=2, population=6, targeted=True),
        eps=None, budget=None, sweep=("scale", (0.5, 1.0)), slow=True,
    ),
    "corner-search": AttackEntry(
        attacks.corner_search, lambda: attacks.corner_search(steps=3, targeted=True),
        dict(k=2.0), eps=None, budget="l0", sweep=("k", (1.0, 3.0)), slow=True,
    ),
    "strattack": AttackEntry(
        attacks.str_attack, lambda: attacks.str_attack(steps=3), dict(const=5.0),
        eps=None, budget=None, sweep=("group_weight", (0.0, 0.5)), slow=True,
    ),
    # SAPF-GS and -VI are SAPF's program with groups or weights: batch-level checks (their
    # host-driven phases compile in seconds each; sapf above runs every check on the same loop).
    "sapf-gs": AttackEntry(
        attacks.sapf_gs, lambda: attacks.sapf_gs(segments=4, **_SAPF_SMALL),
        dict(k=4.0, lambda1=1.0), eps=None, budget="l0", full=False,
    ),
    "sapf-vi": AttackEntry(
        attacks.sapf_vi, lambda: attacks.sapf_vi(**_SAPF_SMALL), dict(k=4.0, lambda1=1.0),
        eps=None, budget="l0", full=False,
    ),
    "qpgd2": AttackEntry(
        # no eager run: qPGD2 is a descent attack (mi-fgsm's eager run covers that loop form)
        attacks.qpgd2, lambda: attacks.qpgd2(steps=2), dict(eps=0.5), budget=None,
        sweep=("eps", (0.0, 1.0)),
    ),
    "scw": AttackEntry(
        # Two search steps can reach the same first iterate (Adam's first step ignores c): the
        # tie of their ℓ2 is broken by rounding, differently under vmap on some CPUs (x86 with
        # AMX: at step 0.05 too), so the reported loss may come from the other round.
        attacks.scw, lambda: attacks.scw(steps=2, search_steps=2), dict(step_size=0.05),
        eps=None, budget=None, sweep=("initial_const", (0.1, 10.0)), constant_search=True,
    ),
    "saliency-pgd": AttackEntry(
        attacks.saliency_pgd, lambda: attacks.saliency_pgd(steps=2), dict(eps=0.1),
        victim="saliency",
    ),
    # rule_attack: AdaEq2M (ℓ∞ budget, momentum with noise); the penalty-only C&W rules are a
    # variant, and every rule's step is a step-rule entry ("rule:<name>"). Hot&Cold's SSIM budget
    # needs images of at least 11×11 pixels (tests/test_update_rules.py runs it).
    "rule-adaeq2m": AttackEntry(
        attacks.rule_attack, lambda: attacks.rule_attack("adaeq2m", steps=2), dict(eps=0.1)
    ),
    # APGD: restarts are runs side by side in one program (APGD-T's targets take the same path;
    # its targeted DLR needs 4 classes). Batch-level checks: the loop is the driver's; ℓ2/ℓ1 and
    # APGD-T run in tests/test_apgd.py (ℓ1's sorts compile slowly: a variant would cost ~6 s).
    "apgd": AttackEntry(
        attacks.apgd, lambda: attacks.apgd(steps=3, restarts=2), dict(eps=0.1), full=False
    ),
    # The README's example ("How to add an attack"): conformant by registration alone.
    "example-random-sign-noise": AttackEntry(
        RandomSignNoise, lambda: RandomSignNoise(tries=2), dict(eps=0.1)
    ),
}  # fmt: skip

# Other structural options of registered factories: the batch-level checks only (same key, float32,
# box, budget, eps = 0, success).
# The dual-perturbation attack: masks in the labels slot; λ = 0, so the plain classifier (the
# saliency term and the per-region budgets are checked in tests/test_dual.py).
ATTACKS["dual-perturbation"] = AttackEntry(
    attacks.dual_perturbation, lambda: attacks.dual_perturbation(steps=2),  # test_dual's too
    dict(eps_f=0.05, eps_b=0.2), eps=None, budget=None, labels=dual_labels, full=False,
)  # fmt: skip

VARIANTS: dict[str, AttackEntry] = {
    "fgm-l2": AttackEntry(
        attacks.fgsm, lambda: attacks.fgsm(norm="l2"), dict(eps=0.5), budget="l2", full=False
    ),
    "pgd-l2": AttackEntry(
        attacks.pgd, lambda: attacks.pgd(norm="l2", steps=2), dict(eps=0.5), budget="l2",
        full=False,
    ),
    "pgd-l1": AttackEntry(
        attacks.pgd, lambda: attacks.pgd(norm="l1", steps=2), dict(eps=2.0), budget="l1",
        full=False,
    ),
    "rule-adam-decay-cw": AttackEntry(
        attacks.rule_attack, lambda: attacks.rule_attack("adam_decay_cw", steps=2), dict(),
        eps=None, budget=None, full=False,
    ),
}  # fmt: skip
ATTACKS.update(VARIANTS)

# SMBEA (two mini-batches of classifier ensembles; β3 = 0 keeps every mini-batch's budget at eps)
# and the subspace attack (a targeted feature-space attack on the saliency stub).
ATTACKS.update({
    "smbea": AttackEntry(
        attacks.smbea, lambda: attacks.smbea(loss="ce", steps=2, minibatches=2),
        dict(eps=0.1, step_size=0.05, beta3=0.0), victim="ensembles",
    ),
    "subspace": AttackEntry(
        # 2 steps: its first-moment/ℓ1 steps act like sign steps, which turn rounding
        # differences between the swept and the single programs into whole steps by the third
        attacks.subspace_attack, lambda: attacks.subspace_attack("feat", 3, loss="mse", steps=2),
        dict(eps=0.1, step_size=0.02), victim="saliency",
    ),
})  # fmt: skip

# Minimum-norm attacks: DeepFool (ℓ∞ with candidates; tests/test_deepfool_ead.py runs ℓ2) and
# EAD (targeted, ℓ1 rule). Their ``eps`` only judges success (default inf): no budget check.
ATTACKS.update({
    "deepfool": AttackEntry(
        attacks.deepfool, lambda: attacks.deepfool(norm="linf", steps=3, candidates=2), dict(),
        eps=None, budget=None, sweep=("overshoot", (0.02, 0.5)), full=False,
    ),
    "ead": AttackEntry(
        attacks.ead, lambda: attacks.ead(steps=2, search_steps=2, targeted=True, decision="l1"),
        dict(step_size=0.1), eps=None, budget=None, sweep=("beta", (0.0, 0.01)), full=False,
    ),
})  # fmt: skip

# Minimum-norm attacks (FMN, DDN): their `eps` judges success (default inf), it bounds nothing,
# so neither a budget nor the eps = 0 identity applies. Batch-level checks only (the other norms
# and the closed forms: tests/test_min_norm.py).
ATTACKS.update({
    "fmn": AttackEntry(  # ℓ0 and targeted: the integer radius rule and the target's margin
        attacks.fmn, lambda: attacks.fmn(norm="l0", targeted=True, steps=3), eps=None,
        budget=None, full=False,
    ),
    "ddn": AttackEntry(attacks.ddn, lambda: attacks.ddn(steps=3), eps=None, budget=None, full=False),
})  # fmt: skip

# FAB (minimum norm): its eps is a success threshold, not a bound on delta (no budget or eps = 0
# identity checks). AutoAttack's FAB-T (two target runs side by side) with a random restart; the
# untargeted and targeted modes are checked in tests/test_fab.py.
ATTACKS.update({
    "fab": AttackEntry(
        attacks.fab, lambda: attacks.fab(norm="l2", n_target_classes=2, steps=1, restarts=2),
        eps=None, budget=None, full=False,
    ),
})  # fmt: skip

# The Square Attack (score-based; 2 iterations after the initial query): batch-level checks;
# tests/test_square.py checks the ℓ2 start, proposals, budget and box.
ATTACKS.update({
    "square": AttackEntry(
        attacks.square, lambda: attacks.square(queries=3), dict(eps=0.1), full=False
    ),
})  # fmt: skip

# Direct-search attacks (score-based; 2 steps after the first query), targeted here: batch-level
# checks. SimBA's eps is a step, not a radius (no budget; eps > 0); this is its pixel basis.
# tests/test_direct_search.py replays their queries (SimBA-DCT, SignHunter ℓ∞/ℓ2) against numpy
# transcriptions of the papers' algorithms.
ATTACKS.update({
    "signhunter": AttackEntry(
        attacks.signhunter, lambda: attacks.signhunter(max_queries=3, targeted=True), dict(eps=0.1),
        full=False,
    ),
    "simba": AttackEntry(
        attacks.simba, lambda: attacks.simba(max_queries=3, targeted=True), dict(eps=0.5),
        eps=None, budget=None, full=False,
    ),
})  # fmt: skip

# The query seam on a saliency victim: NES under a budget of 3 steps (16 queries).
ATTACKS.update({
    "saliency-query-nes": AttackEntry(
        attacks.SaliencyQueryAttack,
        lambda: attacks.SaliencyQueryAttack(
            objective=attacks.SaliencyObjective("cc", False), step_rule=attacks.SteepestStep("linf"),
            constraint=attacks.Ball("linf"), oracle=gradients.nes(4), max_queries=16,
        ),
        dict(eps=0.1, step_size=0.03, fd_step=0.01), victim="saliency", full=False,
    ),
})  # fmt: skip

# ZOO and AutoZOOM (score-based, C&W's log-probability objective in a tanh latent; no budget):
# batch-level checks; tests/test_zoo.py checks the estimators, the step rules and query counts,
# and runs these same attacks on the same victim and shapes (one compilation serves both).
ATTACKS.update({
    "zoo": AttackEntry(
        attacks.zoo, lambda: attacks.zoo(batch=8, max_queries=3 * 17 + 1),
        victim="score-only classifier", eps=None, budget=None, full=False,
    ),
    "autozoom": AttackEntry(
        attacks.autozoom, lambda: attacks.autozoom(directions=3, max_queries=17),
        victim="score-only classifier", eps=None, budget=None, full=False,
    ),
})  # fmt: skip

# Meta Attack (score-based, ZOO's objective; a fine-tuning step of 2·2 + 1 queries, a predicted
# step of 1, the final evaluation): batch-level checks; tests/test_meta_attack.py checks
# the oracle, the fine-tuning, query counts and the true-gradient limit.
ATTACKS.update({
    "meta-attack": AttackEntry(
        attacks.meta_attack,
        lambda: attacks.meta_attack(top_q=2, max_queries=7, finetune_steps=1),
        victim="classifier+meta", eps=None, budget=None, full=False,
    ),
})  # fmt: skip

# Bandits-TD (score-based; 1 step of 3 queries and the final evaluation): the ℓ2 attack,
# batch-level checks; tests/test_bandits.py runs the ℓ∞ attack with a tiled prior and checks the
# estimator, the query counts and the frozen prior.
ATTACKS.update({
    "bandits": AttackEntry(
        attacks.bandits, lambda: attacks.bandits(norm="l2", max_queries=4), dict(eps=0.5),
        budget="l2", full=False,
    ),
})  # fmt: skip

# Finite-difference query attacks (NES, SPSA, RGF): 1 step of 4 probes each; batch-level checks
# (their loop is the descent loop; tests/test_gradient_estimators.py checks the estimators, query
# accounting and a score-only victim).
ATTACKS.update({
    "nes": AttackEntry(
        attacks.nes_attack, lambda: attacks.nes_attack(samples=4, max_queries=6),
        dict(eps=0.1, fd_step=0.01), full=False,
    ),
    "spsa": AttackEntry(
        attacks.spsa_attack, lambda: attacks.spsa_attack(samples=4, max_queries=6),
        dict(eps=0.1), full=False,
    ),
    "rgf": AttackEntry(
        attacks.rgf_attack, lambda: attacks.rgf_attack(samples=4, max_queries=6),
        dict(eps=0.5, fd_step=0.01), budget="l2", full=False,
    ),
})  # fmt: skip

# Public callables of ``jaxadv.attacks`` that are not attack factories (helpers, building blocks
# and driver pieces); every other public function must be a registered factory.
# Transfer-prior query attacks (black box + a white-box surrogate; 1-2 steps each): batch-level
# checks; tests/test_prior_estimators.py checks the estimators, query counts and errors.
ATTACKS.update({
    "prgf": AttackEntry(
        attacks.prgf, lambda: attacks.prgf(samples=4, norm_samples=4, max_queries=15),
        dict(eps=0.1, step_size=0.05, fd_step=1e-3), victim="classifier+surrogate", full=False,
    ),
    "prior-boosted": AttackEntry(
        attacks.prior_boosted, lambda: attacks.prior_boosted(prior="gradient", max_queries=7),
        dict(eps=0.1), victim="classifier+surrogate", full=False,
    ),
    # the paper's path: Algorithm 1's priors (1 step on 3 channels of "feat") on a saliency model
    "prior-boosted-saliency": AttackEntry(
        attacks.prior_boosted,
        lambda: attacks.prior_boosted(
            saliency=True, layer="feat", channels=3, prior_steps=1, max_queries=4
        ),
        dict(eps=0.1), victim="saliency+surrogate", full=False,
    ),
    "subspace-bandits": AttackEntry(
        attacks.subspace_bandits, lambda: attacks.subspace_bandits(max_queries=7),
        dict(eps=0.1), victim="classifier+surrogate", full=False,
    ),
})  # fmt: skip

# Motion-Excited Sampler (issue 16; 4 steps of 3 queries and the final evaluation) on a tiny
# video victim, the frame-difference motion map: batch-level checks; tests/test_motion.py runs
# the same attack on the same victim and batch size (one compilation serves both) for exact
# query counts and success, and checks the warp, the motion maps, the sampler and the oracle.
ATTACKS.update({
    "me-sampler": AttackEntry(
        attacks.me_sampler, lambda: attacks.me_sampler(motion="difference", max_queries=13),
        dict(eps=0.1), victim="tiny video classifier", full=False,
    ),
})  # fmt: skip

NOT_ATTACK_FACTORIES = {
    "apgd_checkpoints": "APGD's step-size checkpoints (a tuple of step indices)",
    "autoattack": "runs the AutoAttack ensemble of registered families (tests/test_autoattack.py)",
    "best_of": "reduces stacked restarts to the best result",
    "common_positions": "an analysis helper over SAPF results",
    "constant_search": "C&W's search as a Program combinator (used by cw_l2 and scw)",
    "corner_rank_weights": "CornerSearch's sampling weights over ranked changes (an array)",
    "corner_ranking": "CornerSearch's one-pixel corner changes, ranked (arrays)",
    "de_generation": "One-Pixel's differential-evolution generation (arrays)",
    "de_indices": "One-Pixel's DE partner indices per member (an array)",
    "group_soft_threshold": "StrAttack's closed-form group proximal step (an array)",
    "saliency_pair": "JSMA's pairwise saliency-map search (indices)",
    "hyperplane_box_projection": "FAB's projection onto a hyperplane inside a box (an array)",
    "descent": "the descent loop as a Program (the building block of most families)",
    "l1_linear_solve": "SparseFool's inner linear solve",
    "per_example": "driver: one phase of an attack on one example",
    "perturbation_norms": "norms of a perturbation",
    "plan": "driver: the phases of a run",
    "run_calls": "driver: runs calls through the phases",
    "run_program": "driver: runs a Program as one scan",
    "saliency_clean_outputs": "the clean outputs a saliency attack compares against",
    "sparked_noise": "the ME-Sampler's noise: one frame warped by a motion field (an array)",
    "square_schedule": "the Square Attack's schedule of p (an array)",
    "square_side": "the Square Attack's square side for a fraction p (an array)",
    "with_context": "a Program combinator (per-example data in the carry)",
}

# -- step rules ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RuleEntry:
    """One registered step rule: ``build()`` the transformation.

    Attributes:
      factory: the public factory covered (None: a composition or a rule of the library).
      numeric: the factory's numeric hyper-parameters (``optax.inject_hyperparams`` may carry
        them as state; empty: the check does not apply).
      static: its structural arguments (``static_args`` of ``inject_hyperparams``).
      build_fn: builds the transformation otherwise (then ``numeric``/``static`` are unused).
      mask: ``params`` is a mask in [0, 1] (ℓp-box ADMM) instead of a perturbation.
    """

    factory: Callable | None
    numeric: dict = dataclasses.field(default_factory=dict)
    static: dict = dataclasses.field(default_factory=dict)
    build_fn: Callable[[], optax.GradientTransformation] | None = None
    mask: bool = False

    def build(self) -> optax.GradientTransformation:
        if self.build_fn is not None:
            return self.build_fn()
        return self.factory(**self.numeric, **self.static)

    def build_injected(self) -> optax.GradientTransformation:
        return optax.inject_hyperparams(self.factory, static_args=tuple(self.static))(
            **self.numeric, **self.static
        )


RULE_SHAPE = (4, 3, 2)  # one example's perturbation


def _smoother():
    x0 = jax.random.uniform(jax.random.key(3), RULE_SHAPE)
    return smoother(x0, alpha=0.8, maxiter=5)


def _region_mask():
    return jax.random.bernoulli(jax.random.key(4), 0.5, RULE_SHAPE[:-1] + (1,)).astype(jnp.float32)


T = transforms
STEP_RULES: dict[str, RuleEntry] = {
    "sign": RuleEntry(T.sign),
    "normalize_by_l2_norm": RuleEntry(T.normalize_by_l2_norm),
    "normalize_by_l1_norm": RuleEntry(T.normalize_by_l1_norm),
    "l1_steepest": RuleEntry(T.l1_steepest, dict(sparsity=0.9)),
    "mi_momentum": RuleEntry(T.mi_momentum, dict(decay=0.8)),
    "normalize_gradient": RuleEntry(T.normalize_gradient, static=dict(kind="l2")),
    "first_momentum": RuleEntry(
        T.first_momentum, dict(decay=0.9, noise_scale=0.01), dict(ema=True, debias=True, key=3)
    ),
    "second_momentum": RuleEntry(T.second_momentum, dict(decay=0.9), dict(kind="plus")),
    "scale_by_momenta": RuleEntry(
        T.scale_by_momenta, dict(eps=1e-8),
        dict(first=T.first_momentum(0.9), second=T.second_momentum("decay", 0.9)),
    ),
    "adaeq2m_published": RuleEntry(T.adaeq2m_published, dict(decay1=1.0, decay2=0.9), dict(key=1)),
    "adaeq2m": RuleEntry(T.adaeq2m, dict(step_size=0.01, mu1=1.0, mu2=0.9, noise_scale=0.01)),
    "adaeq2m_v2": RuleEntry(T.adaeq2m_v2, dict(step_size=0.01, mu1=1.0, mu2=0.9)),
    "adagrad_decay_im": RuleEntry(T.adagrad_decay_im, dict(step_size=0.01, mu2=0.9)),
    "adagrad_plus_im": RuleEntry(T.adagrad_plus_im, dict(step_size=0.01, mu2=0.9)),
    "adam_decay_im": RuleEntry(T.adam_decay_im, dict(step_size=0.01, mu1=0.9, mu2=0.9)),
    "adam_vanilla_im": RuleEntry(T.adam_vanilla_im, dict(step_size=0.01, mu1=0.9)),
    "msgd_mim": RuleEntry(T.msgd_mim, dict(step_size=0.01, mu1=1.0)),
    "sgd_ifgsm": RuleEntry(T.sgd_ifgsm, dict(step_size=0.01)),
    "sgd_ifgv": RuleEntry(T.sgd_ifgv, dict(step_size=0.01)),
    "scale_by_long_term_memory": RuleEntry(T.scale_by_long_term_memory, dict(mu1=0.9, mu2=0.99)),
    "smbea_step": RuleEntry(T.smbea_step, dict(step_size=0.01, mu1=0.9, mu2=0.99)),
    "lp_box_admm": RuleEntry(T.lp_box_admm, dict(k=5.0, learning_rate=0.1), mask=True),
    # ZOO's coordinate rules (a dense gradient: every coordinate chosen)
    "coordinate_adam": RuleEntry(
        T.coordinate_adam, dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8)
    ),
    "coordinate_newton": RuleEntry(T.coordinate_newton, dict(learning_rate=0.01)),
    # The smoother holds arrays of the clean image: not a numeric hyper-parameter.
    "smooth_updates": RuleEntry(T.smooth_updates, build_fn=lambda: T.smooth_updates(_smoother())),
    # The dual attack's per-region steps, on a mask of one example (4×3×1)
    "region_steepest": RuleEntry(
        T.region_steepest, build_fn=lambda: T.region_steepest(_region_mask(), "l2")
    ),
    "region_scale": RuleEntry(
        T.region_scale, build_fn=lambda: T.region_scale(_region_mask(), -0.01, -0.05)
    ),
    # A composition, as the classic recipes build it (MI-FGSM's step).
    "mi-chain": RuleEntry(
        None,
        build_fn=lambda: optax.chain(T.mi_momentum(1.0), T.sign(), optax.scale(-0.01)),
    ),
}  # fmt: skip


def _library_rule(rule: str) -> RuleEntry:
    attack = attacks.rule_attack(rule, targeted=rule == "hot_cold")
    hp = attack.derive(attack.hparams())
    return RuleEntry(None, build_fn=lambda: transforms.RuleStep(rule)(hp))


# The rules of rule_attack (Che et al.'s library), each as the step it takes inside the attack.
STEP_RULES.update({f"rule:{rule}": _library_rule(rule) for rule in transforms.RULES})

# Public callables of ``jaxadv.transforms`` that return something else than a transformation.
NOT_STEP_RULE_FACTORIES = {
    "check_groups": "validates a group map (raises or returns its size)",
    "check_unit_interval": "validates a decay in [0, 1] (raises)",
    "binarize": "SAPF's final mask (an array)",
    "constraint_schedule": "SMBEA's budget schedule (an array)",
    "group_soft_threshold": "a prox (an array)",
    "next_minibatch": "SMBEA's memory hand-over between mini-batches (a state)",
    "project_box": "a projection (an array)",
    "project_sphere": "a projection (an array)",
    "sapf_step_schedule": "an optax schedule",
}


def rule_grads(n: int = 3, seed: int = 0) -> jax.Array:
    """Random normal gradients (``sign`` never sits on a zero crossing)."""
    return jax.random.normal(jax.random.key(seed), (n,) + RULE_SHAPE)


def rule_params(entry: RuleEntry) -> jax.Array:
    if entry.mask:
        return jax.random.uniform(jax.random.key(9), RULE_SHAPE)
    return jnp.zeros(RULE_SHAPE)


# EOT (issue 17): an Attack subclass (the dual attack, λ = 0, masks in the labels slot) averaging
# over 3 draws per step of a randomized victim (the classifier behind Gaussian input noise), with
# no EOT code of its own; tests/test_eot.py checks the mean over draws, the vote, the recipes.
@functools.lru_cache(maxsize=None)
def make_noisy_classifier() -> Any:
    from jaxadv import models

    return models.with_input_noise(make_classifier(), 0.1)


VICTIMS["noisy classifier"] = make_noisy_classifier
ATTACKS.update({
    "eot-dual": AttackEntry(
        attacks.with_eot, lambda: attacks.with_eot(attacks.dual_perturbation(steps=1), 3),
        dict(eps_f=0.05, eps_b=0.2), victim="noisy classifier", eps=None, budget=None,
        labels=dual_labels, full=False,
    ),
})  # fmt: skip


# Transfer boosters (issue 22): each recipe and with_transfer on the classifier, batch-level
# checks only (one compilation each); tests/test_transfer.py checks the boosters' numbers. The
# default run keeps with-transfer (TI, SI), TI, NI and VNI (variance tuning + look-ahead); DI,
# SI-NI, VMI and Admix (their oracle pieces are checked in test_transfer.py) are slow-only.
_ADMIX_POOL = np.random.default_rng(45).uniform(size=(4, 4, 4, 1)).astype(np.float32)


ATTACKS.update({
    "with-transfer": AttackEntry(  # TI and SI on a rule without momentum, targeted
        attacks.with_transfer,
        lambda: attacks.with_transfer(
            attacks.bim(steps=2, targeted=True), translation=3, scales=2
        ),
        dict(eps=0.1), full=False,
    ),
    "di-fgsm": AttackEntry(
        attacks.di_fgsm, lambda: attacks.di_fgsm(steps=2, prob=1.0), dict(eps=0.1), full=False
    ),
    "ti-fgsm": AttackEntry(
        attacks.ti_fgsm, lambda: attacks.ti_fgsm(steps=2, kernel_size=3), dict(eps=0.1),
        full=False, slow=True,
    ),
    "ni-fgsm": AttackEntry(
        attacks.ni_fgsm, lambda: attacks.ni_fgsm(steps=2), dict(eps=0.1), full=False
    ),
    "si-ni-fgsm": AttackEntry(
        attacks.si_ni_fgsm, lambda: attacks.si_ni_fgsm(steps=2, scales=2), dict(eps=0.1),
        full=False, slow=True,
    ),
    "vmi-fgsm": AttackEntry(
        attacks.vmi_fgsm, lambda: attacks.vmi_fgsm(steps=2, neighbours=2), dict(eps=0.1),
        full=False, slow=True,
    ),
    "vni-fgsm": AttackEntry(
        attacks.vni_fgsm, lambda: attacks.vni_fgsm(steps=2, neighbours=2), dict(eps=0.1),
        full=False,
    ),
    "admix-fgsm": AttackEntry(
        attacks.admix_fgsm,
        lambda: attacks.admix_fgsm(_ADMIX_POOL, steps=2, scales=2, copies=2),
        dict(eps=0.1), full=False, slow=True,
    ),
})  # fmt: skip
STEP_RULES["translation_invariant"] = RuleEntry(
    T.translation_invariant, dict(sigma=0.8), dict(kernel_size=3)
)
NOT_STEP_RULE_FACTORIES.update({
    "gaussian_kernel": "TI's kernel (an array)",
    "smooth_image": "TI's convolution of one image (an array)",
})
