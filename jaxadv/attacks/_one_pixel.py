"""The one-pixel attack (Su, Vargas & Sakurai, IEEE TEVC 2019): differential evolution, compiled."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._base import AttackBase, Spec
from jaxadv.attacks._runner import Program, _candidate, make_result
from jaxadv.losses import cw_margin


class OnePixelParams(NamedTuple):
    """The numbers of :func:`one_pixel`; every leaf is a float32 array and may be swept.

    Attributes:
      scale: DE's scale parameter F of the mutation ``x_r1 + F·(x_r2 − x_r3)`` (paper: 0.5).
    """

    scale: jax.Array


def de_indices(key, population):
    """Three distinct partner indices per member, each different from the member (DE/rand/1).

    Args:
      key: a PRNG key.
      population: the population size (≥ 4).

    Returns:
      ``[population, 3]`` int32 indices ``(r1, r2, r3)``.
    """
    # a uniform random order of the other members per row (the member itself sorts last)
    u = jax.random.uniform(key, (population, population))
    u = jnp.where(jnp.eye(population, dtype=bool), 2.0, u)
    return jnp.argsort(u, axis=1)[:, :3].astype(jnp.int32)


def de_generation(pop, fitness, key, scale, evaluate, low, high):
    """One generation of differential evolution (DE/rand/1, no crossover, greedy selection).

    Each member's child is ``pop[r1] + scale·(pop[r2] − pop[r3])`` (indices from
    :func:`de_indices`), clipped to ``[low, high]`` per coordinate; the child replaces its parent
    when its fitness is strictly lower (fitness is minimised).

    Args:
      pop: ``[P, D]`` candidates.
      fitness: ``[P]`` their fitness.
      key: a PRNG key for the partner indices.
      scale: F.
      evaluate: ``[P, D] -> ([P] fitness, aux)`` (aux: any per-member pytree, e.g. logits).
      low, high: ``[D]`` per-coordinate limits.

    Returns:
      ``(pop, fitness, replaced, aux)``: the next population, its fitness, which members were
      replaced, and ``evaluate``'s aux for the children.
    """
    r = de_indices(key, pop.shape[0])
    children = jnp.clip(pop[r[:, 0]] + scale * (pop[r[:, 1]] - pop[r[:, 2]]), low, high)
    child_fit, aux = evaluate(children)
    replaced = child_fit < fitness
    return (
        jnp.where(replaced[:, None], children, pop),
        jnp.where(replaced, child_fit, fitness),
        replaced,
        aux,
    )


class _Carry(NamedTuple):
    pop: jax.Array
    fitness: jax.Array
    success: jax.Array  # [P] each member fools the victim
    key: jax.Array
    done: jax.Array
    steps: jax.Array
    queries: jax.Array


@dataclasses.dataclass(frozen=True)
class OnePixel(AttackBase):
    """The one-pixel attack (Su, Vargas & Sakurai, "One pixel attack for fooling deep neural
    networks", IEEE Trans. Evolutionary Computation 2019), on one example as a fixed-trip program.

    A candidate is ``pixels`` tuples ``(row, col, value per channel)``; the perturbed image sets
    each listed pixel to its values. Differential evolution (:func:`de_generation`: DE/rand/1
    with scale F, no crossover, a child replaces its parent when fitter) evolves ``population``
    candidates for ``steps`` generations. Fitness, minimised: the probability of the true class
    (untargeted) or minus the probability of the target (targeted), as in the paper. The
    initial positions are uniform over the image and the values are drawn from a normal centred
    in the pixel box with standard deviation 127/255 of its width (the paper's N(128, 127) on
    0–255), clipped to the box. An example stops (``done``, its carry frozen) once a member
    fools the victim (the paper's early stop is a probability threshold: 50% for the target,
    5% for the true class; here the victim's decision decides). Keys are explicit: the
    initial population and each generation's partners come from the run's key.

    Each generation costs ``population`` queries, the initial population as many.

    Attributes:
      steps: DE generations (paper: 100). Static: the program's length.
      population: candidates (paper: 400). Static.
      pixels: pixels per candidate (1: the one-pixel attack; the paper also runs 3 and 5).
      targeted: move towards ``target`` (else away from ``label``).
      defaults, rel_step_size, name: as in :class:`AttackBase`.
    """

    steps: int = 100
    population: int = 400
    pixels: int = 1
    targeted: bool = False
    defaults: tuple[tuple[str, float], ...] = ()
    rel_step_size: float | None = None
    name: str = "one-pixel"
    params_type: ClassVar[type] = OnePixelParams
    hparam_spec: ClassVar[dict[str, Spec]] = {"scale": Spec(0.5, "positive")}

    def __post_init__(self):
        _checks.check_positive_int("steps", self.steps)
        _checks.check_positive_int("population", self.population)
        _checks.check_positive_int("pixels", self.pixels)
        if self.population < 4:
            raise ValueError(
                f"`population` must be >= 4 (DE/rand/1 needs 3 partners); got {self.population}."
            )

    def check_victim(self, victim, hp) -> None:
        if len(victim.input_shape) != 3:
            raise ValueError(
                "`victim.input_shape` must be (height, width, channels) for the one-pixel "
                f"attack; got {victim.input_shape}."
            )

    @property
    def length(self) -> int:
        return self.steps

    def limits(self, victim):
        """Per-coordinate ``(low, high)`` of a candidate: positions, then channel values."""
        h, w, ch = victim.input_shape
        lo, hi = victim.bounds
        one_low = jnp.array([0.0, 0.0] + [lo] * ch, jnp.float32)
        one_high = jnp.array([h - 1e-3, w - 1e-3] + [hi] * ch, jnp.float32)
        return jnp.tile(one_low, self.pixels), jnp.tile(one_high, self.pixels)

    def apply(self, x0, candidate):
        """The image ``x0`` with the candidate's pixels set (positions floored)."""
        h, w, ch = x0.shape
        rows = candidate.reshape(self.pixels, 2 + ch)
        x = x0
        for r in rows:  # static: pixels is small
            i = jnp.clip(jnp.floor(r[0]).astype(jnp.int32), 0, h - 1)
            j = jnp.clip(jnp.floor(r[1]).astype(jnp.int32), 0, w - 1)
            x = x.at[i, j].set(r[2:])
        return x

    def program(self, victim, hp: OnePixelParams, x0, label, target) -> Program:
        low, high = self.limits(victim)
        lo, hi = victim.bounds
        h, w, ch = victim.input_shape
        goal = target if self.targeted else label
        sign = -1.0 if self.targeted else 1.0

        def evaluate(pop):
            logits = jax.vmap(lambda c: victim(self.apply(x0, c)))(pop)
            fit = sign * jax.nn.softmax(logits)[:, goal]
            ok = jax.vmap(lambda z: self.success(z, label, target))(logits)
            return fit, ok

        def init(key):
            k_init, key = jax.random.split(key)
            k_pos, k_val = jax.random.split(k_init)
            size = (self.population, self.pixels)
            pos = jax.random.uniform(k_pos, size + (2,)) * jnp.array([h, w], jnp.float32)
            val = (lo + hi) / 2 + (127 / 255) * (hi - lo) * jax.random.normal(k_val, size + (ch,))
            pop = jnp.clip(
                jnp.concatenate([pos, val], -1).reshape(self.population, -1), low, high
            )
            fit, ok = evaluate(pop)
            zero = jnp.zeros((), jnp.int32)
            return _Carry(pop, fit, ok, key, jnp.any(ok), zero, jnp.asarray(self.population))

        def step(c: _Carry):
            key, sub = jax.random.split(c.key)
            pop, fit, replaced, ok = de_generation(
                c.pop, c.fitness, sub, hp.scale, evaluate, low, high
            )
            success = jnp.where(replaced, ok, c.success)
            new = _Carry(
                pop, fit, success, key, jnp.any(success), c.steps + 1,
                c.queries + self.population,
            )
            new = jax.tree.map(lambda old, m: jnp.where(c.done, old, m), c, new)
            return new, jnp.min(new.fitness)

        def finish(c: _Carry, trace):
            rank = jnp.where(c.success, c.fitness - 2.0, c.fitness)  # successes first
            x = self.apply(x0, c.pop[jnp.argmin(rank)])
            logits = victim(x)
            loss = cw_margin(logits, goal, kappa=0.0, targeted=self.targeted)
            best = _candidate(x, x - x0, logits, loss, self.success(logits, label, target), "l2")
            return make_result(best, victim.bounds, c.steps, c.queries + 1, trace)

        return Program(init=init, step=step, finish=finish, length=self.length)


def one_pixel(
    *, steps: int = 100, population: int = 400, pixels: int = 1, targeted: bool = False
) -> OnePixel:
    """The one-pixel attack (see :class:`OnePixel` for the method, paper and defaults).

    Hyper-parameter (``attack.hparams``): ``scale`` F = 0.5 (the paper's).

    Args:
      steps: DE generations (100, the paper's maximum).
      population: candidates per generation (400, the paper's).
      pixels: pixels changed per candidate (1).
      targeted: move towards ``target`` (else away from ``label``).

    Returns:
      A :class:`OnePixel`.
    """
    return OnePixel(steps=steps, population=population, pixels=pixels, targeted=targeted)
