"""Laplacian smoothing of the update, as an optax transformation (qPGD2's step rule)."""

from __future__ import annotations

import optax

from jaxadv.image import Smoother


def smooth_updates(smoother: Smoother) -> optax.GradientTransformation:
    """``g ↦ ŝ_α(g)``: smooths the update like the clean image the smoother was built from.

    Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, Eq. 12:
    the "quick and dirty" integration of smoothness smooths the gradient after it is computed and
    before the step's normalisation, e.g. ``optax.chain(smooth_updates(s),
    normalize_by_l2_norm(), optax.scale(-α))`` is the step of qPGD2. The smoother depends on the
    clean image, so build this transformation per example (inside the per-example function that
    ``vmap`` batches). Stateless.

    Args:
      smoother: a :class:`jaxadv.image.Smoother` built from the clean image of the example; it
        is applied to the update tree as it is.

    Returns:
      A stateless ``optax.GradientTransformation`` returning ``smoother(updates)``.
    """

    def update_fn(updates, state, params=None):
        del params
        return smoother(updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
