"""Meta Attack: the oracle's finite differences against a numpy transcription, its in-program
fine-tuning against Adam written out by hand, exact query counts, the attack with a meta attacker
that knows the true gradient against a white-box top-q coordinate attack, success on the tiny
MLP seen score-only, the meta attacker's shapes, and clear errors."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, models
from jaxadv.attacks import MetaOracle

from conftest import make_linear_victim, make_mlp_victim
from registry import DenseMetaAttacker as Linear

SHAPE = (3, 4)  # a latent of 12 coordinates
A = np.linspace(-1.0, 1.5, 12).reshape(SHAPE)
THETA = np.linspace(0.3, -0.4, 12).reshape(SHAPE)


def cubic(theta):
    """``Σ a θ + θ³/3`` (aux: (input, scores)); symmetric differences err by h²/3 only."""
    return jnp.sum(A * theta + theta**3 / 3), (theta, jnp.zeros(2))


def _linear_variables(n, seed):
    """Variables of :class:`Linear` for ``n`` inputs, drawn here (no compiled ``init``)."""
    rng = np.random.default_rng(seed)
    kernel, bias = rng.normal(size=(n, n)) / np.sqrt(n), 0.1 * rng.normal(size=n)
    return {
        "params": {
            "dense": {
                "kernel": jnp.asarray(kernel, jnp.float32),
                "bias": jnp.asarray(bias, jnp.float32),
            }
        }
    }


def _oracle_calls(oracle):
    """One compiled call of ``oracle`` on :func:`cubic` (a fine-tuning call and a predicted one
    share it: the branch is chosen by the state's count)."""
    return jax.jit(lambda t, s: oracle(cubic, t, jax.random.key(0), s))


@pytest.mark.parametrize("symmetric", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_finetuning_step_matches_numpy_differences_and_hand_written_adam(symmetric):
    module, q, h, lr, steps = Linear(), 5, 1e-2, 1e-2, 4
    variables = _linear_variables(12, 1)
    oracle = MetaOracle(top_q=q, finetune_steps=steps, finetune_lr=lr, symmetric=symmetric, h=h)
    oracle = oracle.with_meta(module.apply, variables)
    theta = jnp.asarray(THETA, jnp.float32)
    state = oracle.init(theta)
    call = _oracle_calls(oracle)
    (loss, _), est, new_state, queries = call(theta, state)

    # The coordinates: the meta attacker's q largest |prediction| at the input (here x = θ).
    kernel = np.asarray(variables["params"]["dense"]["kernel"], np.float64)
    bias = np.asarray(variables["params"]["dense"]["bias"], np.float64)
    flat = THETA.reshape(-1)
    index = np.argsort(-np.abs(flat @ kernel + bias), kind="stable")[:q]
    np.testing.assert_array_equal(np.flatnonzero(est.chosen), np.sort(index))

    # The finite differences, transcribed (the loss evaluated in float64).
    def f(t):
        return np.sum(A.reshape(-1) * t + t**3 / 3)

    g = []
    for i in index:
        e = np.zeros(12)
        e[i] = h
        g.append((f(flat + e) - (f(flat - e) if symmetric else f(flat))) / (2 * h))
    g = np.asarray(g)
    np.testing.assert_allclose(np.asarray(est.grad).reshape(-1)[index], g, rtol=2e-3, atol=2e-4)
    assert int(queries) == (2 * q if symmetric else q) + 1 == oracle.queries_per_call
    assert int(new_state.count) == 1

    # Fine-tuning: Adam (β1 .9, β2 .999, ε 1e-8) on mean((A(x)[index] − ĝ/σ)²), by hand.
    sparse = np.asarray(est.grad, np.float64).reshape(-1)  # 0 off the probed coordinates
    target = sparse[index] / sparse.std()
    w, b = kernel.copy(), bias.copy()
    mw, vw, mb, vb = 0 * w, 0 * w, 0 * b, 0 * b
    for t in range(1, steps + 1):
        residual = np.zeros(12)
        residual[index] = 2 * ((flat @ w + b)[index] - target) / q
        gw, gb = np.outer(flat, residual), residual
        mw, mb = 0.9 * mw + 0.1 * gw, 0.9 * mb + 0.1 * gb
        vw, vb = 0.999 * vw + 0.001 * gw**2, 0.999 * vb + 0.001 * gb**2
        w = w - lr * (mw / (1 - 0.9**t)) / (np.sqrt(vw / (1 - 0.999**t)) + 1e-8)
        b = b - lr * (mb / (1 - 0.9**t)) / (np.sqrt(vb / (1 - 0.999**t)) + 1e-8)
    tuned = new_state.variables["params"]["dense"]
    np.testing.assert_allclose(tuned["kernel"], w, atol=1e-5)
    np.testing.assert_allclose(tuned["bias"], b, atol=1e-5)

    # The next call predicts with the tuned attacker: no probes, its own values at its top q.
    (_, _), est2, state2, queries2 = call(theta, new_state)
    prediction = flat @ w + b
    index2 = np.argsort(-np.abs(prediction), kind="stable")[:q]
    assert int(queries2) == 1 and int(state2.count) == 2
    np.testing.assert_allclose(
        np.asarray(est2.grad).reshape(-1)[index2], prediction[index2], rtol=1e-4, atol=1e-5
    )
    assert np.count_nonzero(est2.chosen) == q
    jax.tree.map(np.testing.assert_array_equal, state2.variables, new_state.variables)


# -- the attack --------------------------------------------------------------------------------------

MLP_BUDGET, MLP_Q = 120, 4


@functools.lru_cache(maxsize=None)
def _mlp_run(early_stop: bool, max_l2=None, targeted=False):
    victim = make_mlp_victim()
    module = Linear()
    carrier = models.with_meta_attacker(models.score_only(victim), module, _linear_variables(16, 0))
    attack = attacks.meta_attack(
        top_q=MLP_Q,
        max_queries=MLP_BUDGET,
        finetune_steps=3,
        const=5.0,
        early_stop=early_stop,
        max_l2=max_l2,
        targeted=targeted,
    )
    images = jax.random.uniform(jax.random.key(3), (12,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), -1)
    targets = (labels + 1) % 3 if targeted else None
    hp = attack.hparams(step_size=0.2)
    result = attack.batch(carrier, hp, images, labels, jax.random.key(0), targets)
    return attack, result, victim, labels


def _cost(oracle, steps):
    return sum(oracle.call_queries(k) for k in range(steps))


@pytest.mark.slow  # ~10 s: 12 examples, ~30 steps
def test_query_counts_are_exact_and_success_on_the_tiny_mlp():
    attack, result, victim, labels = _mlp_run(True)
    oracle = attack.oracle
    # Fine-tuning steps (k % 3 == 0) cost 2q probes + the evaluation, the others 1.
    assert [oracle.call_queries(k) for k in range(4)] == [2 * MLP_Q + 1, 1, 1, 2 * MLP_Q + 1]
    length = attack.budget_steps
    assert _cost(oracle, length) + 1 <= MLP_BUDGET < _cost(oracle, length + 1) + 1
    steps, queries = np.asarray(result.steps), np.asarray(result.queries)
    success = np.asarray(result.success)
    assert success.mean() >= 0.5, success  # random meta attacker, 120 queries
    assert np.all(queries <= MLP_BUDGET)
    for s, n, ok in zip(steps, queries, success):
        if s < length:  # stopped at its first success: the success step costs its evaluation
            assert ok and n == _cost(oracle, s - 1) + 1
        else:  # ran out of budget: every step and the final evaluation
            assert n == _cost(oracle, length) + 1
    fooled = np.argmax(np.asarray(victim.batch(result.x_adv)), -1) != np.asarray(labels)
    np.testing.assert_array_equal(fooled, success)


def _batched_forms(module, variables, examples, forms, **fields):
    """The batched attack in each ``(batch_uniform, finetune_batching)`` form of ``forms``."""
    victim = make_mlp_victim()
    carrier = models.with_meta_attacker(models.score_only(victim), module, variables)
    base = attacks.meta_attack(const=5.0, **fields)
    images = jax.random.uniform(jax.random.key(5), (examples,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), -1)
    hp = base.hparams(step_size=0.2)
    results = []
    for uniform, batching in forms:
        oracle = dataclasses.replace(base.oracle, finetune_batching=batching)
        attack = dataclasses.replace(base, oracle=oracle, batch_uniform=uniform)
        results.append(attack.batch(carrier, hp, images, labels, jax.random.key(0)))
    return base, results


def _assert_same(new, old, rtol):
    for field in ("success", "steps", "queries", "zero_gradient", "finite"):
        np.testing.assert_array_equal(getattr(new, field), getattr(old, field), err_msg=field)
    for field in ("x_adv", "loss", "trace", "l2"):
        np.testing.assert_allclose(getattr(new, field), getattr(old, field), rtol=rtol, atol=1e-6)


@pytest.mark.slow  # ~10-60 s (load): two compilations of the attack
def test_batch_uniform_schedule_equals_the_per_example_form():
    # The new form (blocks of steps fixed in the trace, fine-tuning looped over the examples)
    # against the old one (a per-example lax.cond, vmapped fine-tuning). 8 steps = 2 blocks of
    # 3 + 2 steps in `finish`; the examples stop at different steps.
    forms = ((True, "loop"), (False, "vmap"))
    base, (new, old) = _batched_forms(
        Linear(), _linear_variables(16, 0), 6, forms, top_q=3, max_queries=27, finetune_steps=2
    )
    assert base.budget_steps == 8 and base.length == 2
    assert np.asarray(new.trace).shape == (6, 8)
    steps = np.asarray(old.steps)
    assert len(set(steps.tolist())) > 1 and np.asarray(old.success).any(), steps
    _assert_same(new, old, rtol=1e-5)


def test_fine_tuning_looped_under_vmap_equals_each_example_alone():
    # A dense meta attacker keeps the compilation short; the loop does not look inside it.
    module, x = Linear(), jax.random.uniform(jax.random.key(1), (3, 4, 4, 1))
    variables = [_linear_variables(16, seed) for seed in range(3)]
    variables = jax.tree.map(lambda *a: jnp.stack(a), *variables)
    oracle = MetaOracle(top_q=4, finetune_steps=3, finetune_batching="loop")
    tuned, tx = oracle.with_meta(module.apply, variables).tuned(), oracle.tx()
    index = jnp.asarray([[0, 5, 9, 15]] * 3)
    target = jax.random.normal(jax.random.key(2), (3, 4))

    def one(v, x, i, t):
        return tuned(module.apply, v, tx.init(v), x, i, t, 3, tx)[0]

    looped = jax.jit(jax.vmap(one))(variables, x, index, target)
    alone = jax.jit(one)
    for k in range(3):
        each = alone(*jax.tree.map(lambda a: a[k], (variables, x, index, target)))
        mine = jax.tree.map(lambda a: a[k], looped)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), mine, each
        )
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), looped, variables)
    assert max(jax.tree.leaves(moved)) > 1e-3  # the fine-tuning did change the weights


