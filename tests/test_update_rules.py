"""The saliency paper's update-rule library: each rule against its equations written out in numpy,
Property 1 (scale invariance), the shared pieces against optax, the conformance checks, and every
rule's attack through the engine."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import make_mlp_victim
from test_conformance import assert_results_close

from jaxadv.attacks import HParams
from jaxadv.attacks._rule_library import RuleHParams, rule_attack
from jaxadv.transforms import mi_momentum
from jaxadv.transforms._momenta import (
    first_momentum,
    normalize_gradient,
    scale_by_momenta,
    second_momentum,
)
from jaxadv.transforms._update_rules import (
    PAPER_NAMES,
    RULES,
    UPDATE_RULES,
    RuleStep,
    adaeq2m,
)

# Numbers away from the defaults, so that every one of them shows in the result.
HP = RuleHParams(
    *(
        jnp.float32(v)
        for v in (0.1, 0.1, 0.8, 0.7, 1e-3, 0.5, 0.0, 0.0)
        # eps, step_size, mu1, mu2, smoothing, noise, penalty, kappa
    )
)
A, MU1, MU2, EPS, SIGMA = 0.1, 0.8, 0.7, 1e-3, 0.5


def _grads(n=3, shape=(2, 3), seed=0):
    return np.asarray(jax.random.normal(jax.random.key(seed), (n,) + shape), np.float64)


def _run(tx, grads):
    state = tx.init(jnp.zeros(grads.shape[1:], jnp.float32))
    out = []
    for g in grads:
        u, state = tx.update(jnp.asarray(g, jnp.float32), state)
        out.append(np.asarray(u))
    return np.stack(out), state


def _xi(t, shape):
    """The documented draw of the Gaussian term at step t from the default key 0."""
    key = jax.random.split(jax.random.fold_in(jax.random.key(0), t), 1)[0]
    return np.asarray(jax.random.normal(key, shape, jnp.float32), np.float64)


def l1n(g):
    return g / np.abs(g).sum()


# -- each rule against its equations, three steps -----------------------------------------------


def ref_sgd_ifgsm(gs):
    return [-A * np.sign(g) for g in gs]


def ref_sgd_ifgv(gs):
    return [-A * g / np.abs(g).max() for g in gs]


def ref_msgd_mim(gs):
    m, out = 0.0, []
    for g in gs:
        m = MU1 * m + l1n(g)
        out.append(-A * np.sign(m))
    return out


def ref_adagrad_plus_im(gs):
    v, out = 0.0, []
    for g in gs:
        h = l1n(g)
        v = MU2 * v + (1 - MU2) * h**2
        out.append(-A * h / np.sqrt(v + EPS))
    return out


def _decay_v(hs):
    """V_t = μ2·mean(ĥ_1², …, ĥ_{t−1}²) + (1 − μ2)·ĥ_t², V_1 = ĥ_1², written out for t ≤ 3."""
    h1, h2, h3 = hs
    return [
        h1**2,
        MU2 * h1**2 + (1 - MU2) * h2**2,
        MU2 * (h1**2 + h2**2) / 2 + (1 - MU2) * h3**2,
    ]


def ref_adagrad_decay_im(gs):
    hs = [l1n(g) for g in gs]
    return [-A * h / np.sqrt(v + EPS) for h, v in zip(hs, _decay_v(hs))]


def _adam_m_hat(hs):
    m, out = 0.0, []
    for t, h in enumerate(hs, start=1):
        m = MU1 * m + (1 - MU1) * h
        out.append(m / (1 - MU1**t))
    return out


def ref_adam_vanilla_im(gs):
    hs = [l1n(g) for g in gs]
    vs = np.cumsum(np.square(hs), axis=0)
    return [-A * m / np.sqrt(v + EPS) for m, v in zip(_adam_m_hat(hs), vs)]


def ref_adam_decay_im(gs):
    hs = [l1n(g) for g in gs]
    return [-A * m / np.sqrt(v + EPS) for m, v in zip(_adam_m_hat(hs), _decay_v(hs))]


def _ref_adaeq2m(gs, sigma):
    m, v, out = 0.0, 0.0, []
    for t, g in enumerate(gs, start=1):
        h = l1n(g)
        m = MU1 * m + h + sigma * np.abs(h).mean() * _xi(t, g.shape)
        v = MU2 * v + (1 - MU2) * h**2
        out.append(-A * m / np.sqrt(v + EPS))
    return out


def ref_adaeq2m(gs):
    return _ref_adaeq2m(gs, SIGMA)


def ref_adaeq2m_v2(gs):
    return _ref_adaeq2m(gs, 0.0)


REFERENCES = {
    "sgd_ifgsm": ref_sgd_ifgsm,
    "pgd": ref_sgd_ifgsm,
    "sgd_ifgv": ref_sgd_ifgv,
    "hot_cold": ref_sgd_ifgv,
    "msgd_mim": ref_msgd_mim,
    "adagrad_plus_im": ref_adagrad_plus_im,
    "adagrad_decay_im": ref_adagrad_decay_im,
    "adam_vanilla_im": ref_adam_vanilla_im,
    "adam_decay_im": ref_adam_decay_im,
    "adam_decay_cw": ref_adam_decay_im,
    "adaeq2m": ref_adaeq2m,
    "adaeq2m_cw": ref_adaeq2m,
    "adaeq2m_v2": ref_adaeq2m_v2,
}


def test_every_rule_has_a_reference_and_a_paper_name():
    assert set(REFERENCES) == set(RULES) == set(UPDATE_RULES) == set(PAPER_NAMES)
    assert len(RULES) == 13
    assert UPDATE_RULES["adaeq2m"].paper_name == "AdaEq2M"


@pytest.mark.parametrize("rule", RULES)
def test_rule_matches_its_equations_over_three_steps(rule):
    gs = _grads()
    got, _ = _run(UPDATE_RULES[rule](HP), gs)
    np.testing.assert_allclose(got, np.stack(REFERENCES[rule](gs)), rtol=2e-5, atol=1e-7)


def test_adaeq2m_published_code_variant_matches_its_equations():
    """The code's form: mean-|g| normaliser, the emitted step carried in place of m."""
    gs = _grads()
    got, state = _run(RuleStep("adaeq2m", variant="code")(HP), gs)
    hs = [g / np.abs(g).mean() for g in gs]
    s = hs[0]
    v = s**2
    want = [-A * s]
    for t in (2, 3):
        h = hs[t - 1]
        v = MU2 * v + (1 - MU2) * s**2
        m = MU1 * s + h + SIGMA * np.abs(h).mean() * _xi(t, h.shape)
        s = m / (np.sqrt(v + EPS) + EPS)
        want.append(-A * s)
    np.testing.assert_allclose(got, np.stack(want), rtol=2e-5, atol=1e-7)
    inner = optax.tree.get(state, "step")  # the carried step, explicit in the state
    np.testing.assert_allclose(inner, s, rtol=2e-5)


