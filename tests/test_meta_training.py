"""Meta-training of the meta attacker (Du et al., ICLR 2020): gradient tasks, Reptile and
first-order MAML against closed forms, bit-for-bit resume, corrupted task files, the CLI."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv.losses import cw_margin
from jaxadv.models import CheckpointCorruptedError
from jaxadv.training import (
    GradientTask,
    collect_gradients,
    load_gradient_task,
    meta_train,
    save_gradient_task,
)
from tests.conftest import make_mlp_victim

SHAPE = (2, 2, 1)
D = 4  # pixels per image: the MSE is a mean over them


class Constant(nn.Module):
    """A stand-in meta attacker whose output is one parameter image ``c`` whatever the input:
    the MSE to a task's gradients is then the quadratic ``mean((c − g)²)``."""

    @nn.compact
    def __call__(self, x):
        c = self.param("c", nn.initializers.zeros, x.shape)
        return c + 0.0 * x


def _task(value, name, n=3):
    """A task whose every gradient is the image ``value`` (so every batch's mean is ``value``)."""
    g = np.broadcast_to(np.asarray(value, np.float32).reshape(SHAPE), (n, *SHAPE)).copy()
    return GradientTask(np.zeros((n, *SHAPE), np.float32), g, np.zeros(n, np.int32), name)


A, B = np.array([1.0, -2.0, 0.5, 3.0]), np.array([-1.0, 0.0, 2.0, 1.0])
TASKS = [_task(A, "a"), _task(B, "b")]
THETA0 = np.array([0.2, 0.1, -0.3, 0.0])


def _run(steps=1, **kw):
    variables = {"params": {"c": jnp.asarray(THETA0.reshape(SHAPE), jnp.float32)}}
    options = dict(key=jax.random.key(0), steps=steps, batch_size=2, tasks_per_step=2,
                   inner_steps=3, inner_lr=0.1, outer_lr=0.5, progress=False)  # fmt: skip
    return meta_train(Constant(), variables, TASKS, **{**options, **kw})


def _adam_written_out(theta, target, lr, steps, b1=0.9, b2=0.999, eps=1e-8):
    m = v = np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = 2 * (theta - target) / D
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return theta