@pytest.mark.slow  # ~90 s: the convolutional meta attacker
def test_batch_uniform_schedule_is_bit_exact_with_convolutions():
    # The same fine-tuning batching in both: the schedule change alone changes no bit. (Looped
    # vs vmapped convolutions round differently; a near-tie of |A(x)| can then pick another
    # coordinate a few steps later, so they are compared on one fine-tuning above.)
    module = models.MetaAttacker(features=(4, 8))
    variables = module.init(jax.random.key(0), jnp.zeros((4, 4, 1)))
    forms = ((True, "vmap"), (False, "vmap"))
    _, (new, old) = _batched_forms(
        module, variables, 4, forms, top_q=4, max_queries=40, finetune_steps=3, early_stop=False
    )
    _assert_same(new, old, rtol=0)


@pytest.mark.slow  # ~10 s: another compilation of the MLP run
def test_targeted_run_reaches_the_target():
    _, result, victim, labels = _mlp_run(True, targeted=True)
    success = np.asarray(result.success)
    assert success.mean() >= 0.5, success
    reached = np.argmax(np.asarray(victim.batch(result.x_adv)), -1) == (np.asarray(labels) + 1) % 3
    np.testing.assert_array_equal(reached, success)


def test_targeted_and_one_sided_counts():
    attack = attacks.meta_attack(top_q=3, symmetric=False, targeted=True, max_queries=30)
    assert attack.oracle.queries_per_call == 4 and attack.targeted
    assert [attack.oracle.call_queries(k) for k in range(3)] == [4, 1, 1]
    assert attack.budget_steps == 14  # budget 30 − 1: 4 cycles of 4+1+1 (24), then 4 + 1 = 29
    late = attacks.meta_attack(top_q=3, finetune_first=False, max_queries=30)
    assert [late.oracle.call_queries(k) for k in range(4)] == [1, 1, 7, 1]
    assert late.budget_steps == 11  # budget 29: 3 cycles of 1+1+7 (9 steps, 27), then 1 + 1 = 29


