"""Transfer boosters on any descent attack: :func:`with_transfer` (DI, TI, SI, Admix, NI, VT).

A transfer attack runs on a white-box SURROGATE and is judged on other models; these boosters
make its perturbations transfer better. They enter an :class:`Attack` at two seams:

* how the gradient is computed — a :class:`jaxadv.gradients.Transfer` oracle built per example
  (input diversity, scale copies, Admix, Nesterov look-ahead, variance tuning; randomness from
  the runner's per-step key, so a run is reproducible from its key);
* the step rule — TI's Gaussian smoothing of the gradient
  (:func:`jaxadv.transforms.translation_invariant`) chained before the attack's own rule.

What an iterate is judged on (loss, logits, success) stays the plain surrogate at the
untransformed input: the oracle makes one extra forward pass for it.

SMBEA (:class:`~jaxadv.attacks.SMBEAttack`) takes DI (on each mini-batch's ensemble input, features
included) and TI (before its normaliser) only; the others are refused by name.

NI and the momentum. NI (Lin et al. 2020, Eq. 6–8) evaluates the gradient at the look-ahead
``x + α·μ·g_t`` (ascent form; here ``θ − α·μ·m_t`` on the minimised objective), ``m_t`` the
MI-FGSM momentum. The oracle keeps a shadow of the step rule's momentum — the same transforms
(TI, then ``mi_momentum(μ)``) applied to the same returned gradients — so ``m_t`` is exactly the
step rule's. With ``μ = 0`` the look-ahead is the iterate itself and the momentum is the
normalised gradient, whose sign is the gradient's: NI is then I-FGSM, bit for bit. Variance
tuning keeps ``v`` in the oracle and adds it to the gradient before the step rule normalises
and accumulates it (Wang & He 2021, Alg. 1): with no neighbours ``v = 0`` and VMI is MI-FGSM.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import optax

from jaxadv import _checks
from jaxadv.attacks._attack import Attack
from jaxadv.attacks._recipes import SteepestStep
from jaxadv.attacks._smbea import SMBEAttack
from jaxadv.gradients import Exact, Transfer
from jaxadv.perturbations import Additive
from jaxadv.transforms import mi_momentum, translation_invariant

LOOKAHEADS = ("paper", "code")


@dataclasses.dataclass(frozen=True)
class Translation:
    """TI's kernel: an odd ``kernel_size`` and the Gaussian's ``sigma`` in pixels (None:
    ``(k − 1)/6``, the paper's code).

    Attributes:
      kernel_size: the odd side ``k`` of the Gaussian kernel (15); it must fit the image.
      sigma: the Gaussian's standard deviation in pixels; None: ``(k − 1)/6``.
    """

    kernel_size: int = 15
    sigma: float | None = None

    def __post_init__(self):
        translation_invariant(self.kernel_size, self.sigma)  # validates both


@dataclasses.dataclass(frozen=True)
class Diversity:
    """DI: resize-and-pad with probability ``prob`` ∈ [0, 1], smallest size ``resize_rate``
    ∈ (0, 1] of the side (torchattacks' 0.9).

    Attributes:
      prob: the probability ∈ [0, 1] that the input is resized and padded (0.5).
      resize_rate: the smallest resized side as a fraction ∈ (0, 1] of the image's (0.9).
    """

    prob: float = 0.5
    resize_rate: float = 0.9

    def __post_init__(self):
        _checks.check_unit_interval("diversity", self.prob)
        rate = float(self.resize_rate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(
                "`resize_rate` must lie in (0, 1] (the image is shrunk and padded back to its "
                f"size); got {self.resize_rate!r}."
            )


@dataclasses.dataclass(frozen=True)
class Variance:
    """Variance tuning: ``neighbours`` ``N`` ≥ 0 sampled in the ℓ∞ ball of radius ``beta·eps``
    around the iterate (Wang & He 2021: N = 20, β = 1.5).

    Attributes:
      neighbours: ``N`` ≥ 0, the sampled neighbours per step (20; 0: no variance tuning).
      beta: β ≥ 0, the neighbours' radius as a multiple of ``hp.eps`` (1.5).
    """

    neighbours: int = 20
    beta: float = 1.5

    def __post_init__(self):
        if isinstance(self.neighbours, bool) or not isinstance(
            self.neighbours, (int, np.integer)
        ) or self.neighbours < 0:
            raise ValueError(
                f"`variance` neighbours must be an integer >= 0; got {self.neighbours!r}."
            )
        _checks.check_nonnegative("beta", self.beta)


@dataclasses.dataclass(frozen=True, eq=False)
class Admix:
    """Admix: ``copies`` images drawn per step from ``pool`` (``[P, *image_shape]``; the paper
    draws images of other classes), each added with weight ``strength`` η to the input (Wang et
    al. 2021: η = 0.2, m2 = 3). Compared (and hashed) by identity: reuse one object to reuse
    compiled programs.

    Attributes:
      pool: the images to mix in, ``[P, *image_shape]`` (stored as a float32 numpy array).
      strength: η ≥ 0, the weight of a mixed-in image (0.2).
      copies: m2 ≥ 1, the images drawn from ``pool`` per step (3).
    """

    pool: Any
    strength: float = 0.2
    copies: int = 3

    def __post_init__(self):
        pool = np.asarray(self.pool, np.float32)
        if pool.ndim < 2 or pool.shape[0] < 1:
            raise ValueError(
                "`admix` pool must be a non-empty stack of images [P, *image_shape]; got shape "
                f"{pool.shape}."
            )
        _checks.check_finite("admix pool", pool)
        object.__setattr__(self, "pool", pool)
        _checks.check_nonnegative("strength", self.strength)
        _checks.check_positive_int("copies", self.copies)


@dataclasses.dataclass(frozen=True)
class Boosters:
    """The gradient-side boosters of one attack; :meth:`oracle` builds the per-example oracle.

    Attributes:
      diversity: DI's :class:`Diversity`, or None (off).
      translation: TI's :class:`Translation`, or None (off).
      scales: SI's number of copies ``x/2^i`` (1: off).
      admix: an :class:`Admix`, or None (off).
      variance: a :class:`Variance`, or None (off).
      nesterov: NI's gradient at the Nesterov look-ahead point.
      lookahead: how far NI looks ahead, ``"paper"`` or ``"code"`` (see :func:`with_transfer`).
    """

    diversity: Diversity | None = None
    translation: Translation | None = None
    scales: int = 1
    admix: Admix | None = None
    variance: Variance | None = None
    nesterov: bool = False
    lookahead: str = "paper"

    def step_rule(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """The attack's step rule ``tx`` with TI's smoothing chained before it."""
        if self.translation is None:
            return tx
        t = self.translation
        return optax.chain(translation_invariant(t.kernel_size, t.sigma), tx)

    def oracle(self, attack: Attack, victim, hp, x0, label, target) -> Transfer:
        objective = attack.loss_fn(victim, hp, x0, label, target)
        pool = None
        if self.admix is not None:
            pool = self.admix.pool
            if pool.shape[1:] != tuple(x0.shape):
                raise ValueError(
                    f"`admix` pool images have shape {pool.shape[1:]}; the victim's input is "
                    f"{tuple(x0.shape)}."
                )
        momentum = lookahead = None
        if self.nesterov:
            momentum = self.step_rule(mi_momentum(hp.decay))  # TI, then MI's momentum
            # "code": the published code's momentum is normalised by the mean |g|, n = x0.size
            # times the ℓ1-normalised one, and so is its look-ahead.
            lookahead = hp.step_size * hp.decay * (x0.size if self.lookahead == "code" else 1)
        variance = self.variance or Variance(0, 0.0)
        return Transfer(
            loss_of_input=lambda x: objective(x, victim(x)),
            x0=x0,
            diversity=None if self.diversity is None else self.diversity.prob,
            resize_rate=1.0 if self.diversity is None else self.diversity.resize_rate,
            scales=self.scales,
            pool=pool,
            mix_strength=0.0 if self.admix is None else self.admix.strength,
            mix_copies=1 if self.admix is None else self.admix.copies,
            neighbours=variance.neighbours,
            radius=variance.beta * hp.eps if variance.neighbours else 0.0,
            lookahead=lookahead,
            momentum=momentum,
        )


def _as(kind: type, value: Any, name: str, make: Callable[[Any], Any]):
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"`{name}` must be a number or a jaxadv.attacks.{kind.__name__}; got {value!r}."
        )
    return make(value)


def _smbea_with_transfer(attack: SMBEAttack, diversity, translation, others) -> SMBEAttack:
    """SMBEA takes TI (its step rule's gradient) and DI (its ensembles' input) only."""
    refused = [name for name, value in others.items() if value]
    if refused:
        raise ValueError(
            f"SMBEA takes only the `diversity` (DI) and `translation` (TI) boosters; got "
            f"{refused}: SI and Admix would average gradients of rescaled/mixed copies through a "
            "mini-batch's fused ensemble objective and its references, variance tuning and NI "
            "assume the MI-FGSM momentum, which SMBEA's long-term memory replaces."
        )
    if attack.translation is not None or attack.diversity is not None:
        raise ValueError(f"`attack` {attack.name!r} already has transfer boosters; give them all "
                         "in one call to `with_transfer`.")
    diversity = _as(Diversity, diversity, "diversity", Diversity)
    translation = _as(Translation, translation, "translation", Translation)
    parts = [("di", diversity), ("ti", translation)]
    name = "+".join([attack.name] + [tag for tag, value in parts if value is not None])
    return dataclasses.replace(attack, diversity=diversity, translation=translation, name=name)


def with_transfer(
    attack: Attack | SMBEAttack,
    *,
    diversity: float | Diversity | None = None,
    translation: int | Translation | None = None,
    scales: int | None = None,
    admix: Admix | None = None,
    variance: int | Variance | None = None,
    nesterov: bool = False,
    lookahead: str = "paper",
) -> Attack:
    """``attack`` with transfer boosters (module docstring); each None/False leaves it off.

    Args:
      attack: a descent attack on an additive ℓp budget with the exact gradient (``bim``,
        ``pgd``, ``mi_fgsm``, … and :class:`Attack` subclasses); not an EOT or query attack.
        Or an :class:`~jaxadv.attacks.SMBEAttack`, which takes ``diversity`` (on each
        mini-batch's ensemble input) and ``translation`` (before its normaliser) only.
      diversity: DI (Xie et al., CVPR 2019): the probability ``p`` (resize rate 0.9) or a
        :class:`Diversity`. ``p = 0``: the attack itself.
      translation: TI (Dong et al., CVPR 2019): an odd kernel size or a :class:`Translation`;
        the kernel must fit the image. A 1×1 kernel: the attack itself.
      scales: SI (Lin et al., ICLR 2020): the number ``m ≥ 1`` of copies ``x/2^i`` whose
        gradients are averaged (paper: 5). ``1``: the attack itself.
      admix: Admix (Wang, He, Wang & He, ICCV 2021), an :class:`Admix` with the
        pool of images to mix in; combined with ``scales`` as in the paper (m1 = 5).
      variance: variance tuning (Wang & He, CVPR 2021): the number of neighbours ``N`` (β = 1.5)
        or a :class:`Variance`. ``0``: the attack itself.
      nesterov: NI (Lin et al., ICLR 2020): the gradient at the Nesterov look-ahead point.
        Needs a momentum attack (``mi_fgsm``); its decay is ``hp.decay``.
      lookahead: how far NI looks ahead: ``"paper"`` (Eq. 6 with the ℓ1-normalised momentum of
        Eq. 7: ``α·μ·m_t``) or ``"code"`` (the published code and torchattacks' ``NIFGSM``,
        whose momentum is normalised by the mean ``|g|``: ``n`` times farther for ``n`` pixels).

    Cost per step: ``copies × (1 + N)`` forward+backward passes (``copies = scales`` × Admix's
    draws), plus one forward pass for the iterate's record.

    Returns:
      A copy of ``attack`` with a :class:`Boosters` and its name extended by the boosters' tags
      (``+di``, ``+ti``, ``+si``, ``+admix``, ``+vt``, ``+ni``).
    """
    if isinstance(attack, SMBEAttack):
        others = dict(scales=scales is not None and scales != 1, admix=admix is not None,
                      variance=bool(variance), nesterov=nesterov)
        return _smbea_with_transfer(attack, diversity, translation, others)
    if not isinstance(attack, Attack):
        raise ValueError(
            "`attack` must be a jaxadv.attacks.Attack (a descent attack: bim, pgd, mi_fgsm, "
            f"...) or an SMBEAttack; got {type(attack).__name__}."
        )
    if attack.boosters is not None:
        raise ValueError(f"`attack` {attack.name!r} already has transfer boosters; give them all "
                         "in one call to `with_transfer`.")
    if not isinstance(attack.perturbation, Additive) or not isinstance(attack.oracle, Exact):
        raise ValueError(
            "`attack` must take exact gradients of an additive perturbation; got perturbation "
            f"{type(attack.perturbation).__name__} and oracle {type(attack.oracle).__name__}."
        )
    if attack.eot:
        raise ValueError("`attack` averages over a randomized victim (`with_eot`); transfer "
                         "boosters take a deterministic surrogate.")
    _checks.check_choice("lookahead", lookahead, LOOKAHEADS)
    diversity = _as(Diversity, diversity, "diversity", Diversity)
    translation = _as(Translation, translation, "translation", Translation)
    variance = _as(Variance, variance, "variance", Variance)
    if variance is not None and variance.neighbours and "eps" not in attack.params_type._fields:
        raise ValueError(
            "`variance` samples neighbours within beta·eps: it needs an attack with an `eps` "
            f"hyper-parameter; {attack.name!r} has {attack.params_type._fields}."
        )
    if scales is not None:
        _checks.check_positive_int("scales", scales)
    if admix is not None and not isinstance(admix, Admix):
        raise ValueError(f"`admix` must be a jaxadv.attacks.Admix (with its pool); got {admix!r}.")
    if nesterov and not (isinstance(attack.step_rule, SteepestStep) and attack.step_rule.momentum):
        raise ValueError(
            "`nesterov=True` looks ahead along the momentum: it needs a momentum attack "
            f"(`mi_fgsm`); got {attack.name!r}."
        )
    boosters = Boosters(diversity, translation, scales or 1, admix, variance, bool(nesterov),
                        lookahead)
    parts = [("di", diversity), ("ti", translation), ("si", scales), ("admix", admix),
             ("vt", variance), ("ni", nesterov or None)]
    name = "+".join([attack.name] + [tag for tag, value in parts if value is not None])
    return dataclasses.replace(attack, boosters=boosters, name=name)