def test_momenta_are_explicit_in_the_state_for_an_inter_batch_carry():
    gs = _grads()
    _, state = _run(UPDATE_RULES["adaeq2m_v2"](HP), gs)
    m, v = 0.0, 0.0
    for g in gs:
        m = MU1 * m + l1n(g)
        v = MU2 * v + (1 - MU2) * l1n(g) ** 2
    np.testing.assert_allclose(optax.tree.get(state, "m"), m, rtol=1e-5)
    np.testing.assert_allclose(optax.tree.get(state, "v"), v, rtol=1e-5)
    # Seeding the momenta (e.g. β1·m and β2·v of a previous mini-batch) is one tree.set away.
    seeded = optax.tree.set(state, m=jnp.zeros((2, 3)), v=jnp.ones((2, 3)))
    assert float(jnp.sum(optax.tree.get(seeded, "v"))) == 6.0


# -- the pieces against optax and the existing transforms ----------------------------------------


def test_pieces_reproduce_optax_adam_and_mi_momentum():
    gs = _grads(4, (5,))
    mine = scale_by_momenta(
        first_momentum(0.85, ema=True, debias=True),
        second_momentum("plus", 0.95, debias=True),
        eps_root=1e-3,
        eps=1e-4,
    )
    theirs = optax.scale_by_adam(b1=0.85, b2=0.95, eps=1e-4, eps_root=1e-3)
    np.testing.assert_allclose(_run(mine, gs)[0], _run(theirs, gs)[0], rtol=1e-5)
    mim = optax.chain(normalize_gradient("l1"), first_momentum(0.9))
    np.testing.assert_allclose(_run(mim, gs)[0], _run(mi_momentum(0.9), gs)[0], rtol=1e-6)


# -- Property 1: the step is invariant to scaling the raw gradient -------------------------------


