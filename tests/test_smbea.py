"""SMBEA (Che et al., AAAI 2020): the long-term memory transform, the ensemble of victims and the
attack over mini-batches, checked against Algorithms 1 and 2 written out in numpy on stub
victims whose gradients are written by hand."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxadv.attacks._smbea import SMBEAttack, smbea
from jaxadv.models._ensemble import FEATURE_STRATEGIES, ensemble, unify_features
from jaxadv.models._victim import Victim
from jaxadv.models.saliency._victim import from_flax_saliency
from jaxadv.sweeps import Grid, run_grid
from jaxadv.transforms._normalize import normalize_by_l1_norm
from jaxadv.transforms._smbea import (
    LongTermMemoryState,
    MemoryHParams,
    constraint_schedule,
    next_minibatch,
    scale_by_long_term_memory,
    smbea_step,
)

from conftest import mlp_apply

D = 6  # input size of the stub victims


def dense_apply(variables, x):
    """Batched linear image-to-image stub ``F(x) = A·x`` (module level: hashable)."""
    return x.reshape(x.shape[0], -1) @ variables["a"].T


def stub(seed, scale=1.0):
    a = (scale * np.random.default_rng(seed).normal(size=(4, D))).astype(np.float32)
    return Victim({"a": a}, dense_apply, input_shape=(D,), num_classes=4, bounds=(-3.0, 3.0))


def stub_batches(scale=1.0):
    """Three mini-batches of 2, 1 and 3 linear victims, with unequal weights σ: different
    structures, so the attack picks each mini-batch's ensemble with ``lax.switch``."""
    return [
        ensemble([stub(0, scale), stub(1, scale)], [1.0, 3.0], output="dense"),
        ensemble([stub(2, scale)], output="dense"),
        ensemble([stub(s, scale) for s in (3, 4, 5)], [1.0, 2.0, 1.0], output="dense"),
    ]


def combined_matrix(ens):
    w = np.asarray(ens.weights, np.float64)
    return sum(wi * np.asarray(m.variables["a"], np.float64) for wi, m in zip(w, ens.members))


def reference_smbea(batches, hp, x0, guide, steps, box=(-3.0, 3.0)):
    """Algorithms 1 and 2 of the paper, line by line, on targeted MSE of linear victims:
    ``L = mean((B·(x − g))²)``, ``∇L = 2·Bᵀ·B·(x − g)/4``; ℓ∞ budget ``T^(i)`` and box clipping."""
    f = {k: float(v) for k, v in hp._asdict().items()}
    x0, guide = np.asarray(x0, np.float64), np.asarray(guide, np.float64)
    t1 = f["eps"]
    budgets, t = [], t1
    for i in range(1, len(batches) + 1):
        t = t1 if i == 1 else t + f["beta3"] ** i * t1
        budgets.append(t)
    x = x0.copy()
    m = np.zeros(D)
    v = np.zeros(D)
    m_carry = np.zeros(D)
    v_carry = np.zeros(D)
    xs, ms, vs = [], [], []
    for i, ens in enumerate(batches):
        b = combined_matrix(ens)
        for t in range(1, steps + 1):
            g = 2.0 * b.T @ (b @ (x - guide)) / b.shape[0]
            gh = g / np.sum(np.abs(g))
            m = f["mu1"] * m + (1 - f["mu1"]) * gh
            v = f["mu2"] * v + (1 - f["mu2"]) * gh**2
            m_hat = m / (1 - f["mu1"] ** t) + m_carry
            v_hat = v / (1 - f["mu2"] ** t) + v_carry
            x = x - f["step_size"] * m_hat / (np.sqrt(v_hat) + f["smoothing"])
            x = np.clip(np.clip(x, x0 - budgets[i], x0 + budgets[i]), *box)
        xs.append(x.copy())
        ms.append(m.copy())
        vs.append(v.copy())
        m_carry, v_carry = f["beta1"] * m, f["beta2"] * v  # Algorithm 2, step 1
        m, v = m_carry.copy(), v_carry.copy()
    return np.array(xs), np.array(ms), np.array(vs), np.array(budgets)


