"""Misuse raises a ValueError naming the argument, what was expected and what was received."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, constraints, losses, transforms

KEY = jax.random.key(0)


def test_unknown_norm_and_loss():
    with pytest.raises(ValueError, match=r"`norm` must be one of 'linf', 'l2', 'l1'; got 'l3'"):
        attacks.pgd(norm="l3")
    with pytest.raises(ValueError, match=r"`loss` must be one of .*; got 'hinge'"):
        attacks.pgd(loss="hinge")
    with pytest.raises(ValueError, match="`norm`"):
        constraints.norm_ball("l0", 1.0)


def test_negative_or_nan_numbers():
    with pytest.raises(ValueError, match=r"`hp.eps` must be >= 0; got -0.1"):
        attacks.pgd().hparams(eps=-0.1)
    with pytest.raises(ValueError, match=r"`hp.step_size` must be finite"):
        attacks.pgd().hparams(step_size=float("nan"))
    with pytest.raises(ValueError, match=r"`hp.eps` must be >= 0"):
        attacks.pgd().hparams(eps=jnp.array([0.1, -0.2]))
    with pytest.raises(ValueError, match=r"`eps` must be >= 0"):
        constraints.linf_ball(-1.0)
    with pytest.raises(ValueError, match=r"`hp.sparsity` must lie in \[0, 1\]"):
        attacks.pgd(norm="l1").hparams(sparsity=1.5)
    with pytest.raises(ValueError, match=r"`decay` must be >= 0"):
        transforms.mi_momentum(-1.0)
    with pytest.raises(ValueError, match=r"Unknown hyper-parameter\(s\) \['epsilon'\]"):
        attacks.pgd().hparams(epsilon=0.1)


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1; got 0"):
        attacks.pgd(steps=0)
    with pytest.raises(ValueError, match=r"`search_steps` must be an integer >= 1; got -1"):
        attacks.cw_l2(search_steps=-1)
    with pytest.raises(ValueError, match="random_start"):
        attacks.pgd(random_start=False, restarts=3)


def test_images_outside_bounds_or_not_finite(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=1)
    hp = attack.hparams(eps=0.1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"`images` must lie within the pixel bounds \[0.0, 1.0\]"):
        attack.batch(mlp_victim, hp, images * 255.0, labels, key)
    with pytest.raises(ValueError, match=r"`images` must be finite; got 1 NaN/inf"):
        attack.batch(mlp_victim, hp, images.at[0, 0, 0, 0].set(jnp.nan), labels, key)
    with pytest.raises(ValueError, match=r"`x0` must be finite"):
        attack(mlp_victim, hp, images[0].at[1, 1, 0].set(jnp.inf), labels[0], key)


def test_batch_axis_where_one_example_is_expected_and_the_reverse(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=1)
    hp = attack.hparams(eps=0.1)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"`x0` must be ONE example .* leading batch axis"):
        attack(mlp_victim, hp, images, labels, key)
    with pytest.raises(ValueError, match=r"`images` must be a BATCH .* got one example"):
        attack.batch(mlp_victim, hp, images[0], labels[:1], key)
    with pytest.raises(ValueError, match=r"`x` must be ONE example"):
        mlp_victim(images)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(8,\)"):
        attack.batch(mlp_victim, hp, images, labels[:3], key)


def test_labels_out_of_range(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=1)
    with pytest.raises(
        ValueError, match=r"`labels` must lie in \[0, 2\] for 3 classes; got .*\[0, 7\]"
    ):
        attack.batch(mlp_victim, attack.hparams(), images, jnp.arange(8), jax.random.key(0))
    with pytest.raises(ValueError, match=r"`label` must lie in \[0, 2\]"):
        attack(mlp_victim, attack.hparams(), images[0], 5, jax.random.key(0))


def test_target_equal_to_label_in_a_targeted_attack(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=1, targeted=True)
    hp = attack.hparams()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"`targets` must differ .* first at index 2"):
        targets = (labels + 1) % 3
        attack.batch(mlp_victim, hp, images, labels, key, targets=targets.at[2].set(labels[2]))
    with pytest.raises(ValueError, match=r"`target` must differ from the true `label`"):
        attack(mlp_victim, hp, images[0], labels[0], key, target=labels[0])
    with pytest.raises(ValueError, match=r"needs `targets`"):
        attack.batch(mlp_victim, hp, images, labels, key)
    with pytest.raises(ValueError, match=r"`targets` must have shape \(8,\)"):
        attack.batch(mlp_victim, hp, images, labels, key, targets=labels[:2])


def test_sweep_needs_matching_grid_axes(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=1)
    hp = attack.hparams(eps=jnp.array([0.1, 0.2]), step_size=jnp.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"all swept leaves of the same K"):
        attack.sweep(mlp_victim, hp, images, labels, jax.random.key(0))
    with pytest.raises(ValueError, match=r"at least one leaf of shape \(K,\)"):
        attack.sweep(mlp_victim, attack.hparams(), images, labels, jax.random.key(0))


def test_losses_reject_unknown_names_and_compute_known_values():
    with pytest.raises(ValueError, match="`loss`"):
        losses.classification_objective("mse", targeted=False)
    logits = jnp.array([2.0, 0.5, -1.0, 0.0])
    np.testing.assert_allclose(losses.cross_entropy(logits, 0), -jax.nn.log_softmax(logits)[0])
    np.testing.assert_allclose(losses.cw_margin(logits, 0), 1.5)
    np.testing.assert_allclose(losses.cw_margin(logits, 1, targeted=True), 1.5)
    np.testing.assert_allclose(losses.cw_margin(logits, 0, targeted=True, kappa=0.2), -0.2)
    # DLR is invariant to shifting and positive scaling of the logits.
    np.testing.assert_allclose(losses.dlr(logits, 0), losses.dlr(3 * logits + 7, 0), rtol=1e-6)
    np.testing.assert_allclose(losses.dlr(logits, 0), 1.5 / 2.0, rtol=1e-6)  # z_π3 = 0
    np.testing.assert_allclose(
        losses.dlr(logits, 0, 1, targeted=True), 1.5 / (2.0 - 0.5 * (0.0 - 1.0)), rtol=1e-6
    )


def test_hand_built_attack_without_a_step_default_names_step_size():
    attack = attacks.Attack(
        objective=losses.classification_objective("ce", targeted=False),
        step_rule=attacks.SteepestStep("linf"),
        constraint=attacks.Ball("linf"),
        steps=2,
    )
    with pytest.raises(ValueError, match=r"\['step_size'\] have no default for attack"):
        attack.hparams(eps=0.1)
    assert float(attack.hparams(eps=0.1, step_size=0.02).step_size) == pytest.approx(0.02)


def test_hyper_parameters_of_another_type_are_refused(linear_victim):
    attack = attacks.pgd(norm="linf", steps=2)
    hp = attack.hparams(eps=0.1)._asdict()
    x0 = jnp.full(linear_victim.input_shape, 0.5)
    with pytest.raises(ValueError, match=r"`hp` must be a HParams .* got dict"):
        attack(linear_victim, hp, x0, 0, jax.random.key(0))


# -- nothing silent: NaN victims, ignored arguments, keys, grids given to .batch --------------------


def _nan_victim(victim):
    return victim.replace(apply_fn=lambda variables, x: jnp.full((x.shape[0], 3), jnp.nan))


@pytest.mark.parametrize(
    "attack",
    [attacks.pgd(steps=2), attacks.cw_l2(steps=2, search_steps=2), attacks.sparsefool(steps=2)],
    ids=lambda a: a.name,
)
def test_a_nan_victim_is_never_fooled(attack, mlp_victim, mlp_batch):
    images, labels = mlp_batch
    labels = jnp.ones_like(labels)  # argmax of NaN logits is class 0: "fooled" if unchecked
    result = attack.batch(_nan_victim(mlp_victim), attack.hparams(), images, labels, KEY)
    assert not result.success.any() and not result.finite.any()
    np.testing.assert_array_equal(result.x_adv, images)  # the clean input, not a made-up one
    with pytest.raises(attacks.NonFiniteOutputError, match="NaN/inf at every iterate of 8 of 8"):
        attack.batch(
            _nan_victim(mlp_victim), attack.hparams(), images, labels, KEY, require_finite=True
        )


def test_finite_victims_are_flagged_finite(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=2)
    assert attack.batch(mlp_victim, attack.hparams(), images, labels, KEY).finite.all()


def test_arguments_an_attack_would_ignore_are_errors(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=2)
    hp = attack.hparams()
    with pytest.raises(ValueError, match="`targets` must be None for the untargeted attack"):
        attack.batch(mlp_victim, hp, images, labels, KEY, targets=labels)
    with pytest.raises(ValueError, match="`target` must be None for the untargeted attack"):
        attack(mlp_victim, hp, images[0], labels[0], KEY, target=labels[0])
    with pytest.raises(ValueError, match=r"declares `num_classes=5` but returns .* shape \(3,\)"):
        attack.batch(mlp_victim.replace(num_classes=5), hp, images, labels, KEY)


@pytest.mark.parametrize(
    "key, got",
    [(0, "got int 0"), (jax.random.split(KEY, 3), r"shape \(3,\)")],
    ids=["int", "batch-of-keys"],
)
def test_a_key_that_is_not_one_key_is_named(key, got, mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=2)
    with pytest.raises(ValueError, match=f"`key` must be ONE PRNG key.*{got}.*jax.vmap"):
        attack.batch(mlp_victim, attack.hparams(), images, labels, key)


def test_a_grid_given_to_batch_points_at_sweep(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=2)
    with pytest.raises(ValueError, match=r"leading axis \{'eps': \(2,\)\}.*attack.sweep"):
        attack.batch(mlp_victim, attack.hparams(eps=[0.05, 0.1]), images, labels, KEY)
    with pytest.raises(ValueError, match=r"`label` must be a scalar class index; got shape \(1,\)"):
        attack(mlp_victim, attack.hparams(), images[0], labels[:1], KEY)


def test_a_compiled_batch_names_the_shapes_it_takes(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=2)
    hp = attack.hparams()
    run = attack.compile_batch(mlp_victim, hp, images, labels)
    with pytest.raises(ValueError, match=r"takes .* shapes .*\(8, 4, 4, 1\).*got .*\(4, 4, 4, 1\)"):
        run(hp, images[:4], labels[:4], KEY)


def test_a_victim_without_gradient_is_flagged(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    frozen = mlp_victim.replace(
        apply_fn=lambda variables, x: mlp_victim.apply_fn(variables, jax.lax.stop_gradient(x))
    )
    attack = attacks.pgd(steps=2, random_start=False)
    stuck = attack.batch(frozen, attack.hparams(), images, labels, KEY)
    assert stuck.zero_gradient.all() and not stuck.success.any()
    assert not attack.batch(mlp_victim, attack.hparams(), images, labels, KEY).zero_gradient.any()


def test_smbea_and_output_attacks_refuse_targets_they_would_misread(mlp_victim, mlp_batch):
    """SMBEA has its own input checks: a target equal to the label counted the clean example as
    a success, and a target given to an untargeted run (SMBEA, saliency, subspace) was ignored."""
    from test_subspace import GUIDE, X0, stub_victim

    from jaxadv.models import ensemble

    images, labels = mlp_batch
    members = ensemble([mlp_victim])
    targeted = attacks.smbea(loss="ce", targeted=True, steps=1)
    hp = targeted.hparams()
    with pytest.raises(ValueError, match=r"`targets` must differ from the true `labels` in a "
                       r"targeted SMBEA; they are equal at 1 position\(s\), first at index 2"):
        targets = (labels + 1) % 3
        targeted.batch(members, hp, images, labels, KEY, targets=targets.at[2].set(labels[2]))
    with pytest.raises(ValueError, match="`target` must differ from the true `label`"):
        targeted(members, hp, images[0], labels[0], KEY, target=labels[0])
    untargeted = attacks.smbea(loss="ce", steps=1)
    with pytest.raises(ValueError, match="`targets` must be None for an untargeted SMBEA"):
        untargeted.batch(members, untargeted.hparams(), images, labels, KEY, targets=labels)
    saliency = stub_victim()
    subspace = attacks.subspace_attack("feat", 2, targeted=False, steps=1)
    with pytest.raises(ValueError, match="`target` must be None for an untargeted subspace"):
        subspace(saliency, subspace.hparams(), X0, None, KEY, target=GUIDE)
    pgd_maps = attacks.saliency_pgd(steps=1)
    with pytest.raises(ValueError, match="`targets` must be None for an untargeted saliency"):
        pgd_maps.batch(saliency, pgd_maps.hparams(), X0[None], None, KEY, targets=GUIDE[None])


def test_a_nan_ensemble_never_fools_smbea(mlp_victim, mlp_batch):
    """SMBEA (and the subspace attack) build their own results: NaN outputs are flagged there."""
    from jaxadv.models import ensemble

    images, labels = mlp_batch
    attack = attacks.smbea(loss="ce", steps=1)
    ones = jnp.ones_like(labels)  # class 1: "fooled" by argmax(NaN) = 0 if unchecked
    stuck = attack.batch(ensemble([_nan_victim(mlp_victim)]), attack.hparams(), images, ones, KEY)
    assert not stuck.success.any() and not stuck.finite.any()
