"""The conformance suite of DESIGN.md §5, run over every recipe and every step rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv import attacks, transforms
from jaxadv.attacks import HParams

RECIPES = {
    "fgsm": lambda: attacks.fgsm(),
    "fgm-l2": lambda: attacks.fgsm(norm="l2"),
    "bim": lambda: attacks.bim(steps=3),
    "pgd-linf": lambda: attacks.pgd(steps=3),
    "pgd-l2": lambda: attacks.pgd(norm="l2", steps=3, restarts=2),
    "pgd-l1": lambda: attacks.pgd(norm="l1", steps=3),
    "mi-fgsm": lambda: attacks.mi_fgsm(steps=3),
    "pgd-targeted": lambda: attacks.pgd(steps=3, targeted=True, loss="cw"),
    "cw-l2": lambda: attacks.cw_l2(steps=4, search_steps=2),
    "qpgd2": lambda: attacks.qpgd2(steps=3),
    "scw": lambda: attacks.scw(steps=4, search_steps=2),
}
# Run op by op (``disable_jit``) only for one recipe of each loop family: sign steps, momentum,
# Adam with a constant search, smoothing by CG. Eager runs compile every op apart (10-30 s each).
EAGER = ("pgd-linf", "mi-fgsm", "cw-l2", "qpgd2")
EPS = {"pgd-l2": 0.5, "fgm-l2": 0.5, "pgd-l1": 2.0, "cw-l2": 0.0, "qpgd2": 0.5, "scw": 0.0}


def _inputs(name, mlp_victim, mlp_batch):
    attack = RECIPES[name]()
    images, labels = mlp_batch
    targets = (labels + 1) % mlp_victim.num_classes if attack.targeted else None
    hp = attack.hparams(eps=EPS.get(name, 0.1))
    return attack, hp, images, labels, targets


def assert_results_close(a, b, atol=1e-6):
    """Every array of two results (extras included) agrees."""
    jax.tree_util.tree_map_with_path(
        lambda path, x, y: np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5, err_msg=jax.tree_util.keystr(path)
        ),
        a,
        b,
    )


# sC&W without jit runs its CG loops op by op (~20 s), and the ℓ2/ℓ1/one-step recipes repeat the
# loops of the EAGER ones (10-30 s each): in the slow suite only.
SLOW_CONFORMANCE = ("scw", "fgsm", "fgm-l2", "pgd-l1", "pgd-l2")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CONFORMANCE else n for n in RECIPES],
)
def test_jit_equals_no_jit_and_vmap_equals_loop(name, mlp_victim, mlp_batch):
    attack, hp, images, labels, targets = _inputs(name, mlp_victim, mlp_batch)
    key = jax.random.key(7)
    batched = attack.batch(mlp_victim, hp, images, labels, key, targets=targets)
    keys = jax.random.split(key, images.shape[0])
    for i in (3,):
        target = None if targets is None else targets[i]
        jitted = jax.jit(attack.run)(
            mlp_victim, hp, images[i], labels[i], labels[i] if target is None else target, keys[i]
        )
        assert_results_close(jitted, jax.tree.map(lambda leaf: leaf[i], batched), atol=1e-5)
        if name in EAGER:
            with jax.disable_jit():
                one = attack(mlp_victim, hp, images[i], labels[i], keys[i], target=target)
            assert_results_close(jitted, one, atol=1e-5)


@pytest.mark.parametrize("name", RECIPES)
def test_float32_shapes_and_determinism(name, mlp_victim, mlp_batch):
    attack, hp, images, labels, targets = _inputs(name, mlp_victim, mlp_batch)
    a = attack.batch(mlp_victim, hp, images, labels, jax.random.key(1), targets=targets)
    b = attack.batch(mlp_victim, hp, images, labels, jax.random.key(1), targets=targets)
    jax.tree.map(np.testing.assert_array_equal, a, b)  # same key → same result, bit for bit
    assert a.x_adv.dtype == jnp.float32 and a.x_adv.shape == images.shape
    assert a.success.shape == labels.shape and a.success.dtype == jnp.bool_
    assert np.all(np.isfinite(a.loss)) and np.all(np.isfinite(a.x_adv))


@pytest.mark.parametrize("name", ["pgd-linf", "pgd-l2", "mi-fgsm", "pgd-targeted", "qpgd2"])
def test_sweep_equals_loop_over_values_and_traces_once(name, mlp_victim, mlp_batch):
    attack, hp, images, labels, targets = _inputs(name, mlp_victim, mlp_batch)
    eps_grid = jnp.array([0.0, 0.05, 0.2])
    traces = []
    original = type(attack).program

    def counting_program(self, *args):
        traces.append(1)  # runs once per trace, never when a compiled program is reused
        return original(self, *args)

    counting = type(attack)  # a subclass would change the jit key; patch the class temporarily
    counting.program = counting_program
    try:
        swept = attack.sweep(
            mlp_victim,
            hp._replace(eps=eps_grid, step_size=eps_grid / 4),
            images,
            labels,
            jax.random.key(2),
            targets=targets,
        )
        assert len(traces) == 1
        before = len(traces)
        for k, eps in enumerate(eps_grid):
            single = attack.batch(
                mlp_victim,
                hp._replace(eps=eps, step_size=eps / 4),
                images,
                labels,
                jax.random.key(2),
                targets=targets,
            )
            assert_results_close(jax.tree.map(lambda leaf: leaf[k], swept), single, atol=1e-5)
        assert len(traces) <= before + 1  # all scalar-eps calls share one compilation
    finally:
        counting.program = original


# -- step rules ------------------------------------------------------------------------------------

STEP_RULES = {
    "sign": lambda: transforms.sign(),
    "l2": lambda: transforms.normalize_by_l2_norm(),
    "l1": lambda: transforms.normalize_by_l1_norm(),
    "l1-steepest": lambda: transforms.l1_steepest(0.9),
    "mi-momentum": lambda: transforms.mi_momentum(0.8),
    "mi-chain": lambda: optax.chain(
        transforms.mi_momentum(1.0), transforms.sign(), optax.scale(-0.01)
    ),
}


def _grads(n=3):
    # Random normal gradients: `sign` never sits on a zero crossing in jit-vs-no-jit comparisons.
    return jax.random.normal(jax.random.key(0), (n, 5, 4, 2))


@pytest.mark.parametrize("name", STEP_RULES)
def test_step_rule_state_is_stable_through_scan_and_jit_matches(name):
    tx = STEP_RULES[name]()
    params = jnp.zeros((5, 4, 2))
    grads = _grads()

    def run(grads):
        def body(state, g):
            updates, new_state = tx.update(g, state, params)
            # Shape/dtype drift of the state would fail to trace here (the scan carry contract).
            return new_state, updates

        return jax.lax.scan(body, tx.init(params), grads)[1]

    eager = []
    state = tx.init(params)
    for g in grads:
        u, state = tx.update(g, state, params)
        eager.append(u)
    np.testing.assert_allclose(jax.jit(run)(grads), jnp.stack(eager), rtol=1e-6, atol=1e-7)
    assert jax.jit(run)(grads).dtype == jnp.float32


@pytest.mark.parametrize("name", STEP_RULES)
def test_step_rule_vmap_equals_loop(name):
    tx = STEP_RULES[name]()
    grads = _grads(4)

    def one(g):
        p = jnp.zeros_like(g)
        return tx.update(g, tx.init(p), p)[0]

    np.testing.assert_allclose(
        jax.vmap(one)(grads), jnp.stack([one(g) for g in grads]), rtol=1e-6, atol=1e-7
    )


def test_step_rules_work_under_inject_hyperparams():
    params = jnp.zeros((5, 4, 2))
    grads = _grads()
    direct = transforms.mi_momentum(decay=0.7)
    injected = optax.inject_hyperparams(transforms.mi_momentum)(decay=0.7)
    s1, s2 = direct.init(params), injected.init(params)
    for g in grads:
        u1, s1 = direct.update(g, s1, params)
        u2, s2 = injected.update(g, s2, params)
        np.testing.assert_allclose(u1, u2, rtol=1e-6)
    s3 = optax.inject_hyperparams(transforms.l1_steepest)(sparsity=0.5)
    u3, _ = s3.update(grads[0], s3.init(params), params)
    np.testing.assert_allclose(u3, transforms.l1_steepest(0.5).update(grads[0], None)[0], rtol=1e-6)


def test_hparams_is_a_pytree_of_float32_leaves():
    hp = attacks.pgd().hparams(eps=0.1)
    assert isinstance(hp, HParams)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(hp))
    attack = attacks.pgd()
    np.testing.assert_allclose(attack.derive(hp).step_size, 0.025)  # follows eps unless given
    moved = attack.derive(hp._replace(eps=jnp.float32(0.2)))  # derived in the trace: moves too
    np.testing.assert_allclose(moved.step_size, 0.05)
    fixed = attack.hparams(eps=0.1, step_size=0.01)
    np.testing.assert_allclose(attack.derive(fixed._replace(eps=jnp.float32(0.2))).step_size, 0.01)


def test_attacks_compose_inside_a_users_jit_and_vmap(mlp_victim, mlp_batch):
    images, labels = mlp_batch
    attack = attacks.pgd(steps=3)
    hp = attack.hparams(eps=0.1)
    keys = jax.random.split(jax.random.key(4), images.shape[0])
    mine = jax.jit(jax.vmap(attack, in_axes=(None, None, 0, 0, 0)))(
        mlp_victim, hp, images, labels, keys
    )
    theirs = jax.jit(attack.batch)(mlp_victim, hp, images, labels, jax.random.key(4))
    assert_results_close(mine, theirs, atol=1e-5)
    assert_results_close(
        mine, attack.batch(mlp_victim, hp, images, labels, jax.random.key(4)), atol=1e-5
    )
    targeted = attacks.pgd(steps=3, targeted=True)
    targets = (labels + 1) % mlp_victim.num_classes
    jitted = jax.jit(targeted.batch)(mlp_victim, hp, images, labels, jax.random.key(4), targets)
    eager = targeted.batch(mlp_victim, hp, images, labels, jax.random.key(4), targets)
    assert_results_close(jitted, eager, atol=1e-5)


# cw-long's constant search is also what scw-long runs (with a per-example context on top).
# Both slow: test_sweeps checks the host-driven chunks against one program in the default suite.
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) for n in ("pgd-long", "scw-long")]
)
def test_host_driven_chunks_equal_one_scan(name, mlp_victim, mlp_batch):
    """Attacks longer than one CPU chunk run as a host loop; same results as one lax.scan."""
    from jaxadv import _compile

    attack = {
        "pgd-long": lambda: attacks.pgd(steps=13, restarts=2),
        # The smoother is built once in `init` and carried across the host-driven chunks.
        "scw-long": lambda: attacks.scw(steps=6, search_steps=2),
    }[name]()
    assert attack.length > _compile.MAX_CPU_UNROLL  # exercises the chunked driver on CPU
    images, labels = mlp_batch
    hp = attack.hparams(eps=0.05)
    key = jax.random.key(11)
    driven = attack.batch(mlp_victim, hp, images, labels, key)
    keys = jax.random.split(key, images.shape[0])
    scanned = jax.jit(jax.vmap(attack.run, in_axes=(None, None, 0, 0, 0, 0)))(
        mlp_victim, hp, images, labels, labels, keys
    )
    assert_results_close(driven, scanned, atol=1e-5)
    compiled = attack.compile_batch(mlp_victim, hp, images, labels)
    assert_results_close(compiled(hp, images, labels, key), driven, atol=1e-6)
