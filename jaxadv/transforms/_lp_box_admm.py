"""ℓp-box ADMM for a binary mask with a cardinality constraint, as an optax transformation.

The mask ``G ∈ {0, 1}ⁿ`` of SAPF (Fan, Wu et al., "Sparse Adversarial Attack via Perturbation
Factorization", ECCV 2020, §3.3) is relaxed with the ℓp-box identity of Wu & Ghanem (TPAMI 2018):
``{0, 1}ⁿ = [0, 1]ⁿ ∩ {G : ‖G − ½‖² = n/4}``. Each set gets its own splitting variable (``Y1`` box,
``Y2`` sphere) tied to ``G`` by a dual variable, and ``1ᵀG = k`` gets a scalar dual. SAPF-GS adds
a group-lasso term ``λ2 Σᵢ ‖Gⁱ‖₂`` through a third splitting variable whose update is the group
soft-threshold (the prox of the group norm).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks

# The penalty schedule (every iteration ρ ← min(1.01 ρ, cap)), in the order (box, sphere, group,
# cardinality). The paper (§4.1) prints caps (20, 10, 100) for (box, sphere, cardinality): the
# default. The published code caps them at (20, 20, ·, 0.01), and the group term (absent from the
# paper's list) at 100, which both use.
RHO_INIT = (5e-3, 5e-3, 5e-3, 1e-4)
RHO_MAX = (20.0, 10.0, 100.0, 100.0)
RHO_MAX_CODE = (20.0, 20.0, 100.0, 0.01)
RHO_GROWTH = 1.01


class LpBoxADMMState(NamedTuple):
    """State of :func:`lp_box_admm` (all leaves have fixed shapes and dtypes).

    Attributes:
      y_box, y_sphere: splitting variables of the box and the ℓ2-sphere (shape of ``G``).
      y_group, z_group: splitting variable and dual of the group-sparsity term (None without
        groups).
      z_box, z_sphere: duals of ``G = y_box`` and ``G = y_sphere``.
      z_card: scalar dual of ``1ᵀG = k``.
      rho: the current penalties ``(ρ_box, ρ_sphere, ρ_group, ρ_card)``, ``f32[4]``.
      count: number of updates taken (drives the step-size schedule).
    """

    y_box: jax.Array
    y_sphere: jax.Array
    y_group: jax.Array | None
    z_box: jax.Array
    z_sphere: jax.Array
    z_group: jax.Array | None
    z_card: jax.Array
    rho: jax.Array
    count: jax.Array


def project_box(a: jax.Array) -> jax.Array:
    """Euclidean projection onto ``[0, 1]ⁿ`` (paper Eq. 11).

    Args:
      a: an array of any shape.

    Returns:
      ``a`` clipped entrywise to ``[0, 1]``.
    """
    return jnp.clip(a, 0.0, 1.0)


def project_sphere(a: jax.Array) -> jax.Array:
    """Euclidean projection onto the sphere ``‖y − ½‖₂² = n/4`` through the corners of the cube.

    ``n`` is the number of entries of ``a`` (paper Eq. 13). The centre itself has no unique
    projection; it maps to the corner ``1`` (any point of the sphere would do).

    Args:
      a: an array of any shape (all its entries form one vector).

    Returns:
      The projection, an array of ``a``'s shape.
    """
    centred = a - 0.5
    norm = jnp.sqrt(jnp.sum(jnp.square(centred)))
    radius = 0.5 * np.sqrt(a.size)
    direction = jnp.where(norm > 0, centred / jnp.where(norm > 0, norm, 1.0), 1.0 / np.sqrt(a.size))
    return 0.5 + radius * direction


def group_soft_threshold(
    a: jax.Array, groups: jax.Array, num_groups: int, threshold: jax.Array
) -> jax.Array:
    """The prox of ``threshold · Σᵢ ‖aⁱ‖₂``: ``aⁱ ← max(0, 1 − threshold/‖aⁱ‖₂) · aⁱ`` per group.

    Args:
      a: the array to shrink.
      groups: integer label map of ``a``'s shape, each entry's group in ``0 .. num_groups−1``.
      num_groups: the number of groups.
      threshold: the shrinkage threshold (scalar; may be traced).

    Returns:
      The shrunk array, of ``a``'s shape (a group of zero norm stays zero).
    """
    flat, ids = jnp.ravel(a), jnp.ravel(groups)
    norms = jnp.sqrt(jax.ops.segment_sum(jnp.square(flat), ids, num_segments=num_groups))
    safe = jnp.where(norms > 0, norms, 1.0)
    shrink = jnp.where(norms > 0, jnp.maximum(0.0, 1.0 - threshold / safe), 0.0)
    return (shrink[ids] * flat).reshape(a.shape)


def group_norm_sum(a: jax.Array, groups: jax.Array, num_groups: int) -> jax.Array:
    """``Σᵢ ‖aⁱ‖₂`` over the groups of the label map ``groups`` (same shape as ``a``)."""
    sq = jax.ops.segment_sum(jnp.square(jnp.ravel(a)), jnp.ravel(groups), num_segments=num_groups)
    return jnp.sum(jnp.sqrt(sq))


def binarize(mask: jax.Array, k: jax.Array) -> jax.Array:
    """The binary mask: entries above ½ that are also among the ``k`` largest (ties by position).

    The published code keeps ``G > 0.5``; capping at the ``k`` largest makes ``1ᵀG ≤ k`` hold
    exactly even when the relaxation has not fully converged. ``k`` may be traced.

    Args:
      mask: the relaxed mask ``G`` (any shape; its entries are ranked together).
      k: the largest number of ones (rounded to the nearest integer).

    Returns:
      A 0/1 array of ``mask``'s shape and dtype with at most ``k`` ones.
    """
    flat = jnp.ravel(mask)
    rank = jnp.argsort(jnp.argsort(-flat, stable=True), stable=True)
    keep = (flat > 0.5) & (rank < jnp.round(k))
    return keep.astype(mask.dtype).reshape(mask.shape)


def check_groups(name: str, groups: Any, shape: tuple[int, ...]) -> int:
    """Validates a concrete group label map; returns its number of groups.

    Labels must be integers covering ``0 .. m−1`` (every label used) and ``groups`` must have the
    mask's shape.

    Args:
      name: the argument's name, as error messages show it.
      groups: the group label map (concrete; converted with ``np.asarray``).
      shape: the mask's shape, which ``groups`` must have.

    Returns:
      The number of groups ``m``.

    Raises:
      ValueError: on a wrong shape, non-integer labels, or labels that are not ``0 .. m−1``.
    """
    arr = np.asarray(groups)
    if arr.shape != tuple(shape):
        raise ValueError(f"`{name}` must have the mask's shape {tuple(shape)}; got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integer group labels; got dtype {arr.dtype}.")
    used = np.unique(arr)
    if used.size == 0 or used[0] != 0 or used[-1] != used.size - 1:
        raise ValueError(
            f"`{name}` must use contiguous labels 0..m-1 (every label present); got {used.size} "
            f"distinct labels in [{used.min() if used.size else '-'}, "
            f"{used.max() if used.size else '-'}]."
        )
    return int(used.size)


def lp_box_admm(
    k: jax.Array | float,
    learning_rate: jax.Array | float | optax.Schedule = 0.1,
    *,
    rho: Any = RHO_INIT,
    rho_max: Any = RHO_MAX,
    rho_growth: jax.Array | float = RHO_GROWTH,
    groups: jax.Array | None = None,
    num_groups: int | None = None,
    lambda2: jax.Array | float = 1e-3,
) -> optax.GradientTransformation:
    """One linearised ℓp-box ADMM iteration per update, for ``min f(G)`` s.t. ``G ∈ {0, 1}ⁿ``,
    ``1ᵀG = k`` (SAPF, Fan, Wu et al., ECCV 2020, Eqs. 8–15; ℓp-box ADMM, Wu & Ghanem 2018).

    ``updates`` is ``∇f(G)``, the gradient of the smooth objective (SAPF: ‖w⊙δ⊙G‖² + λ1·L); the
    transform needs ``params`` (the mask ``G``, ONE array) and returns the step to ADD to it. Per
    call, with ``ρ = (ρ_b, ρ_s, ρ_g, ρ_c)``:

    1. ``Y1 = clip(G + Z1/ρ_b, 0, 1)``; ``Y2 = P_sphere(G + Z2/ρ_s)`` (centre ½, radius √n/2);
       with groups, ``Y3 = prox_{(λ2/ρ_g)Σ‖·‖₂}(G + Z3/ρ_g)``;
    2. one projected gradient step on the augmented Lagrangian (9) in ``G``:
       ``G' = P_[0,1](G − η·[∇f + Z1 + Z2 + Z3 + z4 + ρ_b(G−Y1) + ρ_s(G−Y2) + ρ_g(G−Y3)
       + ρ_c(1ᵀG−k)])``;
    3. dual ascent ``Z1 += ρ_b(G'−Y1)``, ``Z2 += ρ_s(G'−Y2)``, ``Z3 += ρ_g(G'−Y3)``,
       ``z4 += ρ_c(1ᵀG'−k)``;
    4. ``ρ ← min(ρ_growth·ρ, ρ_max)``.

    Step 2 is *linearised* ADMM, as in the published code: the ``G`` sub-problem has no closed form
    (the loss goes through the network), so one gradient step replaces its argmin. The paper's
    printed dual update (15), ``Z1 ← Z1 + ρ1(G − Z1)``, is a typo for the standard ``G − Y1``
    used here (and in the code). Without ``groups`` the group term is absent (its state is None).
    The projection onto ``[0, 1]ⁿ`` in step 2 is ours: every feasible mask lies in the box, and
    without it an indefinite ``f`` sends the published iteration off to ``|G| ~ 1e13`` and NaN.

    What it guarantees: every iterate ``G`` lies in ``[0, 1]ⁿ`` (finite for a finite gradient);
    a fixed point has ``G = Y1 = Y2`` (the duals stop moving only then), so it is binary (box ∩
    sphere = the cube's corners) with ``1ᵀG = k``: a feasible mask. Nothing more: the problem is
    NP-hard in general and linearised ADMM on a non-convex ``f`` need not converge, so neither
    optimality nor convergence is promised, and :func:`binarize` is what makes the returned mask
    binary with at most ``k`` ones. Measured against brute force (``tests/test_lp_box_admm.py``, 1500
    updates, n = 10, k = 4): the binarised mask is the optimum on 12/12 positive semi-definite
    quadratics with either caps, and on 9/12 indefinite ones with the paper's caps (11/12 within
    5%; the code's caps: 6/12, 7/12).

    Numbers may be traced arrays (swept under ``vmap``, or wrapped by ``optax.inject_hyperparams``).

    Args:
      k: the cardinality ``1ᵀG = k`` (may be traced).
      learning_rate: the step size η, a number or an ``optax`` schedule of the update count (SAPF:
        0.1, ×0.9 every 50 steps, floor 1e-3).
      rho: initial penalties ``(ρ_box, ρ_sphere, ρ_group, ρ_card)``; default the code's
        ``(5e-3, 5e-3, 5e-3, 1e-4)``; the paper's are the same for box, sphere and cardinality.
      rho_max: caps of the penalties; default the paper's ``RHO_MAX = (20, 10, 100, 100)``, the
        published code's is ``RHO_MAX_CODE = (20, 20, 100, 0.01)`` (the paper gives no group cap:
        both use the code's 100).
      rho_growth: factor applied to every penalty after each update (1.01).
      groups: integer label map of ``G``'s shape assigning each entry to a group (SAPF-GS).
      num_groups: the number of groups; needed when ``groups`` is traced (else ``max + 1``).
      lambda2: weight of the group-sparsity term ``λ2 Σᵢ ‖Gⁱ‖₂`` (code default 1e-3).

    Returns:
      An ``optax.GradientTransformation`` with :class:`LpBoxADMMState`; its update takes ``∇f(G)``
      and ``params=G`` and returns the step ``G' − G`` to add to the mask.
    """
    _checks.check_positive("k", k)
    _checks.check_positive("rho", rho)
    _checks.check_positive("rho_max", rho_max)
    _checks.check_positive("rho_growth", rho_growth)
    if not callable(learning_rate):
        _checks.check_positive("learning_rate", learning_rate)
    if groups is not None:
        _checks.check_positive("lambda2", lambda2)
        if num_groups is None:
            if not _checks.is_concrete(groups):
                raise ValueError("`num_groups` must be given when `groups` is traced; got None.")
            num_groups = int(np.max(np.asarray(groups))) + 1
        _checks.check_positive_int("num_groups", num_groups)
    if _checks.is_concrete(rho) and np.shape(rho) != (4,):
        raise ValueError(f"`rho` must hold 4 penalties (box, sphere, group, card); got {rho!r}.")
    step_size: Callable[[jax.Array], jax.Array] = (
        learning_rate if callable(learning_rate) else (lambda count: learning_rate)
    )

    def init_fn(params):
        if not isinstance(params, jax.Array | np.ndarray):
            raise ValueError(
                f"`params` of lp_box_admm must be ONE array (the mask G); got {type(params)}."
            )
        if groups is not None and _checks.is_concrete(groups):
            check_groups("groups", groups, jnp.shape(params))
        ones = jnp.ones_like(params)
        zeros = jnp.zeros_like(params)
        return LpBoxADMMState(
            y_box=ones,
            y_sphere=ones,
            y_group=None if groups is None else ones,
            z_box=zeros,
            z_sphere=zeros,
            z_group=None if groups is None else zeros,
            z_card=jnp.zeros((), params.dtype),
            rho=jnp.asarray(rho, params.dtype) * jnp.ones(4, params.dtype),
            count=jnp.zeros((), jnp.int32),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("lp_box_admm needs `params` (the current mask G); got None.")
        g = params
        r_box, r_sph, r_grp, r_card = state.rho[0], state.rho[1], state.rho[2], state.rho[3]
        y_box = project_box(g + state.z_box / r_box)
        y_sph = project_sphere(g + state.z_sphere / r_sph)
        grad = updates + state.z_box + state.z_sphere + state.z_card
        grad = grad + r_box * (g - y_box) + r_sph * (g - y_sph) + r_card * (jnp.sum(g) - k)
        y_grp = z_grp = None
        if groups is not None:
            y_grp = group_soft_threshold(
                g + state.z_group / r_grp, groups, num_groups, lambda2 / r_grp
            )
            grad = grad + state.z_group + r_grp * (g - y_grp)
        # The step is projected onto [0, 1]ⁿ, which holds every feasible mask: an indefinite f
        # (or a penalty step past its stability limit) can no longer carry G off to infinity.
        new = project_box(g - step_size(state.count) * grad)
        step = new - g
        if groups is not None:
            z_grp = state.z_group + r_grp * (new - y_grp)
        rho_new = jnp.minimum(state.rho * rho_growth, jnp.asarray(rho_max, g.dtype))
        new_state = LpBoxADMMState(
            y_box=y_box,
            y_sphere=y_sph,
            y_group=y_grp,
            z_box=state.z_box + r_box * (new - y_box),
            z_sphere=state.z_sphere + r_sph * (new - y_sph),
            z_group=z_grp,
            z_card=state.z_card + r_card * (jnp.sum(new) - k),
            rho=rho_new.astype(g.dtype),
            count=state.count + 1,
        )
        return step.astype(g.dtype), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def sapf_step_schedule(
    init_value: jax.Array | float,
    *,
    decay: jax.Array | float = 0.9,
    every: int = 50,
    floor: jax.Array | float = 1e-3,
) -> optax.Schedule:
    """SAPF's step size: ``max(init · decay^⌊count/every⌋, floor)`` (published code defaults).

    Args:
      init_value: the initial step size ``init`` (SAPF: 0.1).
      decay: the factor applied every ``every`` updates; default 0.9.
      every: the number of updates between decays, a positive integer; default 50.
      floor: the smallest step size; default 1e-3.

    Returns:
      An ``optax.Schedule``, the step size as a function of the update count.
    """
    _checks.check_positive_int("every", every)

    def schedule(count):
        return jnp.maximum(init_value * decay ** (count // every), floor)

    return schedule
