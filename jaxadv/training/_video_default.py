"""The default video victims: small video classifiers trained on the moving digits, cached.

Like :func:`jaxadv.training.default_victim`: the first call trains with
:func:`train_classifier` (which takes batches of videos) and saves the variables with orbax under
the cache directory, in a folder whose name fingerprints everything that determines the weights;
later calls restore them.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxadv import _checks
from jaxadv.models import VIDEO_CLASSIFIER_NAMES, Victim, video_classifier
from jaxadv.training._default import cached_victim
from jaxadv.training._keys import check_key

_DATASET = "moving-digits-8x32"
_FRAMES, _SIZE = 8, (32, 32)

# Adam with cosine decay, no augmentation. Measured on the shared 2-core CPU (test accuracy, 8
# classes): r21d 91.3% after 254 s of training, two_stream 96.9% after 183 s.
_SETTINGS = {
    "r21d": {"epochs": 8, "batch_size": 16, "learning_rate": 3e-3},
    "two_stream": {"epochs": 6, "batch_size": 16, "learning_rate": 3e-3},
}


class VideoSplits(NamedTuple):
    """Train and test videos in the field names :func:`cached_victim` reads.

    Attributes:
      train_images: the training clips, ``[n, frames, h, w, channels]``.
      train_labels: their ``[n]`` integer labels.
      test_images: the test clips, same layout.
      test_labels: their labels.
      num_classes: the number of classes.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def moving_digits_splits() -> VideoSplits:
    """The default moving-digits splits (4000 train, 800 test clips of 8×32×32×1).

    Returns:
      :class:`VideoSplits` from :func:`jaxadv.data.load_moving_digits` (8 frames of 32×32).
    """
    from jaxadv.data import load_moving_digits  # lazily: only needed to build a victim

    train = load_moving_digits("train", frames=_FRAMES, size=_SIZE)
    test = load_moving_digits("test", frames=_FRAMES, size=_SIZE)
    return VideoSplits(train.videos, train.labels, test.videos, test.labels, train.num_classes)


def default_video_victim(
    name: str = "r21d",
    *,
    cache_dir: str | os.PathLike | None = None,
    key: jax.Array | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> tuple[Victim, dict[str, Any]]:
    """A trained video classifier of the moving digits (``input_shape=(8, 32, 32, 1)``).

    Args:
      name: ``"r21d"`` (:class:`jaxadv.models.R2Plus1DNet`, Tran et al. 2018) or
        ``"two_stream"`` (:class:`jaxadv.models.TwoStreamNet`, after Simonyan & Zisserman 2014).
      cache_dir: where trained variables are kept; default
        :func:`jaxadv.models.default_cache_dir`.
      key: PRNG key of the training run; default ``jax.random.key(0)``.
      epochs: training epochs; default per architecture.
      progress: print training progress to stderr (nothing is printed on a restore).

    Returns:
      ``(victim, info)`` as :func:`jaxadv.training.default_victim` documents, with ``dataset``
      ``"moving-digits-8x32"`` and ``test_accuracy`` on the 800 test clips (8 classes, chance
      12.5%; measured 91.3% for ``"r21d"``, 96.9% for ``"two_stream"``, where a 2-D net given
      only the first frame reaches 22.0%: it learns the digit group, not the direction).
    """
    _checks.check_choice("name", name, VIDEO_CLASSIFIER_NAMES)
    if epochs is not None:
        _checks.check_positive_int("epochs", epochs)
    key = jax.random.key(0) if key is None else key
    check_key(key)
    settings = dict(_SETTINGS[name])
    if epochs is not None:
        settings["epochs"] = int(epochs)
    data = moving_digits_splits()
    module = video_classifier(name, data.num_classes)
    return cached_victim(name, module, settings, data, _DATASET, key, cache_dir, progress)
