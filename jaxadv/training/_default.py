"""The default victims: small classifiers trained on the embedded digits and cached on disk.

The first call trains (well under a minute on 2 CPU cores) and saves the variables with orbax under
the cache directory; later calls restore them. The cache folder's name carries a fingerprint of
everything that determines the weights (architecture, training settings, key, the data itself and
a recipe version), so changing any of them trains anew instead of restoring a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxadv import _checks
from jaxadv.models import (
    CLASSIFIER_NAMES,
    Victim,
    cache_lock,
    classifier,
    default_cache_dir,
    describe_module,
    from_flax,
    restore_variables,
    save_variables,
)
from jaxadv.training._classifier import accuracy, random_shift, train_classifier
from jaxadv.training._keys import check_key

# Bump when the training recipe changes in a way the settings below do not capture.
_RECIPE_VERSION = 2  # 2: the cache entry carries a checksum (older entries would warn)
_DATASET = "digits28"

# Per architecture: Adam with cosine decay, random shifts of up to ``shift`` pixels (0: none).
# Measured on the 2-core CPU (see ``default_victim``): >= 97% test accuracy in well under a minute.
_SETTINGS = {
    "cw": {"epochs": 8, "batch_size": 64, "learning_rate": 1e-3, "shift": 2},
    "c4": {"epochs": 8, "batch_size": 64, "learning_rate": 1e-3, "shift": 2},
    "resnet": {"epochs": 8, "batch_size": 64, "learning_rate": 2e-3, "shift": 0},
}


def _load_default_data():
    # Imported lazily: reading the embedded digits is only needed when a victim is built.
    from jaxadv.data import load_digits

    return load_digits(size=28)


def _key_bytes(key: jax.Array) -> bytes:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).tobytes()


# What training and scoring read of `data` (a Dataset, or VideoSplits of videos).
_SPLIT_FIELDS = ("train_images", "train_labels", "test_images", "test_labels", "num_classes")


def _fingerprint(name: str, module: Any, settings: dict, key: jax.Array, data: Any) -> str:
    digest = hashlib.sha256()
    header = {"recipe": _RECIPE_VERSION, "name": name, "module": describe_module(module)}
    digest.update(json.dumps({**header, **settings}, sort_keys=True).encode())
    digest.update(_key_bytes(key))
    for array in (data.train_images, data.train_labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


def _save_atomically(path: Path, variables: Any) -> None:
    """Saves next to ``path`` and renames, so concurrent callers never see half a checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    save_variables(tmp, variables)
    try:
        os.rename(tmp, path)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