X0 = jnp.linspace(-1.0, 1.0, D)
GUIDE = jnp.array([0.5, -0.5, 1.0, 0.0, -1.0, 0.25])
# One configuration for the stub tests: they share compiled programs (same static structure).
ATTACK = smbea(loss="mse", targeted=True, steps=3, minibatches=3)
ONE = smbea(loss="mse", targeted=True, steps=3)  # one mini-batch


def extras(result):
    """SMBEA's per-mini-batch outputs (``AttackResult.extras``)."""
    return result.extras["x_minibatches"], result.extras["m"], result.extras["v"]


def test_memory_is_carried_exactly_as_algorithm_2():
    hp = ATTACK.hparams(eps=0.4, step_size=0.05, beta1=0.6, beta2=0.3, beta3=0.8, mu2=0.99)
    batches = stub_batches()
    result = ATTACK(batches, hp, X0, None, jax.random.key(0), target=GUIDE)
    xs, ms, vs, budgets = reference_smbea(batches, hp, X0, GUIDE, steps=3)
    np.testing.assert_allclose(result.extras["budgets"], budgets, rtol=1e-6)
    got_xs, got_ms, got_vs = extras(result)
    np.testing.assert_allclose(got_xs, xs, atol=2e-5)
    np.testing.assert_allclose(got_ms, ms, rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(got_vs, vs, rtol=2e-4, atol=1e-9)
    np.testing.assert_allclose(result.x_adv, xs[-1], atol=2e-5)
    # the trace runs over all N·X steps, mini-batch after mini-batch
    assert result.trace.shape == (9,) and result.trace[-1] < result.trace[0]
    assert int(result.steps) == int(result.queries) == 9  # gradient evaluations


def test_beta_zero_one_minibatch_is_algorithm_1_which_is_adam_on_l1_normalised_gradients():
    hp = ATTACK.hparams(eps=2.0, step_size=0.05, beta1=0.0, beta2=0.0)
    ens = stub_batches()[0]
    result = ATTACK([ens] * 3, hp, X0, None, jax.random.key(0), target=GUIDE)
    xs, _, _, _ = reference_smbea([ens] * 3, hp, X0, GUIDE, steps=3)
    # β = 0: each mini-batch starts from fresh momenta (only the example carries over)
    np.testing.assert_allclose(extras(result)[0], xs, atol=2e-5)
    # the first mini-batch is Algorithm 1 = optax's Adam (ε outside the root) on ĝ = g/‖g‖₁
    tx = optax.chain(normalize_by_l1_norm(), optax.adam(0.05, b1=0.9, b2=0.999, eps=1e-8))
    b = jnp.asarray(combined_matrix(ens), jnp.float32)
    x, state = X0, tx.init(X0)
    for _ in range(3):
        g = 2.0 * b.T @ (b @ (x - GUIDE)) / 4
        u, state = tx.update(g, state)
        x = jnp.clip(optax.apply_updates(x, u), X0 - 2.0, X0 + 2.0)
    np.testing.assert_allclose(extras(result)[0][0], x, atol=1e-5)


def test_serial_baseline_fuses_losses_and_keeps_no_memory():
    """Table 1's "ensemble PGD": sign steps on Σ σ_n·L(F_n), the example carried, no memory."""
    attack = SMBEAttack(
        loss="mse", targeted=True, steps=3, minibatches=3, rule="sgd_ifgsm", fusion="losses"
    )
    hp = attack.hparams(eps=0.4, step_size=0.05, beta3=0.5)
    batches = stub_batches()
    result = attack(batches, hp, X0, None, jax.random.key(0), target=GUIDE)
    x, budget = np.asarray(X0, np.float64), 0.4
    for i, ens in enumerate(batches):
        budget = 0.4 if i == 0 else budget + 0.5 ** (i + 1) * 0.4
        for _ in range(3):
            g = sum(
                w * 2.0 * a.T @ (a @ (x - np.asarray(GUIDE))) / 4
                for w, a in zip(
                    np.asarray(ens.weights), [np.asarray(m.variables["a"]) for m in ens.members]
                )
            )
            x = np.clip(np.clip(x - 0.05 * np.sign(g), X0 - budget, X0 + budget), -3.0, 3.0)
        np.testing.assert_allclose(extras(result)[0][i], x, atol=1e-5)
    assert np.all(np.asarray(extras(result)[1]) == 0)


def test_transform_state_and_next_minibatch_follow_the_equations():
    mu1, mu2, b1, b2 = 0.8, 0.9, 0.5, 0.25
    tx = scale_by_long_term_memory(mu1, mu2, eps=0.0)
    grads = [jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 0.1, -1.0]), jnp.array([2.0, 0.0, 1.0])]
    state = tx.init(grads[0])
    assert isinstance(state, LongTermMemoryState) and int(state.minibatch) == 1
    m = v = np.zeros(3)
    for g in grads[:2]:
        _, state = tx.update(g, state)
        m, v = mu1 * m + (1 - mu1) * np.asarray(g), mu2 * v + (1 - mu2) * np.asarray(g) ** 2
    np.testing.assert_allclose(state.m, m, rtol=1e-6)
    np.testing.assert_allclose(state.v, v, rtol=1e-6)
    carried = next_minibatch(state, MemoryHParams(b1, b2))
    assert int(carried.count) == 0 and int(carried.minibatch) == 2
    np.testing.assert_allclose(carried.m, b1 * m, rtol=1e-6)
    np.testing.assert_allclose(carried.m_carry, b1 * m, rtol=1e-6)
    np.testing.assert_allclose(carried.v_carry, b2 * v, rtol=1e-6)
    out, _ = tx.update(grads[2], carried)
    g = np.asarray(grads[2])
    m1, v1 = mu1 * b1 * m + (1 - mu1) * g, mu2 * b2 * v + (1 - mu2) * g**2
    expected = (m1 / (1 - mu1) + b1 * m) / np.sqrt(v1 / (1 - mu2) + b2 * v)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # inside a chain: next_minibatch finds the memory in the chain's state
    chain = smbea_step(0.1)
    chained = next_minibatch(chain.init(grads[0]), MemoryHParams(0.5, 0.5))
    assert int(chained[1].minibatch) == 2
    np.testing.assert_allclose(constraint_schedule(2.0, 0.5, 3), [2.0, 2.5, 2.75])


