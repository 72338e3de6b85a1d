"""The shared pieces of the saliency paper's update-rule library, as optax transformations.

Che et al. (Z. Che, A. Borji, G. Zhai, S. Ling, J. Li, P. Le Callet, "A new ensemble adversarial
attack powered by long-term gradient memories", AAAI 2020, and the attack library of the slides
that accompany it) write every gradient attack of their library as one paradigm::

    ĝ_t = N(g_t)                                    normalised raw gradient
    m_t = μ1·m_{t−1} + ĝ_t                          first momentum
    V_t = μ2·V_{t−1} + (1 − μ2)·ĝ_t²                second momentum
    x_{t+1} = x_t − α·m_t / √(V_t + ε)              step (on the minimised objective)

and obtains the rules by switching pieces on and off. This module holds the pieces; the rules
are chains of them (``jaxadv/transforms/_update_rules.py``):

* :func:`normalize_gradient` — the normaliser N (ℓ1 as in the paper, or ℓ2, ℓ∞, mean-``|g|``, none);
* :func:`first_momentum` — ``m`` accumulated (the paradigm) or as an EMA (Adam), with optional
  bias correction and the Gaussian "randn" term of AdaEq2M; :func:`mi_momentum` is MI-FGSM's
  special case (ℓ1 normaliser, accumulated ``m``);
* :func:`second_momentum` — ``V`` in the three kinds the library names "plus", "decay" and
  "vanilla" (see its docstring for our reading of each);
* :func:`scale_by_momenta` — the step ``m/√(V + ε)`` from one first and one second momentum,
  whose states it keeps side by side, so ``m`` and ``V`` stay explicit (an inter-batch memory
  can read and seed them with ``optax.tree.get``/``optax.tree.set``, fields ``m`` and ``v``);
* :func:`adaeq2m_published` — the variant of AdaEq2M in the authors' published code, which
  carries the already-normalised step instead of ``m`` (not expressible as the chain above).

The descent sign is not applied here: chain with ``optax.scale(-step_size)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxadv import _checks
from jaxadv.transforms._normalize import normalize_by_l1_norm, normalize_by_l2_norm

NORMALIZERS = ("l1", "l2", "linf", "mean_abs", "none")
SECOND_MOMENTA = ("plus", "decay", "vanilla")

# Guards against 0/0 on an all-zero gradient (a saturated victim): the step is then zero.
_TINY = 1e-30


def check_unit_interval(name: str, value: Any) -> None:
    """Raises a ValueError if a concrete decay factor (μ or β) lies outside [0, 1].

    A traced value is not checked. NaN and inf count as outside.

    Args:
      name: the argument's name, as the error message shows it.
      value: the decay factor (scalar or array; every entry is checked).
    """
    if not _checks.is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        shown = float(arr) if arr.ndim == 0 else arr.ravel()[:8].tolist()
        raise ValueError(f"`{name}` must lie in [0, 1]; got {shown}.")


def _tree_mean_abs(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(jnp.abs(g)) for g in leaves)
    return total / max(sum(g.size for g in leaves), 1)


def _debias(tree, decay, count):
    """Bias correction ``tree/(1 − decay^t)``; zero where ``1 − decay^t = 0`` (decay 1: an EMA that
    never moves, whose value is zero)."""
    correction = 1.0 - decay ** count.astype(jnp.float32)
    return jax.tree.map(lambda t: _divide(t, correction.astype(t.dtype)), tree)


def _scale_tree(tree, scale):
    return jax.tree.map(lambda g: (g * scale).astype(g.dtype), tree)


def normalize_gradient(kind: str = "l1") -> optax.GradientTransformation:
    """The normaliser N of the paradigm, on the whole update tree (one example).

    * ``"l1"``: ``g/‖g‖₁`` — the paper's (Algorithm 1, step 5; MI-FGSM's accumulator input);
    * ``"l2"``: ``g/‖g‖₂``;
    * ``"linf"``: ``g/max|g|`` — the fast gradient *value* scaling (Rozsa, Rudd & Boult,
      "Adversarial diversity and hard positive generation", CVPR-W 2016): the largest entry is ±1;
    * ``"mean_abs"``: ``g/mean|g|`` — the authors' published code (``= n·g/‖g‖₁`` for ``n``
      entries: the same direction as ``"l1"``, entries of order one);
    * ``"none"``: ``g`` unchanged.

    Every kind but ``"none"`` is invariant to scaling ``g`` by ``c > 0`` (Property 1).
    An all-zero gradient stays zero.

    Args:
      kind: one of ``"l1"`` (default), ``"l2"``, ``"linf"``, ``"mean_abs"``, ``"none"``.

    Returns:
      A stateless ``optax.GradientTransformation`` dividing the update tree by its size of that
      kind (``optax.identity()`` for ``"none"``).
    """
    _checks.check_choice("normalizer", kind, NORMALIZERS)
    if kind == "l1":
        return normalize_by_l1_norm()
    if kind == "l2":
        return normalize_by_l2_norm()
    if kind == "none":
        return optax.identity()

    def update_fn(updates, state, params=None):
        del params
        if kind == "linf":
            size = optax.tree.norm(updates, ord=jnp.inf)
        else:
            size = _tree_mean_abs(updates)
        return _scale_tree(updates, 1.0 / jnp.maximum(size, _TINY)), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


# -- first momentum ------------------------------------------------------------------------------


def _as_key(key) -> jax.Array:
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    return key


def gaussian_like(key: jax.Array, count: jax.Array, tree):
    """ξ_t ~ N(0, I) shaped like ``tree``: leaf ``i`` of step ``t`` (1-based ``count``) draws
    from ``jax.random.split(jax.random.fold_in(key, t), num_leaves)[i]``."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.fold_in(key, count), len(leaves))
    draws = [jax.random.normal(k, g.shape, g.dtype) for k, g in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, draws)


