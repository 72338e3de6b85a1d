"""Tests of jaxadv.data on tiny files fabricated in the real on-disk formats.

Nothing is downloaded: MNIST (IDX) and CIFAR-10 (python pickles, binary records) files of a few
images are written into ``tmp_path`` byte by byte, so each test knows every pixel it should read
back. The digits data set is the copy shipped inside scikit-learn.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_digits

from jaxadv.data import Dataset, load_cifar10, load_digits, load_mnist, read_idx

# --------------------------------------------------------------------------------------------
# Fabricators
# --------------------------------------------------------------------------------------------

_IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
              np.float64: 0x0E}  # fmt: skip


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Writes ``array`` as an IDX file: 0, 0, type code, ndim, big-endian uint32 dims, BE data."""
    header = bytes([0, 0, _IDX_CODES[array.dtype.type], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_mnist(directory: Path, compress: bool = False, dotted: bool = False, seed: int = 0):
    """Writes the four MNIST files (5 train, 3 test images of 4 rows × 3 columns)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 9, 3, 3, 7], np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 4, 3), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([1, 2, 9], np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        name = name.replace("-idx", ".idx") if dotted else name
        write_idx(directory / (name + (".gz" if compress else "")), array, compress)
    return arrays


def cifar_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """``uint8[n, 3, 32, 32]`` channel-first images whose R, G and B planes all differ."""
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    planes[:, 0, 1, 2] = 255  # a marker at row 1, column 2 of the red plane only
    planes[:, 1, 1, 2] = 0
    planes[:, 2, 1, 2] = 0
    planes[:, 0, 2, 1] = 0  # and not at the transposed position
    return planes


def make_cifar(root: Path, layout: str, per_batch: int = 2, n_test: int = 3, seed: int = 0,
               protocol: int = 2, meta: bool = True) -> dict:  # fmt: skip
    """Writes an official-layout CIFAR-10 folder under ``root``; returns what was written."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-py" if layout == "python" else "cifar-10-batches-bin")
    folder.mkdir(parents=True, exist_ok=True)
    written = {"train": [], "test": []}
    names = [(f"data_batch_{i}", "train", per_batch) for i in range(1, 6)]
    for name, split, n in names + [("test_batch", "test", n_test)]:
        planes = cifar_images(n, rng)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        data = planes.reshape(n, 3072)  # R plane, G plane, B plane, each row-major
        if layout == "python":
            batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                     b"data": data, b"filenames": [b"img%d.png" % i for i in range(n)]}  # fmt: skip
            with open(folder / name, "wb") as f:
                pickle.dump(batch, f, protocol=protocol)
        else:
            records = np.concatenate([labels[:, None], data], axis=1)  # 1 + 3072 bytes each
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        written[split].append((planes, labels))
    class_names = [f"class{i}" for i in range(10)]
    if meta and layout == "python":
        with open(folder / "batches.meta", "wb") as f:
            meta_dict = {
                b"label_names": [n.encode() for n in class_names],
                b"num_vis": 3072,
                b"num_cases_per_batch": per_batch,
            }
            pickle.dump(meta_dict, f, protocol=2)
    elif meta:
        (folder / "batches.meta.txt").write_text("\n".join(class_names) + "\n\n")
    return {
        "folder": folder,
        "class_names": tuple(class_names),
        **{
            split: (np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts]))
            for split, parts in written.items()
        },
    }


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


def _tiny_dataset(**overrides) -> Dataset:
    fields = dict(
        train_images=np.zeros((4, 2, 2, 1), np.float32),
        train_labels=np.array([0, 1, 2, 1], np.int32),
        test_images=np.ones((2, 2, 2, 1), np.float32),
        test_labels=np.array([2, 0], np.int32),
        num_classes=3,
        name="tiny",
    )
    fields.update(overrides)
    return Dataset(**fields)


