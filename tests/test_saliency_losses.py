"""Saliency losses: hand-computed values, the properties each must have, finite gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv.losses import _saliency as sl


def _random_map(seed, shape=(6, 5)):
    return jax.random.uniform(jax.random.key(seed), shape) + 0.01


def test_to_saliency_map_per_output_kind():
    out = jnp.array([[-1.0, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(sl.to_saliency_map(out, "unit"), out)
    np.testing.assert_allclose(sl.to_saliency_map(out, "signed"), [[0.0, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(sl.to_saliency_map(out, "log_density"), np.exp(out), rtol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        sl.to_saliency_map(out, "logits")


def test_kl_by_hand_and_zero_for_proportional_maps():
    p, q = jnp.array([[1.0, 3.0]]), jnp.array([[2.0, 2.0]])  # densities (.25, .75) and (.5, .5)
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    np.testing.assert_allclose(sl.kl_loss(p, q), expected, rtol=1e-5)
    m = _random_map(0)
    assert abs(float(sl.kl_loss(3.0 * m, m))) < 1e-5
    assert float(sl.kl_loss(_random_map(1), m)) > 0.01


def test_cc_loss_is_minus_pearson_and_affine_invariant():
    a, b = _random_map(2), _random_map(3)
    pearson = np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]
    np.testing.assert_allclose(sl.cc_loss(a, b), -pearson, atol=1e-5)
    np.testing.assert_allclose(sl.cc_loss(a, a), -1.0, atol=1e-5)
    np.testing.assert_allclose(sl.cc_loss(a, 1.0 - a), 1.0, atol=1e-5)
    np.testing.assert_allclose(sl.cc_loss(4.0 * a + 2.0, b), sl.cc_loss(a, b), atol=1e-5)


def test_nss_loss_by_hand_and_counts_weight_fixations():
    pred = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    z = (np.array([0.0, 1.0, 2.0, 3.0]) - 1.5) / np.sqrt(1.25)  # population std
    one = jnp.array([[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(sl.nss_loss(pred, one), -z[3], rtol=1e-5)
    counts = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # pixel 0 fixated twice
    np.testing.assert_allclose(sl.nss_loss(pred, counts), -(2 * z[0] + z[3]) / 3, rtol=1e-5)


def test_sim_loss_bounds():
    m = _random_map(4)
    np.testing.assert_allclose(sl.sim_loss(m, 2.0 * m), -1.0, atol=1e-5)
    disjoint_a = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    disjoint_b = jnp.array([[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(sl.sim_loss(disjoint_a, disjoint_b), 0.0, atol=1e-6)
    half = jnp.array([[1.0, 1.0], [0.0, 0.0]])  # (.5, .5, 0, 0) vs (.25, .25, .25, .25)
    np.testing.assert_allclose(sl.sim_loss(half, jnp.ones((2, 2))), -0.5, atol=1e-6)


def test_l1_loss_by_hand():
    np.testing.assert_allclose(
        sl.l1_loss(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.0]])), 0.75, rtol=1e-6
    )


def test_soft_histogram_splits_each_value_between_its_two_nearest_centres():
    hist = sl.soft_histogram(jnp.array([0.0, 0.25, 0.6, 1.0]), bins=5)  # centres 0, .25, ..., 1
    # 0 -> bin 0; .25 -> bin 1; .6 -> 0.6 of bin 2 (.5), 0.4 of bin 3 (.75); 1 -> bin 4.
    np.testing.assert_allclose(hist, np.array([1.0, 1.0, 0.6, 0.4, 1.0]) / 4, atol=1e-6)
    np.testing.assert_allclose(jnp.sum(sl.soft_histogram(_random_map(5) / 2)), 1.0, rtol=1e-5)


def test_acs_loss_is_zero_for_equal_value_distributions_and_positive_otherwise():
    m = _random_map(6)
    assert float(sl.acs_loss(m, m)) < 1e-5
    # A permutation of the pixels has the same histogram: the loss ignores where mass lies.
    permuted = jnp.reshape(jnp.ravel(m)[::-1], m.shape)
    assert float(sl.acs_loss(m, permuted)) < 1e-5
    peaked = jnp.zeros((6, 5)).at[2, 2].set(1.0)
    assert float(sl.acs_loss(m, peaked)) > 0.1


@pytest.mark.parametrize("name", sorted(sl.SALIENCY_LOSSES))
def test_every_loss_has_finite_nonzero_gradients_and_vmaps(name):
    loss = sl.saliency_loss(name)
    pred, ref = _random_map(7), _random_map(8)
    grad = jax.jit(jax.grad(loss))(pred, ref)
    assert np.all(np.isfinite(grad)) and float(jnp.max(jnp.abs(grad))) > 0
    batch_p, batch_r = jnp.stack([pred, ref]), jnp.stack([ref, pred])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(loss))(batch_p, batch_r), [loss(pred, ref), loss(ref, pred)], rtol=1e-5
    )


def test_combined_loss_weights_named_terms():
    pred, ref = _random_map(9), _random_map(10)
    fix = (ref > 0.8).astype(jnp.float32)
    total = sl.combined_loss(sl.SAM_LOSS)(pred, ref, fix)
    expected = 10 * sl.kl_loss(pred, ref) + 2 * sl.cc_loss(pred, ref) + sl.nss_loss(pred, fix)
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same"):
        sl.cc_loss(jnp.ones((3, 3)), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="fixations"):
        sl.nss_loss(jnp.ones((3, 3)), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="name"):
        sl.saliency_loss("auc")
    with pytest.raises(ValueError, match="weights"):
        sl.combined_loss({"kl": 1.0, "emd": 1.0})
    with pytest.raises(ValueError, match="weights"):
        sl.combined_loss({})
    with pytest.raises(ValueError, match="bins"):
        sl.soft_histogram(jnp.ones(3), bins=1)


def test_gradients_stay_finite_on_a_constant_map():
    # A fresh or collapsed model predicts a constant map: CC and NSS must not turn training NaN.
    constant, ref = jnp.full((4, 4), 0.5), _random_map(11, (4, 4))
    for loss in (sl.cc_loss, sl.nss_loss, sl.kl_loss, sl.sim_loss):
        grad = jax.jit(jax.grad(loss))(constant, ref)
        assert np.all(np.isfinite(grad)), loss.__name__
