"""qPGD2 and sC&W against references: plain PGD2 at α = 0, the closed-form minimal ℓ2
perturbation of a linear victim, and the smoothness the paper promises on a two-region image."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_apply

from jaxadv import attacks, image, losses
from jaxadv.models._victim import Victim


def _linear_image_victim(shape=(4, 8, 1), seed=0):
    w = jax.random.normal(jax.random.key(seed), (2, int(np.prod(shape))))
    return Victim(
        variables={"w": w, "b": jnp.zeros(2)},
        apply_fn=linear_apply,
        input_shape=shape,
        num_classes=2,
        bounds=(-10.0, 10.0),  # wide: no clipping, so the minimal perturbation is closed-form
    )


def _two_regions(shape=(4, 8, 1)):
    x0 = np.full(shape, 0.2, np.float32)
    x0[:, shape[1] // 2 :] = 0.8
    return jnp.asarray(x0)


def test_qpgd2_without_smoothing_is_pgd2(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    # Two steps: the identity holds at any length, and each step unrolls a smoothing solve.
    smooth = attacks.qpgd2(steps=2)
    plain = attacks.pgd(norm="l2", steps=2, random_start=False, loss="cw")
    hp_plain = plain.hparams(eps=0.5, step_size=0.2)
    hp_smooth = smooth.hparams(eps=0.5, step_size=0.2, alpha=0.0)
    a = smooth.batch(mlp_victim, hp_smooth, images, labels, jax.random.key(0))
    b = plain.batch(mlp_victim, hp_plain, images, labels, jax.random.key(0))
    np.testing.assert_allclose(a.delta, b.delta, atol=1e-5)
    np.testing.assert_array_equal(a.success, b.success)


def test_qpgd2_steps_along_the_smoothed_gradient():
    """One step from x0 is α·ŝ(g)/‖ŝ(g)‖ (paper Eq. 12) when neither ball nor box binds."""
    victim = _linear_image_victim()
    x0 = _two_regions()
    attack = attacks.qpgd2(steps=1)
    hp = attack.hparams(eps=10.0, step_size=0.05, alpha=0.9)
    result = attack(victim, hp, x0, 0, jax.random.key(0))
    objective = losses.classification_objective("cw", targeted=False)

    @jax.jit  # one program: op by op, the smoothing solve would compile every op apart
    def expected_step(x0):
        grad = jax.grad(lambda x: objective(victim(x), 0, 0, hp))(x0)
        smoothed = image.smoother(x0, 0.9, 0.1)(grad)
        return -0.05 * smoothed / jnp.linalg.norm(smoothed)

    np.testing.assert_allclose(result.delta, expected_step(x0), atol=1e-6)
    assert float(result.l2) <= 10.0 and bool(result.converged)


def test_scw_reaches_the_closed_form_minimal_perturbation():
    """Smoothing is invertible, so the optimum of Eq. 18 is C&W's: m/‖w_y − w_o‖ on a linear
    victim. No success can be below it; sC&W's best should be close above it."""
    victim = _linear_image_victim()
    x0 = _two_regions()
    attack = attacks.scw(steps=150, search_steps=4)
    hp = attack.hparams(kappa=0.0, step_size=0.05, initial_const=10.0, alpha=0.8)
    result = attack(victim, hp, x0, jnp.argmax(victim(x0)), jax.random.key(0))
    logits = victim(x0)
    w = victim.variables["w"]
    minimal = float(jnp.abs(logits[0] - logits[1]) / jnp.linalg.norm(w[0] - w[1]))
    assert bool(result.success) and bool(result.converged)
    assert minimal - 1e-4 <= float(result.l2) <= 1.1 * minimal
    np.testing.assert_allclose(result.delta, result.x_adv - x0, atol=1e-6)
    assert jnp.argmax(victim(result.x_adv)) != jnp.argmax(logits)


@pytest.mark.slow  # ~27 s; sC&W stays checked by default against its closed-form optimum
def test_scw_perturbation_is_smooth_where_the_image_is():
    """On an image of two flat regions, sC&W's perturbation is nearly constant in each region
    (smooth like x0) while C&W's follows the victim's noisy weights."""
    victim = _linear_image_victim()
    x0 = _two_regions()
    label = jnp.argmax(victim(x0))
    smoothing = attacks.SmoothingConfig(method="dense")
    scw = attacks.scw(steps=20, search_steps=2, smoothing=smoothing)
    r = scw(victim, scw.hparams(alpha=0.999, step_size=0.05), x0, label, jax.random.key(0))
    cw = attacks.cw_l2(steps=20, search_steps=2)
    c = cw(victim, cw.hparams(step_size=0.05, initial_const=10.0), x0, label, jax.random.key(0))
    assert bool(r.success) and bool(c.success)

    def roughness(delta):
        halves = jnp.split(delta, 2, axis=1)  # the two flat regions
        return float(sum(jnp.std(h) for h in halves) / jnp.mean(jnp.abs(delta)))

    assert roughness(r.delta) < 0.1 < roughness(c.delta)