def test_dataset_fields_and_short_repr():
    ds = _tiny_dataset()
    assert ds.image_shape == (2, 2, 1)
    assert repr(ds) == "Dataset(name='tiny', train=4, test=2, image_shape=(2, 2, 1), num_classes=3)"
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"train_images": np.zeros((4, 2, 2), np.float32)}, "train_images.*shape \\[n, h, w, c\\]"),
        ({"test_images": np.ones((2, 2, 2, 1), np.float64)}, "test_images.*float32.*float64"),
        ({"train_labels": np.array([0, 1, 2, 1], np.int64)}, "train_labels.*int32.*int64"),
        ({"test_labels": np.array([0], np.int32)}, "same length.*2 images and 1 labels"),
        ({"test_images": np.full((2, 2, 2, 1), 2.0, np.float32)}, "pixel bounds \\[0.0, 1.0\\]"),
        ({"train_labels": np.array([0, 1, 3, 1], np.int32)}, "train_labels.*\\[0, 2\\]"),
        ({"test_images": np.ones((2, 3, 2, 1), np.float32)}, "share the example shape"),
        ({"num_classes": 0}, "num_classes"),
        ({"class_names": ("a", "b")}, "3 names; got 2"),
    ],
)
def test_dataset_rejects_bad_fields(overrides, match):
    with pytest.raises(ValueError, match=match):
        _tiny_dataset(**overrides)


# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits28() -> Dataset:
    return load_digits(28)


def test_digits_shapes_dtypes_range(digits28):
    ds = digits28
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.class_names == tuple("0123456789")
    assert ds.train_images.shape[1:] == ds.test_images.shape[1:] == (28, 28, 1)
    assert len(ds.train_images) + len(ds.test_images) == 1797
    assert ds.train_images.dtype == ds.test_images.dtype == np.float32
    assert ds.train_labels.dtype == ds.test_labels.dtype == np.int32
    for x in (ds.train_images, ds.test_images):
        assert x.min() == 0.0 and x.max() == 1.0  # 0 and 16 both occur in the source


def test_digits_split_is_stratified_and_deterministic(digits28):
    again = load_digits(28)
    np.testing.assert_array_equal(again.train_images, digits28.train_images)
    np.testing.assert_array_equal(again.test_labels, digits28.test_labels)
    counts = np.bincount(sklearn_digits().target, minlength=10)
    np.testing.assert_array_equal(
        np.bincount(digits28.test_labels, minlength=10), np.round(0.2 * counts)
    )
    other = load_digits(28, seed=1)
    assert not np.array_equal(other.test_images, digits28.test_images)
    np.testing.assert_array_equal(np.bincount(other.test_labels), np.bincount(digits28.test_labels))
    half = load_digits(8, test_fraction=0.5)
    assert abs(len(half.test_labels) - 1797 / 2) <= 10


def test_digits_size8_is_sklearn_data_over_16():
    ds = load_digits(8)
    bunch = sklearn_digits()
    ours = np.concatenate([ds.train_images, ds.test_images]).reshape(-1, 64)
    ours = np.concatenate([ours, np.concatenate([ds.train_labels, ds.test_labels])[:, None]], 1)
    theirs = np.concatenate([bunch.data / 16.0, bunch.target[:, None]], 1)
    # The same multiset of (image, label) rows: the split only partitions the source.
    rows_ours, n_ours = np.unique(ours, axis=0, return_counts=True)
    rows_theirs, n_theirs = np.unique(theirs, axis=0, return_counts=True)
    np.testing.assert_array_equal(rows_ours, rows_theirs)
    np.testing.assert_array_equal(n_ours, n_theirs)


@pytest.mark.parametrize("size", [13, 28])
def test_digits_upsampling_is_bilinear(size):
    small, big = load_digits(8), load_digits(size)  # same seed: the same split
    np.testing.assert_array_equal(small.train_labels, big.train_labels)
    ref = jax.image.resize(small.test_images, (len(small.test_images), size, size, 1), "bilinear")
    np.testing.assert_allclose(big.test_images, np.asarray(ref), atol=2e-6)