def test_reptile_sgd_matches_closed_form():
    # SGD on mean((c − a)²): c_K = a + (1 − 2·lr/D)^K (c_0 − a); θ' = θ + ε·mean_i(c_K^i − θ).
    out = _run(inner_optimizer=optax.sgd).variables["params"]["c"].ravel()
    r = (1 - 2 * 0.1 / D) ** 3
    adapted = [t + r * (THETA0 - t) for t in (A, B)]
    expected = THETA0 + 0.5 * np.mean([a - THETA0 for a in adapted], axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_reptile_adam_matches_written_out_steps():
    out = _run().variables["params"]["c"].ravel()
    adapted = [_adam_written_out(THETA0, t, 0.1, 3) for t in (A, B)]
    expected = THETA0 + 0.5 * np.mean([a - THETA0 for a in adapted], axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # The loss recorded is the MSE at θ before adaptation, averaged over the two tasks.
    before = np.mean([np.mean((THETA0 - t) ** 2) for t in (A, B)])
    np.testing.assert_allclose(_run().losses[0], before, rtol=1e-6)


def test_first_order_maml_matches_hand_derivation():
    # Support = query = the task's gradient a; SGD inner steps give c_K as above; first-order
    # MAML's meta-gradient is ∇L_query(c_K) = 2(c_K − a)/D (no (1 − 2·lr/D)^K factor of the
    # second-order term), and θ' = θ − β·mean_i ∇L_query(c_K^i).
    out = _run(method="maml", inner_optimizer=optax.sgd).variables["params"]["c"].ravel()
    r = (1 - 2 * 0.1 / D) ** 3
    grads = [2 * ((t + r * (THETA0 - t)) - t) / D for t in (A, B)]
    expected = THETA0 - 0.5 * np.mean(grads, axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_resume_is_bit_for_bit(tmp_path, capsys):
    whole = _run(steps=4)
    _run(steps=2, checkpoint_dir=tmp_path, checkpoint_every=2)
    resumed = _run(steps=4, checkpoint_dir=tmp_path, checkpoint_every=2, resume=True, progress=True)
    err = capsys.readouterr().err
    assert "resumed from step 2" in err and "meta-step 4/4  loss" in err
    np.testing.assert_array_equal(resumed.variables["params"]["c"], whole.variables["params"]["c"])
    assert resumed.losses == whole.losses
    with pytest.raises(ValueError, match="resume=True"):
        _run(steps=4, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="outer_lr is 0.5 in the checkpoint but 0.25 here"):
        _run(steps=5, checkpoint_dir=tmp_path, resume=True, outer_lr=0.25)


@pytest.fixture(scope="module")
def victim_and_task():
    victim = make_mlp_victim()
    x = np.random.default_rng(3).uniform(size=(5, *victim.input_shape)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    return victim, x, y, collect_gradients(victim, x, y, name="mlp", standardize=False)


def test_gradients_equal_one_example_at_a_time(victim_and_task):
    victim, x, y, task = victim_and_task
    one = jax.jit(jax.grad(lambda z, label: cw_margin(jax.nn.log_softmax(victim(z)), label)))
    scaled = collect_gradients(victim, x, y, name="mlp").gradients
    for i in range(len(y)):
        g = one(x[i], y[i])
        np.testing.assert_allclose(task.gradients[i], g, rtol=1e-5, atol=1e-6)
        std = jnp.std(g)  # 0 where the margin is saturated (already misclassified): kept 0
        np.testing.assert_allclose(scaled[i], g / std if std > 0 else g, rtol=1e-5, atol=1e-6)
    assert np.any(task.gradients != 0)
    np.testing.assert_array_equal(task.labels, y)


def test_task_round_trip_and_corrupted_file_refused(victim_and_task, tmp_path):
    task = victim_and_task[3]
    path = save_gradient_task(tmp_path / "task", task)
    back = load_gradient_task(path)
    assert back.name == "mlp"
    for field in ("images", "gradients", "labels"):
        np.testing.assert_array_equal(getattr(back, field), getattr(task, field))
    # The arrays' data files (OCDBT ``d/`` folders): altered bytes, then a truncation.
    files = [f for f in (path / "0" / "task").rglob("*") if f.is_file() and f.parent.name == "d"]
    raws = [f.read_bytes() for f in files]
    for f, raw in zip(files, raws):
        altered = raw[: len(raw) // 4] + np.random.default_rng(1).bytes(len(raw) // 2)
        f.write_bytes(altered + raw[len(altered) :])
    with pytest.raises(CheckpointCorruptedError, match=str(path)):
        load_gradient_task(path)
    for f, raw in zip(files, raws):
        f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointCorruptedError, match="orbax cannot read it"):
        load_gradient_task(path)
    with pytest.raises(ValueError, match="already exists"):
        save_gradient_task(path, task)


def test_bad_input_names_the_argument():
    variables = {"params": {"c": jnp.zeros(SHAPE)}}
    kw = dict(key=jax.random.key(0), steps=1, progress=False)
    with pytest.raises(ValueError, match="`tasks` must hold at least one"):
        meta_train(Constant(), variables, [], **kw)
    odd = GradientTask(*(np.zeros((2, 3, 3, 1), np.float32),) * 2, np.zeros(2, np.int32), "odd")
    with pytest.raises(ValueError, match=r"`tasks` must hold tasks of one image shape.*tasks\[1\]"):
        meta_train(Constant(), variables, [TASKS[0], odd], **kw)
    bad = TASKS[0]._replace(gradients=np.zeros((3, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"`tasks\[0\]`"):
        meta_train(Constant(), variables, [bad], **kw)
    with pytest.raises(ValueError, match="`method`"):
        meta_train(Constant(), variables, TASKS, method="sgd", **kw)
    with pytest.raises(ValueError, match="`inner_steps`"):
        meta_train(Constant(), variables, TASKS, inner_steps=0, **kw)


def test_cli_refuses_bad_flags(capsys):
    from jaxadv.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["meta-train", "--out", "x", "--steps", "0"])
    assert exit_.value.code == 2
    assert "--steps must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_zoo_estimate_agrees_with_the_white_box_gradient(victim_and_task):
    victim, x, y, task = victim_and_task
    # The ZOO estimate (symmetric differences, h = 1e-2 here) agrees to O(h²) on this smooth net.
    zoo = collect_gradients(victim, x, y, name="mlp", standardize=False, estimator="zoo", h=1e-2)
    np.testing.assert_allclose(zoo.gradients, task.gradients, atol=2e-3)


@pytest.mark.slow
def test_cli_tiny_run(tmp_path, capsys):
    from jaxadv.cli import main
    from jaxadv.training import restore_meta_attacker
    from jaxadv.models import MetaAttacker

    out = tmp_path / "meta"
    argv = ["meta-train", "--out", str(out), "--surrogates", "mlp", "--steps", "2",
            "--gradient-images", "16", "--surrogate-epochs", "1", "--features", "4", "8",
            "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--held-out", "mlp-deep"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "cosine" in text and str(out) in text
    variables, record = restore_meta_attacker(out, MetaAttacker(features=(4, 8)), (28, 28, 1))
    assert record["losses"] and jax.tree.leaves(variables)