@pytest.mark.slow  # ~10 s: another compilation of the MLP run
def test_published_l2_cap_counts_success_only_within_it():
    _, free, _, _ = _mlp_run(True)
    cap = float(np.median(np.asarray(free.l2)[np.asarray(free.success)]))
    _, capped, _, _ = _mlp_run(True, cap)
    success = np.asarray(capped.success)
    assert np.all(np.asarray(capped.l2)[success] <= cap + 1e-5)
    assert success.sum() >= 1 and not np.array_equal(success, np.asarray(free.success))


@pytest.mark.slow  # ~30-70 s: the convolutional meta attacker with per-example weights
def test_the_convolutional_meta_attacker_fine_tunes_inside_the_attack():
    victim = make_mlp_victim()
    module = models.MetaAttacker(features=(4, 8))
    variables = module.init(jax.random.key(0), jnp.zeros(victim.input_shape))
    carrier = models.with_meta_attacker(models.score_only(victim), module, variables)
    attack = attacks.meta_attack(top_q=4, max_queries=40, finetune_steps=3, early_stop=False)
    images = jax.random.uniform(jax.random.key(3), (2,) + victim.input_shape)
    labels = jnp.argmax(victim.batch(images), -1)
    result = attack.batch(carrier, attack.hparams(), images, labels, jax.random.key(0))
    assert np.all(np.asarray(result.finite)) and np.all(np.isfinite(np.asarray(result.trace)))
    np.testing.assert_array_equal(result.queries, _cost(attack.oracle, attack.budget_steps) + 1)
    assert np.all(np.asarray(result.trace)[:, -1] < np.asarray(result.trace)[:, 0])