def test_property_1_scaling_the_raw_gradient_leaves_the_step_unchanged():
    tx = smbea_step(0.1, eps=0.0)
    g = jax.random.normal(jax.random.key(3), (5,))
    state_a, state_b = tx.init(g), tx.init(g)
    for _ in range(3):
        a, state_a = tx.update(g, state_a)
        b, state_b = tx.update(1e4 * g, state_b)
        np.testing.assert_allclose(a, b, rtol=1e-5)
    # and end to end: victims 10× larger (losses 100×) give the same adversarial examples
    hp = ATTACK.hparams(eps=0.4, step_size=0.05, smoothing=0.0)
    small = ATTACK(stub_batches(), hp, X0, None, jax.random.key(0), target=GUIDE)
    large = ATTACK(stub_batches(10.0), hp, X0, None, jax.random.key(0), target=GUIDE)
    np.testing.assert_allclose(extras(small)[0], extras(large)[0], atol=1e-5)


def test_conformance_jit_vmap_eps0_budgets_and_sweep():
    batches = stub_batches()
    hp = ATTACK.hparams(eps=0.3, step_size=0.05)
    images = jax.random.uniform(jax.random.key(1), (3, D), minval=-2.9, maxval=2.9)
    guides = jnp.clip(images[::-1] * 2.0, -3.0, 3.0)
    key = jax.random.key(5)
    batched = ATTACK.batch(batches, hp, images, None, key, targets=guides)
    keys = jax.random.split(key, 3)
    one = ATTACK(batches, hp, images[1], None, keys[1], target=guides[1])
    leaves = lambda r: jax.tree_util.tree_flatten_with_path(r)[0]  # noqa: E731
    for (path, a), (_, b) in zip(leaves(one), leaves(jax.tree.map(lambda x: x[1], batched))):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=str(path))  # vmap == loop
    short = batches[1:2]  # no jit runs op by op: one mini-batch of one victim
    jitted = ONE(short, hp, images[1], None, keys[1], target=guides[1])
    with jax.disable_jit():
        eager = ONE.run(tuple(short), hp, images[1], jnp.int32(0), guides[1], keys[1])
    for (path, a), (_, b) in zip(leaves(jitted), leaves(eager)):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=str(path))  # jit == no jit
    assert batched.x_adv.dtype == jnp.float32 and batched.x_adv.shape == images.shape
    # budgets hold exactly after every mini-batch, and the box too
    xs = batched.extras["x_minibatches"]
    dist = jnp.max(jnp.abs(xs - images[:, None]), axis=-1)
    assert np.all(np.asarray(dist) <= np.asarray(batched.extras["budgets"]) + 1e-6)
    assert np.all(np.asarray(xs) >= -3.0)
    # eps = 0 leaves the input unchanged
    still = ATTACK.batch(batches, ATTACK.hparams(eps=0.0), images, None, key, targets=guides)
    np.testing.assert_array_equal(still.x_adv, images)
    # vmap over a hyper-parameter == a loop over its values (one compiled sweep), by hand and
    # through attack.sweep; the default step (eps/4) follows each swept eps
    grid = jnp.array([0.1, 0.3])
    axes = type(hp)(*(0 if f == "eps" else None for f in hp._fields))
    sweep = jax.jit(
        jax.vmap(lambda h: ATTACK.run(tuple(batches), h, X0, 0, GUIDE, key), in_axes=(axes,))
    )
    swept = sweep(hp._replace(eps=grid))
    relative = ATTACK.hparams(eps=grid)
    by_sweep = ATTACK.sweep(batches, relative, images[:1], None, key, targets=guides[:1])
    first = jax.random.split(key, 1)[0]
    for j, e in enumerate(grid):
        single = ATTACK(batches, hp._replace(eps=e), X0, None, key, target=GUIDE)
        np.testing.assert_allclose(swept.x_adv[j], single.x_adv, atol=1e-6)
        alone = ATTACK(batches, ATTACK.hparams(eps=e), images[0], None, first, target=guides[0])
        np.testing.assert_allclose(by_sweep.x_adv[j, 0], alone.x_adv, atol=1e-6)


