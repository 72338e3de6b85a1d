"""The declarative grid of a sweep and its flattening into N entries.

A :class:`Grid` names one attack (any :class:`~jaxadv.attacks.AttackBase`), a Cartesian product
of hyper-parameter values, the images with their labels, the targets of each image, and a number
of restarts. It is flattened into N entries in this order (the last axis varies fastest)::

    hyper-parameter setting  ×  image  ×  target (of that image)  ×  restart

The settings themselves are the product of the swept fields taken in ``params_type._fields``
order (the last field fastest), whatever order the mapping was given in.

Each entry's PRNG key is a function of its coordinates alone:
``fold_in(fold_in(base_key, image), restart)``. Every hyper-parameter setting and every target of
an image sees the same key (common random numbers: grid points differ by their numbers, not by
their noise), and no key depends on how the entries are chunked or laid out on devices.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxadv import _checks
from jaxadv.attacks import AttackBase


class Entries(NamedTuple):
    """The flattened grid on the host: one row per entry, all ``(N,)`` except ``keys``.

    Attributes:
      setting: index into the grid's hyper-parameter settings.
      image: index into the grid's images.
      label: the image's true class.
      target: the class to reach (targeted) or the label (untargeted).
      restart: restart index.
      keys: raw PRNG key data of each entry, ``uint32[N, k]``.
    """

    setting: np.ndarray
    image: np.ndarray
    label: np.ndarray
    target: np.ndarray
    restart: np.ndarray
    keys: np.ndarray


def _check_attack(attack: Any) -> None:
    if not isinstance(attack, AttackBase):
        raise ValueError(
            "`attack` must be a jaxadv attack (a `jaxadv.attacks.AttackBase`, e.g. "
            f"`jaxadv.attacks.pgd()`); got {type(attack).__name__}."
        )


def _axis(name: str, values: Any) -> np.ndarray:
    items = values if isinstance(values, (list, tuple)) else [values]
    for item in items:
        if isinstance(item, (str, bytes, bool, np.bool_)) or not isinstance(
            item, (int, float, np.number, np.ndarray, jax.Array)
        ):
            raise ValueError(
                f"`params[{name!r}]` must be a number or a 1-D sequence of numbers; got "
                f"{item!r} ({type(item).__name__}) in {values!r}."
            )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`params[{name!r}]` must be a number or a 1-D sequence of numbers; got {values!r} "
            f"({err})."
        ) from None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"`params[{name!r}]` must hold numbers; got {values!r}.")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(
            f"`params[{name!r}]` must be a number or a 1-D sequence of numbers; got shape "
            f"{arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"`params[{name!r}]` must hold at least one value; got an empty axis.")
    return arr.astype(np.float32)


def base_key(key: Any) -> jax.Array:
    """A typed PRNG key from an int seed or a key (typed or raw ``uint32`` data)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single PRNG key; got shape {key.shape}.")
        return key
    raise ValueError(f"`key` must be an int seed or a jax.random.key; got {type(key).__name__}.")