class FirstMomentumState(NamedTuple):
    """State of :func:`first_momentum`.

    Attributes:
      count: steps taken so far (int32 scalar).
      m: the first momentum ``m_t`` (same tree as the updates), before bias correction.
      noise_key: PRNG key of the Gaussian term (kept even when there is none, for a uniform
        state; an attack reseeds it per run with ``optax.tree.set(state, noise_key=...)``).
    """

    count: jax.Array
    m: optax.Updates
    noise_key: jax.Array


def first_momentum(
    decay: jax.Array | float = 1.0,
    *,
    ema: bool = False,
    debias: bool = False,
    noise_scale: jax.Array | float | None = None,
    key: jax.Array | int | None = None,
) -> optax.GradientTransformation:
    """First gradient momentum ``m_t`` of (already normalised) updates ``u_t``; emits ``m_t``.

    ``m_t = μ1·m_{t−1} + c·u_t + σ·ā_t·ξ_t`` with ``m_0 = 0`` and

    * ``c = 1`` (``ema=False``: the paradigm's accumulation, MI-FGSM's momentum) or
      ``c = 1 − μ1`` (``ema=True``: Adam's exponential moving average);
    * the Gaussian "randn" term of AdaEq2M when ``noise_scale`` σ is given: ``ξ_t ~ N(0, I)``
      (see :func:`gaussian_like`) scaled by ``ā_t = mean|u_t|``, so that σ is a noise level
      relative to the normalised gradient and the step stays invariant to the gradient's scale
      (with the mean-``|g|`` normaliser ``ā_t = 1`` and the term is the published code's ``σ·ξ_t``);
    * ``debias=True`` (EMA only) emits Adam's bias-corrected ``m_t/(1 − μ1^t)``; the state keeps
      the uncorrected ``m_t``.

    ``decay`` μ1 ∈ [0, 1] and ``noise_scale`` may be traced (swept). ``key`` seeds the noise
    (default ``jax.random.key(0)``).

    Args:
      decay: the momentum decay μ1 in ``[0, 1]``; default 1.0 (plain accumulation).
      ema: if True, weight the update by ``1 − μ1`` (an exponential moving average); default
        False (weight 1).
      debias: if True (needs ``ema=True``), emit the bias-corrected ``m_t/(1 − μ1^t)``.
      noise_scale: the relative level σ >= 0 of the Gaussian term; None (default): no noise.
      key: a PRNG key or an integer seed for the noise; None: ``jax.random.key(0)``.

    Returns:
      An ``optax.GradientTransformation`` with :class:`FirstMomentumState` that emits ``m_t``
      (bias-corrected when ``debias``).
    """
    check_unit_interval("decay", decay)
    if debias and not ema:
        raise ValueError(
            "`debias=True` corrects an exponential moving average; it needs `ema=True` (the "
            "accumulated momentum of `ema=False` has no such bias); got `ema=False`."
        )
    if noise_scale is not None:
        _checks.check_nonnegative("noise_scale", noise_scale)
    return _first_momentum(decay, ema=ema, debias=debias, noise_scale=noise_scale, key=key)


