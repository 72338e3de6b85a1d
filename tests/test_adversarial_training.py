"""Adversarial training (Madry et al. 2018; TRADES, Zhang et al. 2019) with the attack inside the
compiled train step: it buys robustness a plain training does not, TRADES' parts match their
definitions, an interrupted run resumes bit for bit, the CLI runs end to end, bad input is refused.

The AT-vs-plain run, the resume and the CLI share one compiled train step (same module, attack,
method and batch shape; the budget is a dynamic argument, so eps = 0, plain training through the
same code from the same initialisation, reuses it).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxadv.attacks import Attack, pgd
from jaxadv.cli import main
from jaxadv.data import load_digits
from jaxadv.metrics import robust_accuracy
from jaxadv.models import ReluMLP, from_flax, restore_variables
from jaxadv.training import kl_divergence, trades_attack, trades_loss, train_adversarial
from tests.conftest import make_mlp_victim

EPS = 0.15
MODULE = ReluMLP(hidden=(64,), num_classes=10)  # the CLI's --model mlp
ATTACK = pgd(steps=5)  # the CLI's --steps 5
SETTINGS = dict(batch_size=128, learning_rate=5e-3, progress=False)


@functools.cache
def _digits():
    return load_digits(size=8)


def _train(eps, epochs, attack=ATTACK, **kwargs):
    d = _digits()
    return train_adversarial(
        MODULE, d.train_images, d.train_labels, attack=attack, hp=attack.hparams(eps=eps),
        key=jax.random.key(0), epochs=epochs, **{**SETTINGS, **kwargs},
    )  # fmt: skip


def _robust(variables, steps=10):
    """(clean, PGD robust) accuracy on the digits test split at EPS."""
    d = _digits()
    victim = from_flax(MODULE, variables, input_shape=(8, 8, 1), num_classes=10)
    evaluation = pgd(steps=steps)
    result = evaluation.batch(
        victim, evaluation.hparams(eps=EPS), d.test_images, d.test_labels, jax.random.key(1)
    )
    clean = np.asarray(jnp.argmax(victim.batch(d.test_images), -1)) == d.test_labels
    return float(clean.mean()), robust_accuracy(result, d.test_labels, clean)


@pytest.mark.slow
def test_adversarial_training_buys_robustness_plain_training_does_not():
    at_clean, at_robust = _robust(_train(EPS, 8).variables)
    plain_clean, plain_robust = _robust(_train(0.0, 8).variables)  # same init, data, keys
    # Measured (8x8 digits, 8 epochs): AT clean 0.91 robust 0.53; plain clean 0.92 robust 0.18.
    assert at_clean > 0.6 and plain_clean > 0.8  # both learnt (a constant model is 10%)
    assert at_robust > plain_robust + 0.15, (at_robust, plain_robust)


@pytest.mark.slow
def test_trades_training_buys_robustness_too():
    d, attack = _digits(), trades_attack(steps=5)
    run = train_adversarial(
        MODULE, d.train_images, d.train_labels, attack=attack, hp=attack.hparams(eps=EPS),
        key=jax.random.key(0), epochs=8, method="trades", **SETTINGS,
    )  # fmt: skip
    clean, robust = _robust(run.variables)
    plain_clean, plain_robust = _robust(_train(0.0, 8).variables)
    # Measured: TRADES clean 0.91 robust 0.57 (plain: robust 0.18).
    assert clean > 0.6 and robust > plain_robust + 0.15, (clean, robust, plain_robust)


def _checksum(directory, step):
    with ocp.CheckpointManager(directory) as manager:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return meta["meta"]["checksum"]["tree"]  # sha256 over params, collections, optimiser state


@pytest.mark.slow
def test_resume_is_bit_for_bit_and_another_configuration_is_refused(tmp_path):
    whole = _train(EPS, 3, checkpoint_dir=tmp_path / "whole")
    _train(EPS, 2, checkpoint_dir=tmp_path / "cut")
    resumed = _train(EPS, 3, checkpoint_dir=tmp_path / "cut", resume=True)
    for a, b in zip(jax.tree.leaves(whole.variables), jax.tree.leaves(resumed.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert whole[1:] == resumed[1:]  # losses and accuracies, epochs 1-2 read back
    assert _checksum(tmp_path / "whole", 3) == _checksum(tmp_path / "cut", 3)  # + Adam's state
    with pytest.raises(ValueError, match=r"already holds checkpoints.*resume=True"):
        _train(EPS, 3, checkpoint_dir=tmp_path / "cut")
    with pytest.raises(ValueError, match=r"another training configuration: hp is"):
        _train(0.1, 4, checkpoint_dir=tmp_path / "cut", resume=True)


@pytest.mark.slow
def test_cli_trains_checkpoints_writes_a_loadable_victim_and_resumes(tmp_path, capsys):
    argv = ["adv-train", "--model", "mlp", "--size", "8", "--steps", "5", "--eps", str(EPS),
            "--learning-rate", "5e-3", "--eval-steps", "10", "--eval-images", "359", "--quiet",
            "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "v")]  # fmt: skip
    assert main([*argv, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "robust accuracy" in out and str(tmp_path / "v") in out
    assert main([*argv, "--epochs", "3", "--resume", "--overwrite"]) == 0
    capsys.readouterr()
    variables = restore_variables(tmp_path / "v", MODULE, (8, 8, 1))  # the usual loader
    direct = _train(EPS, 3).variables
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_smoke_tiny_run_learns_and_resumes_bit_for_bit(tmp_path, capsys):
    """The default run's check (the digits runs above are slow): a tiny MLP on 4x4 inputs whose
    labels a fixed network gives; 2 + 1 epochs resumed equal 3 straight, and the adversarial
    loss falls."""
    teacher = make_mlp_victim()
    x = np.asarray(jax.random.uniform(jax.random.key(0), (64, 4, 4, 1)))
    y = np.asarray(jnp.argmax(teacher.batch(x), -1))
    module, attack = ReluMLP(hidden=(8,), num_classes=3), pgd(steps=1)
    run = functools.partial(
        train_adversarial, module, x, y, attack=attack, hp=attack.hparams(eps=0.05),
        key=jax.random.key(1), batch_size=32, learning_rate=3e-2, progress=False,
    )  # fmt: skip
    whole = run(epochs=3, checkpoint_dir=tmp_path / "whole", checkpoint_every=3)  # one save
    run(epochs=2, checkpoint_dir=tmp_path / "cut", checkpoint_every=2)
    capsys.readouterr()
    resumed = run(epochs=3, checkpoint_dir=tmp_path / "cut", resume=True, progress=True)
    err = capsys.readouterr().err
    assert "resumed from epoch 2" in err
    assert re.search(r"epoch 3/3  loss \d\.\d{4}  clean acc [\d.]+%  adv acc [\d.]+%  [\d.]+ s", err)
    for a, b in zip(jax.tree.leaves(whole.variables), jax.tree.leaves(resumed.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert whole[1:] == resumed[1:]
    assert _checksum(tmp_path / "whole", 3) == _checksum(tmp_path / "cut", 3)
    assert whole.losses[-1] < whole.losses[0]


def test_goodfellow_loss_mixes_the_clean_and_the_adversarial_losses():
    """One step on the whole batch: α = 1 reports the initial model's clean cross-entropy (by
    hand), α = 0 a larger one (the adversarial examples'), and α = 0.3 their mix (the attack sees
    the same model and keys whatever α is; one compiled step serves every α)."""
    teacher = make_mlp_victim()
    x = np.asarray(jax.random.uniform(jax.random.key(0), (32, 4, 4, 1)))
    y = np.asarray(jnp.argmax(teacher.batch(x), -1))
    module, attack, key = ReluMLP(hidden=(8,), num_classes=3), pgd(steps=1), jax.random.key(1)
    run = functools.partial(
        train_adversarial, module, x, y, attack=attack, hp=attack.hparams(eps=0.1), key=key,
        batch_size=32, epochs=1, progress=False,
    )  # fmt: skip
    loss = {a: run(method="goodfellow", clean_weight=a).losses[0] for a in (0.0, 0.3, 1.0)}
    variables = module.init(jax.random.split(key)[0], x[:1], train=False)
    logits = module.apply(variables, jnp.asarray(x), train=False)
    clean = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
    assert loss[1.0] == pytest.approx(clean, rel=1e-5)
    assert loss[1.0] < loss[0.0]  # the attack raised the loss it mixes in
    assert loss[0.3] == pytest.approx(0.3 * loss[1.0] + 0.7 * loss[0.0], rel=1e-5)


def test_fine_tuning_starts_from_the_given_variables_and_checks_them():
    """``variables=`` starts from a trained model: with a negligible step the result is that
    model; variables of another module are refused, naming the difference."""
    teacher = make_mlp_victim()
    x = np.asarray(jax.random.uniform(jax.random.key(0), (64, 4, 4, 1)))
    y = np.asarray(jnp.argmax(teacher.batch(x), -1))
    module, attack = ReluMLP(hidden=(8,), num_classes=3), pgd(steps=1)
    run = functools.partial(
        train_adversarial, module, x, y, attack=attack, hp=attack.hparams(eps=0.05),
        key=jax.random.key(1), batch_size=32, progress=False, epochs=1,
    )  # fmt: skip
    start = run(learning_rate=3e-2).variables
    tuned = run(learning_rate=1e-12, variables=start).variables
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(tuned)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-9)
    other = ReluMLP(hidden=(5,), num_classes=3).init(jax.random.key(0), x[:1], train=False)
    with pytest.raises(ValueError, match="`variables` do not match the module's"):
        run(learning_rate=1e-3, variables=other)


class _Pair(NamedTuple):
    label: jax.Array
    mask: jax.Array


@dataclasses.dataclass(frozen=True)
class _PairLabelsPGD(Attack):
    """PGD taking its labels as a pytree ``(label, mask)`` (as the dual attack takes
    ``DualLabels``); the mask is carried and unused."""

    def check_inputs(self, victim, images, labels, targets):
        x, y, t = super().check_inputs(victim, images, labels.label, targets)
        return x, _Pair(y, jnp.asarray(labels.mask, jnp.float32)), t

    def loss_fn(self, victim, hp, x0, label, target):
        return super().loss_fn(victim, hp, x0, label.label, target)

    def success(self, logits, label, target):
        return super().success(logits, getattr(label, "label", label), target)


@pytest.mark.slow
def test_a_pytree_of_attack_labels_is_sliced_with_the_images():
    """Labels passed as ``(label, mask)`` reach the attack batch by batch, aligned with the
    images: the run equals the one with plain labels bit for bit."""
    d = _digits()
    pair = _PairLabelsPGD(**{f.name: getattr(ATTACK, f.name) for f in dataclasses.fields(ATTACK)})
    masks = np.ones(d.train_images.shape, np.float32)
    with_pair = _train(EPS, 1, attack=pair, attack_labels=_Pair(d.train_labels, masks))
    plain = _train(EPS, 1)
    for a, b in zip(jax.tree.leaves(plain.variables), jax.tree.leaves(with_pair.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# -- TRADES ------------------------------------------------------------------------------------


def test_trades_inner_attack_raises_the_kl_inside_the_ball():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(3), (16, 4, 4, 1))
    labels = jnp.argmax(victim.batch(images), -1)
    attack = trades_attack(steps=3)
    hp = attack.hparams(eps=0.1, step_size=0.05)  # 3 steps reach the sphere
    result = attack.batch(victim, hp, images, labels, jax.random.key(4))
    noise = jax.random.uniform(jax.random.key(5), (8, *images.shape), minval=-0.1, maxval=0.1)
    kl_of = jax.jit(lambda x: kl_divergence(victim.batch(images), victim.batch(x)))
    kl_adv = np.asarray(kl_of(result.x_adv))
    kl_random = np.stack([np.asarray(kl_of(jnp.clip(images + n, 0.0, 1.0))) for n in noise])
    assert np.max(np.abs(np.asarray(result.x_adv - images))) <= 0.1 + 1e-6
    assert np.all(kl_adv > kl_random.max(axis=0))  # beats 8 random points of the ball, each
    np.testing.assert_allclose(-np.asarray(result.loss), kl_adv, rtol=1e-4, atol=1e-7)


def test_trades_loss_is_the_formula_by_hand():
    rng = np.random.default_rng(0)
    clean, adv = rng.normal(size=(2, 6, 4)).astype(np.float32) * 3
    y = rng.integers(0, 4, 6)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(clean.astype(np.float64)), softmax(adv.astype(np.float64))
    ce = -np.log(p[np.arange(6), y]).mean()
    kl = (p * np.log(p / q)).sum(-1).mean()  # KL(f(x) ‖ f(x')), batch mean
    loss = jax.jit(trades_loss)  # one program, not an eager op at a time
    np.testing.assert_allclose(float(loss(clean, adv, y, 6.0)), ce + 6.0 * kl, rtol=1e-5)
    assert float(loss(clean, clean, y, 6.0)) == pytest.approx(ce, rel=1e-5)  # KL(p‖p) = 0


@pytest.mark.slow
def test_trades_training_step_loss_is_the_formula_on_its_batch():
    """One TRADES step on one batch of 64: the reported loss is CE + β·KL of the initial model at
    the clean batch and at the attack's output (recomputed from the same keys)."""
    from jaxadv import _compile
    from jaxadv.training._keys import seed_words
    from jaxadv.training._saliency_train import _epoch_order

    d = _digits()
    x, y = d.train_images[:64], d.train_labels[:64]
    attack, key, beta = trades_attack(steps=3), jax.random.key(7), 2.5
    hp = attack.hparams(eps=EPS)
    run = train_adversarial(MODULE, x, y, attack=attack, hp=hp, key=key, method="trades",
                            beta=beta, epochs=1, batch_size=64, progress=False)  # fmt: skip
    init_key, step_key = jax.random.split(key)
    variables = MODULE.init(init_key, x[:1], train=False)
    order = _epoch_order(seed_words(key), 0, 64)
    victim = from_flax(MODULE, variables, input_shape=(8, 8, 1), num_classes=10)
    with _compile.fast_threefry():  # the trainer's key lowering
        attack_key = jax.random.split(jax.random.fold_in(jax.random.fold_in(step_key, 0), 0))[0]
        x_adv = attack.batch(victim, hp, x[order], y[order], attack_key).x_adv
    by_hand = trades_loss(victim.batch(x[order]), victim.batch(x_adv), y[order], beta)
    assert run.losses[0] == pytest.approx(float(by_hand), rel=1e-5)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hp=ATTACK.hparams(eps=0.1)._replace(eps=-0.1)), r"`hp.eps` must be >= 0; got -0.1"),
        (dict(attack=optax.adam(1e-3)), r"`attack` must be an attack of the library"),
        (dict(method="trades", beta=-1.0), r"`beta` must be a number >= 0; got -1.0"),
        (dict(attack_labels=np.zeros(5, np.int32)), r"`attack_labels` must have a leading .* 8"),
        (dict(attack_labels=(np.zeros(8), np.zeros((7, 4, 4, 1)))), r"leaf \[1\] has shape \(7"),
        (dict(method="fgsm"), r"`method`"),
        (dict(method="goodfellow", clean_weight=1.5), r"`clean_weight` must be a number in"),
    ],
)
def test_bad_arguments_are_named(change, message):
    x, y = np.full((8, 4, 4, 1), 0.5, np.float32), np.zeros(8, np.int32)
    kwargs = dict(attack=ATTACK, hp=ATTACK.hparams(eps=0.1), key=jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        train_adversarial(ReluMLP(hidden=(4,), num_classes=3), x, y, **{**kwargs, **change})


def test_attacks_of_no_steps_are_refused():
    with pytest.raises(ValueError, match="`steps`"):
        pgd(steps=0)
    with pytest.raises(ValueError, match="`steps`"):
        trades_attack(steps=0)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--eps", "-0.5"], "--eps must be >= 0; got -0.5"),
        (["--steps", "0"], "--steps must be >= 1; got 0"),
        (["--beta", "-1"], "--beta must be >= 0; got -1.0"),
        (["--resume"], "--resume needs --checkpoint-dir"),
        (["--method", "dual"], "--method dual needs foreground masks: use --data scenes"),
        (["--eps-b", "0.1"], "--eps-b is the dual attack's background budget; --method is pgd"),
        (["--data", "scenes", "--method", "dual", "--eps-b", "-1"], "--eps-b must be >= 0"),
    ],
)
def test_cli_bad_flags(capsys, tmp_path, flags, message):
    try:
        code = main(["adv-train", "--out", str(tmp_path / "v"), *flags])
    except SystemExit as exit_:  # argparse's error() exits
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "v").exists()


@pytest.mark.slow
def test_cli_trains_at_dual_on_the_masked_scenes(tmp_path, capsys):
    argv = ["adv-train", "--data", "scenes", "--method", "dual", "--model", "mlp", "--train",
            "24", "--epochs", "1", "--steps", "2", "--eval-images", "6", "--eval-steps", "2",
            "--batch-size", "12", "--out", str(tmp_path / "v"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained with dual (linf eps_f 0.0313725, eps_b 0.156863, 2 steps)" in out
    assert "held out (6 images)" in out and ", dual (eps_b 0.156863) " in out
    variables = restore_variables(tmp_path / "v", ReluMLP(hidden=(64,), num_classes=6),
                                  (32, 32, 3))  # fmt: skip
    assert jax.tree.leaves(variables)
