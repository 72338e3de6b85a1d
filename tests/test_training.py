"""Training small classifiers: reproducibility, learning a separable task, input validation."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.models import from_flax
from jaxadv.training import accuracy, random_shift, train_classifier

SHAPE = (8, 8, 1)


class TinyNet(nn.Module):
    """Conv, batch norm, dropout, dense: the training paths of the real nets (``batch_stats``
    updates, the dropout rng) at a fraction of their compile time. Every test trains it with the
    same augmentation, so the compiled step is shared."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.5)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x.reshape(x.shape[0], -1))
        return nn.Dense(3)(x)


def _train(images, labels, seed=0, **kwargs):
    kwargs = {"epochs": 2, "batch_size": 32, "progress": False} | kwargs
    return train_classifier(
        TinyNet(), images, labels, key=jax.random.key(seed), augment=random_shift(1), **kwargs
    )


def _separable(n=96, seed=0):
    """Three classes told apart by which third of the image is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype(np.int32)
    images = 0.3 * rng.random((n,) + SHAPE).astype(np.float32)
    for i, y in enumerate(labels):
        images[i, :, 3 * y : 3 * y + 2] += 0.7
    return images, labels


@pytest.fixture(scope="module")
def trained():
    """TinyNet after 2 epochs on the separable task (shared: training compiles once a module)."""
    return _train(*_separable())


def test_same_key_gives_bit_identical_variables_and_another_key_does_not(trained):
    images, labels = _separable()
    a, b, c = trained, _train(images, labels, 0), _train(images, labels, 1)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, a, c)))


def test_learns_a_separable_task_and_prints_progress(capsys):
    images, labels = _separable()
    variables = _train(images, labels, epochs=8, learning_rate=1e-2, progress=True)
    victim = from_flax(TinyNet(), variables, input_shape=SHAPE, num_classes=3)
    test_images, test_labels = _separable(seed=1)
    assert accuracy(victim, test_images, test_labels, batch_size=40) >= 0.95
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 8 and lines[-1].startswith("epoch 8/8") and "train acc" in lines[-1]


def test_batch_norm_statistics_are_trained(trained):
    init = jax.eval_shape(TinyNet().init, jax.random.key(0), jnp.zeros((1,) + SHAPE))
    assert set(trained) == {"params", "batch_stats"}
    stats = trained["batch_stats"]["BatchNorm_0"]
    assert jax.tree.map(np.shape, stats) == jax.tree.map(
        np.shape, init["batch_stats"]["BatchNorm_0"]
    )
    assert not np.allclose(stats["mean"], 0.0) and not np.allclose(stats["var"], 1.0)


def test_accuracy_handles_a_ragged_last_batch(trained):
    images, labels = _separable(n=10, seed=2)
    victim = from_flax(TinyNet(), trained, input_shape=SHAPE, num_classes=3)
    predictions = np.argmax(np.asarray(victim.batch(images)), axis=-1)
    expected = float(np.mean(predictions == labels))
    assert accuracy(victim, images, labels, batch_size=4) == pytest.approx(expected)


def test_random_shift_keeps_shape_and_moves_content():
    images = jnp.zeros((4, 6, 6, 1)).at[:, 2:4, 2:4].set(1.0)
    shifted = jax.jit(random_shift(2))(jax.random.key(0), images)
    assert shifted.shape == images.shape
    np.testing.assert_array_equal(jnp.sum(shifted, axis=(1, 2, 3)), 4.0)  # nothing cut off
    assert not np.array_equal(shifted, images)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"images": np.zeros((4, 8, 8), np.float32)}, "`images` must be a batch of images"),
        ({"labels": np.zeros(5, np.int32)}, r"`labels` must have shape \(4,\)"),
        ({"labels": np.array([0, 1, 2, 3], np.int32)}, r"`labels` must lie in \[0, 2\]"),
        ({"labels": np.zeros(4, np.float32)}, "`labels` must hold integer"),
        ({"images": np.full((4,) + SHAPE, np.nan, np.float32)}, "`images` must be finite"),
        ({"epochs": 0}, "`epochs`"),
        ({"batch_size": 1.5}, "`batch_size`"),
        ({"learning_rate": -1.0}, "`learning_rate`"),
        ({"key": 0}, "`key` must be one PRNG key.*int 0"),
        ({"key": np.zeros((2, 2), np.uint32)}, r"`key`.*shape \(2, 2\)"),
    ],
)
def test_invalid_inputs_raise_value_errors(change, match):
    args = {
        "images": np.zeros((4,) + SHAPE, np.float32),
        "labels": np.zeros(4, np.int32),
        "epochs": 1,
        "batch_size": 2,
        "learning_rate": 1e-3,
    } | change
    images, labels = args.pop("images"), args.pop("labels")
    key = args.pop("key", jax.random.key(0))
    with pytest.raises(ValueError, match=match):
        train_classifier(TinyNet(), images, labels, key=key, progress=False, **args)