def _first_momentum(decay, *, ema=False, debias=False, noise_scale=None, key=None):
    """:func:`first_momentum` without the argument checks: the one momentum accumulator, shared
    with :func:`mi_momentum` (whose own check on ``decay`` differs)."""
    key = _as_key(key)

    def init_fn(params):
        return FirstMomentumState(
            count=jnp.zeros((), jnp.int32), m=optax.tree.zeros_like(params), noise_key=key
        )

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        gain = (1.0 - decay) if ema else 1.0
        m = jax.tree.map(lambda mo, u: decay * mo + gain * u, state.m, updates)
        if noise_scale is not None:
            level = noise_scale * _tree_mean_abs(updates)
            xi = gaussian_like(state.noise_key, count, updates)
            m = jax.tree.map(lambda mo, z: mo + level * z, m, xi)
        m = jax.tree.map(lambda mo, u: mo.astype(u.dtype), m, updates)
        out = _debias(m, decay, count) if debias else m
        return out, FirstMomentumState(count=count, m=m, noise_key=state.noise_key)

    return optax.GradientTransformation(init_fn, update_fn)


def mi_momentum(decay: jax.Array | float = 1.0) -> optax.GradientTransformation:
    """MI-FGSM momentum: ``m ← decay·m + g/‖g‖₁``; emits ``m`` (Dong et al., CVPR 2018, Eq. 6).

    Chain it with :func:`jaxadv.transforms.sign` and ``optax.scale(-step_size)`` for the MI-FGSM
    step ``x ← x − α·sign(m)`` on the minimised objective. The paper's default decay is 1.0.
    ``decay`` may be traced (swept); it must be >= 0 (not capped at 1, unlike ``first_momentum``).

    It is the paradigm's ℓ1 normaliser followed by the accumulated first momentum, i.e.
    ``optax.chain(normalize_gradient("l1"), first_momentum(decay))``: one implementation. Both
    divide by ``max(‖g‖₁, 1e-12)`` (``normalize_by_l1_norm``; the 1e-30 guard of this module is
    only for the ℓ∞ and mean-``|g|`` normalisers), so the numbers are those of the former separate
    ``mi_momentum``, bit for bit.

    Args:
      decay: the momentum decay factor μ >= 0; default 1.0, the paper's.

    Returns:
      An ``optax.GradientTransformation`` (an ``optax.chain`` of the ℓ1 normaliser and
      :func:`first_momentum`, whose state is the chain's) that emits ``m``.
    """
    _checks.check_nonnegative("decay", decay)
    return optax.chain(normalize_gradient("l1"), _first_momentum(decay))


# -- second momentum -----------------------------------------------------------------------------


class SecondMomentumState(NamedTuple):
    """State of :func:`second_momentum`.

    Attributes:
      count: steps taken so far (int32 scalar).
      v: the second momentum ``V_t`` (same tree as the updates), before bias correction.
      mean_sq: the running mean ``Ē_t`` of the past ``u²`` (``"decay"`` only; ``()`` otherwise).
    """

    count: jax.Array
    v: optax.Updates
    mean_sq: Any


