"""Sweep configurations: a Python file with ``get_config(arg)``, as big_vision's configs.

``python -m jaxadv sweep path/to/config.py:smoke`` imports the file and calls
``get_config("smoke")`` (``get_config(None)`` without ``:arg``). It returns a :class:`SweepConfig`
or a dict of its fields::

    def get_config(arg=None):
        return dict(
            victims={"cw": "cw"},                  # table name -> default classifier or callable
            data=dict(num_images=128),             # the embedded digits' test split, or a callable
            grids=[                                # one entry per attack structure
                dict(attack=jaxadv.attacks.pgd(steps=20), params={"eps": [0.1, 0.2, 0.3]}),
            ],
            chunk_size=64,
            figure=dict(x="eps", hue="attack"),
        )

A victim is the name of a default digits classifier (``"cw"``, ``"c4"``, ``"resnet"``: trained
once and cached by :func:`jaxadv.training.default_victim`) or a callable returning a ``Victim``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

DEFAULT_VICTIMS = ("cw", "c4", "resnet")


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """One attack structure and its grid (see :class:`jaxadv.sweeps.Grid` for the fields).

    Attributes:
      attack: the attack (an instance of an attack family).
      params: swept fields of ``attack.params_type``: a number or a 1-D sequence each.
      targets: None (untargeted), ``"all"`` or per-image target classes.
      restarts: runs per (image, target) from different random starts.
      name: the ``attack`` column of the table (default: the attack's name).
    """

    attack: Any
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    targets: Any = None
    restarts: int = 1
    name: str | None = None

    def __post_init__(self):
        _check_count("restarts", self.restarts)
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"The grid's `name` must be a str or None; got {self.name!r}.")
        if not isinstance(self.params, Mapping):
            raise ValueError(
                f"The grid's `params` must be a dict of field -> values; got {self.params!r}."
            )


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: every victim × every grid.

    Attributes:
      victims: table name -> ``"cw"``/``"c4"``/``"resnet"`` (a default digits classifier) or a
        callable returning a ``Victim``.
      grids: :class:`GridSpec` s (or dicts of their fields).
      data: ``dict(num_images=N, split="test")`` of the embedded digits, or a callable returning
        ``(images, labels)``.
      seed: the sweep's base PRNG seed.
      chunk_size: entries per compiled call (rounded up to the device layout).
      micro_batch: entries a device runs side by side; it fixes the numbers.
      victim_epochs: training epochs of default victims (None: their defaults).
      figure: keyword arguments of ``plot_robust_accuracy`` (``x``, ``hue``), or None.
      name: the sweep's name (default: the config file's stem).
    """

    victims: Mapping[str, Any]
    grids: Sequence[Any]
    data: Any = dataclasses.field(default_factory=lambda: {"num_images": 64})
    seed: int = 0
    chunk_size: int = 64
    micro_batch: int = 8
    victim_epochs: int | None = None
    figure: Mapping[str, Any] | None = None
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.victims, Mapping) or not self.victims:
            raise ValueError(
                "`victims` must be a non-empty dict of name -> 'cw'/'c4'/'resnet' or a callable "
                f"returning a Victim; got {self.victims!r}."
            )
        for name, victim in self.victims.items():
            if not (callable(victim) or victim in DEFAULT_VICTIMS):
                raise ValueError(
                    f"`victims[{name!r}]` must be one of {DEFAULT_VICTIMS} or a callable returning "
                    f"a Victim; got {victim!r}."
                )
        if isinstance(self.grids, (str, Mapping)) or not self.grids:
            raise ValueError(
                f"`grids` must be a non-empty list of grid specs; got {self.grids!r}."
            )
        grids = tuple(
            g if isinstance(g, GridSpec) else _spec(g, i) for i, g in enumerate(self.grids)
        )
        object.__setattr__(self, "grids", grids)
        for field in ("chunk_size", "micro_batch"):
            _check_count(field, getattr(self, field))
        if self.victim_epochs is not None:
            _check_count("victim_epochs", self.victim_epochs)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(
                f"The sweep config's `seed` must be an int; got {self.seed!r} "
                f"({type(self.seed).__name__})."
            )
        if self.figure is not None and not isinstance(self.figure, Mapping):
            raise ValueError(
                f"The sweep config's `figure` must be a dict of plot options or None; got "
                f"{self.figure!r}."
            )
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"`name` must be a str or None; got {self.name!r}.")
        if not (callable(self.data) or isinstance(self.data, Mapping)):
            raise ValueError(
                "`data` must be dict(num_images=..., split=...) or a callable returning (images, "
                f"labels); got {self.data!r}."
            )