# -- a meta attacker that knows the gradient: the white-box top-q coordinate attack -------------


def test_true_gradient_meta_attacker_equals_white_box_top_q_coordinate_attack():
    # A linear victim in the box [−1, 1]: x = tanh(w), w = arctanh(x0) + z, and the objective
    # ‖x − x0‖² + c·max(s_y − max_{j≠y} s_j, 0) (log-softmax differences = logit differences) has
    # the closed-form latent gradient (2(x − x0) + c·[margin > 0](W_y − W_j*))·(1 − x²).
    victim = make_linear_victim(dim=12, num_classes=3, seed=2, bounds=(-1.0, 1.0))
    w = np.asarray(victim.variables["w"], np.float64)
    x0 = np.linspace(-0.5, 0.6, 12)
    label = int(np.argmax(w @ x0))
    const, lr, q, steps = 2.0, 0.05, 3, 4  # fine-tuning (probing) steps 0 and 3

    def gradient(x, xp=np):  # the latent gradient at input x
        s = xp.asarray(w) @ x
        other = xp.argmax(xp.where(xp.arange(3) == label, -xp.inf, s))
        active = (s[label] - s[other]) > 0
        return (2 * (x - x0) + const * active * (xp.asarray(w)[label] - xp.asarray(w)[other])) * (
            1 - x**2
        )

    class TrueGradient(nn.Module):
        @nn.compact
        def __call__(self, x):
            return gradient(x, jnp).astype(x.dtype)

    carrier = models.with_meta_attacker(models.score_only(victim), TrueGradient(), {})
    attack = attacks.meta_attack(
        top_q=q,
        max_queries=_cost(MetaOracle(top_q=q), steps) + 1,
        const=const,
        early_stop=False,
        finetune_steps=1,
    )
    assert attack.budget_steps == steps
    hp = attack.hparams(step_size=lr, fd_step=1e-3)
    result = attack(carrier, hp, jnp.asarray(x0, jnp.float32), label, key=jax.random.key(0))

    # White box: z ← z − lr·g/(|g| + 1e-8) on the q coordinates of largest |g|.
    x, z, losses = x0.copy(), np.zeros(12), []
    for _ in range(steps):
        s = w @ x
        margin = s[label] - np.max(np.delete(s, label))
        losses.append(np.sum((x - x0) ** 2) + const * max(margin, 0.0))
        g = gradient(x)
        top = np.argsort(-np.abs(g), kind="stable")[:q]
        z[top] -= lr * g[top] / (np.abs(g[top]) + 1e-8)
        x = np.tanh(np.arctanh(x0 * (1 - 1e-6)) + z)
    np.testing.assert_allclose(result.trace, losses, rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]
    # Steps 0 and 3 probe 2q coordinates, steps 1 and 2 only evaluate; then the final evaluation.
    assert int(result.steps) == steps and int(result.queries) == 2 * (2 * q + 1) + 2 + 1