def second_momentum(
    kind: str = "plus", decay: jax.Array | float = 0.9, *, debias: bool = False
) -> optax.GradientTransformation:
    """Second gradient momentum ``V_t`` of (already normalised) updates ``u_t``; emits ``V_t``.

    The library names three kinds; our reading of them (the slides give the formulas of the
    general paradigm and of the RMSProp/Adadelta line, the names only for the rest):

    * ``"plus"`` — the paradigm's own line, ``V_t = μ2·V_{t−1} + (1 − μ2)·u_t²`` (AdaEq2M,
      AdaEq2M-V2, AdaGrad-plus-IM). ``debias=True`` emits ``V_t/(1 − μ2^t)``.
    * ``"decay"`` — the slides' Adadelta/RMSProp line, an average of the *expected* past
      square and the current one: ``V_t = μ2·Ē_{t−1} + (1 − μ2)·u_t²`` with ``Ē_{t−1}`` the mean
      of ``u_1², …, u_{t−1}²`` (and ``Ē_0 = u_1²``, so ``V_1 = u_1²``: unbiased, no correction
      needed). The published code's Adam-decay and AdaGrad-decay rules compute the same form.
    * ``"vanilla"`` — AdaGrad's accumulation ``V_t = V_{t−1} + u_t²`` (Duchi, Hazan & Singer,
      JMLR 2011; the published code's Adam-vanilla rule). ``decay`` is unused.

    ``V_0 = 0``. ``decay`` μ2 ∈ [0, 1] may be traced (swept).

    Args:
      kind: ``"plus"`` (default), ``"decay"`` or ``"vanilla"``, as above.
      decay: the decay μ2 in ``[0, 1]``; default 0.9 (unused by ``"vanilla"``).
      debias: if True (kind ``"plus"`` only), emit ``V_t/(1 − μ2^t)``; default False.

    Returns:
      An ``optax.GradientTransformation`` with :class:`SecondMomentumState` that emits ``V_t``
      (bias-corrected when ``debias``).
    """
    _checks.check_choice("kind", kind, SECOND_MOMENTA)
    check_unit_interval("decay", decay)
    if debias and kind != "plus":
        raise ValueError(
            f"`debias=True` corrects the exponential moving average of kind 'plus'; kind "
            f"{kind!r} has no such bias."
        )

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return SecondMomentumState(
            count=jnp.zeros((), jnp.int32),
            v=zeros,
            mean_sq=zeros if kind == "decay" else (),
        )

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        sq = jax.tree.map(jnp.square, updates)
        mean_sq = state.mean_sq
        if kind == "plus":
            v = jax.tree.map(lambda vo, s: decay * vo + (1.0 - decay) * s, state.v, sq)
        elif kind == "vanilla":
            v = jax.tree.map(jnp.add, state.v, sq)
        else:
            first = state.count == 0
            past = jax.tree.map(lambda e, s: jnp.where(first, s, e), state.mean_sq, sq)
            v = jax.tree.map(lambda e, s: decay * e + (1.0 - decay) * s, past, sq)
            t = count.astype(jnp.float32)
            mean_sq = jax.tree.map(lambda e, s: e + (s - e) / t, state.mean_sq, sq)
            mean_sq = jax.tree.map(lambda e, u: e.astype(u.dtype), mean_sq, updates)
        v = jax.tree.map(lambda vo, u: vo.astype(u.dtype), v, updates)
        out = _debias(v, decay, count) if debias else v
        return out, SecondMomentumState(count=count, v=v, mean_sq=mean_sq)

    return optax.GradientTransformation(init_fn, update_fn)


# -- the step m / sqrt(V + eps) ------------------------------------------------------------------


class ScaleByMomentaState(NamedTuple):
    """State of :func:`scale_by_momenta`: the states of its first and second momenta.

    Attributes:
      first: the state of the first momentum (of ``optax.identity()`` when it is None).
      second: the state of the second momentum.
    """

    first: optax.OptState
    second: optax.OptState


def _divide(num, den):
    """``num/den``, and 0 where ``den`` is 0 (a coordinate whose gradient was always zero)."""
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, num / safe, 0.0).astype(num.dtype)


def scale_by_momenta(
    first: optax.GradientTransformation | None,
    second: optax.GradientTransformation,
    *,
    eps_root: jax.Array | float = 0.0,
    eps: jax.Array | float = 0.0,
) -> optax.GradientTransformation:
    """The paradigm's step direction ``M_t/(√(V_t + eps_root) + eps)``.

    Both momenta see the same incoming updates ``u_t`` (the normalised gradient, as in
    Algorithm 1, steps 5–7): ``M_t`` is what ``first`` emits (``u_t`` itself when ``first`` is
    None — AdaGrad/RMSProp, "raw gradient and 2nd momentum only"), ``V_t`` what ``second``
    emits. The paradigm writes ``√(V + ε)`` (``eps_root``); Adam and SMBEA's Algorithm 1 write
    ``√V + ε`` (``eps``). Coordinates whose denominator is zero get a zero step, so with
    ``eps_root = eps = 0`` the step is exactly invariant to scaling the gradient (Property 1).

    The state keeps both inner states (:class:`ScaleByMomentaState`), i.e. ``m`` and ``V``
    explicitly.

    Args:
      first: the first momentum (e.g. :func:`first_momentum`), or None to use ``u_t`` itself.
      second: the second momentum (e.g. :func:`second_momentum`).
      eps_root: ``ε`` added to ``V_t`` under the square root (>= 0); default 0.
      eps: ``ε`` added to the square root (>= 0); default 0.

    Returns:
      An ``optax.GradientTransformation`` with :class:`ScaleByMomentaState` that emits
      ``M_t/(√(V_t + eps_root) + eps)`` (zero where the denominator is zero).
    """
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_nonnegative("eps", eps)
    first = optax.identity() if first is None else first

    def init_fn(params):
        return ScaleByMomentaState(first=first.init(params), second=second.init(params))

    def update_fn(updates, state, params=None):
        m, first_state = first.update(updates, state.first, params)
        v, second_state = second.update(updates, state.second, params)
        out = jax.tree.map(lambda a, b: _divide(a, jnp.sqrt(b + eps_root) + eps), m, v)
        return out, ScaleByMomentaState(first=first_state, second=second_state)

    return optax.GradientTransformation(init_fn, update_fn)


