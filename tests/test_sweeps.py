"""Sweeps: grid order and keys, one compilation per attack structure, chunking, checkpoints and
resume, and the experiment configs' smoke runs through the CLI."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv import _compile, attacks, cli
from jaxadv.attacks import Attack, pgd
from jaxadv.sweeps import Grid, read_table, run_grid, run_sweep
from jaxadv.sweeps._config import as_config, split_spec
from jaxadv.sweeps._sharding import chunk_layout

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"
MEASURED = ("clean_correct", "success", "loss", "l0", "l1", "l2", "linf", "queries", "steps")
TRACES: list[str] = []


@dataclasses.dataclass(frozen=True)
class CountingAttack(Attack):
    """PGD that records each trace of its per-example program (an ``Attack`` subclass, as any
    attack family added later)."""

    def program(self, victim, hp, x0, label, target):
        TRACES.append(self.name)
        return super().program(victim, hp, x0, label, target)


def _counting(name, **kwargs):
    fields = {f.name: getattr(pgd(**kwargs), f.name) for f in dataclasses.fields(Attack)}
    return CountingAttack(**{**fields, "name": name})


@pytest.fixture(scope="module")
def setup():
    victim = make_mlp_victim()
    images = np.asarray(jax.random.uniform(jax.random.key(42), (5,) + victim.input_shape))
    labels = np.asarray(jnp.argmax(victim.batch(images), axis=-1), np.int32)
    return victim, images, labels


def test_grid_order_and_keys(setup):
    victim, images, labels = setup
    attack = pgd(targeted=True, restarts=2)
    grid = Grid(
        attack, images[:3], labels[:3], params={"step_size": [0.1, 0.2], "eps": [1.0, 2.0]},
        restarts=2, key=3,
    )
    e = grid.entries(victim.num_classes)
    # settings: fields in params_type order (eps before step_size), the last fastest
    eps, step = np.asarray(grid.hparams.eps), np.asarray(grid.hparams.step_size)
    np.testing.assert_array_equal(eps, np.float32([1, 1, 2, 2]))
    np.testing.assert_array_equal(step, np.float32([0.1, 0.2, 0.1, 0.2]))
    # per setting: image, then its targets (every class but the label), then restart
    per = 3 * (victim.num_classes - 1) * 2
    assert len(e.image) == 4 * per
    np.testing.assert_array_equal(e.setting, np.repeat(np.arange(4), per))
    np.testing.assert_array_equal(e.restart[:4], [0, 1, 0, 1])
    np.testing.assert_array_equal(e.image[:per], np.repeat(np.arange(3), per // 3))
    assert np.all(e.target != e.label) and np.all(e.label == labels[e.image])
    # keys: fold_in(fold_in(key, image), restart), the same for every setting and target
    for row in (0, 5, per + 7, len(e.image) - 1):
        expected = jax.random.fold_in(
            jax.random.fold_in(jax.random.key(3), int(e.image[row])), int(e.restart[row])
        )
        np.testing.assert_array_equal(e.keys[row], jax.random.key_data(expected))
    np.testing.assert_array_equal(e.keys[:per], e.keys[per : 2 * per])
    # untargeted: target = label; given per-image target lists are kept in order
    plain = Grid(pgd(), images, labels).entries(victim.num_classes)
    np.testing.assert_array_equal(plain.target, labels)
    given = [[(y + 1) % 3] for y in labels[:2]]
    lists = Grid(attack, images[:2], labels[:2], targets=given).entries(victim.num_classes)
    np.testing.assert_array_equal(lists.target, np.ravel(given))


def test_grid_errors(setup):
    victim, images, labels = setup
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['epsilon'\].*'eps'"):
        Grid(pgd(), images, labels, params={"epsilon": [0.1]})
    with pytest.raises(ValueError, match=r"params\['eps'\].*empty axis"):
        Grid(pgd(), images, labels, params={"eps": []})
    with pytest.raises(ValueError, match="restarts"):
        Grid(pgd(), images, labels, restarts=0)
    with pytest.raises(ValueError, match="`targets` must be None for the untargeted"):
        Grid(pgd(), images, labels, targets="all")
    with pytest.raises(ValueError, match=r"`targets\[0\]` must not contain"):
        Grid(pgd(targeted=True), images[:1], labels[:1], targets=[[int(labels[0])]]).entries(3)
    with pytest.raises(ValueError, match="`labels` must be 5 integers"):
        Grid(pgd(), images, labels[:4])
    grid = Grid(pgd(steps=1), images, labels)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1; got 0"):
        run_grid(victim, grid, chunk_size=0)
    with pytest.raises(ValueError, match="`micro_batch` must be an integer >= 1"):
        run_grid(victim, grid, micro_batch=-2)
    with pytest.warns(UserWarning, match="running chunks of 8 entries"):
        assert chunk_layout(5, 2, 4) == (8, 2)  # rounded up to devices × micro-batch
    assert chunk_layout(3, 8, 1) == (3, 3)  # the micro-batch never exceeds the chunk
    with pytest.raises(ValueError, match="must return a SweepConfig or a dict"):
        as_config([1])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['victim'\]"):
        as_config(dict(victim="cw", grids=[]))
    assert split_spec("x/cfg.py:smoke") == (Path("x/cfg.py"), "smoke")


def test_chunked_sweep_compiles_once_and_equals_attack_sweep(setup):
    victim, images, labels = setup
    attack = _counting("counted", steps=3, random_start=False)
    TRACES.clear()
    grid = Grid(attack, images, labels, params={"eps": [0.05, 0.1, 0.2]})
    small = run_grid(victim, grid, chunk_size=4, micro_batch=2, progress=False)
    # 15 entries in chunks of 4 on one device, padded; chunks hold a whole number of devices × 2
    chunk = -(-4 // (2 * jax.device_count())) * 2 * jax.device_count()
    chunks = -(-15 // chunk)
    assert (small.chunks, small.chunks_run, small.chunk_size) == (chunks, chunks, chunk)
    other = Grid(attack, images, labels, params={"eps": [0.3, 0.01, 0.07]})
    run_grid(victim, other, chunk_size=4, micro_batch=2, progress=False)
    # One trace compiles all chunks of two eps grids; one more (cached) finds the fields it uses.
    assert TRACES == ["counted", "counted"]
    # chunking does not change a bit
    big = run_grid(victim, grid, chunk_size=16, micro_batch=2, progress=False)
    for k in big.table:
        np.testing.assert_array_equal(big.table[k], small.table[k], err_msg=k)
    # the same entries through one attack.sweep call (no random start: keys do not matter)
    hp = attack.hparams(eps=np.float32([0.05, 0.1, 0.2]))
    ref = attack.sweep(victim, hp, images, labels, jax.random.key(0))
    t = small.table
    np.testing.assert_array_equal(t["success"], np.ravel(ref.success))
    np.testing.assert_array_equal(t["steps"], np.ravel(ref.steps))
    for k in ("loss", "l1", "l2", "linf"):
        np.testing.assert_allclose(t[k], np.ravel(getattr(ref, k)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(t["eps"], np.repeat(np.float32([0.05, 0.1, 0.2]), 5))
    np.testing.assert_allclose(t["step_size"], t["eps"] / 4)  # the relative step follows eps
    assert list(t)[-len(MEASURED):] == list(MEASURED)
    assert set(t["attack"]) == {"counted"} and set(t["victim"]) == {"victim"}
    # PGD-ℓ∞ with cross-entropy reads eps and the (relative) step, no other hyper-parameter.
    assert [c for c in t if c in attack.params_type._fields] == ["eps", "step_size", "rel_step_size"]
    assert set(t["norm"]) == {"linf"}
    np.testing.assert_array_equal(
        t["clean_correct"], np.argmax(victim.batch(images[t["image"]]), -1) == t["label"]
    )


def test_long_attacks_are_host_driven_with_the_same_bits(setup, monkeypatch):
    victim, images, labels = setup
    attack = pgd(steps=12)  # on CPU: init, 10 + 2 unrolled steps, finish (as attack.batch)
    grid = Grid(attack, images[:3], labels[:3], params={"eps": [0.05, 0.2]})
    assert (attacks.plan(attack) != [attacks.WHOLE]) == (jax.default_backend() == "cpu")
    driven = run_grid(victim, grid, chunk_size=4, micro_batch=2, progress=False).table
    monkeypatch.setattr(_compile, "host_loop", lambda *args: False)  # one program: WHOLE
    whole = run_grid(victim, grid, chunk_size=4, micro_batch=2, progress=False).table
    for k in whole:
        np.testing.assert_array_equal(driven[k], whole[k], err_msg=k)
    assert np.all(driven["steps"] == 12) and driven["success"].any()


class _Stop(Exception):
    pass


def test_resume_after_interruption_is_bit_identical(setup, tmp_path):
    victim, images, labels = setup
    grid = Grid(pgd(steps=3, restarts=2), images, labels, params={"eps": [0.1, 0.2]}, restarts=2)
    # The smallest chunks on this host's devices: 5 of 4 entries on one device, 3 on four.
    options = dict(chunk_size=2 * jax.device_count(), micro_batch=2, progress=False)
    chunks = -(-20 // options["chunk_size"])  # 20 entries
    whole = run_grid(victim, grid, **options)

    def stop_after_two(done):
        if done == 2:
            raise _Stop

    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        run_grid(victim, grid, checkpoint_dir=ckpt, on_chunk=stop_after_two, **options)
    resumed = run_grid(victim, grid, checkpoint_dir=ckpt, **options)
    assert (resumed.chunks, resumed.chunks_run) == (chunks, chunks - 2)  # chunks 3.. run
    for k in whole.table:
        np.testing.assert_array_equal(resumed.table[k], whole.table[k], err_msg=k)
    # another configuration is refused, naming what differs; resume=False starts afresh
    changed = Grid(pgd(steps=3, restarts=2), images, labels, params={"eps": [0.1, 0.3]}, restarts=2)
    with pytest.raises(ValueError, match=r"another configuration: grid is .*resume=False"):
        run_grid(victim, changed, checkpoint_dir=ckpt, **options)
    fresh = run_grid(victim, changed, checkpoint_dir=ckpt, resume=False, **options)
    assert fresh.chunks_run == chunks


@pytest.mark.parametrize("name", ["pgd_eps_grid", "cw_targets"])
def test_smoke_config_through_cli(name, tmp_path):
    # The 1-epoch default victim comes from the cache the test processes share ($JAXADV_CACHE_DIR).
    out = tmp_path / "out"
    argv = ["sweep", f"{CONFIGS / name}.py:smoke", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    table = read_table(out / "table.csv")
    summary = (out / "summary.md").read_text()
    assert "robust_accuracy" in summary
    if name == "pgd_eps_grid":
        assert len(table["image"]) == 4 * (3 + 2)  # images × (ℓ∞ + ℓ2 budgets)
        assert set(table["attack"]) == {"pgd-linf", "pgd-l2"}
        assert (out / "robust_accuracy.png").is_file()
        # eps = 0 leaves every correctly classified image correct
        zero = (table["attack"] == "pgd-linf") & (table["eps"] == 0)
        assert not np.any(table["success"][zero & table["clean_correct"]])
        # a rerun resumes the finished ℓ∞ grid and recomputes the ℓ2 one (its checkpoints are
        # gone), identically
        shutil.rmtree(out / "checkpoints" / "c4" / "pgd-l2")
        assert cli.main(argv) == 0
        again = read_table(out / "table.csv")
        for k in table:
            np.testing.assert_array_equal(again[k], table[k], err_msg=k)
    else:
        assert len(table["image"]) == 2 * 9
        assert np.all(table["target"] != table["label"])
        assert "success_worst" in summary


def test_run_sweep_over_two_victims_and_two_attack_families(setup, tmp_path):
    victim, images, labels = setup
    config = dict(
        victims={"mlp0": lambda: victim, "mlp1": lambda: make_mlp_victim(seed=1)},
        data=lambda: (images, labels),
        grids=[
            dict(attack=pgd(steps=3, restarts=2), params={"eps": [0.1, 0.2]}, restarts=2),
            dict(attack=_counting("c", steps=3, random_start=False), params={"eps": 0.1}),
        ],
        chunk_size=4,
        micro_batch=2,
    )
    table = run_sweep(config, tmp_path, progress=False)
    n = 2 * (2 * 5 * 2 + 5)  # victims × (pgd grid + counted grid)
    assert len(table["image"]) == n and list(table)[:2] == ["victim", "attack"]
    assert set(table["victim"]) == {"mlp0", "mlp1"} and set(table["attack"]) == {"pgd-linf", "c"}
    assert (tmp_path / "table.csv").is_file()
    assert "| mlp1 |" in (tmp_path / "summary.md").read_text()
    first = table["victim"] == "mlp0"
    assert not np.array_equal(table["loss"][first], table["loss"][~first])  # other weights
