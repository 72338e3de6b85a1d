"""jaxadv.transfer: the transfer matrix against a hand-computed case and against each cell run
alone through ``metrics.transfer_success``; its table, heat map and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_apply, make_mlp_victim

from jaxadv import attacks, metrics
from jaxadv.models import Victim
from jaxadv.transfer import TransferMatrix, plot_transfer_matrix, transfer_matrix


def _threshold_victim(threshold: float) -> Victim:
    """Two classes on R²: class 0 iff x₁ > threshold (logits ±(x₁ − threshold))."""
    return Victim(
        variables={
            "w": jnp.array([[1.0, 0.0], [-1.0, 0.0]]),
            "b": jnp.array([-threshold, threshold]),
        },  # fmt: skip
        apply_fn=linear_apply,
        input_shape=(2,),
        num_classes=2,
        bounds=(-10.0, 10.0),
    )


def test_rate_counts_only_examples_the_target_got_right():
    # One I-FGSM step of 1.0 on the source (boundary x₁ = 0) moves x₁ down by exactly 1 (the
    # gradient of the CE is ±e₁). The target's boundary is x₁ = 0.5:
    #   x₁:           1.0    0.2    3.0    0.7
    #   clean right:  yes    NO     yes    yes
    #   x₁ after:     0.0   -0.8    2.0   -0.3
    #   fooled:       yes    yes    no     yes
    # transfer success = 2 fooled of the 3 it got right = 2/3 (not 3/4 of all images).
    images = jnp.array([[1.0, 0.0], [0.2, 0.0], [3.0, 0.0], [0.7, 0.0]])
    labels = jnp.zeros(4, jnp.int32)
    attack = attacks.bim(steps=1)
    hp = attack.hparams(eps=1.0, step_size=1.0)
    out = transfer_matrix(
        {"i-fgsm": attack},
        {"src": _threshold_victim(0.0)},
        {"tgt": _threshold_victim(0.5)},
        images, labels, jax.random.key(0), hparams={"i-fgsm": hp},
    )  # fmt: skip
    np.testing.assert_array_equal(out.clean_correct[0], [True, False, True, True])
    np.testing.assert_array_equal(out.fooled[0, 0, 0], [True, True, False, True])
    np.testing.assert_array_equal(out.source_success[0, 0], [False, True, False, True])
    assert out.rate.shape == (1, 1, 1)
    assert out.rate[0, 0, 0] == pytest.approx(2 / 3)
    assert "| src | 0.67 |" in out.table("i-fgsm")


@pytest.fixture(scope="module")
def zoo():
    """Two sources and three targets (tiny tanh MLPs, 4×4×1, 3 classes), 12 images."""
    victims = {f"mlp{s}": make_mlp_victim(seed=s) for s in range(3)}
    images = jax.random.uniform(jax.random.key(5), (12, 4, 4, 1))
    labels = jnp.argmax(victims["mlp0"].batch(images), axis=-1)  # mlp0 is right on all
    return victims, images, labels


def test_matrix_equals_each_cell_run_alone(zoo):
    victims, images, labels = zoo
    sources = {k: victims[k] for k in ("mlp0", "mlp1")}
    targets = {k: victims[k] for k in ("mlp0", "mlp2")}
    # MI-FGSM is deterministic; PGD's random start checks that every cell gets the same keys
    # as attack.batch(..., key) would.
    suite = {"mi": attacks.mi_fgsm(steps=1), "pgd": attacks.pgd(steps=1)}
    hps = {name: atk.hparams(eps=0.3) for name, atk in suite.items()}
    key = jax.random.key(3)
    out = transfer_matrix(suite, sources, targets, images, labels, key, hparams=hps)
    assert out.rate.shape == (2, 2, 2) and out.fooled.shape == (2, 2, 2, 12)
    assert out.attacks == ("mi", "pgd") and out.targets == ("mlp0", "mlp2")
    assert 0 < np.nanmean(out.rate) < 1  # neither trivial nor saturated
    for a, (name, atk) in enumerate(suite.items()):
        for s, source in enumerate(sources.values()):
            for t, target in enumerate(targets.values()):
                cell = metrics.transfer_success(atk, source, target, hps[name], images, labels, key)
                np.testing.assert_array_equal(out.fooled[a, s, t], cell.fooled)
                np.testing.assert_array_equal(out.clean_correct[t], cell.clean_correct)
                np.testing.assert_array_equal(out.source_success[a, s], cell.source_success)
                assert out.rate[a, s, t] == pytest.approx(cell.rate, abs=1e-7)
    # mlp0 is source 0 and target 0: that cell is the white-box success (mlp0 gets all right).
    assert out.clean_correct[0].all()
    assert out.rate[0, 0, 0] == pytest.approx(np.mean(out.source_success[0, 0]))
    # The mean transfer leaves out the cells whose source and target are the same model.
    off = [out.rate[0, 0, 1], out.rate[0, 1, 0], out.rate[0, 1, 1]]
    assert out.mean_transfer()[0] == pytest.approx(np.mean(off))


def test_heat_map_draws_one_panel_per_attack(tmp_path):
    matrix = TransferMatrix(
        attacks=("a", "b"), sources=("s0", "s1"), targets=("t0", "t1", "t2"),
        rate=np.array([[[0.1, 0.2, np.nan], [0.4, 0.5, 0.6]]] * 2, np.float32),
        fooled=np.zeros((2, 2, 3, 1), bool), clean_correct=np.ones((3, 1), bool),
        source_success=np.zeros((2, 2, 1), bool),
    )  # fmt: skip
    pytest.importorskip("matplotlib")
    fig = plot_transfer_matrix(matrix, path=tmp_path / "heat.png")
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    np.testing.assert_array_equal(panels[1].images[0].get_array(), matrix.rate[1])
    assert [t.get_text() for t in panels[0].texts][:3] == ["0.10", "0.20", "–"]
    assert (tmp_path / "heat.png").stat().st_size > 0


def test_bad_input_names_the_argument(zoo):
    victims, images, labels = zoo
    key = jax.random.key(0)
    bim = attacks.bim(steps=1)
    with pytest.raises(ValueError, match="`attacks` must be a non-empty mapping"):
        transfer_matrix({}, victims, None, images, labels, key)
    with pytest.raises(ValueError, match=r"`attacks\['t'\]` is targeted"):
        transfer_matrix({"t": attacks.bim(targeted=True)}, victims, None, images, labels, key)
    with pytest.raises(ValueError, match=r"`attacks\['x'\]` must be a jaxadv attack"):
        transfer_matrix({"x": object()}, victims, None, images, labels, key)
    with pytest.raises(ValueError, match=r"`hparams` names unknown attack\(s\) \['pgd'\]"):
        transfer_matrix({"bim": bim}, victims, None, images, labels, key, hparams={"pgd": None})
    odd = make_mlp_victim(shape=(2, 2, 1))
    with pytest.raises(ValueError, match=r"`targets\['odd'\]` must take the inputs"):
        transfer_matrix({"bim": bim}, victims, {"odd": odd}, images, labels, key)
    with pytest.raises(ValueError, match="`labels`"):
        transfer_matrix({"bim": bim}, victims, None, images, labels[:3], key)


# Slow: trains three tiny MLPs and compiles the smoke matrix (about 25 s of CPU).
@pytest.mark.slow
def test_experiment_smoke(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "transfer_matrix.py"
    spec = importlib.util.spec_from_file_location("transfer_matrix_experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    matrix, timing = module.main(["--smoke", "--out", str(tmp_path)])
    assert matrix.attacks == ("I-FGSM", "MI-FGSM", "DI-MI-FGSM")
    assert matrix.rate.shape == (3, 3, 3) and timing["attacked_examples"] == 3 * 3 * 8
    assert np.all((matrix.rate >= 0) | np.isnan(matrix.rate)) and np.nanmax(matrix.rate) <= 1
    text = (tmp_path / "transfer_matrix_smoke.md").read_text()
    assert text.count("(rows: source, columns: target)") == 3
    assert "| I-FGSM |" in text and (tmp_path / "transfer_matrix_smoke.png").stat().st_size > 0
