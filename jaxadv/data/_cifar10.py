"""Reader for CIFAR-10 in either of its official layouts (python pickles or binary records)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from jaxadv import _checks
from jaxadv.data._dataset import Dataset

_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE  # 3072 bytes per image: R plane, G plane, B plane, each row-major
_RECORD = 1 + _PIXELS  # binary layout: one label byte, then the pixels
_NUM_CLASSES = 10
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_LAYOUTS = {
    # layout: (folder name, file suffix, metadata file)
    "python": ("cifar-10-batches-py", "", "batches.meta"),
    "binary": ("cifar-10-batches-bin", ".bin", "batches.meta.txt"),
}
_DEFAULT_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# The only globals an official pickle needs: numpy arrays (older and newer numpy module paths).
# `_codecs.encode` is how Python 3 writes bytes at pickle protocols <= 2 (a re-pickled copy).
_SAFE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # numpy arrays at pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"),
}


def load_cifar10(
    directory: str | os.PathLike,
    *,
    layout: str = "auto",
    max_per_split: int | None = None,
) -> Dataset:
    """Loads CIFAR-10 from the files of either official distribution.

    Both layouts hold five training batches and one test batch of (officially) 10000 images each.
    An image is 3072 bytes: the 1024 red pixels, then green, then blue, each plane row-major
    32×32 (channel-first). They are returned channel-last, ``image[i, j, c]``, divided by 255.

    * python layout, folder ``cifar-10-batches-py``: files ``data_batch_1`` .. ``data_batch_5``
      and ``test_batch``, each a pickled dict with ``b"data"``: ``uint8[n, 3072]`` and
      ``b"labels"``: ``n`` ints in 0..9; ``batches.meta``, a pickled dict with
      ``b"label_names"``: ten byte strings.
    * binary layout, folder ``cifar-10-batches-bin``: files ``data_batch_1.bin`` ..
      ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3073-byte records: one label
      byte (0..9), then the 3072 pixel bytes; ``batches.meta.txt``, one class name per line.

    The metadata file is optional (the standard class names are used without it).

    Security: unpickling can run arbitrary code, so only load trusted files such as the official
    ones. As a second line of defence the python layout is read with an unpickler that refuses
    every global except numpy's array reconstruction, which is all the official files contain;
    and when both layouts are present ``layout="auto"`` prefers the binary one, which needs no
    pickle at all.

    Args:
      directory: the ``cifar-10-batches-py`` / ``cifar-10-batches-bin`` folder itself, or its
        parent (e.g. the folder the official archive was extracted into).
      layout: ``"auto"`` (binary if found, else python), ``"binary"`` or ``"python"``.
      max_per_split: if given, keep only the first this-many images of each split (batches past
        the ones needed are not read).

    Returns:
      A ``Dataset`` named ``"cifar10"`` with ``float32[n, 32, 32, 3]`` images in ``[0, 1]``,
      ``int32`` labels, ``num_classes=10`` and the class names.

    Raises:
      ValueError: for a missing folder or batch file (listing what was looked for), a binary file
        whose size is not a positive multiple of 3073 bytes, a malformed pickle (unreadable, not a
        dict, missing keys, wrong array shape, or holding anything but numpy arrays), label values
        outside 0..9, or metadata that does not name ten classes.
    """
    _checks.check_choice("layout", layout, ("auto", "binary", "python"))
    if max_per_split is not None:
        _checks.check_positive_int("max_per_split", max_per_split)
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(
            f"CIFAR-10 directory {str(directory)!r} does not exist or is not a folder."
        )

    layout, folder = _locate(directory, layout)
    _, suffix, meta_name = _LAYOUTS[layout]
    read = _read_binary_batch if layout == "binary" else _read_pickle_batch
    missing = [n + suffix for n in (*_TRAIN, _TEST) if not (folder / (n + suffix)).is_file()]
    if missing:
        raise ValueError(
            f"incomplete CIFAR-10 {layout} layout in {str(folder)!r}: missing "
            f"{', '.join(missing)}. Expected data_batch_1{suffix} .. data_batch_5{suffix} and "
            f"{_TEST}{suffix}."
        )

    splits = []
    for names in (_TRAIN, (_TEST,)):
        pixels, labels, have = [], [], 0
        for batch in names:
            if max_per_split is not None and have >= max_per_split:
                break  # enough images; skip reading the rest
            x, y = read(folder / (batch + suffix))
            pixels.append(x)
            labels.append(y)
            have += len(y)
        x = np.concatenate(pixels)[:max_per_split]
        y = np.concatenate(labels)[:max_per_split]
        # [n, 3072] channel-first planes -> [n, 32, 32, 3] channel-last, then one float cast.
        x = x.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
        splits.append((np.divide(x, np.float32(255), dtype=np.float32), y.astype(np.int32)))

    meta = folder / meta_name
    class_names = _read_meta(meta, layout) if meta.is_file() else _DEFAULT_NAMES
    (train_x, train_y), (test_x, test_y) = splits
    return Dataset(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=_NUM_CLASSES,
        name="cifar10",
        class_names=class_names,
    )


def _locate(directory: Path, layout: str) -> tuple[str, Path]:
    """``(layout, folder holding the batches)``; ``directory`` may be that folder or its parent."""
    wanted = ("binary", "python") if layout == "auto" else (layout,)
    looked = []
    for name in wanted:
        subfolder, suffix, _ = _LAYOUTS[name]
        for folder in (directory, directory / subfolder):
            marker = folder / (_TEST + suffix)
            looked.append(str(marker))
            if marker.is_file() or (folder / (_TRAIN[0] + suffix)).is_file():
                return name, folder
    raise ValueError(
        f"no CIFAR-10 files found in {str(directory)!r} (layout={layout!r}); looked for "
        f"{', '.join(looked)} and the matching data_batch_1 files. Pass the "
        "cifar-10-batches-bin or cifar-10-batches-py folder, or the folder that holds it."
    )


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        found = (
            "an empty file"
            if raw.size == 0
            else f"{raw.size} bytes, {raw.size % _RECORD} past the last whole record (truncated "
            "or not a CIFAR-10 batch)"
        )
        raise ValueError(
            f"{str(path)!r}: a CIFAR-10 binary batch must be a whole number of {_RECORD}-byte "
            f"records (1 label byte + {_PIXELS} pixel bytes); found {found}."
        )
    records = raw.reshape(-1, _RECORD)
    return records[:, 1:], _check_labels(path, records[:, 0])


def _read_pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data, labels = _get(batch, "data", path), _get(batch, "labels", path)
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise ValueError(
            f"{str(path)!r}: b'data' must be a uint8 array of shape [n, {_PIXELS}]; found "
            f"{data.dtype} of shape {data.shape}."
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{str(path)!r}: b'labels' must be a list of ints.") from None
    if labels.shape != (len(data),):
        raise ValueError(
            f"{str(path)!r}: b'labels' must hold one int per image ({len(data)}); found shape "
            f"{labels.shape}."
        )
    return data, _check_labels(path, labels)


def _read_meta(path: Path, layout: str) -> tuple[str, ...]:
    if layout == "binary":
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError:
            raise ValueError(
                f"{str(path)!r}: expected UTF-8 text, one class name per line."
            ) from None
        names = [n for n in names if n]  # the official file ends with blank lines
    else:
        raw = _get(_unpickle(path), "label_names", path)
        if not isinstance(raw, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in raw):
            raise ValueError(f"{str(path)!r}: b'label_names' must be a list of strings.")
        names = [n.decode("utf-8") if isinstance(n, bytes) else n for n in raw]
    if len(names) != _NUM_CLASSES:
        raise ValueError(f"{str(path)!r}: expected {_NUM_CLASSES} class names; found {len(names)}.")
    return tuple(names)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}; official CIFAR-10 pickles hold only "
                "dicts, lists, bytes and numpy arrays"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise ValueError(
            f"{str(path)!r}: not a readable CIFAR-10 pickle ({type(err).__name__}: {err})."
        ) from None


def _get(batch: Any, key: str, path: Path) -> Any:
    if not isinstance(batch, dict):
        raise ValueError(f"{str(path)!r}: expected a pickled dict; found {type(batch).__name__}.")
    # Official files (pickled by Python 2) have bytes keys; accept str keys from re-pickled copies.
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(
        f"{str(path)!r}: pickled dict lacks the key b{key!r}; found keys "
        f"{sorted(map(repr, batch))}."
    )


def _check_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise ValueError(
            f"{str(path)!r}: labels must be class indices 0..{_NUM_CLASSES - 1}; found values in "
            f"[{labels.min()}, {labels.max()}]."
        )
    return labels