@pytest.mark.parametrize("c", [1e3, 1e-3])
def test_property_1_effective_step_is_invariant_to_gradient_scale(c):
    """Che et al., Property 1 (stated for SMBEA's ℓ1-normalised rules, proof with ε = 0). Every
    rule of the library normalises the gradient once and feeds it to both momenta, so it holds
    for all of them; the Gaussian term is relative to the normalised gradient."""
    gs = _grads()
    hp = HP._replace(smoothing=jnp.float32(0.0))
    steps = [RuleStep(r)(hp) for r in RULES] + [RuleStep("adaeq2m", variant="code")(hp)]
    for tx in steps:
        np.testing.assert_allclose(_run(tx, gs)[0], _run(tx, c * gs)[0], rtol=1e-4, atol=1e-9)
    raw = RuleStep("sgd_ifgv", normalizer="none")(hp)  # the raw value step is not invariant
    assert not np.allclose(_run(raw, gs)[0], _run(raw, c * gs)[0])


# -- conformance: jit == eager, scan-stable state, vmap == loop, inject_hyperparams ---------------

# Distinct chains only: pgd, hot_cold and the C&W rules reuse these (same equations above).
CONFORMANCE = {
    r: RuleStep(r) for r in RULES if r not in ("pgd", "hot_cold", "adam_decay_cw", "adaeq2m_cw")
} | {"adaeq2m-code": RuleStep("adaeq2m", "code")}


def test_rules_jit_scan_equals_eager_and_vmap_equals_loop():
    grads = jnp.asarray(_grads(3, (5, 4, 2)), jnp.float32)
    params = jnp.zeros((5, 4, 2))

    def scan_all(grads):
        out = {}
        for name, rule in CONFORMANCE.items():
            tx = rule(HP)

            def body(state, g, tx=tx):
                u, new_state = tx.update(g, state, params)
                return new_state, u  # a state whose shape/dtype drifts fails to trace here

            out[name] = jax.lax.scan(body, tx.init(params), grads)[1]
        return out

    def first_step_all(g):
        return {n: r(HP).update(g, r(HP).init(g), g)[0] for n, r in CONFORMANCE.items()}

    # One compilation for both checks.
    scanned, vmapped = jax.jit(lambda g: (scan_all(g), jax.vmap(first_step_all)(g)))(grads)
    for name, rule in CONFORMANCE.items():
        eager, _ = _run(rule(HP), np.asarray(grads))
        np.testing.assert_allclose(scanned[name], eager, rtol=1e-5, atol=1e-7, err_msg=name)
        assert scanned[name].dtype == jnp.float32
        loop = np.stack([_run(rule(HP), np.asarray(g)[None])[0][0] for g in grads])
        np.testing.assert_allclose(vmapped[name], loop, rtol=1e-5, atol=1e-7, err_msg=name)


def test_rules_work_under_inject_hyperparams():
    gs = _grads()
    kwargs = dict(step_size=0.1, mu1=0.8, mu2=0.7, eps=1e-3, noise_scale=0.5)
    injected = optax.inject_hyperparams(adaeq2m, static_args=("variant", "normalizer", "key"))
    np.testing.assert_allclose(
        _run(injected(**kwargs), gs)[0], _run(adaeq2m(**kwargs), gs)[0], rtol=1e-6
    )


