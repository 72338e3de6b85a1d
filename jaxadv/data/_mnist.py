"""Readers for the IDX file format and the MNIST / Fashion-MNIST data sets stored in it."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from jaxadv import _checks
from jaxadv.data._dataset import Dataset

# IDX type codes (third byte of the magic number) and the big-endian numpy type they denote.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dims: [n, rows, cols]
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dim: [n]
_GZIP_SIGNATURE = b"\x1f\x8b"

_FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CLASS_NAMES = {"mnist": tuple(str(d) for d in range(10)), "fashion_mnist": _FASHION_NAMES}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the format of MNIST, Fashion-MNIST, EMNIST, KMNIST) into an array.

    Layout, all integers big-endian:

    * bytes 0-1: zero;
    * byte 2: element type: ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
      ``0x0D`` float32, ``0x0E`` float64;
    * byte 3: number of dimensions ``d``;
    * ``d`` unsigned 32-bit sizes, outermost first;
    * the elements in C (row-major) order, big-endian, exactly ``prod(sizes)`` of them.

    So bytes 0-3 read as one big-endian integer are the "magic number", e.g. ``0x00000803`` for
    MNIST images ``[n, 28, 28]`` and ``0x00000801`` for labels ``[n]``. A gzip-compressed file
    (``.gz``, recognised by its content, not its name) is decompressed in memory.

    Args:
      path: the file.

    Returns:
      A writable array of the file's shape, in the native byte order of its element type.

    Raises:
      ValueError: if the file is missing, not IDX (bad magic number), truncated, longer than its
        header says, or a corrupt gzip stream. The message names the file, what was expected and
        what was found.
    """
    return _read_idx(Path(path))[1]


def load_mnist(
    directory: str | os.PathLike, *, name: str = "mnist", max_per_split: int | None = None
) -> Dataset:
    """Loads MNIST (or Fashion-MNIST, or any data set in the same four files) from IDX files.

    ``directory`` must hold the four files of the official distribution, each optionally
    gzip-compressed (``.gz`` suffix); the dotted spelling ``train-images.idx3-ubyte`` of some
    mirrors is accepted too:

    * ``train-images-idx3-ubyte``: magic ``0x00000803``, uint8 ``[n_train, rows, cols]``;
    * ``train-labels-idx1-ubyte``: magic ``0x00000801``, uint8 ``[n_train]``, values 0..9;
    * ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``: the test split, same layout.

    See ``read_idx`` for the byte layout. Pixels (0 = background for MNIST) are divided by 255.

    Args:
      directory: folder holding the four files.
      name: the returned ``Dataset.name``; ``"mnist"`` and ``"fashion_mnist"`` also set the
        class names.
      max_per_split: if given, keep only the first this-many images of each split.

    Returns:
      A ``Dataset`` with ``float32[n, rows, cols, 1]`` images in ``[0, 1]``, ``int32`` labels and
      ``num_classes=10``.

    Raises:
      ValueError: for a missing directory or file (listing the names looked for), a file that is
        not the expected IDX type, truncated data, image and label counts that disagree, or labels
        outside 0..9.
    """
    if max_per_split is not None:
        _checks.check_positive_int("max_per_split", max_per_split)
    if not isinstance(name, str):
        raise ValueError(f"`name` must be a str; got {type(name).__name__}.")
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"MNIST directory {str(directory)!r} does not exist or is not a folder.")

    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
        images = _read_expecting(images_path, _IMAGES_MAGIC, "images [n, rows, cols]")
        labels = _read_expecting(labels_path, _LABELS_MAGIC, "labels [n]")
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
                f"{len(labels)} labels; the two files of a split must have the same count "
                f"(in {str(directory)!r})."
            )
        if labels.size and labels.max() > 9:
            raise ValueError(
                f"{str(labels_path)!r}: labels must be class indices 0..9; found values up to "
                f"{labels.max()}."
            )
        if max_per_split is not None:
            images, labels = images[:max_per_split], labels[:max_per_split]
        # One float32 allocation; identical values to images.astype(float32) / 255.
        images = np.divide(images, np.float32(255), dtype=np.float32)[..., None]
        splits[split] = (images, labels.astype(np.int32))

    return Dataset(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        num_classes=10,
        name=name,
        class_names=_CLASS_NAMES.get(name, ()),
    )


def _find(directory: Path, base: str) -> Path:
    """The first existing file among the accepted spellings of ``base``."""
    dotted = base.replace("-idx", ".idx")
    candidates = [base, base + ".gz", dotted, dotted + ".gz"]
    for candidate in candidates:
        if (directory / candidate).is_file():
            return directory / candidate
    raise ValueError(
        f"missing MNIST file in {str(directory)!r}: looked for {', '.join(candidates)}. The "
        "folder must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz)."
    )


def _read_expecting(path: Path, magic: int, what: str) -> np.ndarray:
    found, array = _read_idx(path)
    if found != magic:
        raise ValueError(
            f"{str(path)!r}: expected IDX magic number 0x{magic:08X} ({what}, unsigned bytes); "
            f"found 0x{found:08X} ({_describe_magic(found)})."
        )
    return array


def _read_idx(path: Path) -> tuple[int, np.ndarray]:
    """``(magic number, array)`` of one IDX file; see ``read_idx``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"IDX file {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise ValueError(f"IDX path {str(path)!r} is a folder, not a file.") from None
    if raw[:2] == _GZIP_SIGNATURE:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{str(path)!r}: corrupt or truncated gzip stream ({err}).") from None

    if len(raw) < 4:
        raise ValueError(
            f"{str(path)!r}: truncated IDX file: expected a 4-byte magic number, found "
            f"{len(raw)} bytes."
        )
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{str(path)!r}: not an IDX file: magic number 0x{magic:08X}; expected 0x0000TTDD "
            "with type TT in 08/09/0B/0C/0D/0E and DD >= 1 dimensions (e.g. 0x00000803 for "
            "MNIST images, 0x00000801 for labels)."
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{str(path)!r}: truncated IDX header: {ndim} dimensions need {header_len} bytes, "
            f"found {len(raw)}."
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_len
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise ValueError(
            f"{str(path)!r}: IDX data {problem}: shape {shape} of {dtype.name} needs {expected} "
            f"bytes after the {header_len}-byte header, found {found}."
        )
    array = np.frombuffer(raw, dtype, offset=header_len).reshape(shape)
    return magic, array.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def _describe_magic(magic: int) -> str:
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = _IDX_TYPES[type_code].name if type_code in _IDX_TYPES else "unknown type"
    return f"{kind}, {ndim} dims"
