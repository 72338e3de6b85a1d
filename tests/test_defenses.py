"""Input defences: a victim behind a per-image transform (the bilateral filter of Table 3)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from conftest import make_linear_victim, make_mlp_victim

from jaxadv import attacks
from jaxadv.image._bilateral import bilateral_filter
from jaxadv.models._defenses import BilateralTransform, bilateral_defense, with_input_transform


KEY = jax.random.key(0)


def _images(n=4, shape=(4, 4, 1), seed=0):
    return np.random.default_rng(seed).uniform(size=(n,) + shape).astype(np.float32)


def _halve(x):
    return 0.5 * x


# Victims are pytrees: one jitted helper serves every victim of a structure (eager calls would
# compile each small op separately).
@jax.jit
def _logits(victim, images):
    return victim.batch(images)


@jax.jit
def _input_grad(victim, x, w):
    return jax.grad(lambda x: victim(x) @ w)(x)


def test_bilateral_defense_gives_the_filtered_inputs_logits():
    victim = make_mlp_victim()
    defended = bilateral_defense(victim)
    images = _images()
    filtered = np.stack([bilateral_filter(x, 0.5, 0.2, radius=1) for x in images])
    defended_logits = _logits(defended, images)
    np.testing.assert_allclose(defended_logits, _logits(victim, filtered), rtol=1e-5, atol=1e-5)
    # The filter really changes what the network sees.
    assert not np.allclose(defended_logits, _logits(victim, images), atol=1e-3)
    # The input gradient (what attacks use) is that of network o filter: a central difference
    # of the defended logits along a random direction agrees, and it differs from the bare net's.
    w = np.array([1.0, -2.0, 0.5], np.float32)
    x, v, h = images[0], np.random.default_rng(1).normal(size=images[0].shape), 1e-2
    grad = np.asarray(_input_grad(defended, x, w))
    probes = np.stack([x + h * v, x - h * v, x, x]).astype(np.float32)
    plus, minus = np.asarray(_logits(defended, probes))[:2] @ w
    np.testing.assert_allclose(np.sum(grad * v), (plus - minus) / (2 * h), rtol=2e-2)
    assert not np.allclose(grad, _input_grad(victim, x, w), atol=1e-3)
    assert defended.input_shape == victim.input_shape
    assert defended.num_classes == victim.num_classes and defended.bounds == victim.bounds


def test_table_3_defaults_and_variables_layout():
    victim = make_mlp_victim()
    defended = bilateral_defense(victim)
    transform = defended.variables["transform"]
    assert isinstance(transform, BilateralTransform)
    assert (transform.sigma_domain, transform.sigma_range) == (np.float32(0.5), np.float32(0.2))
    assert transform.radius == 1
    assert defended.variables["victim"] is victim.variables
    assert bilateral_defense(victim, radius=2).variables["transform"].radius == 2


def test_plain_function_transform_is_static_and_hashable():
    victim = make_mlp_victim()
    defended = with_input_transform(victim, _halve)
    images = _images()
    np.testing.assert_allclose(_logits(defended, images), _logits(victim, 0.5 * images), rtol=1e-6)
    assert defended.variables is victim.variables
    # Equal wrappers hash equal, so a jitted attack's cache hits for a rebuilt defence.
    again = with_input_transform(victim, _halve)
    assert defended.apply_fn == again.apply_fn and hash(defended.apply_fn) == hash(again.apply_fn)


def test_changing_sigmas_does_not_recompile():
    victim = make_mlp_victim()
    traces = []

    @jax.jit
    def logits(v, x):
        traces.append(None)
        return v(x)

    x = _images(1)[0]
    outs = [logits(bilateral_defense(victim, sigma_range=s), x) for s in (0.05, 0.2, 1.0)]
    assert len(traces) == 1
    assert not np.allclose(outs[0], outs[2], atol=1e-4)
    logits(with_input_transform(victim, _halve), x)
    assert len(traces) == 2  # another structure, another trace


def test_vmap_over_sigma_range_equals_loop():
    victim = make_mlp_victim()
    x = _images(1)[0]
    sigmas = np.array([0.05, 0.2, 1.0], np.float32)
    sweep = jax.jit(jax.vmap(lambda s: bilateral_defense(victim, sigma_range=s, radius=1)(x)))
    loop = [_logits(bilateral_defense(victim, sigma_range=float(s)), x[None])[0] for s in sigmas]
    swept = sweep(sigmas)
    np.testing.assert_allclose(swept, loop, rtol=1e-5, atol=1e-6)


def test_pgd_runs_through_the_defence():
    victim = make_mlp_victim()
    defended = bilateral_defense(victim)
    images = _images(8, seed=1)
    labels = np.asarray(np.argmax(_logits(defended, images), axis=-1), np.int32)
    attack = attacks.pgd(norm="l2", steps=2)
    hp = attack.hparams(eps=0.5)
    key = jax.random.key(0)
    result = attack.batch(defended, hp, images, labels, key)
    x_adv = np.asarray(result.x_adv)
    assert np.all(np.isfinite(x_adv)) and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(np.sqrt(np.sum((x_adv - images) ** 2, axis=(1, 2, 3))) <= 0.5 + 1e-4)
    # Logits and success are those of the defended model at x_adv.
    np.testing.assert_allclose(result.logits, _logits(defended, x_adv), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(result.success, np.argmax(result.logits, -1) != labels)


# -- bad input -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Unhashable:
    scale: float

    def __call__(self, x):
        return self.scale * x


def test_bad_transform_or_victim():
    victim = make_mlp_victim()
    with pytest.raises(ValueError, match=r"`victim` must be a jaxadv.models.Victim; got dict"):
        with_input_transform({}, _halve)
    with pytest.raises(ValueError, match=r"`transform` must be a callable of one image; got str"):
        with_input_transform(victim, "bilateral")
    with pytest.raises(ValueError, match=r"`transform` must be hashable.*got unhashable"):
        with_input_transform(victim, _Unhashable(0.5))
    with pytest.raises(ValueError, match=r"`victim` must take images \[h, w, c\].*\(12,\)"):
        bilateral_defense(make_linear_victim())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(sigma_domain=0.0), "sigma_domain"),
        (dict(sigma_range=-0.2), "sigma_range"),
        (dict(sigma_range=float("inf")), "sigma_range"),
        (dict(radius=0), "radius"),
        (dict(radius=2.0), "radius"),
    ],
)
def test_bad_defense_numbers(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        bilateral_defense(make_mlp_victim(), **kwargs)


def test_randomized_victim_draws_and_fixed_draws():
    from jaxadv.models import RandomizedVictim, with_input_noise

    base = make_mlp_victim()
    noisy = with_input_noise(base, 0.5)
    assert isinstance(noisy, RandomizedVictim)
    x = _images(1)[0]
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a, b = jax.jit(noisy.__call__)(x, k1), jax.jit(noisy.__call__)(x, k2)
    assert not np.allclose(a, b)  # a fresh draw per key
    fixed = noisy.with_key(k1)
    np.testing.assert_array_equal(_logits(fixed, x[None])[0], a)  # one draw, deterministic
    noise = jax.random.normal(k1, (1,) + x.shape)
    np.testing.assert_allclose(a, base.batch(x[None] + 0.5 * noise)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(with_input_noise(base, 0.0)(x, k1), base(x), rtol=1e-6)

    # An attack without EOT refuses the randomized victim by name (before any compilation).
    pgd = attacks.pgd(steps=1)
    with pytest.raises(ValueError, match="RandomizedVictim.*with_key"):
        pgd.batch(noisy, pgd.hparams(eps=0.1), _images(2), np.zeros(2, np.int32), KEY)
    with pytest.raises(ValueError, match="sigma"):
        with_input_noise(base, -1.0)
