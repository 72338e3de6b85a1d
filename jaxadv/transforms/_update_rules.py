"""The update rules of the saliency paper's attack library, as optax chains of shared pieces.

Che et al., "A new ensemble adversarial attack powered by long-term gradient memories", AAAI
2020, and the slides of its attack library (Table 1: fourteen gradient attacks; the fourteenth,
SMBEA, adds a long-term memory between mini-batches and lives elsewhere). Every rule is the
general paradigm of ``jaxadv/transforms/_momenta.py`` with pieces switched on or off; ĝ = N(g) is
the normalised gradient (N = ℓ1 unless noted), α the step size, and the step is ADDED to the
perturbation (the objective is minimised):

=====================  ============================================================================
rule (paper name)      chain
=====================  ============================================================================
``sgd_ifgsm``          sign → scale(−α): ``x ← x − α·sign(g)``  (I-FGSM, Kurakin et al. 2017)
``sgd_ifgv``           normalize(ℓ∞) → scale(−α): ``x ← x − α·g/max|g|``  (I-FGV, Rozsa et al.
                       2016)
``msgd_mim``           normalize → first(μ1) → sign → scale(−α): ``m ← μ1·m + ĝ``,
                       ``x ← x − α·sign(m)``  (MI-FGSM, Dong et al. 2018)
``adagrad_plus_im``    normalize → momenta(ĝ, V "plus") → scale(−α):
                       ``V ← μ2·V + (1−μ2)·ĝ²``, ``x ← x − α·ĝ/√(V + ε)``
``adagrad_decay_im``   as above with V "decay": ``V_t = μ2·Ē_{t−1} + (1−μ2)·ĝ_t²``
``adam_vanilla_im``    normalize → momenta(first EMA + bias correction, V "vanilla") → scale(−α):
                       ``m ← μ1·m + (1−μ1)·ĝ``, ``V ← V + ĝ²``, ``x ← x − α·m̂/√(V + ε)``
``adam_decay_im``      as above with V "decay"
``adaeq2m``            normalize → momenta(first + randn, V "plus") → scale(−α):
                       ``m ← μ1·m + ĝ + σ·mean|ĝ|·ξ``, ``V ← μ2·V + (1−μ2)·ĝ²``,
                       ``x ← x − α·m/√(V + ε)`` (the paradigm itself, plus the Gaussian term)
``adaeq2m_v2``         as ``adaeq2m`` without the Gaussian term
``hot_cold``           the ``sgd_ifgv`` chain (Hot/Cold: "SGD, no momentum"; its hot/cold objective
                       and SSIM budget belong to the attack, ``jaxadv.attacks.rule_attack``)
``pgd``                the ``sgd_ifgsm`` chain (PGD's random start belongs to the attack)
``adam_decay_cw``      the ``adam_decay_im`` chain (C&W's penalised objective belongs to the attack)
``adaeq2m_cw``         the ``adaeq2m`` chain (idem)
=====================  ============================================================================

Our reading of the paper, where the slides name a piece without its formula: the second momenta
"plus", "decay" and "vanilla" are defined in :func:`second_momentum`; both momenta accumulate the
same normalised gradient ĝ (Algorithm 1, steps 5–7), which makes every rule's step invariant to
scaling the raw gradient by ``c > 0`` (Property 1; exactly so for ε = 0). The "Adam" rules use
Adam's EMA first moment with bias correction (Kingma & Ba, ICLR 2015); the paradigm's rules
(MSGD, AdaEq2M) accumulate ``m`` without damping and without correction. ε sits inside the root
as the paradigm writes it; because V holds squares of ℓ1-normalised entries (order ``1/n²`` for
``n`` pixels) its default is 1e-20, a guard against 0/0 only.

Where the published code differs (CZHQuality/AAA-Pix2pix, ``Attack_methods_library.py``): its
AdaEq2M normalises by ``mean|g|`` and carries the already-normalised step in place of ``m``;
``variant="code"`` gives that (:func:`adaeq2m_published`). The registry :data:`UPDATE_RULES`
maps each name to a :class:`RuleStep`, an ``hp -> optax.GradientTransformation`` factory that
reads its numbers from a hyper-parameter pytree, so they may be traced and swept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

from jaxadv import _checks
from jaxadv.transforms._momenta import (
    NORMALIZERS,
    adaeq2m_published,
    first_momentum,
    normalize_gradient,
    scale_by_momenta,
    second_momentum,
)
from jaxadv.transforms._normalize import sign

VARIANTS = ("paper", "code")
_EPS = 1e-20  # guards 0/0 only: V holds squares of l1-normalised entries
_CODE_EPS = 1e-8  # the published code's smoothing term (its entries are of order one)

Number = jax.Array | float


def _descend(*parts, step_size) -> optax.GradientTransformation:
    _checks.check_nonnegative("step_size", step_size)
    return optax.chain(*parts, optax.scale(-step_size))


def sgd_ifgsm(step_size: Number) -> optax.GradientTransformation:
    """SGD-IFGSM (library attack 5; PGD, attack 11, is the same step from a random start):
    ``x ← x − α·sign(g_t)``. Kurakin, Goodfellow & Bengio, ICLR-W 2017.

    Args:
      step_size: the step size α >= 0 (may be traced).

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _descend(sign(), step_size=step_size)


