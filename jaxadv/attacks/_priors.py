"""Transfer priors of query attacks: how a prior is computed white-box on surrogate models.

A query attack's ``prior`` field is a static, hashable description (one of the classes below, or
any frozen dataclass with the same ``build``); ``build(attack, surrogates, hp, x0, label,
target)`` turns it, inside the attack's trace, into a per-example ``prior_fn(theta, key) -> array
like theta`` from the victim's surrogates (``models.with_surrogates``), the attack's objective,
the clean example and the hyper-parameters. Surrogate gradients are not queries. Each call picks
one surrogate uniformly at random with ``key``, as the papers do.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv.attacks._driver import run_program
from jaxadv.attacks._ensembles import FEATURE_LOSSES
from jaxadv.attacks._subspace import NORMALIZATIONS, SubspaceAttack

PriorFn = Callable[[jax.Array, jax.Array], jax.Array]  # (theta, key) -> prior like theta
STARTS = ("clean", "current")


def _pick(key, branches: list[Callable], *args) -> jax.Array:
    """One branch chosen uniformly at random (all are traced; one's value is returned)."""
    if len(branches) == 1:
        return branches[0](*args)
    return jax.lax.switch(jax.random.randint(key, (), 0, len(branches)), branches, *args)


def check_prior_shape(prior_fn: PriorFn, theta: jax.Array, key: jax.Array) -> None:
    """A prior must have the latent's shape (checked by shape inference, no compute)."""
    out = jax.eval_shape(prior_fn, jax.ShapeDtypeStruct(theta.shape, theta.dtype), key)
    if tuple(getattr(out, "shape", ())) != tuple(theta.shape):
        raise ValueError(
            f"`prior` must give an array of the latent's shape {tuple(theta.shape)}; got "
            f"{tuple(getattr(out, 'shape', ())) or type(out).__name__}."
        )


@dataclasses.dataclass(frozen=True)
class SurrogateGradient:
    """The gradient of the attack's own objective on a random surrogate at the current point
    (P-RGF's transfer gradient; Yan et al.'s reference-model gradient).

    Attributes:
      noise: standard deviation of Gaussian noise added to the latent before the surrogate's
        gradient is taken, afresh at each draw (the randomness Yan et al. get from dropout in
        the reference models). 0: none.
    """

    noise: float = 0.0

    def __post_init__(self):
        _checks.check_nonnegative("noise", self.noise)

    def build(self, attack, surrogates, hp, x0, label, target) -> PriorFn:
        def gradient(surrogate):
            loss = attack.loss_fn(surrogate, hp, x0, label, target)

            def surrogate_loss(theta):
                x = attack.perturbation.to_input(theta, x0)
                return loss(x, surrogate(x))

            return jax.grad(surrogate_loss)

        branches = [gradient(s) for s in surrogates]

        def prior_fn(theta, key):
            pick, noise_key = jax.random.split(key)
            if self.noise:
                theta = theta + self.noise * jax.random.normal(noise_key, theta.shape, theta.dtype)
            return _pick(pick, branches, theta)

        return prior_fn


@dataclasses.dataclass(frozen=True)
class SubspacePrior:
    """Che et al.'s gradient prior: their subspace attack (Algorithm 1,
    :func:`~jaxadv.attacks.subspace_attack`) on a random substitute, whose prior ``u`` (the sum
    of its steps) feeds Algorithm 2. The substitutes need named hidden layers (saliency victims).

    Algorithm 2 runs Algorithm 1 on the benign image at every iteration and gets diverse priors
    from a random substitute and fresh channel samples (``start="clean"``, the default);
    ``start="current"`` runs it from the current iterate instead. Algorithm 1's numbers: its
    budget is the attack's ``hp.eps``, its step ``eps/4``, Adam's decays 0.9/0.999.

    Untargeted only: a targeted query attack receives its guides as outputs (maps or classes),
    while Algorithm 1 needs the guide image.

    Attributes:
      layer, channels, loss, normalization, resample: Algorithm 1's ``i``, ``p``, ``L3``,
        channel normalisation and per-step resampling (see ``subspace_attack``).
      steps: Algorithm 1's ``X1``.
      norm: its budget's norm (ℓ∞ in the paper).
      start: ``"clean"`` or ``"current"`` (above).
    """

    layer: str
    channels: int
    steps: int = 10
    loss: str = "mse"
    normalization: str = "standardize"
    resample: bool = False
    norm: str = "linf"
    start: str = "clean"

    def __post_init__(self):
        _checks.check_positive_int("channels", self.channels)
        _checks.check_positive_int("steps", self.steps)
        _checks.check_choice("loss", self.loss, FEATURE_LOSSES)
        _checks.check_choice("normalization", self.normalization, NORMALIZATIONS)
        _checks.check_choice("start", self.start, STARTS)

    def subspace(self) -> SubspaceAttack:
        return SubspaceAttack(
            layer=self.layer,
            channels=self.channels,
            loss=self.loss,
            normalization=self.normalization,
            targeted=False,
            steps=self.steps,
            norm=self.norm,
            resample=self.resample,
        )

    def build(self, attack, surrogates, hp, x0, label, target) -> PriorFn:
        if attack.targeted:
            raise ValueError(
                "`prior=SubspacePrior(...)` is for untargeted attacks (Algorithm 1 needs the guide "
                "image, a targeted query attack gets the guide's output); use "
                "`SurrogateGradient()` for a targeted attack."
            )
        sub = self.subspace()
        for surrogate in surrogates:
            sub.check_victim(surrogate)  # a named layer with at least `channels` channels
        spec = {k: s.default for k, s in sub.hparam_spec.items()}
        shp = sub.params_type(**{**spec, "step_size": 0.0, "rel_step_size": sub.rel_step_size})
        shp = sub.derive(shp._replace(eps=hp.eps))

        def crafted(surrogate):
            def prior(theta, key):
                origin = x0 if self.start == "clean" else attack.perturbation.to_input(theta, x0)
                program = sub.program(surrogate, shp, origin, jnp.zeros((), jnp.int32), origin)
                return run_program(program, key).extras["prior"]

            return prior

        branches = [crafted(s) for s in surrogates]

        def prior_fn(theta, key):
            pick, run_key = jax.random.split(key)
            return _pick(pick, branches, theta, run_key)

        return prior_fn
