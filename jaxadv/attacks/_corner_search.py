"""CornerSearch for the ℓ0 threat model (Croce & Hein, ICCV 2019), as a fixed-trip program."""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _candidate, _keep_better, make_result
from jaxadv.constraints import check_l0_budget_fits
from jaxadv.losses import cw_margin


class CornerSearchParams(NamedTuple):
    """The numbers of :func:`corner_search`; every leaf is a float32 array and may be swept.

    Attributes:
      k: the ℓ0 budget: how many pixels each sampled set changes.
    """

    k: jax.Array


def corners(channels, low, high):
    """The ``2**channels`` corners of a pixel's box: every channel at ``low`` or ``high``.

    Args:
      channels: channels per pixel.
      low, high: the pixel box.

    Returns:
      ``[2**channels, channels]`` float32 values.
    """
    table = list(itertools.product((low, high), repeat=channels))
    return jnp.asarray(table, jnp.float32)


def corner_ranking(loss_fn, x0, low, high, chunk=256):
    """Every one-pixel change of ``x0`` to a corner of the box, scored and ranked.

    Croce & Hein's first phase: for each pixel ``(i, j)`` and each corner ``c`` (all channels at
    the box's low or high end, :func:`corners`), the loss of ``x0`` with that pixel set to
    ``c``; each pixel keeps its best (lowest-loss) corner and pixels are ranked by that loss.

    Args:
      loss_fn: ``x -> scalar`` to minimise.
      x0: ``[H, W, C]`` image.
      low, high: the pixel box.
      chunk: changes evaluated together (``lax.map`` batch size; memory only).

    Returns:
      ``(scores, order, best)``: ``[H·W, 2**C]`` losses, the pixels' flat indices from best to
      worst (stable sort), and each pixel's best corner ``[H·W, C]``.
    """
    h, w, ch = x0.shape
    table = corners(ch, low, high)
    pixel, corner = jnp.divmod(jnp.arange(h * w * table.shape[0]), table.shape[0])

    def one(args):
        p, c = args
        return loss_fn(x0.at[p // w, p % w].set(table[c]))

    scores = jax.lax.map(one, (pixel, corner), batch_size=chunk).reshape(h * w, table.shape[0])
    order = jnp.argsort(jnp.min(scores, axis=1), stable=True)
    return scores, order, table[jnp.argmin(scores, axis=1)]


def rank_weights(n):
    """CornerSearch's sampling weights by rank: ``(2n − 2i + 1)/n²`` for ranks ``i = 1..n``.

    Args:
      n: the number of ranked pixels.

    Returns:
      ``[n]`` float32 weights summing to 1, decreasing with rank.
    """
    i = jnp.arange(1, n + 1, dtype=jnp.float32)
    return (2 * n - 2 * i + 1) / n**2


class _Carry(NamedTuple):
    order: jax.Array
    best_corner: jax.Array
    key: jax.Array
    best: object
    done: jax.Array
    steps: jax.Array
    queries: jax.Array


@dataclasses.dataclass(frozen=True)
class CornerSearch(AttackBase):
    """CornerSearch (Croce & Hein, "Sparse and imperceivable adversarial attacks", ICCV 2019,
    §3.1, the ℓ0 version), on one example as a fixed-trip program.

    Phase one (``init``; :func:`corner_ranking`): each of the ``H·W·2^C`` one-pixel changes to a
    corner of the pixel box is evaluated with the C&W margin of the goal class (lower is closer
    to success) and the pixels are ranked by their best corner. Phase two (``steps`` steps):
    each step samples a set of ``k`` distinct pixels, without replacement, with probability
    decreasing with rank (:func:`rank_weights`, Gumbel top-k sampling), sets them to their best
    corners and queries the victim; the lowest-loss set is kept, successes first, and an example
    stops (``done``, its carry frozen) at its first success. ``queries`` counts every forward
    pass: ``H·W·2^C`` for the ranking plus one per sample.

    The published method also ranks pixels per class toward each other class for the untargeted
    attack and grows the number of sampled pixels; here the goal class (the target, or the
    best other class through the margin) ranks them and ``k`` is fixed per run (sweep it).

    Attributes:
      steps: sampled sets (the paper's N_iter; static: the program's length).
      targeted: move towards ``target`` (else away from ``label``).
      chunk: one-pixel changes evaluated together in the ranking (memory only).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    steps: int = 1000
    targeted: bool = False
    chunk: int = 256
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "corner-search"
    params_type: ClassVar[type] = CornerSearchParams
    hparam_spec: ClassVar[dict[str, Spec]] = {"k": Spec(None, "count")}

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("chunk", self.chunk)

    def check_victim(self, victim, hp) -> None:
        if len(victim.input_shape) != 3:
            raise ValueError(
                "`victim.input_shape` must be (height, width, channels) for CornerSearch; got "
                f"{victim.input_shape}."
            )
        check_l0_budget_fits("hp.k", hp.k, victim.input_shape, "pixel")

    @property
    def length(self) -> int:
        return self.steps

    def program(self, victim, hp: CornerSearchParams, x0, label, target) -> Program:
        low, high = victim.bounds
        h, w, ch = x0.shape
        n = h * w
        goal = target if self.targeted else label

        def loss_of(logits):
            return cw_margin(logits, goal, kappa=jnp.inf, targeted=self.targeted)

        log_w = jnp.log(rank_weights(n))

        def init(key):
            _, order, best_corner = corner_ranking(
                lambda x: loss_of(victim(x)), x0, low, high, self.chunk
            )
            logits = victim(x0)
            start = _candidate(
                x0, jnp.zeros_like(x0), logits, loss_of(logits),
                self.success(logits, label, target), "loss",
            )
            zero = jnp.zeros((), jnp.int32)
            queries = jnp.asarray(n * 2**ch + 1, jnp.int32)
            return _Carry(order, best_corner, key, start, start.success, zero, queries)

        def step(c: _Carry):
            key, sub = jax.random.split(c.key)
            keys = log_w + jax.random.gumbel(sub, (n,))  # rank r's pixel is c.order[r]
            position = jnp.argsort(jnp.argsort(-keys))  # position of each rank in the draw
            chosen_rank = position < hp.k
            pick = jnp.zeros(n, bool).at[c.order].set(chosen_rank)
            flat = x0.reshape(n, ch)
            x = jnp.where(pick[:, None], c.best_corner, flat).reshape(x0.shape)
            logits = victim(x)
            new_best = _keep_better(
                c.best,
                _candidate(x, x - x0, logits, loss_of(logits),
                           self.success(logits, label, target), "loss"),
            )
            moved = _Carry(c.order, c.best_corner, key, new_best, new_best.success,
                           c.steps + 1, c.queries + 1)
            new = jax.tree.map(lambda old, m: jnp.where(c.done, old, m), c, moved)
            return new, new.best.loss

        def finish(c: _Carry, trace):
            return make_result(c.best, victim.bounds, c.steps, c.queries, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def corner_search(*, steps: int = 1000, targeted: bool = False, chunk: int = 256) -> CornerSearch:
    """CornerSearch, ℓ0 version (see :class:`CornerSearch` for the method, paper and defaults).

    Hyper-parameter (``attack.hparams``): ``k``, the pixels changed per sampled set (no
    default: it is the threat model's budget).

    Args:
      steps: sampled sets after the ranking (1000).
      targeted: move towards ``target`` (else away from ``label``).
      chunk: one-pixel changes evaluated together in the ranking (256; memory only).

    Returns:
      A :class:`CornerSearch`.
    """
    return CornerSearch(steps=steps, targeted=targeted, chunk=chunk)
