"""Reading a ``torch.save`` file into numpy arrays without torch (and without running its pickle).

RobustBench and torchvision checkpoints are ``.pt`` files written by ``torch.save``: a pickle whose
tensors point at raw storages by key. Two layouts exist:

* the zip layout (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one member ``<archive>/data/<key>``
  of raw little-endian bytes per storage;
* the legacy layout (older checkpoints, still common in RobustBench's zoo): five pickles in a row
  (magic number, protocol, system info, the object, the list of storage keys), then each
  storage's bytes after an 8-byte element count, in that list's order.

The pickle is read by an unpickler that resolves only the handful of globals a tensor needs
(``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, the ``*Storage`` types,
``collections.OrderedDict``); any other global (an ``argparse.Namespace`` of training arguments, a
numpy scalar) becomes an inert placeholder, so nothing from the file is ever executed.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# ``torch.<Name>Storage`` → element dtype (bfloat16 is read as its 16 bits and widened below).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Storage:
    """A storage's bytes, read lazily (legacy files give them after the pickle)."""

    def __init__(self, storage_type: _StorageType, key: str):
        self.type, self.key, self.array = storage_type, key, None


class _Placeholder:
    """Stands for any global the reader does not resolve: accepts construction and state."""

    def __init__(self, *args: Any, **kwargs: Any):
        del args, kwargs

    def __setstate__(self, state: Any) -> None:
        del state


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def numpy(self) -> np.ndarray:
        flat = self.storage.array
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], tuple(self.size), tuple(s * itemsize for s in self.stride)
        )
        out = np.array(view)
        if self.storage.type.name == "BFloat16Storage":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage, offset, size, stride, *args):
    del args  # requires_grad, backward hooks, metadata
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *args):
    del args
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file, encoding="latin1")
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        return type(name, (_Placeholder,), {})

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            return None  # legacy files also save module source ("module", ...): not needed
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"storage {key} has an unsupported element type {storage_type!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key)
        return self.storages[key]


def _tensors_to_numpy(obj: Any) -> Any:
    if isinstance(obj, _Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _tensors_to_numpy(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_numpy(v) for v in obj)
    return obj


def _read_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"holds {len(pickles)} data.pkl members; expected one")
        root = pickles[0][: -len("data.pkl")]
        order = root + "byteorder"
        if order in names and archive.read(order).strip() != b"little":
            raise ValueError("was written big-endian; only little-endian files are read")
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{root}data/{key}")
            storage.array = np.frombuffer(raw, _STORAGE_DTYPES[storage.type.name])
    return obj


def _read_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:  # an int: safe to read with plain pickle
            raise ValueError("is neither a zip archive nor a legacy torch.save file")
        header = _Unpickler(f, {})
        header.load()  # protocol version
        header.load()  # system info: {"little_endian": ..., "type_sizes": ...}
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(f, storages).load()
        keys = _Unpickler(f, {}).load()
        for key in keys:
            storage = storages[str(key)]
            dtype = np.dtype(_STORAGE_DTYPES[storage.type.name])
            count = int(np.frombuffer(f.read(8), np.int64)[0])
            storage.array = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    return obj


def read_torch_file(path: str) -> Any:
    """The object a ``torch.save`` file holds, with every tensor as a numpy array.

    Raises:
      ValueError: naming ``path`` when it is not a readable ``torch.save`` file.
    """
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
        return _tensors_to_numpy(obj)
    except Exception as err:  # a damaged pickle can raise almost anything
        raise ValueError(
            f"`state_dict` path {path!r} is not a readable torch.save file "
            f"({type(err).__name__}: {err})."
        ) from None