# -- the published code's AdaEq2M ----------------------------------------------------------------


class PublishedAdaEq2MState(NamedTuple):
    """State of :func:`adaeq2m_published`.

    Attributes:
      count: steps taken so far (int32 scalar).
      step: the last emitted (already normalised) step ``s_t``, which this variant carries in
        place of the first momentum.
      v: its second momentum ``V_t``.
      noise_key: PRNG key of the Gaussian term.
    """

    count: jax.Array
    step: optax.Updates
    v: optax.Updates
    noise_key: jax.Array


def adaeq2m_published(
    decay1: jax.Array | float = 1.0,
    decay2: jax.Array | float = 0.9,
    noise_scale: jax.Array | float = 0.01,
    eps: jax.Array | float = 1e-8,
    *,
    key: jax.Array | int | None = None,
) -> optax.GradientTransformation:
    """AdaEq2M as the authors' published code computes it, on normalised updates ``u_t``.

    Chain it after ``normalize_gradient("mean_abs")`` (the code divides by ``mean|g|``). The
    code feeds the last *emitted step* ``s_{t−1}`` back where the paper has ``m_{t−1}``::

        t = 1:   s_1 = u_1,  V_1 = s_1²
        t ≥ 2:   V_t = μ2·V_{t−1} + (1 − μ2)·s_{t−1}²
                 m_t = μ1·s_{t−1} + u_t + σ·ā_t·ξ_t
                 s_t = m_t / (√(V_t + ε) + ε)

    with ``ā_t = mean|u_t|`` (= 1 after the mean-``|g|`` normaliser) and ``ξ_t`` as in
    :func:`first_momentum`. Defaults are the code's (μ1 = 1, μ2 = 0.9, σ = 0.01, ε = 1e-8).
    One deviation: the code accumulates ``s`` itself, not its square, in ``V`` and then takes a
    square root of that signed sum (NaN wherever it is negative); we square ``s``.

    Args:
      decay1: μ1 in ``[0, 1]``, the weight of the carried step ``s_{t−1}``; default 1.0.
      decay2: μ2 in ``[0, 1]``, the decay of ``V``; default 0.9.
      noise_scale: σ >= 0, the relative level of the Gaussian term; default 0.01.
      eps: ε >= 0, used both under and after the square root; default 1e-8.
      key: a PRNG key or an integer seed for the noise; None: ``jax.random.key(0)``.

    Returns:
      An ``optax.GradientTransformation`` with :class:`PublishedAdaEq2MState` that emits the
      step ``s_t``.
    """
    check_unit_interval("decay1", decay1)
    check_unit_interval("decay2", decay2)
    _checks.check_nonnegative("noise_scale", noise_scale)
    _checks.check_nonnegative("eps", eps)
    key = _as_key(key)

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return PublishedAdaEq2MState(jnp.zeros((), jnp.int32), zeros, zeros, key)

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        first = state.count == 0
        level = noise_scale * _tree_mean_abs(updates)
        xi = gaussian_like(state.noise_key, count, updates)

        def leaf(u, s_prev, v_prev, z):
            v = decay2 * v_prev + (1.0 - decay2) * jnp.square(s_prev)
            m = decay1 * s_prev + u + level * z
            s = m / (jnp.sqrt(v + eps) + eps)
            return (
                jnp.where(first, u, s).astype(u.dtype),
                jnp.where(first, jnp.square(u), v).astype(u.dtype),
            )

        pairs = jax.tree.map(leaf, updates, state.step, state.v, xi)
        is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
        step = jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair)
        v = jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair)
        return step, PublishedAdaEq2MState(count, step, v, state.noise_key)

    return optax.GradientTransformation(init_fn, update_fn)