def test_digits_upsampled_images_still_classify(digits28):
    # Nearest class mean on raw pixels: ~90% on digits; chance is 10%.
    x_train = digits28.train_images.reshape(len(digits28.train_images), -1)
    x_test = digits28.test_images.reshape(len(digits28.test_images), -1)
    centroids = np.stack([x_train[digits28.train_labels == c].mean(0) for c in range(10)])
    dist = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = (dist.argmin(1) == digits28.test_labels).mean()
    assert accuracy > 0.8, accuracy


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 7}, "`size` must be an integer >= 8; got 7"),
        ({"size": 28.0}, "`size` must be an integer"),
        ({"size": True}, "`size` must be an integer"),
        ({"test_fraction": 0.0}, "`test_fraction` must be a number in \\(0, 1\\); got 0.0"),
        ({"test_fraction": 1}, "`test_fraction`"),
        ({"test_fraction": "0.2"}, "`test_fraction`"),
        ({"seed": 0.5}, "`seed` must be an integer"),
    ],
)
def test_digits_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits(**kwargs)


# --------------------------------------------------------------------------------------------
# IDX / MNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-128, -1, 0, 127], np.int8),
        np.array([[-300, 2], [1000, -32768]], np.int16),
        np.array([-(2**31), 7, 2**31 - 1], np.int32),
        np.array([[1.5, -0.25, np.pi]], np.float32),
        np.array([1e300, -2.5], np.float64),
    ],
    ids=lambda a: str(getattr(a, "dtype", a)),
)
def test_read_idx_round_trip(tmp_path, array, compress):
    path = write_idx(tmp_path / "a.idx", array, compress)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # writable, not a view of a read-only buffer


@pytest.mark.parametrize("compress, dotted", [(False, False), (True, False), (False, True)])
def test_load_mnist_round_trip(tmp_path, compress, dotted):
    written = make_mnist(tmp_path, compress=compress, dotted=dotted)
    ds = load_mnist(tmp_path)
    assert ds.name == "mnist" and ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert ds.train_images.shape == (5, 4, 3, 1) and ds.test_images.shape == (3, 4, 3, 1)
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int32
    np.testing.assert_array_equal(ds.train_images[..., 0] * 255, written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_images[..., 0] * 255, written["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train_labels, [0, 9, 3, 3, 7])
    np.testing.assert_array_equal(ds.test_labels, [1, 2, 9])
    # Row-major: pixel [i, j] is byte 16 + 3 * i + j of the image file (4 rows x 3 columns).
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes() if not (compress or dotted) else None
    if raw is not None:
        assert ds.train_images[0, 2, 1, 0] * 255 == raw[16 + 3 * 2 + 1]


def test_load_mnist_fashion_names_and_subset(tmp_path):
    make_mnist(tmp_path)
    ds = load_mnist(tmp_path, name="fashion_mnist", max_per_split=2)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert len(ds.train_images) == 2 and len(ds.test_labels) == 2
    np.testing.assert_array_equal(ds.train_labels, [0, 9])


def test_mnist_missing_file_lists_names(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        ValueError,
        match="missing MNIST file.*looked for t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz, "
        "t10k-labels.idx1-ubyte",
    ):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_mnist(tmp_path / "nowhere")


def test_mnist_wrong_magic_names_file_expected_and_found(tmp_path):
    make_mnist(tmp_path)
    # A labels file where the images should be.
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(
        ValueError,
        match="train-images-idx3-ubyte.*expected IDX magic number 0x00000803.*found 0x00000801",
    ):
        load_mnist(tmp_path)


def test_mnist_count_mismatch(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2], np.uint8))
    with pytest.raises(ValueError, match="3 images but t10k-labels-idx1-ubyte holds 2 labels"):
        load_mnist(tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 10, 3], np.uint8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*0..9; found values up to 10"):
        load_mnist(tmp_path)