@pytest.mark.slow  # one sC&W sweep compilation (~60 s on the loaded 2-core machine)
def test_scw_smoothness_penalty_of_eq14_smooths_as_mu_grows():
    """§4.2.1's penalty variant on the two-region image: μ = 0 is C&W over r (rough, following
    the weights); μ = 100 lowers the penalty of Eq. 14 and the within-region roughness (measured
    2.84 → 0.46; the paper's point stands: even then r is not flat, the penalty acts locally)."""
    victim = _linear_image_victim()
    x0 = _two_regions()
    label = jnp.argmax(victim(x0))
    attack = attacks.scw(steps=100, search_steps=2, smoothness="penalty")
    hp = attack.hparams(step_size=0.05, initial_const=10.0, mu=jnp.array([0.0, 100.0]))
    result = attack.sweep(victim, hp, x0[None], label[None], jax.random.key(0))
    assert np.all(np.asarray(result.success)) and np.all(np.asarray(result.converged))

    def roughness(delta):
        halves = jnp.split(delta, 2, axis=1)  # the two flat regions
        return float(sum(jnp.std(h) for h in halves) / jnp.mean(jnp.abs(delta)))

    rough = [roughness(result.delta[i, 0]) for i in range(2)]
    graph = image.pixel_graph(x0, 0.1)
    penalty = [float(image.smoothness_penalty(graph, result.delta[i, 0])) for i in range(2)]
    assert penalty[1] < 0.2 * penalty[0] and rough[1] < 0.5 * rough[0], (penalty, rough)


@pytest.mark.slow  # two sC&W compilations (~18 s); qPGD2's eps sweep: conformance suite
def test_scw_sweeps_alpha_in_one_call(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.scw(steps=3, search_steps=2)
    hp = attack.hparams(alpha=jnp.array([0.0, 0.9]))
    swept = attack.sweep(mlp_victim, hp, images[:2], labels[:2], jax.random.key(0))
    single = attack.batch(
        mlp_victim, hp._replace(alpha=0.9), images[:2], labels[:2], jax.random.key(0)
    )
    np.testing.assert_allclose(swept.x_adv[1], single.x_adv, atol=1e-5)
    assert swept.success.shape == (2, 2)


def test_non_converged_smoothing_is_reported_in_the_result(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    short = attacks.SmoothingConfig(maxiter=1, tol=1e-6)
    result = attacks.qpgd2(steps=2, smoothing=short).batch(
        mlp_victim, attacks.qpgd2().hparams(alpha=0.99), images, labels, jax.random.key(0)
    )
    assert not np.any(result.converged)
    ok = attacks.qpgd2(steps=2).batch(
        mlp_victim, attacks.qpgd2().hparams(alpha=0.5), images, labels, jax.random.key(0)
    )
    assert np.all(ok.converged)


@pytest.mark.parametrize(
    "values,match",
    [
        (dict(alpha=1.0), r"`hp.alpha`: `alpha` must lie in \[0, 1\); got 1.0"),
        (dict(bandwidth=0.0), r"`hp.bandwidth` must be finite and > 0"),
        (dict(spatial_bandwidth=-2.0), r"`hp.spatial_bandwidth` must be finite and > 0"),
        (dict(initial_const=0.0), r"`hp.initial_const` must be finite and > 0"),
        (dict(mu=-1.0), r"`hp.mu`"),
        (dict(eps=-1.0), r"`hp.eps`"),
    ],
)
def test_bad_hyper_parameters_are_named(values, match):
    with pytest.raises(ValueError, match=match):
        attacks.scw().hparams(**values)


def test_bad_structure_is_named():
    with pytest.raises(ValueError, match=r"method"):
        attacks.SmoothingConfig(method="qr")
    with pytest.raises(ValueError, match=r"neighbors"):
        attacks.SmoothingConfig(neighbors=3)
    with pytest.raises(ValueError, match=r"preconditioner"):
        attacks.SmoothingConfig(preconditioner="jacobi")
    with pytest.raises(ValueError, match=r"`preconditioner`='polynomial' preconditions the"):
        attacks.SmoothingConfig(preconditioner="polynomial")  # the default method is Chebyshev
    with pytest.raises(ValueError, match=r"`warm_start` warm-starts the \"cg\" solves only.*got method='chebyshev'"):
        attacks.SmoothingConfig(warm_start=True)
    assert attacks.SmoothingConfig(method="cg").warm_starts
    assert not attacks.SmoothingConfig(method="cg", warm_start=False).warm_starts
    assert not attacks.SmoothingConfig().warm_starts
    with pytest.raises(ValueError, match=r"loss"):
        attacks.qpgd2(loss="hinge")
    with pytest.raises(ValueError, match=r"`hp` must be a SmoothHParams"):
        attacks.scw().batch(None, attacks.pgd().hparams(), None, None, jax.random.key(0))


@pytest.mark.slow  # six attack compilations: ~1.5 min on the shared CPU
def test_warm_started_solves_give_the_cold_started_attacks(mlp_victim, mlp_batch):
    """sC&W and qPGD2 with warm-started CG solves against cold starts, polynomial-preconditioned
    solves and Chebyshev's (the default), same seed: equal up to the solves' tolerance."""
    images, labels = mlp_batch
    images, labels = images[:2], labels[:2]
    for make in (
        lambda cfg: attacks.scw(steps=4, search_steps=2, smoothing=cfg),
        lambda cfg: attacks.qpgd2(steps=4, smoothing=cfg),
    ):
        results = []
        configs = (
            attacks.SmoothingConfig(method="cg", tol=1e-6),
            attacks.SmoothingConfig(method="cg", tol=1e-6, warm_start=False),
            attacks.SmoothingConfig(method="cg", tol=1e-6, preconditioner="polynomial"),
            attacks.SmoothingConfig(tol=1e-6),  # Chebyshev
        )
        for config in configs:
            attack = make(config)
            hp = attack.hparams(alpha=0.9)
            results.append(attack.batch(mlp_victim, hp, images, labels, jax.random.key(0)))
        for other in results[1:]:
            np.testing.assert_allclose(other.x_adv, results[0].x_adv, atol=1e-4)
            np.testing.assert_array_equal(other.success, results[0].success)
