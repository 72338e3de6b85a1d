"""SimBA and SimBA-DCT (Guo, Gardner, You, Wilson & Weinberger, ICML 2019): a score-based
black-box attack that steps ``±ε`` along orthonormal directions taken without replacement and
keeps a step when the probability of the true class drops."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _Best, _candidate, make_result
from jaxadv.image import dct_matrix

BASES = ("pixel", "dct")
ORDERS = ("strided", "random")


def _frequency_bands(h: int, w: int, freq_dims: int, stride: int) -> jax.Array:
    """The band of every frequency ``(k, l)`` of an ``h × w`` DCT (int32 ``[h, w]``): 0 inside
    the low-frequency ``freq_dims × freq_dims`` block, then ``1 + ⌊(max(k, l) − freq_dims) /
    stride⌋`` for the L-shaped bands of width ``stride`` around it (SimBA-DCT's order)."""
    radius = jnp.maximum(jnp.arange(h)[:, None], jnp.arange(w)[None, :])
    return jnp.where(radius < freq_dims, 0, 1 + (radius - freq_dims) // stride).astype(jnp.int32)


class SimBAParams(NamedTuple):
    """The numbers of :func:`simba`; every leaf is a float32 array and may be swept.

    Attributes:
      eps: the step along each direction (the result's ℓ2 norm is ``eps·√(accepted steps)``
        before the pixel box).
    """

    eps: jax.Array


class _Carry(NamedTuple):
    order: jax.Array  # the directions in the order they are tried (int32 [directions])
    t: jax.Array  # index into `order` of the direction being tried
    second: jax.Array  # the next query tries the second sign of direction t
    latent: jax.Array  # δ = Σ ±ε q over the accepted steps (before the pixel box)
    value: jax.Array  # the loss of the current point
    accepted: jax.Array  # accepted steps in δ
    best_accepted: jax.Array  # steps in the best point
    steps: jax.Array
    queries: jax.Array
    done: jax.Array
    best: _Best


@dataclasses.dataclass(frozen=True)
class SimBA(AttackBase):
    """SimBA and SimBA-DCT (Guo, Gardner, You, Wilson & Weinberger, "Simple Black-box
    Adversarial Attacks", ICML 2019, Algorithm 1).

    Score-based: it reads the victim's outputs, never a gradient. Directions ``q`` are taken
    without replacement from an orthonormal basis: the pixel (Cartesian) basis in random order
    (``basis="pixel"``), or the 2-D DCT basis of each channel (``basis="dct"``, SimBA-DCT:
    ``q = C_h[k] ⊗ C_w[l]`` in one channel, :func:`jaxadv.image.dct_matrix`), low frequencies
    first. For each ``q`` the attack queries ``x + ε·q`` and, only if that does not lower the
    probability of the true class, ``x − ε·q``, and keeps the first that lowers it (targeted:
    raises the target's); so a direction costs 1 or 2 queries. The perturbation is
    ``δ = Σ ±ε·q_i`` over the accepted steps, of ℓ2 norm ``ε·√(accepted)`` (the ``q_i`` are
    distinct and orthonormal); a queried point is ``clip(x0 + δ)`` to the pixel box (the authors'
    batched code; their one-image code clips after every step), and ``delta`` in the result is
    ``x_adv − x0``. ``extras["accepted"]`` counts the steps in the returned point.

    SimBA-DCT's order (the authors' ``strided`` order, their README's setting for SimBA-DCT):
    first the ``freq_dims × freq_dims`` lowest frequencies of every channel in random order, then
    the L-shaped bands of the next ``stride`` frequencies, each in random order, up to all
    ``h·w·c`` directions; ``order="random"`` takes only the ``freq_dims × freq_dims`` block (the
    code's ``rand`` order). Defaults: ``freq_dims = ⌈min(h, w)/8⌉`` (the README's 28 of 224) and
    ``stride = ⌈freq_dims/4⌉`` (its 7). The attack stops when the directions run out.

    The probability is compared in the log domain (``log p_y``, the same rule; float32
    probabilities near 1 would round ties): the loss is ``log p_y`` untargeted and ``−log p_t``
    targeted (minimised), from the victim's logits (or log-probabilities: ``score_only(victim,
    output="log_probabilities")`` gives the same; probabilities do not), and a step is kept iff
    it strictly lowers it.

    Queries are counted per example in the compiled state: 1 for the clean input, +1 per trial,
    until some queried point fools the victim (early stop; that point is the result even when
    the probability rule would reject it, which can happen with three or more classes) or
    ``max_queries`` are spent (a direction whose second trial would overspend is not finished);
    later steps neither count nor change the result (``steps = queries − 1``: trials). ``trace``
    is the best loss after each step (non-increasing up to the fooling query).

    Where the paper and the authors' code differ: Algorithm 1 tries ``+ε`` first, the code
    ``−ε`` first (``negative_first=True``). Defaults: ``eps = 0.2`` (the paper's, for images in
    [0, 1]) and 10,000 queries.

    Attributes:
      basis: ``"pixel"`` (Cartesian directions; default) or ``"dct"`` (SimBA-DCT).
      max_queries: forward passes per example, the clean input included (10,000).
      targeted: raise the probability of ``target`` instead of lowering the true class's.
      freq_dims: SimBA-DCT: the side of the first low-frequency block (None: ⌈min(h, w)/8⌉).
      stride: SimBA-DCT: the width of each following band (None: ⌈freq_dims/4⌉).
      order: SimBA-DCT: ``"strided"`` (all directions, bands in turn; default) or ``"random"``
        (the first block only).
      negative_first: try ``−ε`` before ``+ε`` (the authors' code).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    basis: str = "pixel"
    max_queries: int = 10_000
    targeted: bool = False
    freq_dims: int | None = None
    stride: int | None = None
    order: str = "strided"
    negative_first: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "simba"
    params_type: ClassVar[type] = SimBAParams
    hparam_spec: ClassVar[dict[str, Spec]] = {"eps": Spec(0.2, "positive")}

    def __post_init__(self):
        _checks.check_choice("basis", self.basis, BASES)
        _checks.check_positive_int("max_queries", self.max_queries)
        _checks.check_choice("order", self.order, ORDERS)
        for flag in ("targeted", "negative_first"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"`{flag}` must be a bool; got {getattr(self, flag)!r}.")
        for field in ("freq_dims", "stride"):
            value = getattr(self, field)
            if value is None:
                continue
            if self.basis != "dct":
                raise ValueError(
                    f"`{field}` is an option of SimBA-DCT (`basis='dct'`); got {field}={value!r} "
                    "with basis='pixel'."
                )
            _checks.check_positive_int(field, value)
        if self.basis != "dct" and self.order != "strided":
            raise ValueError(
                f"`order` is an option of SimBA-DCT (`basis='dct'`); the pixel basis is taken in "
                f"random order. Got order={self.order!r} with basis='pixel'."
            )

    @property
    def length(self) -> int:
        return self.max_queries - 1  # the clean input is the first query

    def frequencies(self, shape) -> tuple[int, int]:
        """``(freq_dims, stride)`` for an ``[h, w, c]`` input (the defaults filled in)."""
        side = min(shape[0], shape[1])
        freq_dims = self.freq_dims or -(-side // 8)
        return freq_dims, self.stride or -(-freq_dims // 4)

    def check_victim(self, victim, hp) -> None:
        shape = tuple(self.input_shape(victim))
        if self.basis == "pixel":
            return
        if len(shape) != 3:
            raise ValueError(
                f"SimBA-DCT needs images of shape [h, w, c]; the victim's input shape is {shape}."
            )
        if self.freq_dims is not None and self.freq_dims > min(shape[:2]):
            raise ValueError(
                f"`freq_dims` must be at most the image's smaller side, {min(shape[:2])} (input "
                f"shape {shape}); got {self.freq_dims}."
            )

    def objective(self, logits, label, target):
        """``log p_label`` untargeted, ``−log p_target`` targeted (minimised)."""
        log_p = jax.nn.log_softmax(logits)
        return -log_p[target] if self.targeted else log_p[label]

    def directions(self, key, shape) -> jax.Array:
        """The order in which the directions of an input of ``shape`` are tried (int32 indices
        into the flattened basis; a permutation of all of them, or SimBA-DCT's
        ``order="random"`` block)."""
        n = 1
        for d in shape:
            n *= d
        # One sort by (band, random bits): uniformly random within each band (equal bits, about
        # n²/2³³ pairs, keep the index order); cheaper to compile than a permutation and a sort.
        bits = jax.random.bits(key, (n,), jnp.uint32)
        index = jnp.arange(n, dtype=jnp.int32)
        if self.basis == "pixel":
            return jax.lax.sort((bits, index), num_keys=1)[1]
        h, w, c = shape
        freq_dims, stride = self.frequencies(shape)
        bands = jnp.repeat(_frequency_bands(h, w, freq_dims, stride).reshape(-1), c)
        order = jax.lax.sort((bands, bits, index), num_keys=2)[2]
        return order[: c * freq_dims * freq_dims] if self.order == "random" else order

    def program(self, victim, hp: SimBAParams, x0, label, target) -> Program:
        low, high = victim.bounds
        shape = x0.shape
        first = -1.0 if self.negative_first else 1.0
        if self.basis == "dct":
            rows, cols = dct_matrix(shape[0]), dct_matrix(shape[1])

        def direction(j):
            """The unit basis vector of index ``j`` (shape of ``x0``)."""
            if self.basis == "pixel":
                return jax.nn.one_hot(j, x0.size, dtype=jnp.float32).reshape(shape)
            c = shape[2]
            row, col, channel = j // (shape[1] * c), (j // c) % shape[1], j % c
            plane = rows[row][:, None] * cols[col][None, :]
            return plane[..., None] * jax.nn.one_hot(channel, c, dtype=jnp.float32)

        def evaluate(latent) -> _Best:
            x = jnp.clip(x0 + latent, low, high)
            logits = victim(x)
            loss = self.objective(logits, label, target)
            success = self.success(logits, label, target)
            return _candidate(x, x - x0, logits, loss, success, "loss")

        def init(key):
            order = self.directions(key, shape)
            latent = jnp.zeros(shape, jnp.float32)
            best = evaluate(latent)
            zero = jnp.zeros((), jnp.int32)
            return _Carry(
                order, zero, jnp.zeros((), bool), latent, best.loss, zero, zero, zero,
                jnp.ones((), jnp.int32), best.success, best,
            )  # fmt: skip

        def step(carry: _Carry):
            count = carry.order.shape[0]
            q = direction(carry.order[jnp.minimum(carry.t, count - 1)])
            sign = jnp.where(carry.second, -first, first)
            trial = carry.latent + sign * hp.eps * q
            new = evaluate(trial)
            active = ~carry.done & (carry.t < count)  # directions left
            keep = active & (new.loss < carry.value)
            move_on = keep | carry.second  # the direction is finished
            old = carry.best
            took = active & (  # the new point beats the best (as `_keep_better` decides)
                (new.success & ~old.success) | ((new.success == old.success) & (new.rank < old.rank))
            )
            best = jax.tree.map(lambda a, b: jnp.where(took, a, b), new, old)
            counted = active.astype(jnp.int32)
            carry = _Carry(
                order=carry.order,
                t=carry.t + (active & move_on).astype(jnp.int32),
                second=jnp.where(active, ~move_on, carry.second),
                latent=jnp.where(keep, trial, carry.latent),
                value=jnp.where(keep, new.loss, carry.value),
                accepted=carry.accepted + keep.astype(jnp.int32),
                best_accepted=jnp.where(took, carry.accepted + 1, carry.best_accepted),
                steps=carry.steps + counted,
                queries=carry.queries + counted,
                done=carry.done | best.success,
                best=best,
            )
            return carry, best.loss

        def finish(carry: _Carry, trace):
            result = make_result(carry.best, victim.bounds, carry.steps, carry.queries, trace)
            return result._replace(extras={"accepted": carry.best_accepted})

        return Program(init=init, step=step, finish=finish, length=self.length)


def simba(
    *,
    basis: str = "pixel",
    eps: float = 0.2,
    max_queries: int = 10_000,
    targeted: bool = False,
    freq_dims: int | None = None,
    stride: int | None = None,
    order: str = "strided",
    negative_first: bool = False,
) -> SimBA:
    """SimBA (``basis="pixel"``) or SimBA-DCT (``basis="dct"``); see :class:`SimBA`.

    Args:
      basis: ``"pixel"`` (Cartesian directions) or ``"dct"`` (low-frequency DCT directions).
      eps: the default step ``hp.eps`` (> 0; ``attack.hparams(eps=...)`` overrides or sweeps it).
      max_queries: forward passes per example (the clean input included), at least 1.
      targeted: raise the probability of ``target`` instead of lowering the true class's.
      freq_dims: SimBA-DCT: the side of the first low-frequency block (None: ⌈min(h, w)/8⌉).
      stride: SimBA-DCT: the width of each following band (None: ⌈freq_dims/4⌉).
      order: SimBA-DCT: ``"strided"`` (all directions, bands in turn) or ``"random"`` (the
        first block only).
      negative_first: try ``−ε`` before ``+ε`` (the authors' code; the paper tries ``+ε`` first).

    Returns:
      A :class:`SimBA` named ``simba`` (``simba-dct``) whose default ``hp.eps`` is ``eps``.
    """
    _checks.check_positive("eps", eps)
    return SimBA(
        basis=basis, max_queries=max_queries, targeted=targeted, freq_dims=freq_dims,
        stride=stride, order=order, negative_first=negative_first,
        defaults=(("eps", float(eps)),), name="simba" if basis == "pixel" else "simba-dct",
    )  # fmt: skip