def _classifiers(rng):
    mlp = Victim(
        {"w1": rng.normal(size=(16, 8)).astype(np.float32), "b1": np.zeros(8, np.float32),
         "w2": rng.normal(size=(8, 3)).astype(np.float32), "b2": np.zeros(3, np.float32)},
        mlp_apply, input_shape=(4, 4, 1), num_classes=3,
    )  # fmt: skip
    lin = Victim(
        {"w": rng.normal(size=(3, 16)).astype(np.float32), "b": np.zeros(3, np.float32)},
        _flat_linear, input_shape=(4, 4, 1), num_classes=3,
    )  # fmt: skip
    return mlp, lin


def test_classifier_ensemble_of_two_architectures_raises_the_loss():
    rng = np.random.default_rng(0)  # numpy weights: no eager JAX ops to compile
    mlp, lin = _classifiers(rng)
    ens = ensemble([mlp, lin], [2.0, 1.0])
    assert ens.output == "logits" and ens.output_shape == (3,)
    attack = smbea(loss="ce", steps=3, minibatches=2)
    hp = attack.hparams(eps=0.3, step_size=0.05)
    images = jnp.asarray(rng.uniform(size=(4, 4, 4, 1)), jnp.float32)
    labels = jnp.array([0, 1, 2, 0], jnp.int32)
    result = attack.batch([ens, ens], hp, images, labels, jax.random.key(0))
    # the objective is −CE of the fused logits: it falls, i.e. the true class loses
    assert np.all(np.asarray(result.trace[:, -1]) < np.asarray(result.trace[:, 0]))
    assert float(jnp.max(result.linf)) <= float(result.extras["budgets"][0, -1]) + 1e-6
    # success: the last mini-batch's fused logits no longer pick the label
    fused = jax.vmap(ens)(result.x_adv)
    np.testing.assert_array_equal(result.success, np.argmax(fused, -1) != np.asarray(labels))
    np.testing.assert_allclose(result.logits, fused, rtol=1e-5, atol=1e-5)