def sgd_ifgv(step_size: Number, *, normalizer: str = "linf") -> optax.GradientTransformation:
    """SGD-IFGV (library attack 6; Hot&Cold's step, attack 10): ``x ← x − α·N(g_t)``.

    The iterative fast gradient *value* method of Rozsa, Rudd & Boult (CVPR-W 2016): the raw
    gradient scaled so that its largest entry is ±1 (``normalizer="linf"``); any normaliser of
    :func:`normalize_gradient` may be chosen (``"none"``: the raw value, as the published code).

    Args:
      step_size: the step size α >= 0 (may be traced).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"linf"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _descend(normalize_gradient(normalizer), step_size=step_size)


def msgd_mim(
    step_size: Number, mu1: Number = 1.0, *, normalizer: str = "l1"
) -> optax.GradientTransformation:
    """MSGD-MIM (library attack 4): ``m_t = μ1·m_{t−1} + N(g_t)``, ``x ← x − α·sign(m_t)``.

    Momentum iterative FGSM (Dong et al., CVPR 2018); μ1 = 1 as in that paper.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum (accumulated); default 1.0.
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _descend(
        normalize_gradient(normalizer), first_momentum(mu1), sign(), step_size=step_size
    )


def _adaptive(first, kind, mu2, eps, normalizer, step_size):
    return _descend(
        normalize_gradient(normalizer),
        scale_by_momenta(first, second_momentum(kind, mu2), eps_root=eps),
        step_size=step_size,
    )


