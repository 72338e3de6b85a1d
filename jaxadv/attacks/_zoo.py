"""ZOO and AutoZOOM: C&W's ℓ2 objective on log-probabilities, minimised from queries.

Both attacks (Chen et al., "ZOO", AISec 2017; Tu et al., "AutoZOOM", AAAI 2019) minimise

    ‖x − x0‖₂² + c · f(x),   f(x) = max(log F(x)_y − max_{j≠y} log F(x)_j, −κ)

(targeted: ``max(max_{j≠t} log F(x)_j − log F(x)_t, −κ)``) over a latent ``z``, with
``x = tanh-box(arctanh-box(x0) + D(z))``: C&W's change of variables (``x`` stays in the pixel box)
around the clean image, and ``D`` maps a reduced latent to the image (the identity by default for
ZOO; bilinear upsampling of a small image, AutoZOOM-BiLIN, or a user's decoder, AutoZOOM-AE).
The log-probabilities are ``log_softmax`` of the victim's scores, so a victim may output logits or
log-probabilities (not probabilities). ``c`` is ``hp.initial_const``, κ ``hp.kappa``.

* ZOO: :class:`~jaxadv.gradients.ZOO` (``B`` random coordinates, symmetric differences, step
  ``hp.fd_step``, the paper's 1e-4) with ZOO-ADAM or ZOO-Newton
  (:func:`~jaxadv.transforms.coordinate_adam`/``coordinate_newton``, learning rate
  ``hp.step_size``, the paper's 0.01).
* AutoZOOM: :class:`~jaxadv.gradients.AutoZOOM` (random unit vectors in the reduced space, radius
  ``hp.fd_step``; ``q = 1`` until the first success, then ``directions``) with Adam.

The papers search ``c`` by C&W's binary search: ``search_steps`` (default 1: ``c`` fixed per
run) runs the attack once per constant (:func:`~jaxadv.attacks.constant_search`), the queries
of all runs summed. Differences from the papers: ZOO's hierarchical attack and importance sampling, and AutoZOOM's
Adam reset at the first success (published code), are not implemented. Runs do not stop at the
first success by default (``early_stop=False``): the rest of the budget fine-tunes the distortion
and the smallest-ℓ2 successful iterate is returned (``result.queries`` is then the budget spent).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxadv import _checks
from jaxadv import gradients as grads
from jaxadv.attacks._cw import constant_search
from jaxadv.attacks._query import QueryAttack
from jaxadv.attacks._runner import Program
from jaxadv.constraints import unconstrained
from jaxadv.losses import cw_margin
from jaxadv.perturbations import TanhBox
from jaxadv.transforms import coordinate_adam, coordinate_newton

UPDATES = ("adam", "newton")


@dataclasses.dataclass(frozen=True)
class ReducedTanh:
    """The latent model ``x = tanh-box(arctanh-box(x0) + D(z))`` (module docstring).

    Attributes:
      low, high: the pixel box.
      latent_shape: the shape of ``z``.
      decoder: ``z -> D(z)`` of the image's shape; None: bilinear resize of ``z`` to it (the
        identity when the shapes agree).
    """

    low: float
    high: float
    latent_shape: tuple[int, ...]
    decoder: Callable[[jax.Array], jax.Array] | None = None
    additive: bool = dataclasses.field(default=False, init=False)

    def init(self, x0):
        return jnp.zeros(self.latent_shape, x0.dtype)

    def decode(self, z, shape):
        if self.decoder is not None:
            return self.decoder(z)
        if tuple(z.shape) == tuple(shape):
            return z
        return jax.image.resize(z, shape, "linear")

    def to_input(self, z, x0):
        box = TanhBox(self.low, self.high)
        return box.to_input(box.init(x0) + self.decode(z, x0.shape), x0)


@dataclasses.dataclass(frozen=True)
class LogProbMargin:
    """``c · f(x)`` of the module docstring: the C&W margin of the log-probabilities.

    Called as ``(scores, label, target, hp)``: ``hp.initial_const`` times the margin (confidence
    ``hp.kappa``) of ``log_softmax(scores)``.

    Attributes:
      targeted: reach ``target`` (True) or leave ``label`` (False).
    """

    targeted: bool

    def __call__(self, scores, label, target, hp):
        goal = target if self.targeted else label
        margin = cw_margin(jax.nn.log_softmax(scores), goal, kappa=hp.kappa, targeted=self.targeted)
        return hp.initial_const * margin


def _adam(hp):
    return coordinate_adam(hp.step_size)


def _newton(hp):
    return coordinate_newton(hp.step_size)


def _free(hp):
    del hp
    return unconstrained()


@dataclasses.dataclass(frozen=True)
class ZerothOrderCW(QueryAttack):
    """ZOO / AutoZOOM (module docstring): a :class:`QueryAttack` on the penalised objective over
    a reduced tanh latent. Its attributes besides those of :class:`QueryAttack`:

    Attributes:
      reduced: the latent's spatial size ``(h', w')`` for images ``(H, W, ...)``, each dividing
        the image's; ``"half"``: ``(H/2, W/2)``; None: the image's own shape.
      decoder: a user's decoder ``z -> D(z)`` (AutoZOOM-AE); then ``latent_shape`` is required and
        ``reduced`` is ignored.
      latent_shape: the shape of the decoder's input.
      search_steps: C&W's binary search over the constant ``c`` (``hp.initial_const`` the
        first; :func:`~jaxadv.attacks.constant_search` with ``close="finish"``): each search
        step is one whole run of the attack (``max_queries`` each, its early stop kept), the
        result the best run by (success, then ℓ2), ``steps`` and ``queries`` summed over the
        runs. 1 (default): one run at ``c``, no search.
    """

    reduced: tuple[int, int] | str | None = None
    decoder: Callable[[jax.Array], jax.Array] | None = None
    latent_shape: tuple[int, ...] | None = None
    search_steps: int = 1

    def __post_init__(self):
        super().__post_init__()
        _checks.check_positive_int("search_steps", self.search_steps)
        if self.decoder is not None and self.latent_shape is None:
            raise ValueError("`latent_shape` is required with a `decoder`; got None.")
        if isinstance(self.reduced, str):
            _checks.check_choice("reduced", self.reduced, ("half",))
        elif self.reduced is not None:
            if len(self.reduced) != 2:
                raise ValueError(f"`reduced` must be (height, width); got {self.reduced!r}.")
            for side in self.reduced:
                _checks.check_positive_int("reduced", side)

    def latent(self, victim) -> ReducedTanh:
        """The latent model for ``victim``'s inputs (raises if ``reduced`` does not fit them)."""
        low, high = victim.bounds
        shape = tuple(victim.input_shape)
        if self.decoder is not None:
            return ReducedTanh(low, high, tuple(self.latent_shape), self.decoder)
        if self.reduced is None:
            return ReducedTanh(low, high, shape)
        if len(shape) < 2:
            raise ValueError(
                f"`reduced` needs image inputs (height, width, ...); got input shape {shape}."
            )
        size = (shape[0] // 2, shape[1] // 2) if self.reduced == "half" else tuple(self.reduced)
        if any(s < 1 or full % s for s, full in zip(size, shape[:2])):
            raise ValueError(
                f"`reduced` must divide the image's size {shape[:2]}; got {self.reduced!r}."
            )
        return ReducedTanh(low, high, size + shape[2:])

    @property
    def run_length(self) -> int:
        """Program steps of one run (one search step)."""
        return QueryAttack.length.fget(self)

    @property
    def length(self) -> int:
        """Program steps: ``search_steps`` runs of :attr:`run_length` steps."""
        return self.search_steps * self.run_length

    def program(self, victim, hp, x0, label, target) -> Program:
        if self.search_steps == 1:
            return super().program(victim, hp, x0, label, target)
        one = dataclasses.replace(self, search_steps=1)

        def search_step(const) -> Program:
            return one.program(victim, hp._replace(initial_const=const), x0, label, target)

        return constant_search(
            search_step,
            initial_const=hp.initial_const,
            steps=one.length,
            search_steps=self.search_steps,
            bounds=victim.bounds,
            close="finish",
            select=self.select,
        )

    def check_victim(self, victim, hp) -> None:
        # The estimator checks itself against a latent of the right shape (ZOO: `batch` ≤ d).
        self.oracle.init(jnp.zeros(self.latent(victim).latent_shape))

    def loss_fn(self, victim, hp, x0, label, target):
        def penalised(x, scores):
            return jnp.sum(jnp.square(x - x0)) + self.objective(scores, label, target, hp)

        return penalised

    def single_run(self, victim, hp, x0, label, target):
        oracle = self.oracle
        if isinstance(oracle, grads.AutoZOOM):  # the switch to q directions: the first success
            found = lambda aux: self.success(aux[1], label, target)  # noqa: E731  aux = (x, scores)
            oracle = dataclasses.replace(oracle, found=found)
        bound = dataclasses.replace(
            self, perturbation=self.latent(victim), oracle=oracle, search_steps=1
        )
        return QueryAttack.single_run(bound, victim, hp, x0, label, target)


def zoo(
    *,
    update: str = "adam",
    batch: int = 128,
    max_queries: int = 100_000,
    targeted: bool = False,
    const: float = 1.0,
    reduced: tuple[int, int] | None = None,
    early_stop: bool = False,
    search_steps: int = 1,
) -> ZerothOrderCW:
    """ZOO (Chen et al., AISec 2017): ``batch`` coordinates per step (the paper's 128, ``2·batch
    + 1`` queries), ZOO-ADAM (``update="adam"``) or ZOO-Newton (``"newton"``), constant ``const``,
    optionally in a bilinearly ``reduced`` attack space (the paper's dimension reduction). See
    :class:`ZerothOrderCW` and the module docstring.

    ``hp.fd_step`` defaults to the paper's h = 1e-4. In float32 the second difference ĥ_ii at
    that h is rounding noise (on the tests' MLP objective, max relative error ~4e2 against the
    exact Hessian diagonal; 5 at 1e-3, 4e-2 at 1e-2), so ZOO-Newton wants ``fd_step`` ≈ 1e-2;
    the first difference ĝ_i is fine at 1e-4 (~7e-3).

    Args:
      update: ``"adam"`` (ZOO-ADAM; default) or ``"newton"`` (ZOO-Newton).
      batch: coordinates estimated per step (128).
      max_queries: the per-example query budget (100,000).
      targeted: reach ``target`` (else leave ``label``).
      const: the default trade-off constant ``c`` (``hp.initial_const``; 1).
      reduced: the attack space's spatial size ``(h', w')``, each dividing the image's; None:
        the image's own.
      early_stop: stop an example at its first success (False).
      search_steps: the binary search over ``c`` (:class:`ZerothOrderCW`; the paper's C&W
        search): this many runs of ``max_queries`` each, from ``c = const``; 1: no search.

    Returns:
      A :class:`ZerothOrderCW` named ``zoo-<update>``.
    """
    _checks.check_choice("update", update, UPDATES)
    return ZerothOrderCW(
        objective=LogProbMargin(bool(targeted)),
        step_rule=_adam if update == "adam" else _newton,
        constraint=_free,
        oracle=grads.zoo(batch),
        max_queries=max_queries,
        targeted=targeted,
        early_stop=early_stop,
        select="l2",
        reduced=reduced,
        search_steps=search_steps,
        defaults=(("step_size", 1e-2), ("initial_const", const), ("fd_step", 1e-4)),
        name=f"zoo-{update}",
    )


def autozoom(
    *,
    directions: int = 4,
    max_queries: int = 20_000,
    targeted: bool = False,
    const: float = 1.0,
    reduced: tuple[int, int] | str = "half",
    decoder: Callable[[jax.Array], jax.Array] | None = None,
    latent_shape: tuple[int, ...] | None = None,
    scale: float | None = None,
    early_stop: bool = False,
) -> ZerothOrderCW:
    """AutoZOOM (Tu et al., AAAI 2019): random-vector estimates in a reduced space, one direction
    per step until the first success, then ``directions`` (the published code's ImageNet example
    uses 4); ``scale`` is the estimate's ``b`` (None: the latent's dimension). The default latent
    is AutoZOOM-BiLIN's: a ``reduced`` image (half each side) upsampled bilinearly; ``decoder``
    with ``latent_shape`` gives AutoZOOM-AE. Adam with learning rate ``hp.step_size`` (0.01, the
    published code's for MNIST and CIFAR-10), radius ``hp.fd_step`` (default 1e-3; the published
    code uses 1/d). See :class:`ZerothOrderCW` and the module docstring.

    Args:
      directions: random directions per estimate after the first success (4).
      max_queries: the per-example query budget (20,000).
      targeted: reach ``target`` (else leave ``label``).
      const: the default trade-off constant ``c`` (``hp.initial_const``; 1).
      reduced: the latent's spatial size ``(h', w')``, each dividing the image's, or ``"half"``
        (default); ignored with a ``decoder``.
      decoder: a decoder ``z -> D(z)`` (AutoZOOM-AE); None: bilinear upsampling.
      latent_shape: the shape of the decoder's input (required with ``decoder``).
      scale: the estimate's ``b``; None: the latent's dimension.
      early_stop: stop an example at its first success (False).

    Returns:
      A :class:`ZerothOrderCW` named ``autozoom``.
    """
    return ZerothOrderCW(
        objective=LogProbMargin(bool(targeted)),
        step_rule=_adam,
        constraint=_free,
        oracle=grads.AutoZOOM(directions=directions, scale=scale),
        max_queries=max_queries,
        targeted=targeted,
        early_stop=early_stop,
        select="l2",
        reduced=reduced,
        decoder=decoder,
        latent_shape=None if latent_shape is None else tuple(latent_shape),
        defaults=(("step_size", 1e-2), ("initial_const", const), ("fd_step", 1e-3)),
        name="autozoom",
    )
