"""AutoAttack (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020): the ensemble researchers report, with its flags.

The ensemble runs its attacks one after another, each only on the points still robust, and keeps
for every point the first adversarial example found (the worst case: a point is robust only if no
attack broke it). Each attack is an ordinary :class:`~jaxadv.attacks.AttackBase` family run through
its ``batch`` (the one driver); this module only chooses the points, pads them to a few batch sizes
(powers of two: each attack compiles at most log₂(n) times), and re-checks every claimed success
itself — the victim must misclassify ``x_adv`` with finite outputs, and ``x_adv − x`` must fit the
budget — so the robust accuracy never rests on an attack's own word.

Versions (the reference code's sets; ``steps`` 100 iterations, Square ``queries`` 5,000):

* ``standard``: APGD-CE, APGD-T (targeted DLR over the 9 most likely other classes), FAB-T (the same
  targets), Square (p_init 0.8); ℓ1: APGD-CE and APGD-T only (FAB-T and Square are not part of the
  ℓ1 standard set);
* ``plus``: APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T, FAB-T; ℓ1
  leaves out Square (no ℓ1 version);
* ``rand``: APGD-CE and APGD-DLR with expectation over transformation (20 draws per gradient) for
  victims with randomness (:class:`~jaxadv.models.RandomizedVictim`).

Differences from the reference code, on purpose: the seed is an explicit key (never the clock);
losses are per example (the reference sums over the batch, so its gradients depend on the batch
size only through scaling, which APGD's sign/normalised steps remove); a victim with too few
classes for DLR is flagged and the DLR attacks are left out rather than run on an undefined loss.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks
from jaxadv.attacks import _autoattack_flags as flags_
from jaxadv.attacks._apgd import apgd
from jaxadv.attacks._fab import fab
from jaxadv.attacks._square import square
from jaxadv.attacks._autoattack_flags import Flag
from jaxadv.models import RandomizedVictim, Victim

VERSIONS = ("standard", "plus", "rand")
NORMS = ("linf", "l2", "l1")
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")

ROBUST = -1  # ``broken_by`` of a point no attack broke
CLEAN_WRONG = -2  # ``broken_by`` of a point the victim misclassifies without any attack


def version_attacks(version: str, norm: str) -> tuple[str, ...]:
    """The attacks of a version, in the order they run."""
    _checks.check_choice("version", version, VERSIONS)
    _checks.check_choice("norm", norm, NORMS)
    if version == "standard":
        return ("apgd-ce", "apgd-t") if norm == "l1" else ("apgd-ce", "apgd-t", "fab-t", "square")
    if version == "plus":
        names = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
        return tuple(n for n in names if n != "square") if norm == "l1" else names
    return ("apgd-ce", "apgd-dlr")


@dataclasses.dataclass(frozen=True)
class AutoAttackReport:
    """What an AutoAttack run found, point by point and attack by attack.

    Attributes:
      norm, eps, version: the threat model and the ensemble (``"custom"``: a selection).
      attacks: the attacks that ran, in order.
      clean_correct: ``bool[n]``, the victim gets the clean point right.
      robust: ``bool[n]``, correct and broken by no attack.
      x_adv: ``f32[n, ...]``, the first adversarial example found (the clean input where none).
      broken_by: ``int[n]``, the index in ``attacks`` of the attack that broke the point;
        :data:`ROBUST` (-1) if none did, :data:`CLEAN_WRONG` (-2) if misclassified already.
      robust_accuracy_after: robust accuracy after each attack (cumulative).
      attacked: how many points each attack ran on (those still robust).
      queries: forward+backward passes each attack spent on those points.
      seconds: wall time of each attack, compilation included.
      flags: the diagnostics of :mod:`jaxadv.attacks._autoattack_flags` raised in this run.
    """

    norm: str
    eps: float
    version: str
    attacks: tuple[str, ...]
    clean_correct: np.ndarray
    robust: np.ndarray
    x_adv: np.ndarray
    broken_by: np.ndarray
    robust_accuracy_after: tuple[float, ...]
    attacked: tuple[int, ...]
    queries: tuple[int, ...]
    seconds: tuple[float, ...]
    flags: tuple[Flag, ...]

    @property
    def clean_accuracy(self) -> float:
        return float(np.mean(self.clean_correct))

    @property
    def robust_accuracy(self) -> float:
        return float(np.mean(self.robust))

    def table(self) -> str:
        """The report as text: clean accuracy, one row per attack, robust accuracy, flags."""
        n = len(self.robust)
        lines = [
            f"AutoAttack {self.version}, {self.norm} eps={self.eps:g}, {n} points",
            f"clean accuracy: {100 * self.clean_accuracy:.2f}%",
            f"{'attack':<10}{'attacked':>9}{'broke':>7}{'robust acc':>12}{'queries':>11}{'s':>8}",
        ]
        for i, name in enumerate(self.attacks):
            broke = int(np.sum(self.broken_by == i))
            lines.append(
                f"{name:<10}{self.attacked[i]:>9}{broke:>7}"
                f"{100 * self.robust_accuracy_after[i]:>11.2f}%{self.queries[i]:>11}"
                f"{self.seconds[i]:>8.1f}"
            )
        lines.append(f"robust accuracy: {100 * self.robust_accuracy:.2f}%")
        lines += [f"FLAG {f.name} ({f.count}): {f.message}" for f in self.flags] or ["flags: none"]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class AutoAttack:
    """The AutoAttack ensemble (module docstring): ``AutoAttack(norm, eps)(victim, images, labels,
    key)`` returns an :class:`AutoAttackReport`.

    Attributes:
      norm: ``"linf"``, ``"l2"`` or ``"l1"``.
      eps: the budget's radius.
      version: ``"standard"``, ``"plus"`` or ``"rand"``.
      attacks: a custom selection from :data:`ATTACK_NAMES` run in this order (None: the
        version's).
      steps: iterations of APGD and FAB (100).
      queries: Square's query budget per point (5,000).
      n_target_classes: targets of APGD-T and FAB-T, the most likely other classes (9).
      eot_iter: draws per gradient under ``rand`` (20).
      progress: print a line per attack to stderr.
    """

    norm: str = "linf"
    eps: float = 8 / 255
    version: str = "standard"
    attacks: tuple[str, ...] | None = None
    steps: int = 100
    queries: int = 5000
    n_target_classes: int = 9
    eot_iter: int = 20
    progress: bool = False

    def __post_init__(self):
        _checks.check_choice("norm", self.norm, NORMS)
        _checks.check_choice("version", self.version, VERSIONS)
        _checks.check_positive("eps", self.eps)
        for name in ("steps", "queries", "n_target_classes", "eot_iter"):
            _checks.check_positive_int(name, getattr(self, name))
        if self.attacks is not None:
            if isinstance(self.attacks, str) or not self.attacks:
                raise ValueError(
                    f"`attacks` must be a non-empty tuple of names from {ATTACK_NAMES}; got "
                    f"{self.attacks!r}."
                )
            for name in self.attacks:
                _checks.check_choice("attacks", name, ATTACK_NAMES)
            if "square" in self.attacks and self.norm == "l1":
                raise ValueError("`attacks` has 'square', which has no l1 version; got norm 'l1'.")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.attacks) if self.attacks else version_attacks(self.version, self.norm)

    def components(
        self, num_classes: int, randomized: bool = True
    ) -> tuple[list[tuple[str, Any, Any]], list[Flag]]:
        """The attacks to run as ``(name, attack, hp)`` and the flags of leaving some out.
        ``rand`` averages over ``eot_iter`` draws only for a randomized victim (a deterministic
        one has nothing to average: one draw)."""
        flags, plan = [], []
        targets = min(self.n_target_classes, num_classes - 1)
        if targets < self.n_target_classes and {"apgd-t", "fab-t"} & set(self.names):
            flags += flags_.class_flag(
                num_classes, self.n_target_classes + 1,
                f"the targeted attacks use its {targets} other classes as targets, not "
                f"{self.n_target_classes}.",
            )  # fmt: skip
        restarts = 5 if self.version == "plus" else 1
        eot = self.eot_iter if self.version == "rand" and randomized else 1
        for name in self.names:
            if name.startswith("apgd"):
                loss = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}[name]
                need = 4 if name == "apgd-t" else (3 if name == "apgd-dlr" else 0)
                if num_classes < need:
                    flags += flags_.class_flag(
                        num_classes, need, f"{name} needs at least {need} (its DLR loss divides "
                        "by a gap between sorted logits); it was left out.",
                    )  # fmt: skip
                    continue
                attack = apgd(
                    norm=self.norm, loss=loss, steps=self.steps,
                    restarts=1 if name == "apgd-t" else restarts, eot_iter=eot,
                    **({"n_target_classes": targets} if name == "apgd-t" else {}),
                )  # fmt: skip
            elif name.startswith("fab"):
                targeted = name == "fab-t"
                attack = fab(
                    norm=self.norm, steps=self.steps, restarts=1 if targeted else restarts,
                    n_target_classes=targets if targeted else 0,
                )  # fmt: skip
            else:
                attack = square(norm=self.norm, queries=self.queries)
            plan.append((name, attack, attack.hparams(eps=self.eps)))
        return plan, flags

    def __call__(self, victim, images, labels, key) -> AutoAttackReport:
        """Evaluates ``victim`` on ``images``/``labels`` (a batch); ``key`` seeds every attack."""
        randomized = _check_victim(victim)
        plan, flags = self.components(victim.num_classes, randomized)
        return self.run_plan(plan, victim, images, labels, key, flags)

    def run_plan(self, plan, victim, images, labels, key, flags=()) -> AutoAttackReport:
        """Runs ``plan``, a sequence of ``(name, attack, hp)`` (any attack families; ``hp`` with
        this budget), as the ensemble runs its own: each on the points still robust, the first
        verified adversarial example kept. ``flags`` are added to the report's."""
        randomized = _check_victim(victim)
        _checks.check_key("key", key)
        _checks.check_batch_shape("images", jnp.shape(images), victim.input_shape)
        _checks.check_in_bounds("images", images, victim.bounds)
        n = int(jnp.shape(images)[0])
        if labels is None or jnp.shape(labels) != (n,):
            raise ValueError(
                f"`labels` must have shape ({n},) to match `images`; got "
                f"{None if labels is None else jnp.shape(labels)}."
            )
        _checks.check_labels("labels", labels, victim.num_classes)
        images = np.asarray(images, np.float32)
        labels = np.asarray(labels, np.int32)
        flags = list(flags)

        # One fixed draw judges every point (clean accuracy and each claimed success); a second
        # draw only serves the randomness flag.
        judge_key, second_key = jax.random.split(jax.random.fold_in(key, 0x5EED))
        judge = victim.with_key(judge_key) if randomized else victim
        second = victim.with_key(second_key) if randomized else victim
        logits, again = flags_.clean_logits(judge, second, images)
        # Under "rand" the randomness is expected (EOT averages over it): no flag for it then.
        if randomized and self.version == "rand":
            flags += flags_.output_flags(logits, logits, randomized=False)
        else:
            flags += flags_.output_flags(logits, again, randomized)
        correct = (np.argmax(logits, -1) == labels) & np.all(np.isfinite(logits), -1)
        flags += flags_.zero_gradient_flag(judge, images, labels, correct)

        x_adv = images.copy()
        broken_by = np.where(correct, ROBUST, CLEAN_WRONG).astype(np.int32)
        after, attacked, queries, seconds = [], [], [], []
        for i, (name, attack, hp) in enumerate(plan):
            todo = np.flatnonzero(broken_by == ROBUST)
            attacked.append(int(todo.size))
            start = time.perf_counter()
            spent = 0
            if todo.size:
                target = victim if (attack.eot or not randomized) else victim.with_key(
                    jax.random.fold_in(key, 2 * i + 1)
                )
                found, spent = _attack_points(
                    attack, target, hp, images, labels, todo, jax.random.fold_in(key, 2 * i)
                )
                broke = self._verified(judge, images[todo], labels[todo], found)
                x_adv[todo[broke]] = found[broke]
                broken_by[todo[broke]] = i
            seconds.append(time.perf_counter() - start)
            queries.append(spent)
            after.append(float(np.mean(broken_by == ROBUST)))
            if self.progress:
                print(
                    f"autoattack: {name}: robust accuracy {100 * after[-1]:.2f}% "
                    f"({seconds[-1]:.1f} s)",
                    file=sys.stderr,
                )
        names = tuple(name for name, _, _ in plan)
        if "square" in names:
            square = names.index("square")
            flags += flags_.square_flag(int(np.sum(broken_by == square)) if square else 0)
        return AutoAttackReport(
            norm=self.norm, eps=float(self.eps), attacks=names,
            version=self.version if self.attacks is None else "custom",
            clean_correct=correct, robust=broken_by == ROBUST, x_adv=x_adv, broken_by=broken_by,
            robust_accuracy_after=tuple(after), attacked=tuple(attacked),
            queries=tuple(queries), seconds=tuple(seconds), flags=tuple(flags),
        )  # fmt: skip

    def _verified(self, judge, x, labels, x_adv) -> np.ndarray:
        """Which claimed adversarial examples really are: misclassified with finite outputs by
        the judging victim, inside the pixel box, and within the budget (float rounding aside)."""
        logits = np.asarray(flags_.batch_logits(judge, x_adv))
        fooled = (np.argmax(logits, -1) != labels) & np.all(np.isfinite(logits), -1)
        delta = (x_adv - x).reshape(len(x), -1).astype(np.float64)
        norm = {
            "linf": np.max(np.abs(delta), axis=1, initial=0.0),
            "l2": np.sqrt(np.sum(delta * delta, axis=1)),
            "l1": np.sum(np.abs(delta), axis=1),
        }[self.norm]
        low, high = judge.bounds
        in_box = np.all((x_adv >= low) & (x_adv <= high), axis=tuple(range(1, x_adv.ndim)))
        return fooled & in_box & (norm <= self.eps * (1 + 1e-5) + 1e-6)


def _check_victim(victim) -> bool:
    """Whether ``victim`` is randomized; refuses anything that is not a victim."""
    if isinstance(victim, RandomizedVictim):
        return True
    if not isinstance(victim, Victim):
        raise ValueError(
            "`victim` must be a jaxadv.models.Victim or RandomizedVictim; got "
            f"{type(victim).__name__}."
        )
    return False


def _bucket(count: int, total: int) -> int:
    """The padded batch size for ``count`` points: the next power of two, at most ``total``."""
    return min(1 << max(count - 1, 0).bit_length(), total)


def _attack_points(attack, victim, hp, images, labels, todo, key) -> tuple[np.ndarray, int]:
    """Runs ``attack`` on the points ``todo`` (padded with copies of the first to a bucket size);
    returns their ``x_adv`` and the queries spent on the real points."""
    size = _bucket(todo.size, len(images))
    padded = np.concatenate([todo, np.full(size - todo.size, todo[0])])
    result = attack.batch(victim, hp, images[padded], labels[padded], key)
    x_adv = np.asarray(result.x_adv)[: todo.size]
    return x_adv, int(np.sum(np.asarray(result.queries)[: todo.size]))


def autoattack(
    victim, images, labels, key, *, norm: str = "linf", eps: float = 8 / 255, **options
) -> AutoAttackReport:
    """Runs :class:`AutoAttack` (``options`` are its other attributes: ``version``, ``attacks``,
    ``steps``, ``queries``, ...) and returns its report.

    Args:
      victim: the classifier to evaluate (a :class:`~jaxadv.models.RandomizedVictim` is
        evaluated on one fixed draw; ``version="rand"`` averages over its draws).
      images: ``[n, ...]`` inputs inside the victim's bounds.
      labels: ``[n]`` integer class indices.
      key: a JAX PRNG key seeding every attack.
      norm: the threat model, ``"linf"`` (default), ``"l2"`` or ``"l1"``.
      eps: the budget's radius (default 8/255, the ℓ∞ CIFAR-10 budget).
      **options: the other attributes of :class:`AutoAttack` (their defaults there).

    Returns:
      An :class:`AutoAttackReport`: per point, robustness and the first adversarial example found;
      per attack, the robust accuracy after it, its queries and time; the diagnostics' flags.
    """
    return AutoAttack(norm=norm, eps=eps, **options)(victim, images, labels, key)
