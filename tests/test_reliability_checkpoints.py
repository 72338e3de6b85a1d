"""Nothing silent in checkpoints, sweeps and converters (issue 21): every corrupted or wrong input
is a named error that says which file and what to do, and nothing is written or lost.

Victim checkpoints (flipped bytes, truncated, emptied, a damaged checksum file, an older one
without a checksum), the default victim's corrupted cache, sweep checkpoints (meta, column
metadata, data files, an emptied step dir, a changed checksum), saliency-training checkpoints,
the sweep's argument checks (a string in a grid axis, restarts without random start, counts given
as strings, a directory that is a file, a missing table) and the converters' (an .npz that is not
a zip or holds object arrays, an image that is not an image, from_flax's num_classes).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv.attacks import bim, pgd
from jaxadv.data import Dataset
from jaxadv.data.saliency import load_salicon
from jaxadv.models import (
    CheckpointCorruptedError,
    CWNet,
    from_flax,
    from_torch_state_dict,
    restore_variables,
    save_variables,
)
from jaxadv.models._checkpoint import CHECKSUM_FILE, abstract_variables
from jaxadv.training import _default, default_victim
from jaxadv.sweeps import Grid, read_table, run_grid, run_sweep
from jaxadv.sweeps import _run as sweep_run
from jaxadv.sweeps._config import as_config, load_config

SHAPE = (28, 28, 1)


def _random_variables(module, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    abstract = abstract_variables(module, shape)
    return jax.tree.map(lambda s: np.asarray(rng.normal(size=s.shape), s.dtype), abstract)


def _files(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in path.rglob("*") if f.is_file()}


def _largest_file(path: Path) -> Path:
    return max((f for f in path.rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)


def _data_files(path: Path) -> list[Path]:
    """The OCDBT data files of an orbax checkpoint (``d/`` folders)."""
    return [f for f in path.rglob("*") if f.is_file() and f.parent.name == "d"]


# ------------------------------------------------------------------------------------------
# victim checkpoints


@pytest.fixture(scope="module")
def cw_variables():
    return _random_variables(CWNet())


@pytest.fixture
def saved(tmp_path, cw_variables):
    return save_variables(tmp_path / "ckpt", cw_variables)


def test_checksum_is_saved_and_a_clean_checkpoint_restores(saved, cw_variables):
    record = json.loads((saved / CHECKSUM_FILE).read_text())
    assert record["algorithm"] == "sha256" and "params/fc1/kernel" in record["leaves"]
    restored = restore_variables(saved, CWNet(), SHAPE)
    jax.tree.map(np.testing.assert_array_equal, restored, cw_variables)


# orbax's concurrent reads used to leave stray "Event loop is closed" callbacks (about one run in
# three); they surface as this warning: an error here.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_flipped_bytes_in_a_data_file_are_refused(saved):
    # 4 KiB of random bytes in the middle of the array data: orbax restores it without a word.
    data = _largest_file(saved)
    with open(data, "r+b") as f:
        f.seek(data.stat().st_size // 2)
        f.write(np.random.default_rng(1).bytes(4096))
    before = _files(saved)
    with pytest.raises(CheckpointCorruptedError) as info:
        restore_variables(saved, CWNet(), SHAPE)
    text = str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path == saved
    assert str(saved) in text and "Delete the directory" in text
    # Where the bytes land decides how it shows (orbax's file layout varies between runs): the
    # values restore but differ from their checksum, or the data no longer decodes at all.
    if "differ from their saved checksum" in text:
        assert "params/fc1/kernel" in text
    else:
        assert "orbax cannot read" in text
    assert _files(saved) == before  # nothing deleted or rewritten


def test_truncated_data_file_is_a_named_error_not_a_bare_exception(saved):
    data = _largest_file(saved)
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(CheckpointCorruptedError, match=r"orbax cannot read it .*Delete"):
        restore_variables(saved, CWNet(), SHAPE)


def test_emptied_checkpoint_directory_is_refused(saved):
    for entry in list(saved.iterdir()):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    with pytest.raises(CheckpointCorruptedError, match="metadata"):
        restore_variables(saved, CWNet(), SHAPE)


def test_damaged_checksum_file_is_refused(saved):
    (saved / CHECKSUM_FILE).write_text("{not json")
    with pytest.raises(CheckpointCorruptedError, match=CHECKSUM_FILE):
        restore_variables(saved, CWNet(), SHAPE)


def test_checkpoint_without_checksum_restores_with_a_warning(saved, cw_variables):
    (saved / CHECKSUM_FILE).unlink()  # as written before checksums existed
    with pytest.warns(UserWarning, match="no checksum .* without verification"):
        restored = restore_variables(saved, CWNet(), SHAPE)
    jax.tree.map(np.testing.assert_array_equal, restored, cw_variables)


def test_save_to_a_file_is_refused_and_the_file_kept(tmp_path, cw_variables):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(ValueError, match="is a file"):
        save_variables(target, cw_variables, overwrite=True)
    assert target.read_text() == "keep me"


class _TinyNet(nn.Module):
    num_classes: int = 2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def _tiny_digits():
    rng = np.random.default_rng(0)
    labels = (np.arange(16) % 2).astype(np.int32)
    images = rng.random((16,) + SHAPE).astype(np.float32)
    return Dataset(images, labels, images[:4], labels[:4], num_classes=2, name="fake")


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_default_victim_retrains_a_corrupted_cache_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(_default, "_load_default_data", _tiny_digits)
    monkeypatch.setattr(_default, "classifier", lambda name: _TinyNet())
    monkeypatch.setitem(
        _default._SETTINGS, "c4", {"epochs": 1, "batch_size": 8, "learning_rate": 1e-2}
    )
    first, info = default_victim("c4", cache_dir=tmp_path, progress=False)
    path = Path(info["path"])
    for data in _data_files(path):
        os.truncate(data, data.stat().st_size // 2)
    with pytest.warns(UserWarning, match=r"retraining, cannot restore .*corrupted"):
        again, info2 = default_victim("c4", cache_dir=tmp_path, progress=False)
    assert not info2["restored"] and info2["path"] == info["path"]
    jax.tree.map(np.testing.assert_array_equal, again.variables, first.variables)
    # the retrained cache entry is whole again: the next call restores it silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info3 = default_victim("c4", cache_dir=tmp_path, progress=False)
    assert info3["restored"]


# ------------------------------------------------------------------------------------------
# sweep checkpoints

OPTIONS = dict(chunk_size=2, micro_batch=2, progress=False)


@pytest.fixture(scope="module")
def sweep_setup(tmp_path_factory):
    victim = make_mlp_victim()
    images = np.asarray(jax.random.uniform(jax.random.key(42), (3,) + victim.input_shape))
    labels = np.asarray(jnp.argmax(victim.batch(images), axis=-1), np.int32)
    grid = Grid(pgd(steps=2), images, labels, params={"eps": [0.1, 0.2]})
    base = tmp_path_factory.mktemp("sweep") / "ckpt"
    whole = run_grid(victim, grid, checkpoint_dir=base, **OPTIONS)
    return victim, grid, base, whole


def _latest_step(directory: Path) -> Path:
    return max((p for p in directory.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def _garbage(relative):
    def corrupt(step: Path):
        f = step / relative
        f.write_bytes(np.random.default_rng(2).bytes(max(f.stat().st_size, 16)))

    return corrupt


def _truncate_data(step: Path):
    for f in _data_files(step / "columns"):
        os.truncate(f, f.stat().st_size // 2)


def _flip_data(step: Path):
    for f in _data_files(step / "columns"):
        with open(f, "r+b") as handle:
            handle.seek(f.stat().st_size // 3)
            handle.write(np.random.default_rng(3).bytes(f.stat().st_size // 3))


def _empty(step: Path):
    for entry in list(step.iterdir()):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _edit_meta(change):
    def corrupt(step: Path):
        f = step / "meta" / "metadata"
        meta = json.loads(f.read_text())
        change(meta)
        f.write_text(json.dumps(meta))

    return corrupt


def _changed_value(meta):
    # what flipped bytes inside an array's data (undetected by orbax) amount to
    leaf = meta["checksum"]["leaves"]["loss"]
    leaf["sha256"] = "0" * 64


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (_garbage("meta/metadata"), "orbax cannot read it"),
        (_edit_meta(lambda m: m.pop("fingerprint")), "no fingerprint"),
        (_edit_meta(lambda m: m.update(chunks_done="2")), "chunks_done"),
        (_garbage("columns/_METADATA"), "orbax cannot read it"),
        (_truncate_data, "orbax cannot read it"),
        (_flip_data, "orbax cannot read it"),
        (_edit_meta(_changed_value), r"1 of 9 arrays differ from their saved checksum: loss"),
        (_empty, "orbax cannot read it"),
    ],
    ids=[
        "meta-garbage",
        "meta-no-fingerprint",
        "meta-chunks-as-string",
        "column-metadata",
        "data-truncated",
        "data-flipped",
        "data-changed",
        "step-emptied",
    ],
)
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_corrupted_sweep_checkpoint_is_refused_naming_the_step_and_fresh(
    sweep_setup, tmp_path, corrupt, match
):
    victim, grid, base, _ = sweep_setup
    directory = tmp_path / "ckpt"
    shutil.copytree(base, directory)
    step = _latest_step(directory)
    corrupt(step)
    before = _files(directory)
    with pytest.raises(CheckpointCorruptedError, match=match) as info:
        run_grid(victim, grid, checkpoint_dir=directory, **OPTIONS)
    assert str(step) in str(info.value) and "--fresh" in str(info.value)
    assert _files(directory) == before  # nothing deleted or rewritten


def test_corrupted_sweep_checkpoint_then_fresh_recomputes_the_same_table(sweep_setup, tmp_path):
    victim, grid, base, whole = sweep_setup
    directory = tmp_path / "ckpt"
    shutil.copytree(base, directory)
    _truncate_data(_latest_step(directory))
    with pytest.raises(CheckpointCorruptedError):
        run_grid(victim, grid, checkpoint_dir=directory, **OPTIONS)
    fresh = run_grid(victim, grid, checkpoint_dir=directory, resume=False, **OPTIONS)
    assert fresh.chunks_run == fresh.chunks
    for k in whole.table:
        np.testing.assert_array_equal(fresh.table[k], whole.table[k], err_msg=k)


def _no_compute(*args, **kwargs):
    raise AssertionError("a chunk was computed")


def test_checkpoint_dir_that_is_a_file_is_refused_before_any_chunk(
    sweep_setup, tmp_path, monkeypatch
):
    victim, grid, _, _ = sweep_setup
    monkeypatch.setattr(sweep_run, "run_calls", _no_compute)
    target = tmp_path / "results.csv"
    target.write_text("keep me")
    for directory in (target, target / "sub"):
        with pytest.raises(ValueError, match=r"`checkpoint_dir` .*must be a directory"):
            run_grid(victim, grid, checkpoint_dir=directory, **OPTIONS)
    assert target.read_text() == "keep me"


def test_run_sweep_into_a_file_is_refused_before_any_victim(tmp_path, monkeypatch):
    from jaxadv.sweeps import _sweep

    monkeypatch.setattr(_sweep, "load_victim", _no_compute)
    target = tmp_path / "out"
    target.write_text("keep me")
    config = dict(victims={"v": make_mlp_victim}, grids=[dict(attack=pgd(steps=1))])
    with pytest.raises(ValueError, match=r"`out_dir` .* is a file"):
        run_sweep(config, target)
    assert target.read_text() == "keep me"


def test_string_in_a_grid_axis_is_refused(sweep_setup):
    _, grid, _, _ = sweep_setup
    for values in (["0.1", 0.2], "0.1", [0.1, None], [True]):
        with pytest.raises(ValueError, match=r"`params\['eps'\]` must be a number"):
            Grid(pgd(steps=2), grid.images, grid.labels, params={"eps": values})


def test_grid_restarts_without_random_start_are_refused(sweep_setup):
    _, grid, _, _ = sweep_setup
    for attack in (bim(steps=2), pgd(steps=2, random_start=False)):
        with pytest.raises(ValueError, match=r"`restarts=2` .*random_start"):
            Grid(attack, grid.images, grid.labels, restarts=2)
    assert Grid(pgd(steps=2), grid.images, grid.labels, restarts=2).restarts == 2


def test_run_grid_refuses_restarts_of_an_attack_that_ignores_its_key(sweep_setup, monkeypatch):
    """Families without a ``random_start`` field (SparseFool, C&W) or whose default resolves to
    none (SMBEA on classifiers) ran identical restarts silently; run_grid traces the attack once
    and refuses, before any chunk or checkpoint."""
    from jaxadv.attacks import smbea, sparsefool
    from jaxadv.models import ensemble

    victim, grid, _, _ = sweep_setup
    monkeypatch.setattr(sweep_run, "run_calls", _no_compute)
    for attack, target in [(sparsefool(steps=2), victim), (smbea(loss="ce"), ensemble([victim]))]:
        restarted = Grid(attack, grid.images, grid.labels, restarts=2)
        with pytest.raises(ValueError, match=r"`restarts=2` would repeat identical runs.*key"):
            run_grid(target, restarted, **OPTIONS)
    with pytest.raises(AssertionError, match="a chunk was computed"):  # the check let it run
        run_grid(victim, Grid(pgd(steps=2), grid.images, grid.labels, restarts=2), **OPTIONS)


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(chunk_size="8"), "chunk_size"),
        (dict(micro_batch=2.0), "micro_batch"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(victim_epochs="1"), "victim_epochs"),
        (dict(seed="0"), "seed"),
        (dict(grids=[dict(attack=pgd(steps=1), restarts="2")]), "restarts"),
    ],
)
def test_config_counts_given_as_strings_are_errors(change, name):
    config = dict(victims={"cw": "cw"}, grids=[dict(attack=pgd(steps=1))]) | change
    with pytest.raises(ValueError, match=f"`{name}` must be an"):
        as_config(config)


def test_read_table_of_a_missing_path_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"table.csv' must be a table file .* missing"):
        read_table(tmp_path / "table.csv")
    with pytest.raises(ValueError, match="it is a folder"):
        read_table(tmp_path)


def test_config_that_is_not_a_python_file_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# not a config\n")
    with pytest.raises(ValueError, match=r"ending in \.py"):
        load_config(str(readme))
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    with pytest.raises(ValueError, match=r"broken.py' is not valid Python.*line 1"):
        load_config(str(broken))


# ------------------------------------------------------------------------------------------
# training checkpoints


class _TinySaliency(nn.Module):
    output_kind: str = "log_density"

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.Conv(1, (3, 3))(x)[..., 0]
        return y - jax.nn.logsumexp(y, axis=(1, 2), keepdims=True)


def test_corrupted_training_checkpoint_is_refused_on_resume(tmp_path):
    from jaxadv.data.saliency import load_scenes
    from jaxadv.training import train_saliency

    data = load_scenes("train", 4, size=(16, 16))
    module = _TinySaliency()
    variables = module.init(jax.random.key(0), data.images[:1])
    options = dict(key=jax.random.key(1), batch_size=4, progress=False, checkpoint_dir=tmp_path)
    first = train_saliency(module, variables, data, epochs=1, **options)
    step = tmp_path / "1"
    meta = json.loads((step / "meta" / "metadata").read_text())
    assert "checksum" in meta
    resumed = train_saliency(module, variables, data, epochs=1, resume=True, **options)
    jax.tree.map(np.testing.assert_array_equal, resumed.variables, first.variables)
    meta["checksum"]["leaves"]["params/Conv_0/kernel"]["sha256"] = "0" * 64
    (step / "meta" / "metadata").write_text(json.dumps(meta))
    with pytest.raises(CheckpointCorruptedError, match=r"params/Conv_0/kernel.*Delete that step"):
        train_saliency(module, variables, data, epochs=2, resume=True, **options)
    assert step.is_dir()


# ------------------------------------------------------------------------------------------
# converters and data


class _TenClasses(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_from_flax_with_a_wrong_num_classes_is_an_error():
    module = _TenClasses()
    variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"`num_classes` is 3 but .* returns 10 logits"):
        from_flax(module, variables, input_shape=(4, 4, 1), num_classes=3)
    with pytest.raises(ValueError, match=r"`input_shape` \(5, 5, 1\)"):
        from_flax(module, variables, input_shape=(5, 5, 1), num_classes=10)
    assert from_flax(module, variables, input_shape=(4, 4, 1), num_classes=10).num_classes == 10


def test_npz_that_is_not_a_zip_or_holds_object_arrays_is_named(tmp_path):
    text = tmp_path / "weights.npz"
    text.write_text("conv1.weight: 1 2 3\n")
    with pytest.raises(ValueError, match=r"weights.npz' is not an .npz file"):
        from_torch_state_dict(text, CWNet(), SHAPE)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **{"conv1.weight": np.array([1, "x"], dtype=object)})
    with pytest.raises(ValueError, match=r"objects.npz' holds an array that needs pickle"):
        from_torch_state_dict(objects, CWNet(), SHAPE)
    with pytest.raises(ValueError, match=r"`state_dict\['conv1.weight'\]` must be a numeric"):
        from_torch_state_dict({"conv1.weight": np.array(["a"])}, CWNet(), SHAPE)


def test_salicon_image_that_is_not_an_image_names_the_file_and_data_set(tmp_path):
    for folder in ("images/train", "maps/train", "fixations/train"):
        (tmp_path / folder).mkdir(parents=True)
    bad = tmp_path / "images/train/COCO_train2014_000000000001.jpg"
    bad.write_text("this is not a JPEG")
    with pytest.raises(ValueError, match=r"COCO_train2014_000000000001.jpg' of the SALICON data"):
        load_salicon(tmp_path, "train")
    assert bad.read_text() == "this is not a JPEG"
