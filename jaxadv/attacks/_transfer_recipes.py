"""The transfer attacks as recipes: MI-FGSM (or I-FGSM) with boosters (:func:`with_transfer`).

Every recipe is an :class:`Attack` on the ℓ∞ ball, built on :func:`mi_fgsm`: defaults eps 8/255,
10 steps and step ``α = eps/steps`` (the papers' ε/T: α = 1.6 for ε = 16, T = 10; torchattacks
uses α = 2/255 throughout). ``hp.decay`` is the momentum μ (0: the I-FGSM form, whose sign step
equals I-FGSM's). torchattacks 3.5's classes correspond as noted in each recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxadv.attacks._attack import Attack
from jaxadv.attacks._recipes import mi_fgsm
from jaxadv.attacks._transfer import Admix, Diversity, Translation, Variance, with_transfer


def _base(steps: int, loss: str, targeted: bool, early_stop: bool, decay: float) -> Attack:
    attack = mi_fgsm(steps=steps, loss=loss, targeted=targeted, early_stop=early_stop)
    return dataclasses.replace(attack, defaults=(("decay", decay),)) if decay != 1.0 else attack


def di_fgsm(
    *,
    steps: int = 10,
    prob: float = 0.5,
    resize_rate: float = 0.9,
    decay: float = 0.0,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """DI²-FGSM: I-FGSM on randomly resized-and-padded inputs (probability ``prob``).

    Xie, Zhang, Zhou, Bai, Wang, Ren & Yuille, "Improving transferability of adversarial
    examples with input diversity", CVPR 2019 (p = 0.5). The default momentum 0 is DI²-FGSM;
    ``decay=1.0`` is M-DI²-FGSM. torchattacks ``DIFGSM`` (shrink-and-pad, rate 0.9).
    """
    attack = _base(steps, loss, targeted, early_stop, decay)
    return _named(with_transfer(attack, diversity=Diversity(prob, resize_rate)), "di-fgsm")


def ti_fgsm(
    *,
    steps: int = 10,
    kernel_size: int = 15,
    sigma: float | None = None,
    diversity: float = 0.0,
    resize_rate: float = 0.9,
    decay: float = 0.0,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """TI-FGSM (iterative): sign steps along the gradient smoothed by a Gaussian kernel.

    Dong, Pang, Su & Zhu, "Evading defenses to transferable adversarial examples by
    translation-invariant attacks", CVPR 2019: kernel 15 (for 299-pixel images; it must fit
    the image), σ = (k − 1)/6. torchattacks' ``TIFGSM`` also applies DI with p = 0.5 by
    default: ``ti_fgsm(diversity=0.5)`` (TI-DI-FGSM); ``decay=1.0`` is TI-MI-FGSM.
    """
    attack = _base(steps, loss, targeted, early_stop, decay)
    boosted = with_transfer(
        attack,
        translation=Translation(kernel_size, sigma),
        diversity=Diversity(diversity, resize_rate) if diversity else None,
    )
    return _named(boosted, "ti-fgsm")


def ni_fgsm(
    *,
    steps: int = 10,
    lookahead: str = "paper",
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """NI-FGSM: MI-FGSM with the gradient at the Nesterov look-ahead point.

    Lin, Song, He, Wang & Hopcroft, "Nesterov accelerated gradient and scale invariance for
    adversarial attacks", ICLR 2020 (Eq. 6–8; μ = 1.0). ``lookahead="code"``: the published
    code's and torchattacks' ``NIFGSM`` look-ahead (see :func:`with_transfer`).
    """
    attack = _base(steps, loss, targeted, early_stop, 1.0)
    return _named(with_transfer(attack, nesterov=True, lookahead=lookahead), "ni-fgsm")


def si_ni_fgsm(
    *,
    steps: int = 10,
    scales: int = 5,
    lookahead: str = "paper",
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """SI-NI-FGSM: NI-FGSM on the mean gradient of ``scales`` copies ``x/2^i``.

    Lin et al., ICLR 2020 (m = 5, μ = 1.0). torchattacks ``SINIFGSM`` with
    ``lookahead="code"``.
    """
    attack = _base(steps, loss, targeted, early_stop, 1.0)
    boosted = with_transfer(attack, scales=scales, nesterov=True, lookahead=lookahead)
    return _named(boosted, "si-ni-fgsm")


def vmi_fgsm(
    *,
    steps: int = 10,
    neighbours: int = 20,
    beta: float = 1.5,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """VMI-FGSM: MI-FGSM with variance tuning from ``neighbours`` samples in ``β·eps``.

    Wang & He, "Enhancing the transferability of adversarial attacks through variance tuning",
    CVPR 2021 (Algorithm 1; N = 20, β = 1.5, μ = 1.0; torchattacks ``VMIFGSM`` uses N = 5).
    """
    attack = _base(steps, loss, targeted, early_stop, 1.0)
    boosted = with_transfer(attack, variance=Variance(neighbours, beta))
    return _named(boosted, "vmi-fgsm")


def vni_fgsm(
    *,
    steps: int = 10,
    neighbours: int = 20,
    beta: float = 1.5,
    lookahead: str = "paper",
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """VNI-FGSM: NI-FGSM with variance tuning (Wang & He, CVPR 2021; N = 20, β = 1.5).

    The neighbours are sampled around the iterate and ``v`` is their mean gradient minus the
    look-ahead gradient, as torchattacks' ``VNIFGSM`` (with ``lookahead="code"``).
    """
    attack = _base(steps, loss, targeted, early_stop, 1.0)
    boosted = with_transfer(
        attack, variance=Variance(neighbours, beta), nesterov=True, lookahead=lookahead
    )
    return _named(boosted, "vni-fgsm")


def admix_fgsm(
    pool: Any,
    *,
    steps: int = 10,
    scales: int = 5,
    strength: float = 0.2,
    copies: int = 3,
    loss: str = "ce",
    targeted: bool = False,
    early_stop: bool = False,
) -> Attack:
    """Admix (with MI-FGSM and scale copies): the mean gradient over ``x/2^i + η·x'/2^i``.

    Wang, He, Wang & He, "Admix: enhancing the transferability of adversarial attacks", ICCV
    2021 (m1 = 5 scales, m2 = 3 images, η = 0.2, μ = 1.0). ``pool`` ``[P, *image_shape]``:
    the images ``x'`` are drawn from it (the paper draws images of other classes).
    torchattacks 3.5 has no Admix.
    """
    attack = _base(steps, loss, targeted, early_stop, 1.0)
    boosted = with_transfer(attack, scales=scales, admix=Admix(pool, strength, copies))
    return _named(boosted, "admix-fgsm")


def _named(attack: Attack, name: str) -> Attack:
    return dataclasses.replace(attack, name=name)