class Grid:
    """One attack's sweep: hyper-parameter product × images × targets × restarts.

    Args:
      attack: the attack (any jaxadv attack class).
      images: ``[n, *input_shape]`` clean examples.
      labels: ``[n]`` their true classes.
      params: swept fields of ``attack.params_type``, each a number or a 1-D sequence; fields not
        given keep the attack's defaults (``attack.hparams`` fills them, so a relative step size
        follows each swept ``eps``).
      targets: untargeted attacks: None. Targeted attacks: ``"all"`` (default: every class but
        the label), one sequence of classes used for every image (the image's own label is
        skipped), or one sequence of classes per image.
      restarts: independent runs per (setting, image, target), each with its own key; more
        than one is refused when the attack does not use its key (``run_grid`` checks it on the
        victim: the runs would be identical).
      key: int seed or PRNG key of the sweep.
      name: the attack's name in tables (default ``attack.name``).
    """

    def __init__(
        self,
        attack: Any,
        images: Any,
        labels: Any,
        *,
        params: Mapping[str, Any] | None = None,
        targets: Any = None,
        restarts: int = 1,
        key: Any = 0,
        name: str | None = None,
    ):
        _check_attack(attack)
        self.attack = attack
        fields = tuple(attack.params_type._fields)
        params = dict(params or {})
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ValueError(
                f"`params` has unknown field(s) {unknown} for {attack.params_type.__name__}; "
                f"expected some of {list(fields)}."
            )
        self.axes = {f: _axis(f, params[f]) for f in fields if f in params}
        images = np.asarray(images, np.float32)
        labels = np.asarray(labels)
        if images.ndim < 2 or images.shape[0] == 0:
            raise ValueError(
                f"`images` must be a non-empty batch [n, *input_shape]; got shape {images.shape}."
            )
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`labels` must be {images.shape[0]} integers (one per image); got "
                f"{labels.dtype} of shape {labels.shape}."
            )
        self.images, self.labels = images, labels.astype(np.int32)
        _checks.check_positive_int("restarts", restarts)
        if restarts > 1 and getattr(attack, "random_start", None) is False:
            raise ValueError(
                f"`restarts={restarts}` repeats identical runs: the attack "
                f"{getattr(attack, 'name', type(attack).__name__)!r} has no random start "
                "(random_start=False). Build the attack with random_start=True, or use restarts=1."
            )
        self.restarts = int(restarts)
        self.key = base_key(key)
        self.name = str(name or getattr(attack, "name", type(attack).__name__))
        if not attack.targeted and targets is not None:
            raise ValueError(
                f"`targets` must be None for the untargeted attack {self.name!r}; got {targets!r}."
            )
        self.targets = "all" if attack.targeted and targets is None else targets
        # One validated hparams per setting, stacked: leaves of shape (H,).
        settings = [
            dict(zip(self.axes, values)) for values in itertools.product(*self.axes.values())
        ]
        hps = [attack.hparams(**{k: float(v) for k, v in s.items()}) for s in settings]
        self.hparams = attack.params_type(
            *(np.stack([np.asarray(getattr(hp, f), np.float32) for hp in hps]) for f in fields)
        )

    @property
    def num_settings(self) -> int:
        return int(np.shape(self.hparams[0])[0])

    def targets_of(self, num_classes: int) -> list[np.ndarray]:
        """The targets of each image (untargeted: its label)."""
        n = len(self.labels)
        if self.targets is None:
            return [self.labels[i : i + 1] for i in range(n)]
        if isinstance(self.targets, str):
            if self.targets != "all":
                raise ValueError(
                    f"`targets` must be 'all', None or class lists; got {self.targets!r}."
                )
            classes = np.arange(num_classes, dtype=np.int32)
            return [classes[classes != y] for y in self.labels]
        given = list(self.targets)
        if given and all(isinstance(t, (int, np.integer)) for t in given):
            lists = [np.asarray(given, np.int32)] * n
            lists = [t[t != y] for t, y in zip(lists, self.labels)]
        elif len(given) == n:
            lists = [np.asarray(t, np.int32).reshape(-1) for t in given]
            for i, (t, y) in enumerate(zip(lists, self.labels)):
                if np.any(t == y):
                    raise ValueError(
                        f"`targets[{i}]` must not contain image {i}'s label {int(y)}; got "
                        f"{t.tolist()}."
                    )
        else:
            raise ValueError(
                "`targets` must be 'all', one sequence of classes, or one sequence per image "
                f"({n}); got {len(given)} entries."
            )
        for i, t in enumerate(lists):
            if t.size == 0:
                raise ValueError(f"`targets` leaves image {i} with no target (an empty axis).")
            if np.any((t < 0) | (t >= num_classes)):
                raise ValueError(
                    f"`targets` must be classes in [0, {num_classes}); image {i} has {t.tolist()}."
                )
        return lists

    def entries(self, num_classes: int) -> Entries:
        """Flattens the grid (order: setting, image, target, restart; the last fastest)."""
        targets = self.targets_of(num_classes)
        image = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(targets)])
        target = np.concatenate(targets).astype(np.int32)
        h, r, pairs = self.num_settings, self.restarts, len(image)
        setting = np.repeat(np.arange(h, dtype=np.int32), pairs * r)
        image = np.tile(np.repeat(image, r), h)
        target = np.tile(np.repeat(target, r), h)
        restart = np.tile(np.arange(r, dtype=np.int32), h * pairs)
        key_table = entry_keys(self.key, len(self.labels), self.restarts)
        keys = key_table[image, restart]
        return Entries(setting, image, self.labels[image], target, restart, keys)


def check_restarts_differ(grid: Grid, victim, entries: Entries) -> None:
    """Refuses ``restarts > 1`` when the attack's result does not depend on its key on this
    victim (identical runs, silently). The attack (``attack.run`` of the first entry) is traced
    once, without compiling, and its unused inputs are pruned: this covers every family, whether
    its randomness is a ``random_start`` field, a default that resolves to no random start, or
    none at all."""
    if grid.restarts == 1:
        return
    attack = grid.attack
    hp = jax.tree.map(lambda leaf: leaf[0], grid.hparams)
    x0, label, target = grid.images[entries.image[0]], entries.label[0], entries.target[0]

    def run(key_data):
        key = jax.random.wrap_key_data(key_data)
        return attack.run(victim, hp, x0, label, target, key)

    traced = jax.make_jaxpr(run)(entries.keys[0]).jaxpr
    try:
        from jax.interpreters import partial_eval

        _, used = partial_eval.dce_jaxpr(traced, [True] * len(traced.outvars))
    except (ImportError, AttributeError, NotImplementedError):  # cannot tell: let it run
        return
    if not used[0]:
        raise ValueError(
            f"`restarts={grid.restarts}` would repeat identical runs: the attack {grid.name!r} "
            "does not use its random key on this victim (no random start or other randomness). "
            "Use restarts=1, or an attack that draws from its key (e.g. random_start=True where "
            "the family has it)."
        )


def entry_keys(key: jax.Array, num_images: int, restarts: int) -> np.ndarray:
    """Raw key data ``[num_images, restarts, k]``: ``fold_in(fold_in(key, image), restart)``."""
    images = np.arange(num_images, dtype=np.uint32)
    return np.asarray(_entry_keys(key, images, np.arange(restarts, dtype=np.uint32)))


@jax.jit
def _entry_keys(key, images, restarts):
    fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    both = jax.vmap(fold, in_axes=(0, None))(fold(key, images), restarts)
    return jax.random.key_data(both)