def test_classifier_ensembles_run_through_jaxadv_sweeps():
    """A grid over eps of SMBEA on two mini-batches of different architectures (``lax.switch``)
    through Grid + run_grid equals ``attack.sweep`` over the same entries."""
    rng = np.random.default_rng(1)
    mlp, lin = _classifiers(rng)
    batches = (ensemble([mlp, lin], [2.0, 1.0]), ensemble([lin]))
    attack = smbea(loss="ce", steps=2, minibatches=2)
    images = rng.uniform(size=(3, 4, 4, 1)).astype(np.float32)
    labels = np.array([0, 1, 2], np.int32)
    grid = Grid(attack, images, labels, params={"eps": [0.1, 0.3]})
    table = run_grid(batches, grid, chunk_size=4, micro_batch=2, progress=False).table
    assert np.all(table["rel_step_size"] == 0.25)  # α = eps/4, derived in the trace
    ref = attack.sweep(batches, attack.hparams(eps=np.float32([0.1, 0.3])), images, labels,
                       jax.random.key(0))  # fmt: skip  (no random start: keys do not matter)
    np.testing.assert_array_equal(table["success"], np.ravel(ref.success))
    for k in ("loss", "linf", "l2"):
        np.testing.assert_allclose(table[k], np.ravel(getattr(ref, k)), rtol=1e-5, atol=1e-6)
    last_budget = table["eps"] * (1 + 0.7**2)  # T^(2) = T^(1) + β3²·T^(1)
    assert np.all(table["queries"] == 4) and np.all(table["linf"] <= last_budget + 1e-6)
    clean = np.argmax(jax.vmap(batches[-1])(jnp.asarray(images)), -1) == labels
    np.testing.assert_array_equal(table["clean_correct"], np.tile(clean, 2))


def _flat_linear(variables, x):
    return x.reshape(x.shape[0], -1) @ variables["w"].T + variables["b"]


class _TinyA(nn.Module):
    """Full-resolution per-pixel MLP with a sigmoid head (maps in [0, 1])."""

    output_kind = "unit"

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.relu(nn.Dense(3)(x))
        self.sow("intermediates", "hidden", h)
        return nn.sigmoid(nn.Dense(1)(h))[..., 0]


class _TinyB(nn.Module):
    """Pooled (half-resolution) features, upsampled log-density head."""

    output_kind = "log_density"

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.relu(nn.Dense(5)(nn.avg_pool(x, (2, 2), strides=(2, 2))))
        self.sow("intermediates", "pooled", h)
        z = jnp.repeat(jnp.repeat(nn.Dense(1)(h)[..., 0], 2, axis=1), 2, axis=2)
        return z - jax.nn.logsumexp(z, axis=(1, 2), keepdims=True)


def _dense(rng, n_in, n_out):
    return {"kernel": rng.normal(size=(n_in, n_out)).astype(np.float32), "bias": np.zeros(n_out)}


def _tiny_saliency(module, seed, shape=(8, 8, 3)):
    # Hand-made variables: a Flax init would compile for seconds.
    rng = np.random.default_rng(seed)
    hidden = 3 if isinstance(module, _TinyA) else 5
    params = {"Dense_0": _dense(rng, shape[-1], hidden), "Dense_1": _dense(rng, hidden, 1)}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    return from_flax_saliency(module, {"params": params}, input_shape=shape)


