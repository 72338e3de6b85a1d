"""Training saliency models: the loss falls, frozen parts stay, resumed runs are bit-identical,
foreign checkpoints are refused, progress is quiet when off, the CLI and the experiment run."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv import cli
from jaxadv.attacks import saliency_pgd
from jaxadv.data.saliency import load_scenes, scene_center_bias
from jaxadv.training import (
    evaluate_saliency_maps,
    resolve_saliency_loss,
    saliency_image_loss,
    train_saliency,
)

SIZE = (32, 32)  # one grid for every test here, so the metric programs compile once
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


class TinySaliency(nn.Module):
    """A frozen stem, BatchNorm, and a stride-2 head: the paths of the zoo (frozen parameters,
    ``batch_stats``, a map coarser than the data) at a fraction of their compile time."""

    features: int = 4
    output_kind: str = "log_density"

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(self.features, (3, 3), name="frozen_stem")(x))
        x = nn.Conv(self.features, (3, 3), strides=2)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.5)(x))
        y = nn.Conv(1, (3, 3))(x)[..., 0]
        return y - jax.nn.logsumexp(y, axis=(1, 2), keepdims=True)


@pytest.fixture(scope="module")
def data():
    return load_scenes("train", 24, size=SIZE)


def _init(module, data):
    return jax.jit(lambda k, x: module.init(k, x))(jax.random.key(0), data.images[:1])


def _train(module, data, variables=None, **kwargs):
    kwargs = dict(epochs=3, batch_size=8, learning_rate=1e-2, progress=False) | kwargs
    variables = _init(module, data) if variables is None else variables
    return train_saliency(module, variables, data, key=jax.random.key(1), **kwargs)


@pytest.fixture(scope="module")
def fresh(data):
    """An uninterrupted 3-epoch run of TinySaliency (shared: training compiles once a module)."""
    return _train(TinySaliency(), data)


def _mean_loss(module, variables, data):
    density = data.maps / data.maps.sum(axis=(1, 2), keepdims=True)
    counts = np.stack([data.fixation_map(i, counts=True) for i in range(len(data))])

    @jax.jit
    def mean_nll(variables, x, density, counts):
        out = module.apply(variables, x, train=False)
        loss = functools.partial(saliency_image_loss, kind="log_density", weights={"nll": 1.0})
        return jnp.mean(jax.vmap(loss)(out, density, counts))

    return float(mean_nll(variables, data.images, density, counts.astype(np.float32)))


def test_training_lowers_the_loss_and_keeps_frozen_parameters(data, fresh):
    module = TinySaliency()
    init = _init(module, data)
    assert _mean_loss(module, fresh.variables, data) < _mean_loss(module, init, data) - 0.05
    assert len(fresh.losses) == 3 and fresh.losses[-1] < fresh.losses[0]
    np.testing.assert_array_equal(
        fresh.variables["params"]["frozen_stem"]["kernel"], init["params"]["frozen_stem"]["kernel"]
    )
    assert not np.array_equal(
        fresh.variables["params"]["Conv_0"]["kernel"], init["params"]["Conv_0"]["kernel"]
    )
    assert not np.allclose(fresh.variables["batch_stats"]["BatchNorm_0"]["mean"], 0.0)


def test_interrupted_and_resumed_run_is_bit_identical(data, fresh, tmp_path):
    first = _train(TinySaliency(), data, epochs=2, checkpoint_dir=tmp_path)
    assert first.losses == fresh.losses[:2]
    resumed = _train(TinySaliency(), data, epochs=3, checkpoint_dir=tmp_path, resume=True)
    jax.tree.map(np.testing.assert_array_equal, resumed.variables, fresh.variables)
    assert resumed.losses == fresh.losses
    # A run already at its last epoch returns the checkpoint as it is.
    again = _train(TinySaliency(), data, epochs=3, checkpoint_dir=tmp_path, resume=True)
    jax.tree.map(np.testing.assert_array_equal, again.variables, fresh.variables)


def test_checkpoint_of_another_configuration_is_refused(data, tmp_path):
    _train(TinySaliency(), data, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"batch_size is 8 in the checkpoint but 4 here"):
        _train(TinySaliency(), data, batch_size=4, checkpoint_dir=tmp_path, resume=True)
    other = TinySaliency(features=3)
    with pytest.raises(ValueError, match=r"model is .*features=4.* but .*features=3"):
        _train(other, data, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _train(TinySaliency(), data, checkpoint_dir=tmp_path)
    _train(TinySaliency(), data, epochs=2, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="`epochs` must be at least the checkpoint's epoch 2"):
        _train(TinySaliency(), data, epochs=1, checkpoint_dir=tmp_path, resume=True)


def test_progress_lines_only_when_asked(data, capsys):
    _train(TinySaliency(), data, epochs=2)
    assert capsys.readouterr().err == ""
    _train(TinySaliency(), data, epochs=2, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("epoch 2/2  loss ")
    assert "elapsed" in lines[-1] and "ETA 0.0 s" in lines[-1]


@pytest.mark.slow  # the step with the attack inside compiles for ~20 s on the loaded CPU
def test_adversarial_training_runs_the_attack_inside_the_step(data):
    # issue 18: with a zero budget the attack returns the images themselves, so adversarial
    # training is plain training bit for bit; with a budget it trains on other images. With SGD:
    # the two training steps are different programs, and Adam's g/√v turns their rounding in
    # near-zero gradient coordinates into whole steps (max |Δw| 0.05 after 9 Adam steps under the
    # suite's loop emitter, losses equal to 1e-7).
    attack = saliency_pgd(steps=1, random_start=False)
    sgd = dict(optimizer=optax.sgd)
    plain = _train(TinySaliency(), data, **sgd)
    zero = _train(TinySaliency(), data, attack=attack, attack_hparams=attack.hparams(eps=0.0), **sgd)
    jax.tree.map(np.testing.assert_array_equal, zero.variables, plain.variables)
    assert zero.losses == plain.losses
    at = _train(TinySaliency(), data, attack=attack, attack_hparams=attack.hparams(eps=0.05), **sgd)
    assert all(np.isfinite(at.losses)) and at.losses != plain.losses
    with pytest.raises(ValueError, match="`attack` must be an untargeted attack"):
        _train(TinySaliency(), data, attack=saliency_pgd(targeted=True))
    with pytest.raises(ValueError, match="`attack_hparams` must be None without an `attack`"):
        _train(TinySaliency(), data, attack_hparams=attack.hparams())


def _loss_fn(kind, weights):
    return jax.jit(functools.partial(saliency_image_loss, kind=kind, weights=weights))


def test_image_loss_terms_by_hand():
    # NLL of a log density: minus the mean log-probability over fixations, counts weighing.
    logp = jnp.log(jnp.array([[0.1, 0.2], [0.3, 0.4]]))
    counts = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    nll = _loss_fn("log_density", {"nll": 1.0})
    value = nll(logp, jnp.ones((2, 2)), counts)
    np.testing.assert_allclose(value, -(2 * np.log(0.1) + np.log(0.4)) / 3, rtol=1e-6)
    # A coarser map is upsampled to the data grid and renormalised: one fixation on pixel i
    # costs -log p_i, and the p_i of the 4x4 grid sum to 1 and keep the coarse map's order.
    one_hot = jnp.eye(16).reshape(16, 4, 4)
    per_pixel = jax.vmap(nll, in_axes=(None, None, 0))(logp, jnp.ones((4, 4)), one_hot)
    p = np.exp(-np.asarray(per_pixel)).reshape(4, 4)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
    assert p[0, 0] < p[0, 3] < p[3, 0] < p[3, 3]
    # SAM's loss of the true density as a [0, 1] map: 10·0 − 2·1 − NSS.
    truth = jnp.array([[0.1, 0.2], [0.3, 0.4]])
    sam = _loss_fn("unit", resolve_saliency_loss(None, "unit"))(truth, truth, counts)
    z = (truth - truth.mean()) / truth.std()
    np.testing.assert_allclose(sam, -2.0 - (2 * z[0, 0] + z[1, 1]) / 3, atol=1e-5)
    assert resolve_saliency_loss(None, "log_density") == {"nll": 1.0}
    with pytest.raises(ValueError, match="'l1'"):
        resolve_saliency_loss({"l1": 1.0}, "log_density")
    with pytest.raises(ValueError, match="`loss` must be one of"):
        resolve_saliency_loss({"auc": 1.0}, "unit")


def test_evaluation_scores_the_truth_above_the_centre_bias():
    test = load_scenes("test", 4, size=SIZE)  # the CLI test's held-out set: shared compilations
    key = jax.random.key(3)
    truth = evaluate_saliency_maps(test.maps, test, key=key)
    bias = evaluate_saliency_maps(scene_center_bias(SIZE), test, key=key)
    assert truth["cc"] == pytest.approx(1.0, abs=1e-5) and truth["kl"] < 1e-4
    for metric in ("nss", "sauc", "sim"):
        assert truth[metric] > bias[metric] + 0.05, metric
    again = evaluate_saliency_maps(scene_center_bias(SIZE), test, key=key)
    assert again == bias and truth["n"] == len(test) and truth["undefined"] == 0


# The experiment's --smoke setting, so that the two tests share their compiled programs.
TINY_CLI = ["--model", "deepgaze", "--size", "32", "32", "--width", "2", "--train", "8"]
TINY_CLI += ["--test", "4", "--batch-size", "8", "--quiet"]


# Resuming bit for bit and refusing foreign checkpoints are tested above, without the CLI.
# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_cli_trains_checkpoints_resumes_and_prints_the_table(tmp_path, capsys):
    ckpt = ["--checkpoint-dir", str(tmp_path)]
    assert cli.main(["train-saliency", *TINY_CLI, "--epochs", "1", *ckpt]) == 0
    assert (tmp_path / "1").is_dir()
    assert cli.main(["train-saliency", *TINY_CLI, "--epochs", "2", *ckpt, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "after 2 epochs on 8 scenes-train images" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"deepgaze", "centre bias", "mean train density"} <= set(rows)
    cells = [float(c) for c in rows["deepgaze"].split("|")[2:-1]]
    assert len(cells) == 5 and all(np.isfinite(cells))
    with pytest.raises(SystemExit):
        cli.main(["train-saliency", "--model", "deepgaze", "--data", "salicon"])  # no --root


# Notebook 04 trains and scores a zoo model in the default suite.
# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_experiment_smoke():
    spec = importlib.util.spec_from_file_location(
        "saliency_training", EXPERIMENTS / "saliency_training.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--smoke"])
    assert list(rows) == ["centre bias", "mean train density", "deepgaze"]
    assert all(np.isfinite(rows["deepgaze"][m]) for m in ("cc", "nss", "sauc", "kl", "sim"))


def _experiment():
    spec = importlib.util.spec_from_file_location(
        "saliency_training", EXPERIMENTS / "saliency_training.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_experiment_names_its_adversarially_trained_members():
    # issue 18: Table 2's AT=YES members by name, as "+at" twins of zoo models
    module = _experiment()
    assert set(module.AT_MEMBERS) <= set(module.MODEL_CHOICES)
    assert {m.removesuffix("+at") for m in module.AT_MEMBERS} == {"gazegan", "sam", "sam_resnet"}
    with pytest.raises(ValueError, match="`--epochs` must be an integer >= 1; got 0"):
        module.main(["--smoke", "--epochs", "0"])
    with pytest.raises(SystemExit):
        module.main(["--smoke", "--models", "gazegan+adv"])


@pytest.mark.slow
def test_experiment_smoke_adversarial_member():
    rows = _experiment().main(["--smoke", "--models", "deepgaze+at"])
    assert list(rows) == ["centre bias", "mean train density", "deepgaze+at"]
    assert all(np.isfinite(rows["deepgaze+at"][m]) for m in ("cc", "nss", "sauc", "kl", "sim"))