def adagrad_plus_im(
    step_size: Number, mu2: Number = 0.9, eps: Number = _EPS, *, normalizer: str = "l1"
) -> optax.GradientTransformation:
    """AdaGrad-plus-IM (library attack 7): the raw (normalised) gradient over the "plus" second
    momentum — ``V_t = μ2·V_{t−1} + (1−μ2)·ĝ_t²``, ``x ← x − α·ĝ_t/√(V_t + ε)``.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.9.
      eps: ε, added to ``V_t`` under the square root; default 1e-20 (a guard against 0/0).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _adaptive(None, "plus", mu2, eps, normalizer, step_size)


def adagrad_decay_im(
    step_size: Number, mu2: Number = 0.9, eps: Number = _EPS, *, normalizer: str = "l1"
) -> optax.GradientTransformation:
    """AdaGrad-decay-IM (library attack 8): ``V_t = μ2·Ē_{t−1} + (1−μ2)·ĝ_t²`` (Ē: mean of the
    past ĝ², the slides' RMSProp/Adadelta line), ``x ← x − α·ĝ_t/√(V_t + ε)``.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.9.
      eps: ε, added to ``V_t`` under the square root; default 1e-20 (a guard against 0/0).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _adaptive(None, "decay", mu2, eps, normalizer, step_size)


def adam_vanilla_im(
    step_size: Number, mu1: Number = 0.9, eps: Number = _EPS, *, normalizer: str = "l1"
) -> optax.GradientTransformation:
    """Adam-vanilla-IM (library attack 3): ``m_t = μ1·m_{t−1} + (1−μ1)·ĝ_t``,
    ``m̂_t = m_t/(1 − μ1^t)``, ``V_t = V_{t−1} + ĝ_t²``, ``x ← x − α·m̂_t/√(V_t + ε)``.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum (an EMA); default 0.9.
      eps: ε, added to ``V_t`` under the square root; default 1e-20 (a guard against 0/0).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    first = first_momentum(mu1, ema=True, debias=True)
    return _adaptive(first, "vanilla", 0.0, eps, normalizer, step_size)


def adam_decay_im(
    step_size: Number,
    mu1: Number = 0.9,
    mu2: Number = 0.9,
    eps: Number = _EPS,
    *,
    normalizer: str = "l1",
) -> optax.GradientTransformation:
    """Adam-decay-IM (library attack 2; Adam-decay-C&W, attack 12, takes the same steps):
    ``m_t = μ1·m_{t−1} + (1−μ1)·ĝ_t``, ``m̂_t = m_t/(1 − μ1^t)``,
    ``V_t = μ2·Ē_{t−1} + (1−μ2)·ĝ_t²``, ``x ← x − α·m̂_t/√(V_t + ε)``.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum (an EMA); default 0.9.
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.9.
      eps: ε, added to ``V_t`` under the square root; default 1e-20 (a guard against 0/0).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; default ``"l1"``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    first = first_momentum(mu1, ema=True, debias=True)
    return _adaptive(first, "decay", mu2, eps, normalizer, step_size)


def adaeq2m(
    step_size: Number,
    mu1: Number = 1.0,
    mu2: Number = 0.9,
    eps: Number | None = None,
    noise_scale: Number = 0.01,
    *,
    normalizer: str | None = None,
    variant: str = "paper",
    key: jax.Array | int | None = None,
) -> optax.GradientTransformation:
    """AdaEq2M (library attack 1, the authors' proposal; AdaEq2M-C&W, attack 13, takes the same
    steps): the paradigm with a Gaussian "randn" term in the first momentum and the "plus"
    second momentum::

        ĝ_t = g_t/‖g_t‖₁
        m_t = μ1·m_{t−1} + ĝ_t + σ·mean|ĝ_t|·ξ_t,   ξ_t ~ N(0, I)
        V_t = μ2·V_{t−1} + (1 − μ2)·ĝ_t²
        x ← x − α·m_t/√(V_t + ε)

    Defaults μ1 = 1, μ2 = 0.9, σ = 0.01 are the published code's. ``variant="code"`` follows
    the published code instead (normaliser ``mean|g|``, the emitted step carried in place of
    ``m``; see :func:`adaeq2m_published`, ε = 1e-8 by default). ``key`` seeds ξ (attacks reseed
    it per run). ``normalizer`` defaults to the variant's (``"l1"`` / ``"mean_abs"``).

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum (accumulated); default 1.0.
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.9.
      eps: ε, added under the square root (the code variant adds it after the root too);
        None: 1e-20 (``"paper"``) or 1e-8 (``"code"``).
      noise_scale: σ >= 0, the relative level of the Gaussian term; default 0.01.
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; None: the
        variant's, ``"l1"`` (``"paper"``) or ``"mean_abs"`` (``"code"``).
      variant: ``"paper"`` (default) or ``"code"`` (:func:`adaeq2m_published`).
      key: a PRNG key or an integer seed for ξ; None: ``jax.random.key(0)``.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _adaeq2m(step_size, mu1, mu2, eps, noise_scale, normalizer, variant, key)


def adaeq2m_v2(
    step_size: Number,
    mu1: Number = 1.0,
    mu2: Number = 0.9,
    eps: Number | None = None,
    *,
    normalizer: str | None = None,
    variant: str = "paper",
) -> optax.GradientTransformation:
    """AdaEq2M-V2 (library attack 9): :func:`adaeq2m` without the Gaussian term,
    ``m_t = μ1·m_{t−1} + ĝ_t``, ``V_t = μ2·V_{t−1} + (1 − μ2)·ĝ_t²``,
    ``x ← x − α·m_t/√(V_t + ε)``. ``variant="code"``: the carried-step form with σ = 0.

    Args:
      step_size: the step size α >= 0 (may be traced).
      mu1: μ1 in ``[0, 1]``, the decay of the first momentum (accumulated); default 1.0.
      mu2: μ2 in ``[0, 1]``, the decay of the second momentum; default 0.9.
      eps: ε, added under the square root (the code variant adds it after the root too);
        None: 1e-20 (``"paper"``) or 1e-8 (``"code"``).
      normalizer: the normaliser N, a kind of :func:`normalize_gradient`; None: the
        variant's, ``"l1"`` (``"paper"``) or ``"mean_abs"`` (``"code"``).
      variant: ``"paper"`` (default) or ``"code"`` (:func:`adaeq2m_published`).

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain``) that emits the step to ADD to the
      perturbation (already scaled by ``−α``).
    """
    return _adaeq2m(step_size, mu1, mu2, eps, None, normalizer, variant, None)


def _adaeq2m(step_size, mu1, mu2, eps, noise_scale, normalizer, variant, key):
    _checks.check_choice("variant", variant, VARIANTS)
    if variant == "code":
        normalizer = "mean_abs" if normalizer is None else normalizer
        eps = _CODE_EPS if eps is None else eps
        noise = 0.0 if noise_scale is None else noise_scale
        core = adaeq2m_published(mu1, mu2, noise, eps, key=key)
    else:
        normalizer = "l1" if normalizer is None else normalizer
        eps = _EPS if eps is None else eps
        first = first_momentum(mu1, noise_scale=noise_scale, key=key)
        core = scale_by_momenta(first, second_momentum("plus", mu2), eps_root=eps)
    return _descend(normalize_gradient(normalizer), core, step_size=step_size)


# -- the registry --------------------------------------------------------------------------------

PAPER_NAMES = {
    "adaeq2m": "AdaEq2M",
    "adam_decay_im": "Adam-decay-IM",
    "adam_vanilla_im": "Adam-vanilla-IM",
    "msgd_mim": "MSGD-MIM",
    "sgd_ifgsm": "SGD-IFGSM",
    "sgd_ifgv": "SGD-IFGV",
    "adagrad_plus_im": "AdaGrad-plus-IM",
    "adagrad_decay_im": "AdaGrad-decay-IM",
    "adaeq2m_v2": "AdaEq2M-V2",
    "hot_cold": "Hot&Cold",
    "pgd": "PGD",
    "adam_decay_cw": "Adam-decay-C&W",
    "adaeq2m_cw": "AdaEq2M-C&W",
}
"""Rule key → the name in the library's Table 1 (in its order, attacks 1–13)."""

