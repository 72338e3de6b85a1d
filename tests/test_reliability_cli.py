"""The CLI's user errors (issue 21): each ends with ONE line on stderr that names the flag or file
at fault, and exit status 2; never a traceback, never a silent empty table, nothing written.

All run in-process through ``main([...])``; none trains a victim (every check comes first).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxadv.cli import main
from jaxadv.data import load_digits
from jaxadv.models.saliency._zoo import SALIENCY_MODEL_NAMES


def _user_error(capsys, argv: list[str]) -> str:
    """Runs the CLI, checks exit status 2 and a one-line report without traceback; returns it."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m jaxadv {argv[0]}: error: ")
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    yield path
    assert path.read_text() == "keep me"  # nothing written over it


def test_sweep_of_a_file_that_is_not_a_config(capsys):
    readme = str(Path(__file__).resolve().parents[1] / "README.md")
    assert "`CONFIG` must be a Python file ending in .py" in _user_error(capsys, ["sweep", readme])


def test_sweep_of_a_missing_config(capsys):
    line = _user_error(capsys, ["sweep", "/nonexistent.py"])
    assert "'/nonexistent.py' (no such file)" in line


def test_demo_epochs_zero(capsys):
    assert "--epochs must be >= 1; got 0" in _user_error(capsys, ["demo", "--epochs", "0"])


def test_demo_unknown_model_names_the_flag(capsys):
    line = _user_error(capsys, ["demo", "--model", "vgg"])
    assert "--model" in line and "'vgg'" in line and "'resnet'" in line


def test_demo_cache_dir_under_a_file(capsys, a_file):
    line = _user_error(capsys, ["demo", "--cache-dir", str(a_file / "cache")])
    assert "--cache-dir" in line and "lies under the file" in line
    line = _user_error(capsys, ["demo", "--cache-dir", str(a_file)])
    assert "--cache-dir" in line and "is a file" in line


def test_demo_only_an_unknown_attack_is_an_error_not_an_empty_table(capsys):
    line = _user_error(capsys, ["demo", "--only", "PGD", "NOSUCH"])
    assert "--only NOSUCH starts no demo attack" in line and "'FGSM ℓ∞ 0.3'" in line
    assert "--only needs at least one word" in _user_error(capsys, ["demo", "--only"])


def test_demo_images_beyond_the_test_split(capsys):
    available = len(load_digits(size=28).test_labels)
    line = _user_error(capsys, ["demo", "--images", str(available + 1)])
    assert f"--images must be in [1, {available}] (the test split)" in line
    assert "--images must be in" in _user_error(capsys, ["demo", "--images", "0"])


def test_run_demo_refuses_the_same_before_training():
    from jaxadv.demo import run_demo

    with pytest.raises(ValueError, match="`only` has \\['NOSUCH'\\]"):
        run_demo(only=("NOSUCH",), cache_dir="/nonexistent")
    with pytest.raises(ValueError, match="`num_images` must be an integer in"):
        run_demo(num_images=10**6, cache_dir="/nonexistent")


def test_train_saliency_with_an_empty_root(capsys, tmp_path):
    argv = ["train-saliency", "--model", SALIENCY_MODEL_NAMES[0], "--data", "salicon"]
    line = _user_error(capsys, [*argv, "--root", str(tmp_path)])
    assert "--root: SALICON folder" in line and "missing 'images/train'" in line


def test_train_saliency_checkpoint_dir_under_a_file(capsys, a_file):
    argv = ["train-saliency", "--model", SALIENCY_MODEL_NAMES[0]]
    line = _user_error(capsys, [*argv, "--checkpoint-dir", str(a_file / "ckpt")])
    assert "--checkpoint-dir" in line and "lies under the file" in line