def default_victim(
    name: str = "cw",
    *,
    cache_dir: str | os.PathLike | None = None,
    key: jax.Array | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> tuple[Victim, dict[str, Any]]:
    """A trained classifier victim for the embedded digits (28×28×1, pixels in [0, 1]).

    Args:
      name: ``"cw"`` (Carlini & Wagner 2017), ``"c4"`` (Zhang et al. 2020) or ``"resnet"`` (He et
        al. 2016); see :func:`jaxadv.models.classifier`.
      cache_dir: where trained variables are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      key: PRNG key of the training run; default ``jax.random.key(0)``.
      epochs: training epochs; default per architecture (8).
      progress: print training progress to stderr (nothing is printed on a restore).

    Returns:
      ``(victim, info)``: the victim, and a dict with ``name``, ``dataset``, ``path`` (the
      checkpoint), ``restored`` (bool), ``train_seconds`` (None when restored),
      ``test_accuracy`` and the training ``settings``.
    """
    _checks.check_choice("name", name, CLASSIFIER_NAMES)
    if epochs is not None:
        _checks.check_positive_int("epochs", epochs)
    module = classifier(name)
    key = jax.random.key(0) if key is None else key
    check_key(key)
    settings = dict(_SETTINGS[name])
    if epochs is not None:
        settings["epochs"] = int(epochs)
    data = _load_default_data()
    return cached_victim(name, module, settings, data, _DATASET, key, cache_dir, progress)


def cached_victim(
    name: str,
    module: Any,
    settings: dict,
    data: Any,
    dataset: str,
    key: jax.Array,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> tuple[Victim, dict[str, Any]]:
    """``module`` trained on ``data`` with ``settings``, restored from the cache when there.

    The cache entry's folder ``{name}-{dataset}-e{epochs}-{fingerprint}`` names everything that
    determines the weights; the victim's pixel box is [0, 1]. :func:`default_victim` is this
    function on the embedded digits; call it directly for another data set.

    Args:
      name: a short name of the model, the first part of the cache folder's name.
      module: the Flax classifier, as :func:`train_classifier` takes it.
      settings: :func:`train_classifier`'s keyword arguments (``epochs``, ``batch_size``,
        ``learning_rate``) and optionally ``shift``, the pixels of random-shift augmentation.
      data: a :class:`jaxadv.data.Dataset` (its train split trains, its test split scores), or
        another object with its split fields, e.g. :class:`VideoSplits` of videos.
      dataset: a short name of the data, part of the cache folder's name.
      key: PRNG key of the training run.
      cache_dir: where trained variables are kept; None: :func:`jaxadv.models.default_cache_dir`.
      progress: print training progress to stderr.

    Returns:
      ``(victim, info)`` as :func:`default_victim` documents.
    """
    from jaxadv.data import Dataset  # lazily, as in _load_default_data

    check_key(key)
    if not isinstance(settings, dict) or "epochs" not in settings:
        raise ValueError(
            f"`settings` must be a dict of train_classifier's arguments with 'epochs'; got "
            f"{settings!r}."
        )
    if not isinstance(data, Dataset) and not all(hasattr(data, f) for f in _SPLIT_FIELDS):
        raise ValueError(
            "`data` must be a jaxadv.data.Dataset or carry its split fields "
            f"{_SPLIT_FIELDS} (e.g. training.VideoSplits); got {type(data).__name__}."
        )
    input_shape = tuple(data.train_images.shape[1:])
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser().resolve()
    fingerprint = _fingerprint(name, module, settings, key, data)
    path = root / f"{name}-{dataset}-e{settings['epochs']}-{fingerprint}"

    with cache_lock(path):  # parallel callers: one trains, the others wait and restore
        variables, train_seconds = _restore_or_train(
            path, module, input_shape, settings, data, key, progress
        )
    restored = train_seconds is None

    victim = from_flax(
        module, variables, input_shape=input_shape, num_classes=data.num_classes, bounds=(0.0, 1.0)
    )
    info = {
        "name": name,
        "dataset": dataset,
        "path": str(path),
        "restored": restored,
        "train_seconds": train_seconds,
        "test_accuracy": accuracy(victim, data.test_images, data.test_labels),
        "settings": settings,
    }
    return victim, info


def _restore_or_train(path, module, input_shape, settings, data, key, progress):
    """The cached variables at ``path``, else trained and saved there; ``(variables, seconds)``
    with ``seconds`` None for a restore."""
    variables, train_seconds = None, None
    if path.exists():
        try:
            variables = restore_variables(path, module, input_shape)
        except ValueError as err:  # unreadable, corrupted or foreign: train afresh below
            warnings.warn(f"jaxadv: retraining, cannot restore {path}: {err}", stacklevel=3)
            shutil.rmtree(path, ignore_errors=True)
    if variables is None:
        start = time.perf_counter()
        options = dict(settings)
        shift = options.pop("shift", 0)
        variables = train_classifier(
            module,
            data.train_images,
            data.train_labels,
            key=key,
            progress=progress,
            augment=random_shift(shift) if shift else None,
            **options,
        )
        train_seconds = time.perf_counter() - start
        _save_atomically(path, variables)
    return variables, train_seconds