def test_rules_read_plain_hparams_with_their_defaults():
    hp = HParams(*(jnp.float32(v) for v in (0.1, 0.05, 0.0, 1.0, 0.99, 1e-3)))
    gs = _grads()
    got, _ = _run(UPDATE_RULES["adaeq2m_v2"](hp), gs)
    want, _ = _run(
        RuleStep("adaeq2m_v2")(
            RuleHParams(*(jnp.float32(v) for v in (0, 0.05, 1, 0.9, 1e-20, 0, 0, 0)))
        ),
        gs,
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: first_momentum(1.5), "`decay` must lie in \\[0, 1\\]; got 1.5"),
        (lambda: second_momentum("plus", -0.1), "`decay` must lie in \\[0, 1\\]"),
        (lambda: second_momentum("minus"), "`kind` must be one of 'plus', 'decay', 'vanilla'"),
        (lambda: first_momentum(0.9, debias=True), "needs `ema=True`"),
        (lambda: second_momentum("vanilla", debias=True), "kind 'vanilla' has no such bias"),
        (lambda: normalize_gradient("l3"), "`normalizer` must be one of"),
        (lambda: RuleStep("adamax"), "`rule` must be one of"),
        (lambda: RuleStep("msgd_mim", variant="code"), "only for the AdaEq2M rules"),
        (lambda: RuleStep("sgd_ifgsm", normalizer="l2"), "has no normaliser"),
        (lambda: adaeq2m(0.1, mu1=2.0), "`decay` must lie in \\[0, 1\\]; got 2.0"),
        (lambda: rule_attack("hot_cold"), "Hot&Cold is a targeted attack"),
        (lambda: rule_attack("hot_cold", targeted=True, loss="ce"), "`loss` must be 'auto'"),
        (lambda: rule_attack("adaeq2m", norm="l3"), "`norm` must be one of"),
        (lambda: rule_attack("adaeq2m").hparams(mu2=1.2), "`hp.mu2` must lie in \\[0, 1\\]"),
        (lambda: rule_attack("adaeq2m").hparams(mu1=-1.0), "`hp.mu1` must lie in \\[0, 1\\]"),
        (lambda: rule_attack("pgd").hparams(beta=0.5), "Unknown hyper-parameter"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# -- every rule's attack through the engine ------------------------------------------------------


@pytest.fixture(scope="module")
def engine_case():
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(42), (3,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)
    return victim, images, labels, (labels + 1) % victim.num_classes


def _rule_attack_for_engine(rule):
    # One step keeps the compilations cheap (the momenta are checked by hand above); the AdaEq2M
    # attack is shared with the sweep test below (same attack and shapes: one compilation).
    if rule == "hot_cold":  # its SSIM budget needs 11×11 images: tested in test_ssim.py
        return rule_attack(rule, targeted=True, norm="linf", penalty="none", steps=1)
    return rule_attack(rule, steps=1, targeted=rule == "adam_decay_cw")


@pytest.mark.parametrize("rule", RULES)
def test_each_rules_attack_runs_batched_and_lowers_the_loss(rule, engine_case):
    victim, images, labels, targets = engine_case
    attack = _rule_attack_for_engine(rule)
    hp = attack.hparams(eps=0.2)
    res = attack.batch(
        victim, hp, images, labels, jax.random.key(3), targets=targets if attack.targeted else None
    )
    goal = targets if attack.targeted else labels
    clean = jax.vmap(lambda x, y, t: attack.objective(victim(x), y, t, hp))(images, labels, goal)
    assert res.x_adv.dtype == jnp.float32 and np.all(np.isfinite(res.loss))
    assert np.mean(res.loss) < np.mean(clean) - 1e-3
    if not attack.random_start:  # the clean input is the first iterate: best-so-far beats it
        assert np.all(res.loss <= clean + 1e-6)
    if rule not in ("adam_decay_cw", "adaeq2m_cw"):
        assert np.all(res.linf <= 0.2 + 1e-6)  # the ℓ∞ budget holds exactly


def test_adaeq2m_attack_vmap_equals_loop_sweeps_once_and_is_deterministic(engine_case):
    victim, images, labels, _ = engine_case
    attack = _rule_attack_for_engine("adaeq2m")
    hp = attack.hparams(eps=0.2, step_size=0.02)  # small enough that the ball does not bind
    key = jax.random.key(3)
    batched = attack.batch(victim, hp, images, labels, key)
    again = attack.batch(victim, hp, images, labels, key)
    for x, y in zip(batched, again):
        np.testing.assert_array_equal(x, y)
    keys = jax.random.split(key, images.shape[0])
    one = attack(victim, hp, images[1], labels[1], keys[1])
    assert_results_close(one, jax.tree.map(lambda leaf: leaf[1], batched), atol=1e-5)
    other = attack.batch(victim, hp, images, labels, jax.random.key(4))
    assert not np.allclose(other.delta, batched.delta)  # the Gaussian term follows the key

    traces = []
    original = type(attack).program

    def counting_program(self, *args):
        traces.append(1)
        return original(self, *args)

    type(attack).program = counting_program
    try:
        mu2, noise = jnp.array([0.5, 0.9]), jnp.array([0.0, 0.3])
        swept = attack.sweep(victim, hp._replace(mu2=mu2, noise=noise), images, labels, key)
        assert len(traces) == 1
        for k in range(2):
            single = attack.batch(
                victim, hp._replace(mu2=mu2[k], noise=noise[k]), images, labels, key
            )
            assert_results_close(jax.tree.map(lambda leaf: leaf[k], swept), single, atol=1e-5)
        assert not np.allclose(swept.delta[0], swept.delta[1])
        assert len(traces) == 1  # scalar-hp calls reuse the batch compilation above
    finally:
        type(attack).program = original
