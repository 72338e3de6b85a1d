"""Input defences: a victim that preprocesses each image before its network.

``with_input_transform(victim, transform)`` returns a new ``Victim`` whose logits are
``victim(transform(x))``; attacks see one differentiable function and attack through the
transform (white box on the defended model). The wrapped victim keeps the input shape, classes
and bounds of the original.

Where the transform's numbers live decides what a compiled attack may vary:

  * a transform that is a pytree node (e.g. a ``flax.struct.dataclass`` such as
    ``BilateralTransform``) travels in the new victim's ``variables``, next to the network's:
    its array leaves are dynamic (sweepable under ``vmap``, no recompilation when they change)
    and its static fields are part of the victim's structure;
  * a plain callable (a module-level function, a frozen dataclass without leaves) is a leaf, so
    it is held statically in ``apply_fn`` and must be hashable; changing it recompiles.

``bilateral_defense`` is the defence of Table 3 in Zhang, Avrithis, Furon & Amsaleg, "Smooth
adversarial examples" (EURASIP JIS 2020): a bilateral filter with domain and range standard
deviations 0.5 and 0.2 in front of the network.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from flax import struct

from jaxadv import _checks
from jaxadv.image import bilateral_filter, default_radius
from jaxadv.models._victim import Victim


@struct.dataclass
class BilateralTransform:
    """The bilateral filter of one image as a pytree: the σ's are leaves, the radius is static.

    Attributes:
      sigma_domain: std of the spatial Gaussian, in pixels.
      sigma_range: std of the photometric Gaussian, in pixel-value units (images in [0, 1] for
        Table 3's 0.2).
      radius: static window half-width.
    """

    sigma_domain: Any
    sigma_range: Any
    radius: int = struct.field(pytree_node=False)

    def __call__(self, x: jax.Array) -> jax.Array:
        return bilateral_filter(x, self.sigma_domain, self.sigma_range, radius=self.radius)


@struct.dataclass
class _PreprocessedApply:
    """Batched apply of a victim behind a per-image transform; hashable, so jit caches stay warm.

    ``static_transform`` is None when the transform travels in the variables.
    """

    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)
    static_transform: Callable[[jax.Array], jax.Array] | None = struct.field(
        pytree_node=False, default=None
    )

    def __call__(self, variables: Any, x: jax.Array) -> jax.Array:
        if self.static_transform is None:
            transform, inner = variables["transform"], variables["victim"]
        else:
            transform, inner = self.static_transform, variables
        return self.apply_fn(inner, jax.vmap(transform)(x))


def with_input_transform(victim: Victim, transform: Callable[[jax.Array], jax.Array]) -> Victim:
    """A victim that applies ``transform`` to each input image before ``victim``'s network.

    Args:
      victim: the model to defend.
      transform: a function of ONE image (shape ``victim.input_shape``) returning what the
        network accepts, usually an image of the same shape. A pytree node (e.g. a
        ``flax.struct.dataclass``) is carried in the new victim's ``variables`` as
        ``{"victim": victim.variables, "transform": transform}``; any other callable must be
        hashable and is kept static (see the module docstring).

    Returns:
      A :class:`Victim` with ``victim``'s input shape, classes and bounds whose logits are
      ``victim``'s network applied to the transformed images.

    Raises:
      ValueError: if ``victim`` is not a :class:`Victim`, ``transform`` is not callable, or a
        non-pytree ``transform`` is unhashable.
    """
    if not isinstance(victim, Victim):
        raise ValueError(f"`victim` must be a jaxadv.models.Victim; got {type(victim).__name__}.")
    if not callable(transform):
        raise ValueError(
            "`transform` must be a callable of one image; got "
            f"{type(transform).__name__} {transform!r}."
        )
    if _is_leaf(transform):
        try:
            hash(transform)
        except TypeError as err:
            raise ValueError(
                "`transform` must be hashable when it is not a pytree (it is held statically in "
                f"the victim); got unhashable {type(transform).__name__}."
            ) from err
        return victim.replace(apply_fn=_PreprocessedApply(victim.apply_fn, transform))
    return victim.replace(
        variables={"victim": victim.variables, "transform": transform},
        apply_fn=_PreprocessedApply(victim.apply_fn),
    )


def bilateral_defense(
    victim: Victim, sigma_domain=0.5, sigma_range=0.2, *, radius: int | None = None
) -> Victim:
    """``victim`` behind a bilateral filter (Table 3 of "Smooth adversarial examples").

    The σ's are dynamic leaves of the new victim's variables (``BilateralTransform``): a sweep
    over them compiles once. ``radius`` is static; its default ``default_radius(sigma_domain)`` is
    1 (a 3 x 3 window) for the paper's σ_d = 0.5 and needs a concrete ``sigma_domain``.

    Args:
      victim: a :class:`Victim` of images ``[h, w, c]``.
      sigma_domain: std of the spatial Gaussian in pixels, > 0 (0.5, the paper's); may be a
        traced or array value (a leaf of the new victim's variables).
      sigma_range: std of the photometric Gaussian in pixel-value units, > 0 (0.2, the paper's
        for images in [0, 1]); a leaf like ``sigma_domain``.
      radius: the window's half-width, a positive int (static); None:
        ``default_radius(sigma_domain)``.

    Returns:
      :func:`with_input_transform` of ``victim`` and a ``BilateralTransform`` of these values.

    Raises:
      ValueError: if ``victim`` does not take ``[h, w, c]`` images, or a σ or ``radius`` is
        not positive.
    """
    if len(victim.input_shape) != 3:
        raise ValueError(
            "`victim` must take images [h, w, c] for a bilateral defence; got input_shape "
            f"{victim.input_shape}."
        )
    _checks.check_positive("sigma_domain", sigma_domain)
    _checks.check_positive("sigma_range", sigma_range)
    if radius is None:
        radius = default_radius(sigma_domain)
    _checks.check_positive_int("radius", radius)
    sigmas = [
        np.float32(s) if _checks.is_concrete(s) and np.ndim(s) == 0 else s
        for s in (sigma_domain, sigma_range)
    ]
    return with_input_transform(victim, BilateralTransform(*sigmas, radius=int(radius)))


def _is_leaf(obj: Any) -> bool:
    leaves = jax.tree.leaves(obj)
    return len(leaves) == 1 and leaves[0] is obj
