"""Papernot et al.'s substitute attack: ``training.train_substitute`` (Jacobian-based dataset
augmentation from label queries) and ``metrics.transfer_success``.

The augmentation is checked against a numpy transcription of the paper's definition on a linear
substitute; the queries against an oracle that logs every row it is asked; resuming against an
uninterrupted run."""

from __future__ import annotations

import collections
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim, mlp_apply

from jaxadv import attacks, metrics, models, training
from jaxadv.models.saliency import from_flax_saliency

LINEAR = models.ReluMLP(hidden=(), num_classes=3)  # a linear substitute: logits W·x + b
SHAPE = (2, 2, 1)  # 4 pixels: 8 seeds already say something about the victim
_ASKED: list[bytes] = []  # every non-padding row the logging oracle was asked


def _logging_apply(variables, x):
    """The conftest MLP, logging the rows it is asked (zero rows are the chunks' padding)."""

    def log(x):
        rows = np.asarray(x).reshape(len(x), -1)
        _ASKED.extend(r.tobytes() for r in rows if np.any(r != 0))

    jax.debug.callback(log, x)
    return mlp_apply(variables, x)


def _images(seed, n):
    # numpy draws: a jax.random draw of a new shape is one more compilation
    return np.random.default_rng(seed).random((n,) + SHAPE, np.float32)


@pytest.fixture(scope="module")
def victim():
    return make_mlp_victim(shape=SHAPE)


@pytest.fixture(scope="module")
def oracle(victim):
    """The victim's labels, every query logged (one oracle for all tests: one compilation)."""
    return models.hard_label(victim.replace(apply_fn=_logging_apply))


@pytest.fixture(scope="module")
def trained(oracle):
    """A linear substitute of the MLP victim: 8 seeds, 4 rounds (128 points)."""
    _ASKED.clear()
    holdout = _images(2, 256)
    out = training.train_substitute(
        oracle, _images(1, 8), LINEAR, key=jax.random.key(0), rounds=4, epochs=20,
        batch_size=8, learning_rate=3e-2, holdout=holdout,
    )  # fmt: skip
    return out, holdout, list(_ASKED)