def test_idx_truncated_data(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        ValueError, match="'.*x': IDX data truncated: shape \\(2, 4, 4\\).*needs 32 bytes.*found 27"
    ):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros(3, np.int16))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="longer than its header says.*needs 6 bytes.*found 7"):
        read_idx(path)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x00\x00", "truncated IDX file: expected a 4-byte magic number, found 2 bytes"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header: 3 dimensions need 16 bytes"),
        (b"PK\x03\x04rest", "not an IDX file: magic number 0x504B0304"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x00", "not an IDX file: magic number 0x00000701"),
        (b"\x00\x00\x08\x00", "not an IDX file"),
    ],
)
def test_idx_bad_headers(tmp_path, raw, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_idx_truncated_gzip_and_missing(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.arange(100, dtype=np.uint8), compress=True)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="x.gz'.*corrupt or truncated gzip"):
        read_idx(path)
    with pytest.raises(ValueError, match="IDX file '.*nothing' does not exist"):
        read_idx(tmp_path / "nothing")


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def _check_cifar(ds: Dataset, written: dict, max_per_split: int | None = None) -> None:
    assert ds.name == "cifar10" and ds.num_classes == 10
    for split in ("train", "test"):
        planes, labels = (a[:max_per_split] for a in written[split])
        images = getattr(ds, f"{split}_images")
        assert images.dtype == np.float32 and images.shape == (len(planes), 32, 32, 3)
        np.testing.assert_array_equal(getattr(ds, f"{split}_labels"), labels)
        # pixel [k, i, j, c] of the result is pixel [i, j] of plane c of image k
        for k, i, j, c in [(0, 0, 0, 0), (0, 0, 0, 2), (len(planes) - 1, 31, 5, 1), (0, 7, 30, 2)]:
            assert images[k, i, j, c] == np.float32(planes[k, c, i, j]) / np.float32(255)
        np.testing.assert_array_equal(images * 255, planes.transpose(0, 2, 3, 1).astype(np.float32))
        assert np.all(images[:, 1, 2] == [1.0, 0.0, 0.0])  # the red-only marker, not transposed
        assert np.all(images[:, 2, 1, 0] == 0.0)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_python_round_trip(tmp_path, protocol):
    written = make_cifar(tmp_path, "python", protocol=protocol)
    for directory in (tmp_path, written["folder"]):  # the parent or the folder itself
        ds = load_cifar10(directory)
        _check_cifar(ds, written)
        assert ds.class_names == written["class_names"]


def test_cifar_binary_round_trip(tmp_path):
    written = make_cifar(tmp_path, "binary")
    for directory in (tmp_path, written["folder"]):
        ds = load_cifar10(directory)
        _check_cifar(ds, written)
        assert ds.class_names == written["class_names"]  # blank trailing lines ignored


def test_cifar_layout_choice_and_subset(tmp_path):
    binary = make_cifar(tmp_path, "binary", seed=1)
    python = make_cifar(tmp_path, "python", seed=2, meta=False)
    _check_cifar(load_cifar10(tmp_path), binary)  # auto prefers the pickle-free layout
    ds = load_cifar10(tmp_path, layout="python")
    _check_cifar(ds, python)
    assert ds.class_names[0] == "airplane"  # standard names when the metadata file is absent
    _check_cifar(load_cifar10(tmp_path, max_per_split=3), binary, max_per_split=3)
    _check_cifar(load_cifar10(tmp_path, layout="python", max_per_split=10), python)
    with pytest.raises(ValueError, match="`layout` must be one of 'auto', 'binary', 'python'"):
        load_cifar10(tmp_path, layout="bin")
    with pytest.raises(ValueError, match="`max_per_split` must be an integer >= 1"):
        load_cifar10(tmp_path, max_per_split=0)