# rule -> (factory, the hp fields it reads as (hp field, factory argument), default normaliser)
_SPECS: dict[str, tuple[Callable[..., optax.GradientTransformation], tuple, str | None]] = {
    "sgd_ifgsm": (sgd_ifgsm, (), None),
    "pgd": (sgd_ifgsm, (), None),
    "sgd_ifgv": (sgd_ifgv, (), "linf"),
    "hot_cold": (sgd_ifgv, (), "linf"),
    "msgd_mim": (msgd_mim, (("mu1", "mu1"),), "l1"),
    "adagrad_plus_im": (adagrad_plus_im, (("mu2", "mu2"), ("smoothing", "eps")), "l1"),
    "adagrad_decay_im": (adagrad_decay_im, (("mu2", "mu2"), ("smoothing", "eps")), "l1"),
    "adam_vanilla_im": (adam_vanilla_im, (("mu1", "mu1"), ("smoothing", "eps")), "l1"),
    "adam_decay_im": (adam_decay_im, (("mu1", "mu1"), ("mu2", "mu2"), ("smoothing", "eps")), "l1"),
    "adam_decay_cw": (adam_decay_im, (("mu1", "mu1"), ("mu2", "mu2"), ("smoothing", "eps")), "l1"),
    "adaeq2m": (
        adaeq2m,
        (("mu1", "mu1"), ("mu2", "mu2"), ("smoothing", "eps"), ("noise", "noise_scale")),
        None,
    ),
    "adaeq2m_cw": (
        adaeq2m,
        (("mu1", "mu1"), ("mu2", "mu2"), ("smoothing", "eps"), ("noise", "noise_scale")),
        None,
    ),
    "adaeq2m_v2": (adaeq2m_v2, (("mu1", "mu1"), ("mu2", "mu2"), ("smoothing", "eps")), None),
}
RULES = tuple(PAPER_NAMES)
_HAS_VARIANT = ("adaeq2m", "adaeq2m_cw", "adaeq2m_v2")