def _numpy_augmentation(kernel, bias, x, y, lam, jacobian):
    """x + λ·sign(∂F_y/∂x) for F = W·vec(x) + b (logits) or softmax of it (probabilities)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    w = kernel.astype(np.float64)  # [in, classes]
    z = flat @ w + bias
    rows = w[:, y].T  # ∂z_y/∂x
    if jacobian == "probabilities":
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p_y = p[np.arange(len(y)), y][:, None]
        rows = p_y * (rows - p @ w.T)  # ∂p_y/∂x = p_y (w_y − Σ_j p_j w_j)
    return (flat + lam * np.sign(rows)).reshape(x.shape)


@pytest.mark.parametrize("jacobian", ["probabilities", "logits"])
def test_augmentation_is_the_papers_equation_on_a_linear_substitute(jacobian):
    rng = np.random.default_rng(3)
    params = {"logits": {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3)}}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    substitute = models.from_flax(LINEAR, {"params": params}, input_shape=SHAPE, num_classes=3)
    x, y = _images(4, 6), np.array([0, 1, 2, 2, 1, 0])
    got = training.jacobian_augmentation(substitute, x, y, -0.1, jacobian=jacobian)
    want = _numpy_augmentation(
        np.asarray(params["logits"]["kernel"]), np.asarray(params["logits"]["bias"]), x, y, -0.1,
        jacobian,
    )  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    clipped = training.jacobian_augmentation(substitute, x, y, 0.5, jacobian=jacobian, clip=True)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    with pytest.raises(ValueError, match="`answers`"):
        training.jacobian_augmentation(substitute, x, y[:3], 0.1)


def test_the_set_doubles_and_each_new_point_costs_one_label_query(trained, victim):
    (substitute, record), holdout, asked = trained
    assert record.set_sizes == (8, 16, 32, 64, 128)
    assert record.queries == (8, 8, 16, 32, 64) and record.total_queries == 128
    assert record.holdout_queries == 256 and record.step_sizes == (0.1,) * 4
    # The oracle was asked every point of the set (and the holdout) exactly once, nothing else.
    expected = [r.tobytes() for r in record.images.reshape(128, -1)]
    expected += [r.tobytes() for r in holdout.reshape(256, -1)]
    assert collections.Counter(asked) == collections.Counter(expected)
    np.testing.assert_array_equal(
        record.answers, np.argmax(np.asarray(victim.batch(record.images)), -1)
    )
    # Each round's new points are the previous set stepped by exactly ±λ in every pixel.
    steps = np.abs(record.images[8:16] - record.images[:8])
    np.testing.assert_allclose(steps, 0.1, atol=1e-6)


def test_the_substitute_agrees_with_the_victim_above_chance(trained, victim):
    (substitute, record), holdout, _ = trained
    labels = np.argmax(np.asarray(victim.batch(holdout)), -1)
    chance = np.bincount(labels).max() / len(labels)  # always answering the commonest class
    assert len(record.agreement) == 5
    # Measured: 0.61 after round 0 (the seeds alone), 0.79 after round 4; chance 0.42. (Other
    # seed draws rise less: the augmentation explores from where the seeds are.)
    assert record.agreement[-1] > chance + 0.25, (record.agreement, chance)
    assert record.agreement[-1] > record.agreement[0] + 0.1, record.agreement
    mine = np.argmax(np.asarray(substitute.batch(holdout)), -1)
    assert np.mean(mine == labels) == pytest.approx(record.agreement[-1])


def test_periodic_step_size_and_reservoir_sampling(oracle):
    _, record = training.train_substitute(
        oracle, _images(1, 8), LINEAR, key=jax.random.key(0), rounds=4, epochs=1, batch_size=8,
        tau=2, reservoir=(2, 3),
    )  # fmt: skip
    assert record.step_sizes == (0.1, 0.1, -0.1, -0.1)  # λ·(−1)^⌊ρ/τ⌋
    # σ = 2 doublings, then κ = 3 points per round: n·2^σ + κ·(rounds − σ) = 32 + 6 queries.
    assert record.queries == (8, 8, 16, 3, 3) and record.set_sizes == (8, 16, 32, 35, 38)
    # Round 2 augments 3 of the 16 points round 1 added, stepping by −λ.
    base = record.images[16:32].reshape(16, -1)
    for new in record.images[32:35].reshape(3, -1):
        assert any(np.allclose(np.abs(new - b), 0.1, atol=1e-6) for b in base)
    assert training.periodic_step_size(0.1, 5, 3) == -0.1
    assert training.periodic_step_size(0.1, 6, 3) == pytest.approx(0.1)


def test_resume_after_an_interrupted_round_gives_the_same_bits(oracle, tmp_path):
    args = (oracle, _images(1, 8), LINEAR)
    options = dict(key=jax.random.key(7), rounds=2, epochs=1, batch_size=8)
    straight = training.train_substitute(*args, **options)
    first = training.train_substitute(*args, **options, checkpoint_dir=tmp_path)
    shutil.rmtree(tmp_path / "3")  # the last round was lost: resume after round 2
    with pytest.raises(ValueError, match="resume=True"):
        training.train_substitute(*args, **options, checkpoint_dir=tmp_path)
    resumed = training.train_substitute(*args, **options, checkpoint_dir=tmp_path, resume=True)
    finished = training.train_substitute(*args, **options, checkpoint_dir=tmp_path, resume=True)
    for run in (first, resumed, finished):
        assert run.record.queries == straight.record.queries
        np.testing.assert_array_equal(run.record.images, straight.record.images)
        for a, b in zip(
            jax.tree.leaves(run.victim.variables), jax.tree.leaves(straight.victim.variables)
        ):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="lam is 0.1 in the checkpoint but 0.2 here"):
        training.train_substitute(
            *args, **{**options, "lam": 0.2}, checkpoint_dir=tmp_path, resume=True
        )


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(rounds=0), "`rounds`"),
        (dict(lam=0.0), "`lam`"),
        (dict(lam=-0.1), "`lam`"),
        (dict(seed_images=np.zeros((3, 16), np.float32)), "`seed_images`"),
        (dict(seed_images=np.zeros((0, 4, 4, 1), np.float32)), "`seed_images`"),
        (dict(seed_images=np.full((2, 4, 4, 1), 2.0, np.float32)), "`seed_images`"),
        (dict(tau=0), "`tau`"),
        (dict(reservoir=(2,)), "`reservoir`"),
        (dict(jacobian="hessian"), "`jacobian`"),
        (dict(module=models.ReluMLP(hidden=(), num_classes=4)), "`module`"),
        (dict(black_box_victim="victim"), "`black_box_victim`"),
    ],
)
def test_bad_input_names_the_argument(victim, change, match):
    options = dict(key=jax.random.key(0), **change)
    args = [
        options.pop(k, d)
        for k, d in (
            ("black_box_victim", victim),
            ("seed_images", _images(1, 2)),
            ("module", LINEAR),
        )
    ]
    with pytest.raises(ValueError, match=match):
        training.train_substitute(*args, **options)


def test_transfer_success_evaluates_the_sources_examples_on_the_target(trained, oracle, victim):
    (substitute, _), holdout, _ = trained
    images = jnp.asarray(holdout[:32])
    labels = jnp.argmax(victim.batch(images), -1).astype(jnp.int32)
    fgsm = attacks.fgsm()
    hp = fgsm.hparams(eps=0.3)
    out = metrics.transfer_success(fgsm, substitute, oracle, hp, images, labels, jax.random.key(1))
    x_adv = out.result.x_adv
    assert np.all(np.abs(np.asarray(x_adv - images)) <= 0.3 + 1e-6)
    fooled = np.argmax(np.asarray(victim.batch(x_adv)), -1) != np.asarray(labels)
    np.testing.assert_array_equal(out.fooled, fooled)
    assert out.clean_correct.all() and out.rate == pytest.approx(fooled.mean())
    assert out.misclassification == pytest.approx(fooled.mean())
    # Transfer beats random signs of the same budget (the substitute learnt the victim's
    # boundaries); source and target equal: transfer is white-box success.
    signs = np.sign(np.random.default_rng(5).normal(size=images.shape))
    noisy = np.clip(np.asarray(images) + 0.3 * signs, 0, 1)
    noise = np.mean(np.argmax(np.asarray(victim.batch(noisy)), -1) != np.asarray(labels))
    assert out.rate > noise, (out.rate, noise)
    same = metrics.transfer_success(
        fgsm, substitute, substitute, hp, images, labels, jax.random.key(1)
    )
    np.testing.assert_array_equal(same.fooled, same.source_success)
    with pytest.raises(ValueError, match="same inputs and classes"):
        metrics.transfer_success(
            fgsm, substitute, victim.replace(num_classes=4), hp, images, labels, jax.random.key(1)
        )


# -- saliency victims: maps by regression ---------------------------------------------------------


class TinyMap(nn.Module):
    """A small non-linear saliency model: maps in [0, 1] of the image's size."""

    output_kind: str = "unit"

    @nn.compact
    def __call__(self, x, train=False):
        h = jnp.tanh(3.0 * nn.Conv(4, (3, 3))(x))
        return nn.sigmoid(3.0 * nn.Conv(1, (3, 3))(h))[..., 0]


