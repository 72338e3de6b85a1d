"""Surrogate tasks of the shipped data sets and the cached, meta-trained default meta attacker.

The surrogates are small classifiers of the zoo and ReLU MLPs, trained on the data set (each
cached like a default victim, ``cached_victim``); the tasks are their gradients at training images
(``collect_gradients``). :func:`default_meta_attacker` meta-trains a
:class:`~jaxadv.models.MetaAttacker` on surrogates that EXCLUDE the default digits victim
(``default_victim("cw")``: neither its weights nor its architecture), so an attack on that victim
meets a model the meta attacker never saw, and caches the variables under the cache directory in
a folder whose name carries a fingerprint of everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxadv import _checks
from jaxadv.models import (
    CLASSIFIER_NAMES,
    MetaAttacker,
    ReluMLP,
    Victim,
    cache_lock,
    classifier,
    default_cache_dir,
    describe_module,
    restore_step_meta,
    restore_step_tree,
    save_step,
    tree_differences,
    step_item_metadata,
)
from jaxadv.training._default import cached_victim
from jaxadv.training._meta_data import GradientTask, collect_gradients
from jaxadv.training._meta_train import meta_train, predict_gradients

META_DATASETS = ("digits", "scenes")
SURROGATE_NAMES = ("mlp", "mlp-deep", *CLASSIFIER_NAMES)
DEFAULT_SURROGATES = ("c4", "resnet", "mlp", "mlp-deep")  # not "cw": the default victim's
_RECIPE_VERSION = 2  # 2: MetaAttacker applies ReLU before the norm (metaattack cb98531)
_REMEDY = "Delete that folder: the default meta attacker is trained again."


def meta_dataset(name: str):
    """The data set ``name`` with ``train_images``, ``train_labels``, ``test_images``,
    ``test_labels``, ``num_classes`` (digits 28×28×1, or segment scenes 32×32×3 with 6 classes).

    Args:
      name: ``"digits"`` or ``"scenes"`` (``META_DATASETS``).

    Returns:
      An object with those attributes: the digits as :func:`jaxadv.data.load_digits` gives them
      (``size=28``), or a namespace of 1200 training and 300 test segment scenes.
    """
    _checks.check_choice("dataset", name, META_DATASETS)
    if name == "digits":
        from jaxadv.data import load_digits

        return load_digits(size=28)
    from jaxadv.data import load_segment_scenes

    train, test = load_segment_scenes("train", 1200), load_segment_scenes("test", 300)
    return types.SimpleNamespace(
        train_images=train.images, train_labels=train.labels, test_images=test.images,
        test_labels=test.labels, num_classes=len(train.class_names),
    )  # fmt: skip


def surrogate(name: str, dataset: str, *, key: jax.Array, epochs: int = 3,
              cache_dir: str | os.PathLike | None = None, progress: bool = False):
    """The surrogate classifier ``name`` trained on ``dataset`` (cached): ``(victim, info)``.

    Args:
      name: one of ``SURROGATE_NAMES``: ``"mlp"`` (one hidden layer of 128), ``"mlp-deep"``
        (two of 64) or a classifier of the zoo.
      dataset: ``"digits"`` or ``"scenes"`` (:func:`meta_dataset`).
      key: PRNG key of the training run.
      epochs: training epochs (batches of 64, learning rate 1e-3).
      cache_dir: where trained variables are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      progress: print training progress to stderr.

    Returns:
      ``(victim, info)`` as :func:`jaxadv.training.default_victim` documents.
    """
    _checks.check_choice("surrogate", name, SURROGATE_NAMES)
    _checks.check_positive_int("epochs", epochs)
    data = meta_dataset(dataset)
    k = data.num_classes
    module = {"mlp": lambda: ReluMLP(hidden=(128,), num_classes=k),
              "mlp-deep": lambda: ReluMLP(hidden=(64, 64), num_classes=k)}.get(
        name, lambda: classifier(name, k))()  # fmt: skip
    settings = {"epochs": int(epochs), "batch_size": 64, "learning_rate": 1e-3, "shift": 0}
    return cached_victim(f"surrogate-{name}", module, settings, data, dataset, key, cache_dir,
                         progress)  # fmt: skip


def surrogate_tasks(dataset: str, names=DEFAULT_SURROGATES, *, key: jax.Array, images: int = 512,
                    epochs: int = 3, estimator: str = "white-box",
                    cache_dir: str | os.PathLike | None = None,
                    progress: bool = False) -> list[GradientTask]:  # fmt: skip
    """One task per surrogate: its gradients at the first ``images`` training images.

    Args:
      dataset: ``"digits"`` or ``"scenes"`` (:func:`meta_dataset`).
      names: the surrogates (:func:`surrogate`'s names), a non-empty list; default
        ``DEFAULT_SURROGATES`` (without the default victim's ``"cw"``).
      key: PRNG key of the surrogates' training.
      images: how many training images (from the first) the gradients are taken at.
      epochs: the surrogates' training epochs.
      estimator: ``"white-box"`` or ``"zoo"`` (:func:`collect_gradients`).
      cache_dir: where the surrogates are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      progress: print training progress to stderr.

    Returns:
      A list of :class:`GradientTask`, one per name, in order (standardised gradients).
    """
    _checks.check_positive_int("images", images)
    if isinstance(names, str) or not names:
        raise ValueError(f"`names` must be a non-empty list of surrogate names; got {names!r}.")
    data = meta_dataset(dataset)
    x, y = data.train_images[:images], data.train_labels[:images]
    tasks = []
    for name in names:
        victim, _ = surrogate(name, dataset, key=key, epochs=epochs, cache_dir=cache_dir,
                              progress=progress)  # fmt: skip
        tasks.append(collect_gradients(victim, x, y, name=name, estimator=estimator))
    return tasks


def held_out_cosine(module, variables, victim: Victim, images, labels, *, key: jax.Array):
    """Mean cosine between the meta attacker's outputs and ``victim``'s white-box gradients at
    ``images``, next to that of a randomly initialised meta attacker: ``(trained, random)``.

    Args:
      module: the meta attacker's flax module.
      variables: its trained variables.
      victim: the held-out classifier whose white-box (standardised) gradients are the truth.
      images: ``[n, *victim.input_shape]`` images.
      labels: ``[n]`` their labels (the margin loss's classes).
      key: PRNG key of the random initialisation.

    Returns:
      ``(trained, random)``: two floats, the mean :func:`jaxadv.metrics.gradient_cosine` over
      the images for ``variables`` and for a fresh ``module.init``.
    """
    from jaxadv.metrics import gradient_cosine

    truth = collect_gradients(victim, images, labels, name="held-out").gradients
    random = module.init(key, np.asarray(images[0], np.float32))
    scores = [gradient_cosine(predict_gradients(module, v, np.asarray(images, np.float32)), truth)
              for v in (variables, random)]  # fmt: skip
    return float(np.mean(scores[0])), float(np.mean(scores[1]))


def _manager(path: Path) -> ocp.CheckpointManager:
    handlers = {"variables": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(create=True),
                                 item_handlers=handlers)  # fmt: skip


def save_meta_attacker(path: str | os.PathLike, variables: Any, record: dict) -> Path:
    """Writes meta-attacker variables (and a JSON ``record``) as a one-step orbax checkpoint.

    Args:
      path: the directory to create (``~`` expanded); ``ValueError`` if it exists.
      variables: the meta attacker's variables.
      record: a JSON-serialisable dict stored next to them (settings, losses).

    Returns:
      The absolute, resolved :class:`~pathlib.Path` written.
    """
    path = Path(path).expanduser().resolve()
    if path.exists():
        raise ValueError(f"`path` {str(path)!r} already exists; choose another or delete it.")
    with _manager(path) as manager:
        save_step(manager, 0, "variables", variables, dict(record))
        manager.wait_until_finished()
    return path


def restore_meta_attacker(path: str | os.PathLike, module, input_shape) -> tuple[Any, dict]:
    """``(variables, record)`` saved by :func:`save_meta_attacker`, checked against ``module``'s
    variables for images of ``input_shape`` and verified against their checksum.

    Args:
      path: the checkpoint's directory (``~`` expanded); ``ValueError`` if there is none.
      module: the meta attacker's flax module, whose variables' structure the checkpoint must
        match (``ValueError`` otherwise).
      input_shape: the shape of ONE image the module is initialised with.

    Returns:
      ``(variables, record)``: the variables as JAX arrays and the saved JSON record.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"`path` {str(path)!r} holds no meta attacker (no such directory).")
    abstract = jax.eval_shape(module.init, jax.random.key(0),
                              jax.ShapeDtypeStruct(tuple(input_shape), np.float32))  # fmt: skip
    with _manager(path) as manager:
        meta = restore_step_meta(manager, 0, _REMEDY)
        problems = tree_differences(step_item_metadata(manager, 0, "variables", _REMEDY), abstract)
        if problems:
            raise ValueError(f"The meta attacker at {str(path)!r} does not match "
                             f"{describe_module(module)}: " + "; ".join(problems))  # fmt: skip
        variables = restore_step_tree(manager, 0, "variables", abstract, meta, _REMEDY)
    return jax.tree.map(jax.numpy.asarray, variables), meta


def default_meta_attacker(dataset: str = "digits", *, steps: int = 200,
                          features: tuple[int, ...] = (8, 16, 32),
                          cache_dir: str | os.PathLike | None = None, progress: bool = True):
    """A :class:`~jaxadv.models.MetaAttacker` meta-trained (Reptile, the paper's settings) on
    the surrogates ``DEFAULT_SURROGATES`` of ``dataset``, cached under the cache directory.

    Args:
      dataset: ``"digits"`` or ``"scenes"`` (:func:`meta_dataset`).
      steps: meta-training steps (Reptile; 8 pairs per task and step, from 512 images per
        surrogate).
      features: the :class:`~jaxadv.models.MetaAttacker`'s channel widths.
      cache_dir: where the surrogates and the meta attacker are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      progress: print training progress to stderr.

    Returns:
      ``(module, variables, info)``; ``info`` has ``path``, ``restored``, ``train_seconds``,
      ``surrogates``, ``losses`` and ``settings``.
    """
    _checks.check_choice("dataset", dataset, META_DATASETS)
    _checks.check_positive_int("steps", steps)
    module = MetaAttacker(features=tuple(int(f) for f in features))
    key = jax.random.key(1)  # the surrogates' and meta-training's; the default victim's is 0
    settings = {"steps": int(steps), "images": 512, "surrogate_epochs": 3, "batch_size": 8,
                "method": "reptile", "surrogates": list(DEFAULT_SURROGATES)}  # fmt: skip
    header = {"recipe": _RECIPE_VERSION, "dataset": dataset, "module": describe_module(module),
              **settings}  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:12]
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser().resolve()
    path = root / f"meta-attacker-{dataset}-s{steps}-{fingerprint}"
    data = meta_dataset(dataset)
    shape = tuple(data.train_images.shape[1:])
    with cache_lock(path):
        variables, seconds, record = None, None, {}
        if path.exists():
            try:
                variables, record = restore_meta_attacker(path, module, shape)
            except ValueError as err:  # damaged or foreign: train afresh
                print(f"jaxadv: retraining, cannot restore {path}: {err}", file=sys.stderr)
                shutil.rmtree(path, ignore_errors=True)
        if variables is None:
            start = time.perf_counter()
            tasks = surrogate_tasks(dataset, key=key, images=settings["images"],
                                    epochs=settings["surrogate_epochs"], cache_dir=cache_dir,
                                    progress=progress)  # fmt: skip
            init = module.init(jax.random.fold_in(key, 1), data.train_images[0])
            run = meta_train(module, init, tasks, key=jax.random.fold_in(key, 2), steps=steps,
                             batch_size=settings["batch_size"], progress=progress)  # fmt: skip
            variables, seconds = run.variables, time.perf_counter() - start
            record = {"settings": settings, "losses": list(run.losses)}
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            save_meta_attacker(tmp, variables, record)
            try:
                os.rename(tmp, path)
            except OSError:  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
    info = {"path": str(path), "restored": seconds is None, "train_seconds": seconds,
            "surrogates": list(DEFAULT_SURROGATES), "losses": record.get("losses", []),
            "settings": settings}  # fmt: skip
    return module, variables, info
