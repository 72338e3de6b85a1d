"""Laplacian smoothing of the update, as an optax transformation (qPGD2's step rule)."""

from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxadv.image import Smoother, check_smoothing_warm_start


def smooth_updates(smoother: Smoother, warm_start: bool = False) -> optax.GradientTransformation:
    """``g ↦ ŝ_α(g)``: smooths the update like the clean image the smoother was built from.

    Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP JIS 2020, Eq. 12:
    the "quick and dirty" integration of smoothness smooths the gradient after it is computed and
    before the step's normalisation, e.g. ``optax.chain(smooth_updates(s),
    normalize_by_l2_norm(), optax.scale(-α))`` is the step of qPGD2. The smoother depends on the
    clean image, so build this transformation per example (inside the per-example function that
    ``vmap`` batches). With ``warm_start``, each CG solve starts from the previous update's
    solution (kept in the state) rather than from 0; it still stops on its true residual, so the
    result agrees with the cold start's within the smoother's tolerance.

    Args:
      smoother: a :class:`jaxadv.image.Smoother` built from the clean image of the example; it
        is applied to the update tree as it is.
      warm_start: carry the previous solution as the next solve's first iterate (False:
        stateless, every solve from 0); for a smoother with ``method="cg"`` only.

    Returns:
      An ``optax.GradientTransformation`` returning ``smoother(updates)``; its state is the last
      solution with ``warm_start``, else empty.

    Raises:
      ValueError: ``warm_start`` for a smoother whose method takes no first iterate.
    """
    check_smoothing_warm_start("warm_start", warm_start, method=smoother.method)

    if not warm_start:

        def update_fn(updates, state, params=None):
            del params
            return smoother(updates), state

        return optax.GradientTransformation(optax.init_empty_state, update_fn)

    def init_fn(params):
        return jnp.zeros_like(params)

    def warm_update_fn(updates, state, params=None):
        del params
        smoothed, _ = smoother.solve(updates, (state, jnp.zeros_like(state)))
        return smoothed, smoothed / smoother.scale

    return optax.GradientTransformation(init_fn, warm_update_fn)