CONFIG = '''
import numpy as np

from jaxadv.attacks import pgd
from jaxadv.models import Victim

W = np.linspace(-1.0, 1.0, 16 * 3, dtype=np.float32).reshape(16, 3)


def linear(variables, x):
    return x.reshape(x.shape[0], -1) @ variables["w"]


def victim():
    return Victim({"w": W}, linear, input_shape=(4, 4, 1), num_classes=3, bounds=(0.0, 1.0))


def data():
    x = np.random.default_rng(0).random((3, 4, 4, 1)).astype(np.float32)
    return x, np.argmax(x.reshape(3, -1) @ W, axis=-1).astype(np.int32)


def get_config(arg=None):
    return dict(
        victims={"lin": victim},
        data=data,
        grids=[dict(attack=pgd(steps=2), params={"eps": [0.1, 0.2]}, name="pgd")],
        chunk_size=CHUNK,
        micro_batch=1,
    )
'''


def _config(tmp_path, chunk="2") -> str:
    path = tmp_path / "tiny.py"
    path.write_text(CONFIG.replace("CHUNK", chunk))
    return str(path)


def test_sweep_config_with_a_string_chunk_size(capsys, tmp_path):
    out = tmp_path / "out"
    line = _user_error(capsys, ["sweep", _config(tmp_path, '"8"'), "--out", str(out)])
    assert "`chunk_size` must be an integer >= 1; got '8' (str)" in line
    assert not out.exists()


def test_sweep_out_that_is_a_file(capsys, tmp_path, a_file):
    line = _user_error(capsys, ["sweep", _config(tmp_path), "--out", str(a_file), "--quiet"])
    assert "--out" in line and "is a file" in line


def test_sweep_corrupted_checkpoint_offers_fresh(capsys, tmp_path):
    out = tmp_path / "out"
    argv = ["sweep", _config(tmp_path), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    table = (out / "table.csv").read_text()
    steps = out / "checkpoints" / "lin" / "pgd"
    latest = max((p for p in steps.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    meta = latest / "meta" / "metadata"
    record = json.loads(meta.read_text())
    record["checksum"]["leaves"]["success"]["sha256"] = "0" * 64
    meta.write_text(json.dumps(record))
    capsys.readouterr()
    line = _user_error(capsys, argv)
    assert str(latest) in line and "differ from their saved checksum: success" in line
    assert "--fresh" in line
    assert (out / "table.csv").read_text() == table  # the finished table is kept
    assert main([*argv, "--fresh"]) == 0
    assert (out / "table.csv").read_text() == table  # recomputed: the same numbers


@pytest.mark.slow
def test_sweep_flipped_data_ends_with_one_line_and_no_orbax_noise(tmp_path):
    """orbax read the columns concurrently and closed its event loop on the first failure; the
    reads still in flight then printed "RuntimeError: Event loop is closed" tracebacks after the
    error line (about one run in two, only in a fresh process). jaxadv now reads the values once
    in sequence first. Three fresh processes on flipped data: one line each."""
    import os
    import random
    import shutil
    import subprocess
    import sys

    out = tmp_path / "out"
    config = _config(tmp_path)
    argv = lambda d: [sys.executable, "-m", "jaxadv", "sweep", config, "--out", str(d), "--quiet"]  # noqa: E731
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert subprocess.run(argv(out), env=env, capture_output=True).returncode == 0
    rng = random.Random(0)
    for attempt in range(3):
        copy = tmp_path / f"copy{attempt}"
        shutil.copytree(out, copy)
        steps = copy / "checkpoints" / "lin" / "pgd"
        latest = max((p for p in steps.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        for f in (p for p in (latest / "columns").rglob("*") if p.parent.name == "d"):
            data = bytearray(f.read_bytes())
            third = len(data) // 3
            data[third : 2 * third] = rng.randbytes(third)
            f.write_bytes(bytes(data))
        run = subprocess.run(argv(copy), env=env, capture_output=True, text=True)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert run.returncode == 2 and "orbax cannot read it" in run.stderr, run.stderr
        assert not any("Event loop is closed" in line for line in lines), run.stderr