@dataclasses.dataclass(frozen=True)
class RuleStep:
    """``hp -> optax.GradientTransformation``: one rule of the library, its numbers read from
    ``hp`` (hashable, so an attack holding it is a valid static ``jit`` argument).

    The rule reads ``hp.step_size`` (α) and, where it has them, ``hp.mu1``, ``hp.mu2``,
    ``hp.smoothing`` (ε) and ``hp.noise`` (σ); a field ``hp`` lacks takes the rule's default, so
    a plain :class:`jaxadv.attacks.HParams` works too (then only α is swept).

    Attributes:
      rule: a key of :data:`PAPER_NAMES`.
      variant: ``"paper"`` or ``"code"`` (AdaEq2M family only; see :func:`adaeq2m`).
      normalizer: override the rule's normaliser N (None: the rule's own).
    """

    rule: str
    variant: str = "paper"
    normalizer: str | None = None

    def __post_init__(self):
        _checks.check_choice("rule", self.rule, RULES)
        _checks.check_choice("variant", self.variant, VARIANTS)
        if self.variant != "paper" and self.rule not in _HAS_VARIANT:
            raise ValueError(
                f"`variant={self.variant!r}` exists only for the AdaEq2M rules "
                f"{_HAS_VARIANT}; got rule {self.rule!r}."
            )
        if self.normalizer is not None:
            _checks.check_choice("normalizer", self.normalizer, NORMALIZERS)
            if self.rule in ("sgd_ifgsm", "pgd"):
                raise ValueError(
                    f"Rule {self.rule!r} takes the sign of the raw gradient and has no "
                    f"normaliser; got `normalizer={self.normalizer!r}`."
                )

    @property
    def paper_name(self) -> str:
        return PAPER_NAMES[self.rule]

    def __call__(self, hp: Any) -> optax.GradientTransformation:
        factory, fields, default_normalizer = _SPECS[self.rule]
        step_size = getattr(hp, "step_size", None)
        if step_size is None:
            raise ValueError(
                f"`hp` must have a `step_size` field for rule {self.rule!r}; got "
                f"{type(hp).__name__}."
            )
        kwargs = {arg: getattr(hp, field) for field, arg in fields if hasattr(hp, field)}
        if self.rule in _HAS_VARIANT:
            kwargs["variant"] = self.variant
        if default_normalizer is not None or self.rule in _HAS_VARIANT:
            normalizer = self.normalizer or default_normalizer
            if normalizer is not None:
                kwargs["normalizer"] = normalizer
        return factory(step_size, **kwargs)


UPDATE_RULES: dict[str, RuleStep] = {name: RuleStep(name) for name in RULES}
"""Rule key → ``hp -> optax.GradientTransformation`` (a :class:`RuleStep`), attacks 1–13."""
