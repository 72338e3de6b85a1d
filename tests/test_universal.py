"""Universal perturbations, adversarial patches and LGV surrogates (issue 22).

Checks: a universal delta respects its budget on every image (ℓ∞ and ℓ2); the DeepFool loop of
Moosavi-Dezfooli et al. on an affine victim equals a numpy transcription of Algorithm 1 (each
DeepFool step on an affine binary classifier is the closed-form minimal step); the patch is
exact where its mask is 1 and the identity elsewhere; LGV's collected weights equal a hand loop
of optax SGD steps; an interrupted run resumes bit for bit; bad input names its argument.
The DeepFool, ℓ2-budget, LGV, saliency-guide and patch-training tests are slow-marked (each
compiles its own program); the default run keeps the patch operator, the ℓ∞ budget, resume and
bad input (~11 s cold on the loaded 2-core CPU, ~2.5 s with the compilation cache warm).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import make_linear_victim
from registry import make_classifier, make_saliency_victim

from jaxadv import attacks, image, metrics, models, training

KEY = jax.random.key(0)


def _order(key, epoch, n):
    """The documented data order of an epoch: numpy's PCG64 seeded by the key's words."""
    words = [int(w) for w in np.asarray(jax.random.key_data(key)).ravel()]
    return np.random.default_rng([*words, epoch]).permutation(n)


@pytest.fixture(scope="module")
def mlp_data():
    victim = make_classifier()  # the tiny 4×4×1 MLP, cached across test modules
    images = np.random.default_rng(1).uniform(size=(24,) + victim.input_shape)
    return victim, images.astype(np.float32)


# -- apply_patch ---------------------------------------------------------------------------------


def test_patch_is_exact_under_its_mask_and_the_identity_elsewhere():
    rng = np.random.default_rng(2)
    img = rng.uniform(size=(9, 10, 3)).astype(np.float32)
    patch = rng.uniform(size=(3, 4, 3)).astype(np.float32) + 2.0  # outside the image's range
    top, left = 2, 5
    paste = jax.jit(image.apply_patch)
    out = paste(img, patch, center=(top + 1.0, left + 1.5))
    np.testing.assert_array_equal(out[top : top + 3, left : left + 4], patch)
    rest = np.ones((9, 10), bool)
    rest[top : top + 3, left : left + 4] = False
    np.testing.assert_array_equal(np.asarray(out)[rest], np.asarray(img)[rest])
    # A disc-shaped mask, rotated and scaled: pasted pixels carry patch values (> 2, convex
    # combinations of the patch's) and every other pixel is the image's, bit for bit.
    mask = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]], np.float32)
    out = paste(img, patch, center=(4.3, 4.7), scale=1.4, angle=0.6, mask=mask)
    pasted = np.any(np.asarray(out) != np.asarray(img), axis=-1)
    assert pasted.sum() > 6
    assert np.all(np.asarray(out)[pasted] >= 2.0)
    np.testing.assert_array_equal(np.asarray(out)[~pasted], np.asarray(img)[~pasted])
    # Gradients reach the patch only through the pasted pixels.
    grad = jax.jit(jax.grad(lambda p: jnp.sum(paste(img, p, center=(3.0, 6.5)))))(patch)
    np.testing.assert_array_equal(grad, np.ones_like(patch))


def test_patch_bad_input_names_the_argument(mlp_data):
    img = jnp.zeros((6, 6, 1))
    with pytest.raises(ValueError, match="`patch` must fit"):
        image.apply_patch(img, jnp.zeros((7, 2, 1)), center=(3.0, 3.0))
    with pytest.raises(ValueError, match="`patch` must have the image's 1 channels"):
        image.apply_patch(img, jnp.zeros((2, 2, 3)), center=(3.0, 3.0))
    victim, images = mlp_data
    with pytest.raises(ValueError, match="`patch` must fit"):
        training.adversarial_patch(victim, images, target=0, key=KEY, patch_shape=(5, 2))
    with pytest.raises(ValueError, match="`patch` must fit"):
        training.adversarial_patch(victim, images, target=0, key=KEY, patch_shape=(3, 3),
                                   scale_range=(1.0, 1.5))  # fmt: skip
    with pytest.raises(ValueError, match="`scale_range`"):
        training.adversarial_patch(victim, images, target=0, key=KEY, scale_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="`target`"):
        training.adversarial_patch(victim, images, target=3, key=KEY, patch_shape=(2, 2))
    with pytest.raises(ValueError, match="`images` must hold at least one image"):
        training.adversarial_patch(victim, images[:0], target=0, key=KEY, patch_shape=(2, 2))


# -- universal perturbations ---------------------------------------------------------------------


# Slow (`pytest -m slow`): compiles DeepFool inside the loop's scan (~4.5 s cold on 2 cores).
@pytest.mark.slow
def test_deepfool_loop_equals_algorithm_1_on_an_affine_victim():
    victim = make_linear_victim(dim=6, num_classes=2, seed=3)
    x = np.random.default_rng(4).uniform(-1, 1, size=(5, 6)).astype(np.float32)
    eps, eta = 0.3, 0.02
    out = training.universal_perturbation(
        victim, x, eps=eps, norm="l2", key=KEY, epochs=1, target_fooling=1.0, overshoot=eta,
        deepfool_steps=1, progress=False,
    )  # fmt: skip
    # Algorithm 1 by hand: DeepFool on an affine binary classifier is one closed-form step.
    w, b = np.asarray(victim.variables["w"], np.float64), np.asarray(victim.variables["b"])
    v = np.zeros(6)
    moves = 0
    for i in _order(KEY, 0, 5):
        k = np.argmax(w @ x[i] + b)
        z = w @ (x[i] + v) + b
        if np.argmax(z) != k:
            continue  # already fooled
        g = w[1 - k] - w[k]
        r = (1 + eta) * abs(z[1 - k] - z[k]) / (g @ g) * g
        v = v + r
        v = v * min(1.0, eps / np.linalg.norm(v))
        moves += 1
    np.testing.assert_allclose(out.delta, v, rtol=1e-5, atol=1e-6)
    assert out.losses == (float(moves),) and moves >= 2
    assert np.linalg.norm(v) == pytest.approx(eps, rel=1e-6)  # the projection was used


# ℓ2 is slow (`pytest -m slow`): another compiled epoch; ℓ∞ runs by default.
@pytest.mark.parametrize("norm", ["linf", pytest.param("l2", marks=pytest.mark.slow)])
def test_universal_delta_respects_its_budget_on_every_image(mlp_data, norm):
    victim, images = mlp_data
    eps = 0.25 if norm == "linf" else 0.6
    out = training.universal_perturbation(victim, images, eps=eps, norm=norm, key=KEY,
                                          method="sgd", step_size=eps, batch_size=8, epochs=2,
                                          target_fooling=1.0, progress=False)  # fmt: skip
    delta = np.asarray(out.delta)
    per_image = np.clip(images + delta, 0.0, 1.0) - images  # how the metric applies it
    flat = per_image.reshape(len(images), -1)
    size = np.abs(flat).max(1) if norm == "linf" else np.linalg.norm(flat, axis=1)
    assert np.all(size <= eps * (1 + 1e-6))
    assert np.max(size) > 0.5 * eps  # it did move
    assert np.all((images + per_image >= 0) & (images + per_image <= 1))
    # The reported rate is the fraction of changed predictions under the clipped delta.
    predict = jax.jit(lambda x: jnp.argmax(victim.batch(x), -1))
    changed = predict(images + per_image) != predict(images)
    assert out.fooling_rate[-1] == pytest.approx(changed.mean())
    assert metrics.fooling_rate(victim, delta, images) == pytest.approx(changed.mean())


def test_resume_is_bit_for_bit(mlp_data, tmp_path):
    victim, images = mlp_data
    run = dict(eps=0.25, key=KEY, method="sgd", batch_size=8, target_fooling=1.0, progress=False)
    whole = training.universal_perturbation(victim, images, epochs=3, **run)
    training.universal_perturbation(victim, images, epochs=2, checkpoint_dir=tmp_path, **run)
    with pytest.raises(ValueError, match="resume=True"):
        training.universal_perturbation(victim, images, epochs=3, checkpoint_dir=tmp_path, **run)
    with pytest.raises(ValueError, match="another universal perturbation run"):
        training.universal_perturbation(victim, images, epochs=3, checkpoint_dir=tmp_path,
                                        resume=True, **{**run, "eps": 0.3})  # fmt: skip
    resumed = training.universal_perturbation(victim, images, epochs=3,
                                              checkpoint_dir=tmp_path, resume=True, **run)
    np.testing.assert_array_equal(whole.delta, resumed.delta)
    assert whole.fooling_rate == resumed.fooling_rate and whole.losses == resumed.losses


# Slow (`pytest -m slow`): its own compiled epoch; the default suite's budget is 8 s for this file.
@pytest.mark.slow
def test_saliency_universal_guide_moves_maps_towards_the_guide():
    victim = make_saliency_victim()
    images = np.random.default_rng(5).uniform(size=(8,) + victim.input_shape).astype(np.float32)
    guide = np.zeros(victim.map_shape, np.float32)
    guide[0, 0] = 1.0
    out = training.universal_perturbation(victim, images, eps=0.3, key=KEY, method="sgd",
                                          guide=guide, epochs=2, batch_size=4,
                                          step_size=0.1, progress=False)  # fmt: skip
    assert np.abs(np.asarray(out.delta)).max() <= 0.3 + 1e-7
    assert out.losses[-1] < out.losses[0]  # KL to the guide falls
    with pytest.raises(ValueError, match="`method` 'deepfool' needs a classifier"):
        training.universal_perturbation(victim, images, eps=0.3, key=KEY, progress=False)


def test_universal_bad_input_names_the_argument(mlp_data):
    victim, images = mlp_data
    call = training.universal_perturbation
    with pytest.raises(ValueError, match="empty data set"):
        call(victim, images[:0], eps=0.1, key=KEY)
    for eps in (0.0, -1.0, float("inf"), float("nan"), "0.1"):
        with pytest.raises(ValueError, match="`eps` must be a finite number > 0"):
            call(victim, images, eps=eps, key=KEY)
    with pytest.raises(ValueError, match="`step_size`"):
        call(victim, images, eps=0.1, key=KEY, method="sgd", step_size=-0.1)
    with pytest.raises(ValueError, match="`norm`"):
        call(victim, images, eps=0.1, key=KEY, norm="l3")
    with pytest.raises(ValueError, match="`target_fooling`"):
        call(victim, images, eps=0.1, key=KEY, target_fooling=1.5)
    with pytest.raises(ValueError, match="`images` must lie within"):
        call(victim, images + 2.0, eps=0.1, key=KEY)
    with pytest.raises(ValueError, match="empty data set"):
        metrics.fooling_rate(victim, np.zeros(victim.input_shape), images[:0])
    with pytest.raises(ValueError, match="`delta` must have"):
        metrics.fooling_rate(victim, np.zeros((3,)), images)


# -- adversarial patch ---------------------------------------------------------------------------


# Slow (`pytest -m slow`): the EOT patch epoch compiles for ~5 s on 2 cores.
@pytest.mark.slow
def test_patch_training_raises_target_success_and_resumes(mlp_data, tmp_path):
    victim, images = mlp_data
    run = dict(target=2, key=KEY, patch_shape=(2, 2), scale_range=(0.9, 1.1), max_angle=0.3,
               batch_size=8, learning_rate=0.1, progress=False)  # fmt: skip
    whole = training.adversarial_patch(victim, images, epochs=3, **run)
    training.adversarial_patch(victim, images, epochs=1, checkpoint_dir=tmp_path, **run)
    resumed = training.adversarial_patch(victim, images, epochs=3, checkpoint_dir=tmp_path,
                                         resume=True, **run)  # fmt: skip
    np.testing.assert_array_equal(whole.patch, resumed.patch)
    assert whole.losses == resumed.losses
    assert whole.losses[-1] < whole.losses[0]
    assert np.all((np.asarray(whole.patch) >= 0) & (np.asarray(whole.patch) <= 1))
    rate = metrics.patch_success(victim, whole.patch, images, 2, jax.random.key(9),
                                 scale_range=(0.9, 1.1), max_angle=0.3)  # fmt: skip
    # Recounted image by image: one placement per image from split(key, n).
    keys = jax.random.split(jax.random.key(9), len(images))
    hits = []
    for x, k in zip(images, keys):
        where = image.sample_placement(k, x.shape, (2, 2, 1), (0.9, 1.1), 0.3)
        patched = image.apply_patch(x, whole.patch, center=where.center, scale=where.scale,
                                    angle=where.angle)  # fmt: skip
        hits.append(int(np.argmax(victim(patched))) == 2)
    assert rate == pytest.approx(np.mean(hits))
    # A patch that paints nothing (a zero mask) leaves the clean predictions.
    clean = np.mean(np.argmax(jax.jit(victim.batch)(images), -1) == 2)
    none = metrics.patch_success(victim, whole.patch, images, 2, jax.random.key(9),
                                 mask=np.zeros((2, 2)))  # fmt: skip
    assert none == pytest.approx(clean)


# -- LGV -----------------------------------------------------------------------------------------


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(jnp.tanh(nn.Dense(5)(x.reshape(x.shape[0], -1))))


# Slow (`pytest -m slow`): three Flax programs compile (~7.5 s cold on 2 cores).
@pytest.mark.slow
def test_lgv_members_equal_a_hand_loop_of_optax_sgd():
    module = _Tiny()
    x = np.random.default_rng(6).uniform(size=(16, 4, 4, 1)).astype(np.float32)
    y = np.arange(16) % 3
    variables = jax.jit(module.init)(jax.random.key(7), x[:1])
    stacked = training.collect_lgv(module, variables, x, y, key=KEY, epochs=2, per_epoch=2,
                                   batch_size=4, learning_rate=0.05)  # fmt: skip
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.05, momentum=0.9))
    @jax.jit
    def hand_step(params, state, xb, yb):
        def loss(p):
            logits = module.apply({"params": p}, xb, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    params, expected = variables["params"], []
    state = tx.init(params)
    for epoch in range(2):
        order = _order(KEY, epoch, 16)
        for i in range(4):  # 4 steps an epoch, a copy every 2
            idx = order[4 * i : 4 * i + 4]
            params, state = hand_step(params, state, x[idx], y[idx])
            if i % 2 == 1:
                expected.append(params)
    assert jax.tree.leaves(stacked)[0].shape[0] == 4
    for k, member in enumerate(expected):
        for got, want in zip(jax.tree.leaves(stacked["params"]), jax.tree.leaves(member)):
            np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-6)
    # The surrogate averages the members' logits.
    victim = training.lgv_victim(module, stacked, input_shape=(4, 4, 1), num_classes=3)
    apply = jax.jit(lambda m: module.apply({"params": m}, x[:3]))
    mean = np.mean([apply(m) for m in expected], axis=0)
    np.testing.assert_allclose(jax.jit(lambda v: v.batch(x[:3]))(victim), mean, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="`per_epoch` must be at most"):
        training.collect_lgv(module, variables, x, y, key=KEY, per_epoch=5, batch_size=4)


class _FlatDense(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


def test_lgv_random_victim_steps_along_one_drawn_member():
    # Two members of a tiny affine net: one BIM step through with_eot(samples=1) must equal, per
    # example, the same step on exactly one member (bit for bit), and both members get drawn.
    module = _FlatDense()
    x = np.random.default_rng(8).uniform(size=(12, 4, 4, 1)).astype(np.float32)
    y = jnp.asarray(np.arange(12) % 3, jnp.int32)
    members = [module.init(jax.random.key(s), x[:1]) for s in (1, 2)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    victim = training.lgv_random_victim(module, stacked, input_shape=(4, 4, 1), num_classes=3)
    singles = [models.from_flax(module, m, input_shape=(4, 4, 1), num_classes=3)
               for m in members]  # fmt: skip
    key = jax.random.key(3)
    i = int(training.lgv_member_index(key, 2))
    np.testing.assert_array_equal(victim.batch(x[:2], key), singles[i].batch(x[:2]))
    attack = attacks.bim(steps=1)
    hp = attack.hparams(eps=0.1)
    got = np.asarray(attacks.with_eot(attack, samples=1).batch(victim, hp, x, y, KEY).x_adv)
    same = np.stack([np.all(got == np.asarray(attack.batch(s, hp, x, y, KEY).x_adv),
                            axis=(1, 2, 3)) for s in singles])  # fmt: skip
    # An example some member already misclassifies may end at x0 (its draw was fooled there).
    correct = np.all([np.argmax(s.batch(x), -1) == y for s in singles], axis=0)
    assert correct.sum() >= 4
    assert same.any(axis=0)[correct].all(), "an example matched neither member's step"
    assert (same.any(axis=0) | np.all(got == x, axis=(1, 2, 3))).all()
    assert (same[0] & ~same[1]).any() and (same[1] & ~same[0]).any(), "both members drawn"
    with pytest.raises(ValueError, match="`stacked`"):
        training.lgv_random_victim(module, {}, input_shape=(4, 4, 1), num_classes=3)
    with pytest.raises(ValueError, match="`form` must be 'average' or 'random'"):
        training.lgv_surrogates(form="mean")