def _check_count(name: str, value: Any) -> None:
    """A config's count must be an int >= 1 (a string such as ``"8"`` is refused, not read)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"The sweep config's `{name}` must be an integer >= 1; got {value!r} "
            f"({type(value).__name__})."
        )


def _spec(value: Any, index: int) -> GridSpec:
    if not isinstance(value, Mapping):
        raise ValueError(f"`grids[{index}]` must be a GridSpec or a dict; got {value!r}.")
    fields = {f.name for f in dataclasses.fields(GridSpec)}
    unknown = sorted(set(value) - fields)
    if unknown or "attack" not in value:
        raise ValueError(
            f"`grids[{index}]` must have an 'attack' and only the keys {sorted(fields)}; got "
            f"{sorted(value)}."
        )
    return GridSpec(**value)


def as_config(value: Any, default_name: str | None = None) -> SweepConfig:
    """A :class:`SweepConfig` from one or from a dict of its fields."""
    if isinstance(value, SweepConfig):
        config = value
    elif isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(SweepConfig)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(
                f"The sweep config has unknown key(s) {unknown}; expected some of {sorted(fields)}."
            )
        config = SweepConfig(**value)
    else:
        raise ValueError(
            f"`get_config` must return a SweepConfig or a dict; got {type(value).__name__}."
        )
    if config.name is None and default_name:
        config = dataclasses.replace(config, name=default_name)
    return config


def split_spec(spec: str) -> tuple[Path, str | None]:
    """``"path.py:arg"`` -> ``(path, "arg")``; ``"path.py"`` -> ``(path, None)``."""
    path, arg = spec, None
    match = re.fullmatch(r"(.+\.py):(.*)", spec)
    if match and not Path(spec).is_file():
        path, arg = match.group(1), match.group(2) or None
    return Path(path), arg


def load_config(spec: str) -> SweepConfig:
    """Imports ``CONFIG[:arg]`` and returns ``get_config(arg)`` as a :class:`SweepConfig`.

    Args:
      spec: ``PATH.py`` or ``PATH.py:ARG``; the file defines ``get_config(arg)``.

    Returns:
      The :class:`SweepConfig`.

    Raises:
      ValueError: the file is missing, not a ``.py`` file, or its config is malformed.
    """
    path, arg = split_spec(spec)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise ValueError(
            f"`CONFIG` must be a Python file (optionally ':arg'); got {spec!r} ({what})."
        )
    if path.suffix != ".py":
        raise ValueError(
            f"`CONFIG` must be a Python file ending in .py that defines get_config(arg); got "
            f"{str(path)!r}."
        )
    module_spec = importlib.util.spec_from_file_location(f"_jaxadv_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses defined in a config look themselves up
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ValueError(
            f"The config file {str(path)!r} is not valid Python: {err.msg} (line {err.lineno})."
        ) from None
    get_config: Callable | None = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"The config file {str(path)!r} must define get_config(arg).")
    name = path.stem + (f"-{arg}" if arg else "")
    return as_config(get_config(arg), default_name=name)


def load_data(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of a config's ``data``."""
    if callable(data):
        images, labels = data()
        return np.asarray(images, np.float32), np.asarray(labels, np.int32)
    options = dict(data)
    unknown = sorted(set(options) - {"num_images", "split", "seed"})
    if unknown:
        raise ValueError(
            f"`data` has unknown key(s) {unknown}; expected num_images, split, seed."
        )
    split = options.get("split", "test")
    if split not in ("train", "test"):
        raise ValueError(f"`data['split']` must be 'train' or 'test'; got {split!r}.")
    from jaxadv.data import load_digits

    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`data['seed']` must be an int; got {seed!r} ({type(seed).__name__}).")
    digits = load_digits(size=28, seed=int(seed))
    images = getattr(digits, f"{split}_images")
    labels = getattr(digits, f"{split}_labels")
    n = options.get("num_images", len(labels))
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(labels):
        raise ValueError(
            f"`data['num_images']` must be an integer in [1, {len(labels)}]; got {n!r}."
        )
    return np.asarray(images[:n], np.float32), np.asarray(labels[:n], np.int32)


def load_victim(spec: Any, *, cache_dir: Any = None, epochs: int | None = None):
    """The victim of a config entry: a default classifier's name, or a callable's result."""
    if callable(spec):
        return spec()
    from jaxadv.training import default_victim

    victim, _ = default_victim(spec, cache_dir=cache_dir, epochs=epochs, progress=False)
    return victim
