"""Che et al.'s objectives on saliency victims (issue 20, seed 000), checked against numpy
transcriptions of the paper's definitions, and the C&W rules' tanh box and ℓ0 budget.

* Eq. 1: ``L1[F(I*), F(G)] + λ1·L2(I, I*)``: ``result.loss`` of ``saliency_pgd(penalty=...)``
  is the saliency loss plus λ1 times the perceptual distance, recomputed here in numpy.
* NSS (the reference map weighting the pixels) and the feature-space losses, by hand.
* Hot&Cold on a saliency victim: ``KL(map, hot map) − KL(map, clean map)``; ``rule_attack``
  reaches saliency victims with a saliency loss.
* C&W's change of variables (``box="tanh"``): one step moves ``w`` by the rule's update of
  ``∇_w``, recomputed by hand; the ℓ0 budget keeps at most ``k`` pixels, inside the box.

The saliency victim is the registry's stub (4×4×2, a per-pixel tanh layer): cheap to compile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim
from registry import make_saliency_victim

from jaxadv import attacks, models, transforms
from jaxadv.losses import cw_margin

EPS = 1e-7  # the losses' float32 regulariser


def _kl(pred, ref):
    """KL(Q ‖ P) of the MIT benchmark's form, Q the reference density (numpy, float64)."""
    p, q = pred / (pred.sum() + EPS), ref / (ref.sum() + EPS)
    return float(np.sum(q * np.log(EPS + q / (p + EPS))))


def _np(x):
    return np.asarray(x, np.float64)


@pytest.fixture(scope="module")
def victim():
    return make_saliency_victim()


@pytest.fixture(scope="module")
def images():
    k1, k2 = jax.random.split(jax.random.key(3))
    shape = (2,) + make_saliency_victim().input_shape
    return jax.random.uniform(k1, shape), jax.random.uniform(k2, shape)


def test_eq1_objective_is_the_loss_plus_lambda1_times_the_distance(victim, images):
    x0, guides = images
    attack = attacks.saliency_pgd(loss="kl", targeted=True, penalty="l2", steps=3)
    runs = {}
    for lam in (0.0, 30.0):  # one compilation: λ1 is a leaf of the hyper-parameters
        hp = attack.hparams(eps=0.3, penalty=lam)
        runs[lam] = attack.batch(victim, hp, x0, None, jax.random.key(0), guides)
    for lam, result in runs.items():
        for i in range(2):
            out, hot = _np(victim(result.x_adv[i])), _np(victim(guides[i]))
            distance = np.mean((_np(result.x_adv[i]) - _np(x0[i])) ** 2)
            np.testing.assert_allclose(
                float(result.loss[i]), _kl(out, hot) + lam * distance, rtol=1e-4, atol=1e-6
            )
    # The penalty buys a smaller perturbation.
    assert np.all(np.asarray(runs[30.0].l2) < np.asarray(runs[0.0].l2))


def test_nss_and_feature_losses_match_hand_computations():
    out = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    clean = jnp.array([[0.0, 0.0], [0.0, 1.0]])  # one salient pixel: NSS reads z there
    nss = attacks.SaliencyObjective("nss", False, output="unit")
    # z of 4 over (1, 2, 3, 4): (4 − 2.5)/sqrt(1.25); untargeted minimises −(−NSS) = NSS.
    np.testing.assert_allclose(float(nss(out, clean, clean, None)), 1.5 / np.sqrt(1.25), rtol=1e-5)
    a = jnp.array([[[0.5, -1.0]], [[2.0, 0.0]]])
    b = jnp.array([[[0.0, 1.0]], [[1.0, 1.0]]])
    for kind, expected in [
        ("mse", np.mean((_np(a) - _np(b)) ** 2)),
        ("l1", np.mean(np.abs(_np(a) - _np(b)))),
        ("cc", -np.corrcoef(_np(a).ravel(), _np(b).ravel())[0, 1]),  # over all activations
    ]:
        objective = attacks.SaliencyObjective("kl", True, output="features", feature_loss=kind)
        np.testing.assert_allclose(float(objective(a, a, b, None)), expected, rtol=1e-5)


@pytest.mark.slow
def test_untargeted_nss_attack_lowers_the_map_where_the_clean_map_is_salient(victim, images):
    x0, _ = images
    attack = attacks.saliency_pgd(loss="nss", steps=3, random_start=False)
    result = attack.batch(victim, attack.hparams(eps=0.3), x0, None, jax.random.key(0))
    nss = attacks.SaliencyObjective("nss", False, output="unit")
    clean = victim.batch(x0)
    before = jax.vmap(lambda c: nss(c, c, c, None))(clean)
    after = jax.vmap(lambda o, c: nss(o, c, c, None))(victim.batch(result.x_adv), clean)
    np.testing.assert_allclose(result.loss, after, rtol=1e-5)
    assert np.all(np.asarray(after) < np.asarray(before)), (before, after)


def test_hot_cold_on_a_saliency_victim_is_kl_to_hot_minus_kl_to_cold(victim, images):
    x0, guides = images
    attack = attacks.rule_attack(
        "hot_cold", loss="kl", targeted=True, norm="linf", penalty="none", steps=3
    )
    assert isinstance(attack, attacks.SaliencyAttack)
    result = attack.batch(victim, attack.hparams(eps=0.3), x0, None, jax.random.key(0), guides)
    for i in range(2):
        out, hot, cold = (_np(victim(v[i])) for v in (result.x_adv, guides, x0))
        np.testing.assert_allclose(
            float(result.loss[i]), _kl(out, hot) - _kl(out, cold), rtol=1e-4, atol=1e-6
        )
        assert _kl(out, hot) < _kl(_np(victim(x0[i])), hot)  # pulled toward the hot map
    assert np.all(np.asarray(result.linf) <= 0.3 + 1e-6)