class LinearMap(nn.Module):
    """A linear saliency substitute: map = reshape(W·vec(x) + b)."""

    output_kind: str = "unit"

    @nn.compact
    def __call__(self, x, train=False):
        b, h, w, _ = x.shape
        return nn.Dense(h * w)(x.reshape(b, -1)).reshape(b, h, w)


MAP_SHAPE = (4, 4, 1)


def _scenes(seed, n):
    return np.random.default_rng(seed).random((n,) + MAP_SHAPE, np.float32)


def test_map_augmentation_is_the_vector_jacobian_product_with_the_centred_map():
    rng = np.random.default_rng(8)
    kernel, bias = rng.normal(size=(16, 16)), rng.normal(size=16)
    params = {"Dense_0": {"kernel": kernel, "bias": bias}}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    substitute = from_flax_saliency(LinearMap(), {"params": params}, input_shape=MAP_SHAPE)
    x, maps = _scenes(9, 5), rng.random((5, 4, 4)).astype(np.float32)
    got = training.jacobian_augmentation(substitute, x, maps, 0.1)
    # ∇_x <W·vec(x) + b, o − mean o> = W (o − mean o)
    centred = maps.reshape(5, -1) - maps.reshape(5, -1).mean(1, keepdims=True)
    want = x.reshape(5, -1) + 0.1 * np.sign(centred @ kernel.T)
    np.testing.assert_allclose(got.reshape(5, -1), want, rtol=0, atol=1e-6)


@pytest.mark.slow  # ~4 s of CPU (its own compilations): over the default budget
def test_a_saliency_substitute_regresses_the_victims_maps():
    module = TinyMap()
    variables = module.init(jax.random.key(0), jnp.zeros((1,) + MAP_SHAPE))
    victim = from_flax_saliency(module, variables, input_shape=MAP_SHAPE)
    holdout = _scenes(2, 128)
    substitute, record = training.train_substitute(
        victim, _scenes(1, 8), LinearMap(), key=jax.random.key(0), rounds=4, epochs=20,
        batch_size=8, learning_rate=3e-2, holdout=holdout,
    )  # fmt: skip
    assert record.queries == (8, 8, 16, 32, 64) and record.answers.shape == (128, 4, 4)
    np.testing.assert_allclose(record.answers, victim.batch(record.images), atol=1e-6)
    # Measured: CC 0.45 after round 0, 0.84 after round 4 (0.84 from other seeds too).
    assert record.agreement[0] < 0.6 and record.agreement[-1] > 0.75, record.agreement
    assert substitute.map_shape == victim.map_shape and substitute.output == "unit"
    with pytest.raises(ValueError, match="`module`"):
        training.train_substitute(
            victim, _scenes(1, 2), models.ReluMLP(hidden=(), num_classes=3),
            key=jax.random.key(0),
        )  # fmt: skip
