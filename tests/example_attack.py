import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxadv.attacks import AttackBase, AttackResult, Program, Spec, perturbation_norms
from jaxadv.constraints import intersect, linf_ball, pixel_box
from jaxadv.losses import classification_objective


class NoiseParams(NamedTuple):
    eps: jax.Array  # radius of the ℓ∞ budget (a float32 leaf: may be swept)


@dataclasses.dataclass(frozen=True)
class RandomSignNoise(AttackBase):
    """A query-only baseline: ``tries`` random corners ``x0 ± eps`` of the ℓ∞ ball, keeping the
    one of lowest loss (the clean input included)."""

    tries: int = 4
    targeted: bool = False
    name: str = "random-sign-noise"
    params_type: ClassVar[type] = NoiseParams
    hparam_spec: ClassVar[dict] = {"eps": Spec(8 / 255, "nonnegative")}

    @property
    def length(self) -> int:
        return self.tries

    def program(self, victim, hp, x0, label, target) -> Program:
        feasible = intersect(linf_ball(hp.eps), pixel_box(*victim.bounds))
        objective = classification_objective("ce", targeted=self.targeted)

        def evaluate(delta):
            logits = victim(x0 + delta)
            return objective(logits, label, target, hp), logits

        def init(key):
            delta = jnp.zeros_like(x0)
            return (key, delta, *evaluate(delta))

        def step(carry):
            key, best, best_loss, best_logits = carry
            key, sub = jax.random.split(key)
            delta = feasible.project(hp.eps * jax.random.rademacher(sub, x0.shape, x0.dtype), x0)
            loss, logits = evaluate(delta)
            keep = lambda new, old: jnp.where(loss < best_loss, new, old)  # noqa: E731
            carry = (key, keep(delta, best), keep(loss, best_loss), keep(logits, best_logits))
            return carry, loss

        def finish(carry, trace):
            _, delta, loss, logits = carry
            return AttackResult(
                x_adv=jnp.clip(x0 + delta, *victim.bounds),
                delta=delta,
                success=self.success(logits, label, target),
                loss=loss,
                logits=logits,
                steps=jnp.int32(self.tries),
                queries=jnp.int32(self.tries + 1),
                trace=trace,
                **perturbation_norms(delta),
            )

        return Program(init=init, step=step, finish=finish, length=self.tries)