# -- the meta attacker's network and the bad inputs -------------------------------------------------


@pytest.mark.parametrize(
    "shape,features", [((32, 32, 3), (32, 64, 128, 256)), ((28, 28, 1), (8, 16, 32, 64))]
)
def test_meta_attacker_maps_an_image_to_a_gradient_of_its_shape(shape, features):
    module = models.MetaAttacker(features)
    variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(shape))
    assert set(variables) == {"params"}  # no running statistics
    convs = [k for k in variables["params"] if k.startswith("Conv_")]
    transposed = [k for k in variables["params"] if k.startswith("ConvTranspose_")]
    assert len(convs) == len(transposed) == len(features)
    out = jax.eval_shape(module.apply, variables, jnp.zeros(shape))
    assert out.shape == shape
    if shape[-1] == 1:  # a batch of images too
        batch = jax.eval_shape(module.apply, variables, jnp.zeros((2,) + shape))
        assert batch.shape == (2,) + shape


def test_bad_input():
    victim = models.score_only(make_linear_victim(dim=16))
    module = Linear()
    variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(16))
    wrong = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(9))
    with pytest.raises(ValueError, match="`module`"):
        models.with_meta_attacker(victim, module, wrong)  # a 9 → 9 attacker for 16 inputs
    with pytest.raises(ValueError, match="`module`"):
        models.with_meta_attacker(victim, nn.Dense(3), {})
    with pytest.raises(ValueError, match="`victim`"):
        models.with_meta_attacker(object(), module, variables)
    carrier = models.with_meta_attacker(victim, module, variables)
    x0 = jnp.zeros(16)
    too_many = attacks.meta_attack(top_q=17, max_queries=100)
    with pytest.raises(ValueError, match="`top_q`"):
        too_many(carrier, too_many.hparams(), x0, 0, key=jax.random.key(0))
    plain = attacks.meta_attack(top_q=2, max_queries=100)
    with pytest.raises(ValueError, match="meta attacker"):
        plain(victim, plain.hparams(), x0, 0, key=jax.random.key(0))
    for kwargs, name in [
        (dict(max_queries=0), "max_queries"),
        (dict(top_q=0), "top_q"),
        (dict(top_q=4, max_queries=8), "max_queries"),  # cannot pay for one 2q+1 step + final
        (dict(finetune_interval=0), "finetune_interval"),
        (dict(finetune_steps=-1), "finetune_steps"),
        (dict(max_l2=0.0), "max_l2"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            attacks.meta_attack(**kwargs)