def test_rule_attack_takes_saliency_victims_and_misuse_is_named():
    attack = attacks.rule_attack("adaeq2m", loss="cc", layer="feat", feature_loss="l1")
    assert attack.layer == "feat" and attack.objective.feature_loss == "l1"
    with pytest.raises(ValueError, match="Hot&Cold is a targeted attack"):
        attacks.rule_attack("hot_cold", loss="kl")
    with pytest.raises(ValueError, match="`loss` must be 'auto'"):
        attacks.rule_attack("hot_cold", loss="ce", targeted=True)
    with pytest.raises(ValueError, match="`feature_loss` must be one of"):
        attacks.rule_attack("pgd", layer="feat", feature_loss="nss")
    with pytest.raises(ValueError, match="needs `norm='none'`"):
        attacks.rule_attack("adam_decay_cw", box="tanh", norm="linf")
    with pytest.raises(ValueError, match="`box` must be one of"):
        attacks.rule_attack("adam_decay_cw", box="sigmoid")
    with pytest.raises(ValueError, match="`penalty` must be one of"):
        attacks.saliency_pgd(penalty="lpips")
    classifier_attack, victim = attacks.rule_attack("pgd"), make_saliency_victim()
    with pytest.raises(ValueError, match="Saliency victims take a saliency loss"):
        classifier_attack.batch(
            victim, classifier_attack.hparams(), jnp.zeros((1,) + victim.input_shape),
            jnp.zeros((1,), jnp.int32), jax.random.key(0),
        )  # fmt: skip


def test_tanh_box_steps_in_w_by_the_rule_update_of_the_w_gradient():
    victim = make_mlp_victim()
    attack = attacks.rule_attack("adam_decay_cw", box="tanh", steps=1)
    hp = attack.hparams(step_size=0.5, penalty=2.0)
    x0 = jax.random.uniform(jax.random.key(1), victim.input_shape)
    label = jnp.argmax(victim(x0))
    program = attack.program(victim, hp, x0, label, None)
    carry, _ = jax.jit(lambda key: program.step(program.init(key)))(jax.random.key(0))
    # By hand: w0 = artanh((2·x0 − 1)(1 − 1e-6)); the loss in w; the rule's own update.
    w0 = jnp.arctanh((2.0 * x0 - 1.0) * (1.0 - 1e-6))
    to_x = lambda w: (jnp.tanh(w) + 1.0) / 2.0  # noqa: E731

    def loss(w):
        x = to_x(w)
        margin = cw_margin(victim(x), label)
        return margin + 2.0 * jnp.mean((x - x0) ** 2)

    @jax.jit  # one compilation, not op-by-op dispatch
    def by_hand(w0):
        rule = transforms.RuleStep("adam_decay_cw")(attack.derive(hp))
        update, _ = rule.update(jax.grad(loss)(w0), rule.init(w0), w0)
        return w0 + update

    np.testing.assert_allclose(carry.theta, by_hand(w0), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two compiled ℓ0 runs (~3 s); the ℓ0 projection itself is tested in test_l0_constraints
def test_l0_budget_keeps_at_most_k_pixels_inside_the_box():
    victim = make_mlp_victim()
    attack = attacks.rule_attack("adaeq2m_cw", norm="l0", steps=4)
    x0 = jax.random.uniform(jax.random.key(2), (3,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(x0), axis=-1)
    for k in (1.0, 3.0):  # one compilation: k is a leaf
        hp = attack.hparams(eps=k, step_size=0.2)
        result = attack.batch(victim, hp, x0, labels, jax.random.key(0))
        moved = np.sum(np.abs(np.asarray(result.x_adv - x0)) > 1e-7, axis=(1, 2, 3))
        assert np.all(moved <= k) and np.any(moved == k), (k, moved)
        assert np.all((np.asarray(result.x_adv) >= 0.0) & (np.asarray(result.x_adv) <= 1.0))


@pytest.mark.slow  # a feature ensemble's compile (~3 s)
def test_subspace_eq3_fuses_the_members_sampled_channels_by_omega(victim, images):
    x0, guides = images
    other = victim.replace(variables=jax.tree.map(lambda v: -0.5 * v, victim.variables))
    ens = models.ensemble(
        [victim, other], layers=("feat", "feat"), feature_weights=(3.0, 1.0), strategy="cu_bi_sn"
    )
    attack = attacks.subspace_attack("feat", 3, loss="mse", normalization="none", steps=2)
    result = attack.batch(ens, attack.hparams(eps=0.2), x0, None, jax.random.key(0), guides)

    def fused(x, idx):  # Σ_n ω_n · (spatial softmax of each channel of D_n(x)), channels idx
        total = 0.0
        for omega, member in zip((0.75, 0.25), (victim, other)):
            a = _np(member.capture_fn(member.variables, x[None])["feat"][0])
            flat = a.reshape(-1, a.shape[-1])
            e = np.exp(flat - flat.max(axis=0))
            total = total + omega * (e / e.sum(axis=0)).reshape(a.shape)[..., idx]
        return total

    for i in range(2):
        idx = np.asarray(result.extras["channels"][i])
        expected = np.mean((fused(result.x_adv[i], idx) - fused(guides[i], idx)) ** 2)
        np.testing.assert_allclose(float(result.loss[i]), expected, rtol=1e-4, atol=1e-9)
    assert np.all(np.asarray(result.linf) <= 0.2 + 1e-6)
    mixed = models.ensemble([victim, other], layers=("feat", "map"))
    with pytest.raises(ValueError, match="hidden layer of every ensemble member"):
        attack.batch(mixed, attack.hparams(eps=0.2), x0, None, jax.random.key(0), guides)