def test_saliency_ensemble_of_different_architectures_in_output_and_feature_space():
    a, b = _tiny_saliency(_TinyA(), 0), _tiny_saliency(_TinyB(), 1)
    with pytest.raises(ValueError, match="output kind"):
        ensemble([a, b])  # raw sums need one kind of map
    ens = ensemble([a, b], combine="density", layers=["hidden", "pooled"], strategy="cu_bi_sn")
    assert ens.feature_shape == (8, 8, 3)  # the largest grid, the fewest channels
    x = jax.random.uniform(jax.random.key(0), (8, 8, 3))
    guide = jax.random.uniform(jax.random.key(1), (8, 8, 3))
    assert jax.eval_shape(ens.features, x).shape == (8, 8, 3)
    assert jax.eval_shape(ens, x).shape == (8, 8)
    ramp = jnp.arange(4.0)[:, None, None] * jnp.ones((4, 4, 6))
    for name, strategy in FEATURE_STRATEGIES.items():
        out = unify_features(ramp, strategy, (8, 8, 3))
        assert out.shape == ((8, 8, 1) if strategy.channels == "average" else (8, 8, 3)), name
        if not strategy.softmax:  # BI matches jax.image.resize; CU averages channel pairs
            np.testing.assert_allclose(
                out, jax.image.resize(ramp[..., :1], (8, 8, 1), "linear") * jnp.ones(out.shape),
                atol=1e-5,
            )
    attack = smbea(loss="kl", targeted=True, steps=2)
    hp = attack.hparams(eps=8 / 255, step_size=2 / 255, feature_weight=0.5)
    result = attack(ens, hp, x, None, jax.random.key(0), target=guide)
    assert result.trace[-1] < result.trace[0]
    assert float(result.linf) <= float(result.extras["budgets"][-1]) + 1e-6
    assert result.logits.shape == (8, 8)  # the fused map at x_adv
    # success on CC (as SaliencyAttack): closer to the guide's map than to the clean one
    cc = lambda a, b: np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]  # noqa: E731
    out, clean, target = ens(result.x_adv), ens(x), ens(guide)
    assert bool(result.success) == (cc(out, target) > cc(out, clean))


def test_bad_input_raises_clear_errors():
    a, c = _tiny_saliency(_TinyA(), 0), _tiny_saliency(_TinyA(), 2, shape=(16, 16, 3))
    classifier = Victim(
        {"w": np.ones((3, 192), np.float32), "b": np.zeros(3, np.float32)},
        _flat_linear, input_shape=(8, 8, 3), num_classes=3,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"input shape.*\(8, 8, 3\).*\(16, 16, 3\)"):
        ensemble([a, c])
    with pytest.raises(ValueError, match="output kind"):
        ensemble([a, classifier])
    with pytest.raises(ValueError, match="sum to a positive number"):
        ensemble([a, a], [0.0, 0.0])
    with pytest.raises(ValueError, match="sum to a positive number"):
        ensemble([a, a], [1.0, -2.0])
    with pytest.raises(ValueError, match="Available layers: hidden"):
        ensemble([a], layers=["conv9"])
    with pytest.raises(ValueError, match="strategy"):
        ensemble([a], layers=["hidden"], strategy="pca")
    attack = smbea(loss="mse", targeted=True)
    for name in ("beta1", "beta2", "beta3", "mu1", "mu2"):
        with pytest.raises(ValueError, match=rf"hp\.{name}.*\[0, 1\]"):
            attack.hparams(**{name: 1.5})
    with pytest.raises(ValueError, match=r"beta1.*\[0, 1\]"):
        next_minibatch(smbea_step(0.1).init(X0), MemoryHParams(-0.1, 0.5))
    with pytest.raises(ValueError, match="LongTermMemoryState"):
        next_minibatch(optax.adam(0.1).init(X0), MemoryHParams(0.5, 0.5))
    with pytest.raises(ValueError, match="loss"):
        smbea(loss="kl", minibatches=3).batch(
            stub_batches(), smbea().hparams(), X0[None], None, jax.random.key(0)
        )
    with pytest.raises(ValueError, match="guide"):
        ATTACK(stub_batches(), attack.hparams(), X0, None, jax.random.key(0))
    with pytest.raises(ValueError, match="mini-batch"):
        smbea(loss="mse", targeted=True, minibatches=2)(
            [stub_batches()[0], ensemble([a])], attack.hparams(), X0, None, jax.random.key(0)
        )
    with pytest.raises(ValueError, match=r"minibatches.*=1.*got 3"):
        attack(stub_batches(), attack.hparams(), X0, None, jax.random.key(0), target=GUIDE)
    with pytest.raises(ValueError, match="norm"):
        SMBEAttack(norm="l3")
