"""The query-based seam: black-box views refuse gradients, query attacks count every query and
respect their budget exactly, and with the exact gradient plugged in a query attack takes the
white-box attack's steps bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxadv import attacks, gradients, models
from jaxadv.losses import classification_objective

from conftest import make_mlp_victim, mlp_apply
from registry import make_saliency_victim

VICTIM = make_mlp_victim()
X = jax.random.uniform(jax.random.key(0), (6, 4, 4, 1))
Y = jnp.argmax(VICTIM.batch(X), -1)


def _query_attack(oracle, max_queries, early_stop=True, norm="linf"):
    return attacks.QueryAttack(
        objective=classification_objective("cw", targeted=False),
        step_rule=attacks.SteepestStep(norm),
        constraint=attacks.Ball(norm),
        oracle=oracle,
        max_queries=max_queries,
        early_stop=early_stop,
    )


# -- black-box views -------------------------------------------------------------------------------


def test_score_only_returns_the_outputs_and_refuses_every_derivative():
    box = models.score_only(VICTIM)
    probs = models.score_only(VICTIM, output="probabilities")
    x = X[0]
    np.testing.assert_array_equal(box(x), VICTIM(x))
    np.testing.assert_allclose(probs(x), jax.nn.softmax(VICTIM(x)), rtol=1e-6)
    assert type(box) is type(VICTIM) and models.is_black_box(box) and not models.is_black_box(VICTIM)
    with pytest.raises(models.GradientAccessError, match="gradient is not available"):
        jax.grad(lambda x: box(x)[0])(x)
    with pytest.raises(models.GradientAccessError):
        jax.jvp(box, (x,), (x,))
    # A white-box attack on the view fails loudly instead of attacking with a wrong gradient.
    with pytest.raises(models.GradientAccessError):
        attacks.fgsm()(box, attacks.fgsm().hparams(eps=0.1), x, Y[0], jax.random.key(0))


def test_hard_label_view_leaks_only_the_top_class():
    view = models.hard_label(VICTIM)
    out = view.batch(X)
    np.testing.assert_array_equal(out, jax.nn.one_hot(Y, VICTIM.num_classes))
    with pytest.raises(models.GradientAccessError):
        jax.grad(lambda x: view(x)[0])(X[0])


def test_black_box_views_of_a_saliency_model_keep_its_type_and_map():
    victim = make_saliency_victim()
    box = models.score_only(victim)
    x = jnp.full(victim.input_shape, 0.5)
    assert type(box) is type(victim)
    np.testing.assert_array_equal(box(x), victim(x))
    with pytest.raises(ValueError, match="output='logits'"):
        models.score_only(victim, output="probabilities")
    with pytest.raises(ValueError, match="must be a classifier"):
        models.hard_label(victim)


def test_black_box_view_misuse_is_refused():
    with pytest.raises(ValueError, match="already a black-box view"):
        models.score_only(models.score_only(VICTIM))
    with pytest.raises(ValueError, match="`output` must be one of"):
        models.score_only(VICTIM, output="softmax")
    with pytest.raises(ValueError, match="with_key"):
        models.score_only(models.with_input_noise(VICTIM, 0.1))
    with pytest.raises(ValueError, match="must be a jaxadv victim"):
        models.score_only(mlp_apply)


# -- the budget and the count ----------------------------------------------------------------------


def _counting_victim(counter):
    """The mlp victim whose every forward pass adds its number of rows to ``counter``."""

    def apply(variables, x):
        # The argument depends on the input, so under a vmap every probe is seen.
        jax.debug.callback(lambda rows: counter.append(np.size(rows)), x[:, 0, 0, 0])
        return mlp_apply(variables, x)

    return VICTIM.replace(apply_fn=apply)


def test_queries_reported_are_the_forward_passes_made():
    # No early stop and a budget the steps fill exactly: every forward pass the program makes is
    # one the attack used, so the host-side count must equal the reported one.
    nes = gradients.nes(4)
    budget = 3 * nes.queries_per_call + 1
    attack = _query_attack(nes, budget, early_stop=False)
    counter: list[int] = []
    victim = models.score_only(_counting_victim(counter))
    result = attack(victim, attack.hparams(eps=0.1, step_size=0.02), X[0], Y[0], jax.random.key(3))
    jax.effects_barrier()
    assert attack.length == 3
    assert int(result.queries) == budget == sum(counter)


def test_budget_is_never_overspent_and_success_stops_the_count():
    nes = gradients.nes(6)  # 7 queries a step
    attack = _query_attack(nes, max_queries=40)  # 5 steps (35) + the final evaluation
    hp = attack.hparams(eps=0.3, step_size=0.1, fd_step=0.01)
    result = attack.batch(models.score_only(VICTIM), hp, X, Y, jax.random.key(4))
    queries, success, steps = map(np.asarray, (result.queries, result.success, result.steps))
    assert np.all(queries <= 40)
    # An example that stops at a success paid its earlier steps and one evaluation of the point
    # that succeeded (no probes after it); one that ran out paid every step and the final
    # evaluation (which may still find success).
    stopped = success & (queries == 7 * (steps - 1) + 1)
    ran_out = (steps == 5) & (queries == 7 * 5 + 1)
    assert np.all(stopped | ran_out) and stopped.any() and (ran_out & ~success).any()
    assert success.any() and np.all(np.asarray(result.linf) <= 0.3 + 1e-6)


def test_exact_gradient_plugged_in_equals_the_white_box_attack():
    white = attacks.Attack(
        objective=classification_objective("cw", targeted=False),
        step_rule=attacks.SteepestStep("linf"),
        constraint=attacks.Ball("linf"),
        steps=4,
        early_stop=True,
    )
    query = _query_attack(gradients.exact(), max_queries=4)
    key = jax.random.key(5)
    a = white.batch(VICTIM, white.hparams(eps=0.1, step_size=0.03), X, Y, key)
    b = query.batch(VICTIM, query.hparams(eps=0.1, step_size=0.03), X, Y, key)
    assert query.length == white.length
    for field in ("x_adv", "delta", "success", "loss", "steps", "queries", "trace"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_saliency_query_attack_moves_the_map_within_budget():
    victim = make_saliency_victim()
    attack = attacks.SaliencyQueryAttack(
        objective=attacks.SaliencyObjective("cc", False),
        step_rule=attacks.SteepestStep("linf"),
        constraint=attacks.Ball("linf"),
        oracle=gradients.nes(4),
        max_queries=16,
        early_stop=False,
    )
    images = jax.random.uniform(jax.random.key(6), (2,) + victim.input_shape)
    hp = attack.hparams(eps=0.2, step_size=0.05, fd_step=0.01)
    result = attack.batch(models.score_only(victim), hp, images, None, jax.random.key(7))
    clean = victim.batch(images)
    moved = jnp.abs(victim.batch(result.x_adv) - clean).max(axis=(1, 2))
    assert np.all(np.asarray(result.queries) == 16) and np.all(np.asarray(moved) > 1e-3)
    assert np.all(np.asarray(result.linf) <= 0.2 + 1e-6)
    # The minimised objective went below its value at the clean image.
    objective = attacks.SaliencyObjective("cc", False, output=victim.output)
    at_clean = jax.vmap(lambda c: objective(c, c, c, hp))(clean)
    assert np.all(np.asarray(result.loss) < np.asarray(at_clean))


# -- misuse ----------------------------------------------------------------------------------------


def test_query_attack_misuse_names_the_argument():
    nes = gradients.nes(4)
    with pytest.raises(ValueError, match="`max_queries` must pay for at least one step"):
        _query_attack(nes, max_queries=5)
    with pytest.raises(ValueError, match="`max_queries`"):
        _query_attack(nes, max_queries=0)
    with pytest.raises(ValueError, match="`steps` of a query attack"):
        attacks.QueryAttack(
            objective=classification_objective("ce", targeted=False),
            step_rule=attacks.SteepestStep("linf"),
            constraint=attacks.Ball("linf"),
            oracle=nes,
            steps=3,
        )
    with pytest.raises(ValueError, match="`samples` must be even"):
        gradients.nes(3)
    with pytest.raises(ValueError, match="fd_step"):
        _query_attack(nes, 100).hparams(step_size=0.1, fd_step=0.0)


def test_a_victim_with_non_finite_scores_is_never_fooled_and_can_be_refused():
    nan_victim = VICTIM.replace(apply_fn=lambda variables, x: mlp_apply(variables, x) * jnp.nan)
    attack = _query_attack(gradients.nes(4), max_queries=11)
    hp = attack.hparams(eps=0.3, step_size=0.1, fd_step=0.01)
    box = models.score_only(nan_victim)
    result = attack.batch(box, hp, X[:2], Y[:2], jax.random.key(8))
    assert not np.asarray(result.success).any() and not np.asarray(result.finite).any()
    with pytest.raises(attacks.NonFiniteOutputError, match="NaN/inf"):
        attack.batch(box, hp, X[:2], Y[:2], jax.random.key(8), require_finite=True)


def test_query_attack_sweeps_its_estimator_numbers_through_jaxadv_sweeps():
    from jaxadv.sweeps import Grid, run_grid

    attack = _query_attack(gradients.nes(4), max_queries=16)  # 3 steps of 5, the final 1
    grid = Grid(
        attack, np.asarray(X[:3]), np.asarray(Y[:3]),
        params={"fd_step": [0.01, 0.05], "eps": [0.3], "step_size": [0.1]},
    )  # fmt: skip
    table = run_grid(models.score_only(VICTIM), grid, progress=False).table
    np.testing.assert_array_equal(np.unique(table["fd_step"]), np.float32([0.01, 0.05]))
    queries, steps, success = table["queries"], table["steps"], table["success"]
    # The table holds each entry's own count: a success within the steps paid k − 1 steps and
    # one evaluation; otherwise all 3 steps and the final evaluation (which may still succeed).
    stopped = success & (queries == 5 * (steps - 1) + 1)
    ran_out = (steps == 3) & (queries == 16)
    assert np.all(stopped | ran_out) and stopped.any()