def test_cifar_max_per_split_skips_unneeded_batches(tmp_path):
    written = make_cifar(tmp_path, "binary")
    (written["folder"] / "data_batch_3.bin").write_bytes(b"corrupt")  # never read
    ds = load_cifar10(tmp_path, max_per_split=4)
    assert len(ds.train_images) == 4


def test_cifar_missing_files(tmp_path):
    with pytest.raises(ValueError, match="no CIFAR-10 files found.*looked for .*test_batch.bin"):
        load_cifar10(tmp_path)
    written = make_cifar(tmp_path, "binary")
    (written["folder"] / "data_batch_4.bin").unlink()
    (written["folder"] / "test_batch.bin").unlink()
    with pytest.raises(
        ValueError, match="incomplete CIFAR-10 binary layout.*missing data_batch_4.bin, test_batch"
    ):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="no CIFAR-10 files found.*layout='python'"):
        load_cifar10(tmp_path, layout="python")
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_cifar10(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "size, match",
    [
        (3073 * 2 - 1, "whole number of 3073-byte records.*found 6145 bytes, 3072 past"),
        (3073 + 100, "found 3173 bytes, 100 past the last whole record"),
        (0, "found an empty file"),
    ],
)
def test_cifar_binary_bad_record_length(tmp_path, size, match):
    written = make_cifar(tmp_path, "binary")
    (written["folder"] / "data_batch_2.bin").write_bytes(bytes(size))
    with pytest.raises(ValueError, match="data_batch_2.bin'.*" + match):
        load_cifar10(tmp_path)


def test_cifar_binary_label_out_of_range(tmp_path):
    written = make_cifar(tmp_path, "binary")
    record = bytes([10]) + bytes(3072)
    (written["folder"] / "test_batch.bin").write_bytes(record)
    with pytest.raises(ValueError, match="test_batch.bin'.*0..9; found values in \\[10, 10\\]"):
        load_cifar10(tmp_path)


def _replace_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a pickle at all", "not a readable CIFAR-10 pickle"),
        (None, "not a readable CIFAR-10 pickle.*EOFError"),  # empty file
        ([1, 2, 3], "expected a pickled dict; found list"),
        ({b"labels": [0]}, "lacks the key b'data'"),
        ({b"data": np.zeros((1, 3072), np.uint8)}, "lacks the key b'labels'"),
        ({b"data": np.zeros((1, 3071), np.uint8), b"labels": [0]}, "shape \\[n, 3072\\].*3071"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "uint8.*found float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one int per image \\(2\\)"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [11]}, "0..9; found.*\\[11, 11\\]"),
    ],
)
def test_cifar_malformed_pickles(tmp_path, content, match):
    written = make_cifar(tmp_path, "python")
    path = written["folder"] / "data_batch_5"
    if isinstance(content, bytes) or content is None:
        path.write_bytes(content or b"")
    else:
        _replace_pickle(path, content)
    with pytest.raises(ValueError, match="data_batch_5'.*" + match):
        load_cifar10(tmp_path)


class _Exploit:
    """Unpickling this would create a folder: a stand-in for arbitrary code."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path):
    written = make_cifar(tmp_path, "python")
    target = tmp_path / "pwned"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Exploit(str(target))}
    _replace_pickle(written["folder"] / "test_batch", batch)
    with pytest.raises(ValueError, match="test_batch'.*refusing to load global .*mkdir"):
        load_cifar10(tmp_path)
    assert not target.exists()


def test_cifar_bad_metadata(tmp_path):
    written = make_cifar(tmp_path, "binary")
    (written["folder"] / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="batches.meta.txt'.*expected 10 class names; found 2"):
        load_cifar10(tmp_path)
    written = make_cifar(tmp_path / "py", "python")
    _replace_pickle(written["folder"] / "batches.meta", {b"label_names": [1, 2]})
    with pytest.raises(ValueError, match="batches.meta'.*label_names' must be a list of strings"):
        load_cifar10(tmp_path / "py")
