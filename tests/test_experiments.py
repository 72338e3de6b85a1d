"""Every experiment's smoke variant runs and returns its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_mlp_victim

from jaxadv import models

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Slow: the demo's table on the smoke victim, which tests/test_demo.py already runs.
@pytest.mark.slow
def test_classic_attacks_smoke():
    tables = _load("classic_attacks_digits").main(["--smoke"])  # the shared victim cache
    assert list(tables) == ["c4"]
    rows = tables["c4"]
    assert [r["attack"] for r in rows] == ["FGSM ℓ∞ 0.3", "PGD ℓ∞ 0.3"]
    # PGD with the standard MNIST budget is at least as strong as one FGSM step.
    assert rows[1]["robust_accuracy"] <= rows[0]["robust_accuracy"] + 1e-9


# Notebook 02 runs C&W and sC&W on the same victim in the default suite.
# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_smooth_table1_smoke():
    tables = _load("smooth_table1").main(["--smoke", "--adversarial"])  # the shared victim cache
    table = tables["c4"]
    rows = table["rows"]
    assert [r["attack"] for r in rows] == ["FGSM", "I-FGSM", "PGD2", "C&W", "qPGD2", "sC&W"]
    for row in rows:
        assert 0.0 <= row["P_suc"] <= 1.0 and row["cg_converged"], row
        assert row["P_suc"] == 0.0 or row["D_bar"] > 0.0, row
        budgets, prob = table["curves"][row["attack"]]
        assert prob[-1] == row["P_suc"] and np.all(np.diff(prob) >= 0)
    for key in ("transfer", "at_transfer", "at_rows"):  # Table 3's two columns, Table 2
        assert [r["attack"] for r in table[key]] == [r["attack"] for r in rows], key
        assert all(0.0 <= r["P_suc"] <= 1.0 for r in table[key]), key
    assert 0.0 < table["at_accuracy"] <= 1.0


# Notebook 04 trains the same SalGAN and runs the same targeted attack in the default suite.
# Slow (`pytest -m slow`): keeps the default suite within its 10-minute budget on 2 cores.
@pytest.mark.slow
def test_saliency_attacks_smoke():
    out = _load("saliency_attacks").main(["--smoke"])  # the shared victim cache
    rows = out["rows"]
    assert list(rows) == ["clean", "random ±eps noise", "targeted CC"]
    for row in rows.values():
        assert -1.0 <= row["cc"] <= 1.0 and 0.0 <= row["sauc"] <= 1.0, row
    before, after = out["to_guide"]["targeted CC"]
    assert -1.0 <= before <= 1.0 and -1.0 <= after <= 1.0
    assert isinstance(out["layer"], str) and out["layer"]  # the feature layer it would attack


@pytest.mark.slow  # three attacks compiled on the digits net (~1 min on 2 cores)
def test_min_norm_digits_smoke():
    rows = _load("min_norm_digits").main(["--smoke"])  # the shared victim cache
    assert [r["attack"] for r in rows][:2] == ["DeepFool ℓ2", "DeepFool ℓ∞"]
    for row in rows:
        assert 0.0 <= row["success"] <= 1.0, row
        assert row["success"] == 0.0 or row["median_norm"] > 0.0, row


# Slow: three compiled attacks on the C&W net (tests/test_apgd.py checks APGD on tiny victims).
@pytest.mark.slow
def test_apgd_digits_smoke():
    rows = _load("apgd_digits").main(["--smoke"])  # the shared victim cache
    assert [r["attack"] for r in rows] == [
        "APGD-CE",
        "APGD-T (9 targets)",
        "PGD (CE, random start)",
    ]
    assert [r["queries_per_image"] for r in rows] == [3.0, 27.0, 3.0]
    assert all(0.0 <= r["robust_accuracy"] <= 1.0 and r["mean_linf"] <= 0.3 + 1e-6 for r in rows)



# Slow: every AutoAttack member and six minimum-norm attacks compiled (tests/test_autoattack.py
# and the families' tests check the pieces on tiny victims).
@pytest.mark.slow
def test_evaluate_digits_smoke():
    out = _load("evaluate_digits").main(["--smoke"])  # the shared victim cache
    accs = out["autoattack"]["robust_accuracy"]
    assert 0.0 <= accs["AutoAttack standard"] <= 1.0
    assert accs["AutoAttack standard"] <= accs["APGD-CE alone"] + 1 / 8 + 1e-6  # keys differ
    for norm in ("linf", "l1"):
        part = out["optimality"][norm]
        assert np.all(part["exact"] >= 0)
        for row in part["rows"]:
            assert 0.0 <= row["success"] <= 1.0, row
            assert not row["median_ratio"] < 0.99, row  # nothing beats the exact minimum


# Slow: three substitute trainings and FGSM compiled (tests/test_substitute.py checks the pieces).
@pytest.mark.slow
def test_papernot_substitute_smoke():
    rows = _load("papernot_substitute").main(["--smoke"])  # the shared victim cache
    assert [r["variant"] for r in rows][-1] == "random signs"
    for row in rows[:-1]:
        assert row["record"].total_queries == 20 and len(row["record"].agreement) == 2
        assert all(0.0 <= v <= 1.0 for v in row["transfer"].values())


def _blackbox_row_checks(module, out, budget):
    for row in out["rows"]:
        assert 0.0 <= row["success"] <= 1.0, row
        assert row["max_queries_spent"] <= budget, row
        eps = dict((s[0], s[2]) for s in module.SETTINGS)[row["setting"]]
        assert row["max_norm"] <= eps * (1 + 1e-5), row
        per = out["examples"][f"{row['setting']} / {row['attack']}"]
        fooled = np.asarray(per["success"]) & np.asarray(out["correct"])
        queries = np.asarray(per["queries"])
        assert row["success"] == pytest.approx(fooled.sum() / max(np.sum(out["correct"]), 1))
        if fooled.any():  # mean and median over the successful examples only
            assert row["median_queries"] == np.median(queries[fooled])
        grid, frac = out["curves"][row["setting"]][row["attack"]]
        assert np.all(np.diff(frac) >= 0) and grid[-1] == budget
        assert frac[-1] == pytest.approx(row["success"])  # everyone fooled within the budget


def _tiny_table(module, settings, names, budget):
    """The experiment's run_one on the tiny conftest victim (6 random 4x4x1 images); the prior
    attacks' surrogate is another tiny victim."""
    victim, surrogate = make_mlp_victim(), make_mlp_victim(seed=1)
    images = jax.random.uniform(jax.random.key(3), (6, 4, 4, 1))
    labels_np = np.argmax(np.asarray(victim.batch(images)), -1).astype(np.int32)
    correct = np.ones(6, bool)
    targets = module.targets_for(labels_np, victim.num_classes)
    assert np.all(targets != labels_np) and np.all((targets >= 0) & (targets < 3))
    rows, examples, curves = [], {}, {}
    for setting in settings:
        curves[setting[0]] = {}
        for name in names:
            row, per = module.run_one(
                name, module.ATTACKS[name], setting, models.score_only(victim), surrogate, images,
                jnp.asarray(labels_np), targets, correct, budget,
            )  # fmt: skip
            rows.append(row)
            examples[f"{setting[0]} / {name}"] = per
            fooled = np.asarray(per["success"]) & correct
            curves[setting[0]][name] = module.success_curve(per["queries"], fooled, correct, budget)
    out = dict(rows=rows, examples=examples, curves=curves, correct=correct.tolist())
    _blackbox_row_checks(module, out, budget)
    assert "over the successful ones only" in module.markdown(rows, budget)
    return rows


# Default suite (~4 s of CPU: one compilation): the experiment's plumbing with NES (1 step) on
# the tiny victim; the slow tests below run every attack of the table and the digits smoke.
def test_blackbox_queries_nes_row_on_a_tiny_victim():
    module = _load("blackbox_queries")
    (row,) = _tiny_table(module, module.SETTINGS[:1], ["NES"], budget=51 + 2)
    assert row["success"] > 0 and row["max_queries_spent"] <= 53


@pytest.mark.slow  # two compilations per attack of the table (~30 s of CPU)
def test_blackbox_queries_every_attack_on_a_tiny_victim():
    module = _load("blackbox_queries")
    settings = (module.SETTINGS[0], module.SETTINGS[3])  # linf untargeted, l2 targeted
    # The budget of one SPSA step (256 probes + 1) and its final evaluation: the dearest step.
    rows = _tiny_table(module, settings, list(module.ATTACKS), budget=256 + 1 + 1)
    assert [(r["setting"], r["attack"]) for r in rows] == [
        (s[0], a) for s in settings for a in module.ATTACKS
    ]
    assert max(r["success"] for r in rows) > 0


def test_blackbox_success_curve_counts_examples_fooled_within_q():
    module = _load("blackbox_queries")
    queries = np.array([3, 10, 10, 50, 7])
    fooled = np.array([True, True, False, True, False])
    attacked = np.array([True, True, True, True, False])
    grid, frac = module.success_curve(queries, fooled, attacked, budget=100)
    at = dict(zip(grid.tolist(), frac.tolist()))
    assert at[1] == 0.0 and at[3] == 0.25 and at[10] == 0.5 and at[100] == 0.75


@pytest.mark.slow  # NES and Square compiled on the digits net, twice each (minutes on 2 cores)
def test_blackbox_queries_smoke(tmp_path):
    module = _load("blackbox_queries")
    out = module.main(["--smoke", "--out", str(tmp_path)])  # the shared victim cache
    assert [(r["setting"], r["attack"]) for r in out["rows"]] == [
        (s, a) for s in module.SMOKE_SETTINGS for a in module.ATTACKS
    ]
    _blackbox_row_checks(module, out, module.SMOKE["queries"])
    for name in ("blackbox_queries.json", "blackbox_queries.md",
                 "success_vs_queries_linf_untargeted.png", "success_vs_queries_l2_targeted.png"):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.slow  # one P-RGF compilation on the tiny victim
def test_blackbox_queries_prior_hook_runs_a_prior_attack():
    from jaxadv import attacks

    module = _load("blackbox_queries")
    builder = module.Builder(
        lambda n, t, q: attacks.prgf(norm=n, targeted=t, max_queries=q), {"linf": {}}, prior=True
    )
    victim, surrogate = make_mlp_victim(), make_mlp_victim(seed=1)
    images = jax.random.uniform(jax.random.key(3), (4, 4, 4, 1))
    labels = np.argmax(np.asarray(victim.batch(images)), -1).astype(np.int32)
    row, per = module.run_one(
        "P-RGF", builder, module.SETTINGS[0], models.score_only(victim), surrogate, images,
        jnp.asarray(labels), module.targets_for(labels, 3), np.ones(4, bool), 200,
    )  # fmt: skip
    assert row["prior"] and 0.0 <= row["success"] <= 1.0 and max(per["queries"]) <= 200
    assert row["max_norm"] <= 0.3 * (1 + 1e-5)


# Slow: three tiny saliency models trained, and eight attacks compiled (≈7 min on the loaded CPU).
@pytest.mark.slow
def test_saliency_blackbox_smoke(tmp_path):
    import json

    out = _load("saliency_blackbox").main(
        ["--smoke", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path)]
    )
    assert list(out["transfer"]) == [
        "random noise", "single-step FGSM", "ensemble PGD", "ensemble MIM", "Liu's ensemble",
        "Papernot's substitute", "Algorithm 2",
    ]  # fmt: skip
    rows = out["queries"]
    assert list(rows) == [
        "random noise", "Yan's subspace attack", "Ilyas's bandits", "Tu's AutoZOOM", "Algorithm 2",
    ]  # fmt: skip
    budget = out["config"]["max_queries"]
    for name, row in list(rows.items())[1:]:
        queries = np.asarray(row["queries"])
        # an image that never reaches the criterion spends the whole budget (31 = 1 + 3·10 = 1 +
        # 2·15: every estimator's steps pay it exactly); one that does, less
        assert np.all((queries >= 1) & (queries <= budget)), (name, queries)
        assert row["avg_queries"] == pytest.approx(queries.mean())
        if row["success"] == 0.0:
            assert np.all(queries == budget), (name, queries)
    # Table 2's Algorithm 2 row is Table 3's run, scored the same way
    assert out["transfer"]["Algorithm 2"]["cc"] == pytest.approx(rows["Algorithm 2"]["cc"])
    for row in (*out["transfer"].values(), *rows.values()):
        assert all(np.isfinite(row[m]) for m in ("cc", "sauc", "sim"))
        assert -1.0 <= row["cc_to_clean"] <= 1.0 + 1e-6
    saved = json.loads((tmp_path / "saliency_blackbox_smoke.json").read_text())
    assert saved["queries"]["Algorithm 2"]["queries"] == rows["Algorithm 2"]["queries"]
    assert (tmp_path / "saliency_blackbox_smoke.md").read_text().count("| Algorithm 2 |") == 2


# -- dual_perturbation.py: the evaluation and table code on tiny victims (the full pipeline,
# training included, is the script's --smoke run: minutes of compilation, not in this suite) ----


def _tiny_masked_data(n=6):
    from jaxadv.data import MaskedDataset

    rng = np.random.default_rng(0)
    masks = np.zeros((n, 4, 4, 1), np.float32)
    masks[:, 1:3, 1:3] = 1.0  # a 2×2 foreground in the middle
    return MaskedDataset(
        rng.uniform(size=(n, 4, 4, 1)).astype(np.float32), np.arange(n, dtype=np.int32) % 3,
        masks, ("a", "b", "c"), "tiny",
    )  # fmt: skip


def test_dual_perturbation_tables_on_tiny_victims():
    dp = _load("dual_perturbation")
    test = _tiny_masked_data()
    victims = {name: make_mlp_victim(seed=s) for s, name in enumerate(dp.DETERMINISTIC)}
    rows, examples = dp.whitebox(victims, test, "linf", 2, jax.random.key(0))
    grid = dp.NORMS["linf"]["eps_f"]
    assert len(rows) == 2 * len(dp.DETERMINISTIC) * len(grid)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    for name, victim in victims.items():
        logits = np.asarray(victim.batch(jnp.asarray(test.images)))
        clean = float(np.mean(np.argmax(logits, -1) == test.labels))
        for kind in ("dual", "pgd"):
            acc = [r["accuracy"] for r in rows if (r["attack"], r["victim"]) == (kind, name)]
            assert acc[0] == clean  # ε_F = 0: the clean accuracy
            assert min(acc) <= clean  # the attack never helps at the largest budgets
    transfer = dp.transfer(victims, test, examples)
    assert len(transfer) == 2 * len(dp.DETERMINISTIC) ** 2
    at = {(r["attack"], r["victim"]): r["accuracy"] for r in rows
          if np.float32(r["eps_f"]) == np.float32(grid[2])}  # fmt: skip
    for r in transfer:  # the diagonal is the white-box accuracy at the AT budget (8/255)
        if r["source"] == r["target"]:
            assert r["accuracy"] == at[(r["attack"], r["source"])]
    table = dp.format_tables(rows + transfer, "linf")
    lines = table.splitlines()
    assert sum(line.startswith("| AT-Dual |") for line in lines) == 4 and "| 8/255 |" in table
    assert dp.verdict(rows).endswith("of 4 budgets.")
# Slow (~90 s on the loaded 2-core CPU: each ME-Sampler program compiles for ~30 s whatever the
# victim): the tables' plumbing on the registry's tiny video victim (3 × 4 × 4 × 1, 3 classes), 4
# random videos, 13 queries: Table 3.3, the goal row and the throughput row.
@pytest.mark.slow
def test_me_sampler_videos_smoke_on_a_tiny_victim():
    from registry import make_video_classifier

    module = _load("me_sampler_videos")
    victim = make_video_classifier()
    videos = np.asarray(jax.random.uniform(jax.random.key(1), (4, 3, 4, 4, 1)))
    labels = np.argmax(np.asarray(victim.batch(jnp.asarray(videos))), -1)
    motions = np.asarray(jax.random.normal(jax.random.key(2), (4, 3, 4, 4, 2)))
    config = dict(module.SMOKE, tables=("3.3", "throughput"), detail_victim="tiny", eps=0.3,
                  max_queries=13, loop_videos=2)  # fmt: skip
    rows, per_video = module.run_tables({"tiny": victim}, videos, labels, motions, config)
    table = [r for r in rows if r["table"] == "3.3"]
    assert [r["sampler"] for r in table] == list(module.SAMPLERS)
    for r in table:
        assert 0.0 <= r["success"] <= 1.0 and r["max_queries_spent"] <= 13
    assert any(r["success"] > 0 for r in table)  # eps 0.3 fools the tiny net within 4 steps
    (goal,) = [r for r in rows if r["table"] == "goal"]
    assert goal["sparked_fewer"] + goal["sparked_more"] <= goal["videos"] <= 4
    (speed,) = [r for r in rows if r["table"] == "throughput"]
    assert speed["loop_videos"] == 2 and speed["loop_over_batched"] > 0


# Default suite (no compilation): the goal's pairing and the known-motion lookup, by hand.
def test_me_sampler_videos_goal_pairs_only_videos_both_samplers_fooled():
    module = _load("me_sampler_videos")
    tag = lambda i: module._tag("v", module.SETTINGS[i][2])  # noqa: E731
    per_video = {
        tag(0): dict(success=np.array([1, 1, 0, 1, 1], bool), queries=np.array([10, 40, 99, 7, 5]),
                     correct=np.array([1, 1, 1, 1, 0], bool)),
        tag(1): dict(success=np.array([1, 1, 1, 0, 1], bool), queries=np.array([20, 31, 4, 99, 1]),
                     correct=np.array([1, 1, 1, 1, 0], bool)),
    }  # fmt: skip
    goal = module.paired("v", per_video)
    assert goal["videos"] == 2 and goal["sparked_fewer"] == 1 and goal["sparked_more"] == 1
    assert goal["sparked_mean"] == 25.0 and goal["multi_mean"] == 25.5
    stats = module._stats(per_video[tag(0)]["success"], per_video[tag(0)]["queries"],
                          per_video[tag(0)]["correct"])  # fmt: skip
    assert stats["success"] == 0.75 and stats["mean_queries"] == 19.0


def test_me_sampler_videos_known_motion_returns_each_clips_own_field():
    module = _load("me_sampler_videos")
    rng = np.random.default_rng(0)
    videos = rng.uniform(size=(5, 3, 4, 4, 1)).astype(np.float32)
    motions = rng.normal(size=(5, 3, 4, 4, 2)).astype(np.float32)
    lookup = module.known_motion(videos, motions)
    for i in (0, 3, 4):  # eager: the lookup is also traced inside the attack's program
        np.testing.assert_array_equal(np.asarray(lookup(jnp.asarray(videos[i]))), motions[i])


def test_me_sampler_videos_eps_option_sets_the_radius_and_rejects_bad_values():
    module = _load("me_sampler_videos")
    config, _ = module.parse_config(["--eps", "0.03", "--videos", "16", "--queries", "3000"])
    assert config["eps"] == 0.03 and config["num_videos"] == 16 and config["max_queries"] == 3000
    assert module.parse_config([])[0]["eps"] == module.CONFIG["eps"]  # default unchanged
    for bad in ("0", "-0.1", "1.5"):
        with pytest.raises(ValueError, match="--eps"):
            module.parse_config(["--eps", bad])


# The Meta Attack experiment: its budget in closed form and its table on the tiny victim.
def _meta_tiny_table(methods, settings):
    from registry import DenseMetaAttacker

    module = _load("meta_attack_digits")
    config = dict(module.SMOKE, iterations=dict(untargeted=4, targeted=4), loop_images=2)
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(3), (3, 4, 4, 1))
    labels = jnp.asarray(np.argmax(np.asarray(victim.batch(images)), -1), jnp.int32)
    correct = np.ones(3, bool)
    black, meta = models.score_only(victim), DenseMetaAttacker()
    variables = meta.init(jax.random.key(0), images[0])
    carriers = {m: models.with_meta_attacker(black, meta, variables) for m in methods[:2]}
    rows = module.table(config, black, carriers, images, labels, correct, settings, methods)
    budget = module.budget(config, 4)
    assert budget == (2 * 4 + 1) + 1 + 1 + (2 * 4 + 1) + 1  # fine-tunes at calls 0 and 3
    table = [r for r in rows if r["method"] in methods]  # not the throughput and paired rows
    expected = [(s, m) for s in settings for m in methods]
    if "Meta Attack" in methods and "ZOO" in methods:  # Meta vs ZOO on the digits both fooled
        paired = [r for r in rows if r["method"] == "paired Meta vs ZOO"]
        assert [r["setting"] for r in paired] == list(settings)
        assert all(0 <= r["digits"] <= 3 for r in paired)
    assert [(r["setting"], r["method"]) for r in table] == expected
    for r in table:
        assert 0.0 <= r["success"] <= 1.0 and r["budget"] == budget, r
        assert r["max_queries_spent"] <= budget, r
        assert np.isnan(r["mean_l2"]) if r["success"] == 0 else r["mean_l2"] > 0, r
    (speed,) = [r for r in rows if r["method"] == "throughput"]
    assert speed["batched_s_per_image"] > 0 and speed["loop_s_per_image"] > 0
    return module, rows


def test_meta_attack_budget_is_the_published_query_count():
    module = _load("meta_attack_digits")
    # 100 steps, top-q 32, a symmetric fine-tuning every 3 (34 of them), then the last evaluation.
    assert module.budget(module.CONFIG, 100) == 34 * 65 + 66 + 1
    with pytest.raises(ValueError, match="method"):
        module.make_attack("NES", module.CONFIG, False, 100)


def test_meta_attack_row_counts_the_correct_digits_and_averages_the_fooled_ones():
    from types import SimpleNamespace

    module = _load("meta_attack_digits")
    r = SimpleNamespace(
        success=np.array([True, True, False, True]),
        queries=np.array([10, 20, 30, 40]),
        l2=np.array([1.0, 2.0, 3.0, 9.0]),
    )
    correct = np.array([True, True, True, False])  # the last was misclassified: not counted
    row = module.row_of("ZOO", "untargeted", r, correct, 50, 0.0, 0.0)
    assert row["success"] == pytest.approx(2 / 3)
    assert (row["mean_l2"], row["mean_queries"], row["max_queries_spent"]) == (1.5, 15.0, 40)


def test_meta_attack_success_curve_and_equal_success_by_hand():
    module = _load("meta_attack_digits")
    # 5 correct digits; first-success counts of the fooled ones (a failure spent the budget)
    fooled = np.array([True, True, False, True, True])
    queries = np.array([40, 300, 1000, 120, 40])
    assert module.success_curve(fooled, queries, [39, 40, 120, 299, 1000]) == [
        0.0, 0.4, 0.6, 0.6, 0.8]
    zoo = (np.array([False, True, True, False, False]), np.array([900, 800, 2500, 900, 900]))
    row = module.matched_success((fooled, queries), zoo)
    # k = 2 digits each (ZOO's success 2/5): Meta reaches 2/5 at 40 queries (its two at 40),
    # ZOO at 2500; mean over each one's two first-fooled digits: 40 and (800 + 2500) / 2
    assert (row["digits"], row["success"]) == (2, 0.4)
    assert (row["meta_reach"], row["zoo_reach"], row["meta_mean"], row["zoo_mean"]) == (
        40, 2500, 40, 1650)
    assert row["reach_ratio"] == 2500 / 40 and row["mean_ratio"] == 1650 / 40
    nobody = module.matched_success((fooled, queries), (np.zeros(5, bool), queries))
    assert nobody["digits"] == 0 and np.isnan(nobody["mean_ratio"])
    with pytest.raises(ValueError, match="--search-steps 1"):
        module.main(["--curve", "--search-steps", "3"])


@pytest.mark.slow  # Meta Attack and ZOO on the tiny victim, ZOO with its own budget
def test_meta_attack_curve_on_a_tiny_victim():
    from registry import DenseMetaAttacker

    module = _load("meta_attack_digits")
    config = dict(module.SMOKE, iterations=dict(untargeted=4, targeted=4), loop_images=0,
                  curve=True, zoo_queries=60, zoo_batch=2)
    victim = make_mlp_victim()
    images = jax.random.uniform(jax.random.key(3), (3, 4, 4, 1))
    labels = jnp.asarray(np.argmax(np.asarray(victim.batch(images)), -1), jnp.int32)
    black, meta = models.score_only(victim), DenseMetaAttacker()
    carriers = {"Meta Attack": models.with_meta_attacker(black, meta,
                                                         meta.init(jax.random.key(0), images[0]))}
    rows = module.table(config, black, carriers, images, labels, np.ones(3, bool),
                        ("untargeted",), ("Meta Attack", "ZOO"))
    by = {r["method"]: r for r in rows if r["method"] not in ("curve",)}
    assert by["ZOO"]["budget"] == 60 and by["Meta Attack"]["budget"] == module.budget(config, 4)
    curves = {r["attack"]: r for r in rows if r["method"] == "curve"}
    for name in ("Meta Attack", "ZOO"):
        c = curves[name]
        assert c["budgets"][-1] == 60 and np.all(np.diff(c["success"]) >= 0)
        assert c["success"][-1] == pytest.approx(by[name]["success"])  # the curve ends at the row
    assert by["equal success Meta vs ZOO"]["digits"] <= 3


@pytest.mark.slow  # ten compilations on the tiny victim (~1 min of CPU)
def test_meta_attack_table_every_method_on_a_tiny_victim():
    module = _load("meta_attack_digits")
    _, rows = _meta_tiny_table(module.METHODS, ("untargeted", "targeted"))
    assert max(r.get("success", 0) for r in rows) > 0


@pytest.mark.slow  # issue 18's saliency experiments: a few minutes of CPU together
@pytest.mark.parametrize("name", ["saliency_robustness", "saliency_augmentation", "gazegan_ablation"])
def test_saliency_transformation_experiments_smoke(name):
    out = _load(name).main(["--smoke"])
    leaves = [v for v in jax.tree.leaves(out) if isinstance(v, float)]
    assert leaves and all(np.isfinite(leaves)), name


@pytest.mark.slow  # one small model trained, 19 transformations scored
def test_saliency_robustness_on_a_fabricated_cat2000(tmp_path):
    from test_saliency_data import make_cat

    make_cat(tmp_path)
    out = _load("saliency_robustness").main(["--smoke", "--cat2000", str(tmp_path)])
    rows = out["rows"]["deepgaze"]
    assert set(rows) == set(_load("saliency_robustness").TRANSFORMATION_NAMES)
    assert all(np.isfinite(v) for r in rows.values() for v in r.values())
    assert out["similarity"]["cc"][0, 0] == pytest.approx(1.0, abs=1e-5)


def test_cat2000_ground_truth_moves_with_a_mirrored_image(tmp_path):
    from test_saliency_data import make_cat

    from jaxadv.data.saliency import load_cat2000

    make_cat(tmp_path)
    data = load_cat2000(tmp_path, size=(16, 24))
    module = _load("saliency_robustness")
    mirrored = module.moved_with_the_image(data, "Mirroring", jax.random.key(0))
    np.testing.assert_allclose(mirrored.images, data.images[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(mirrored.maps, data.maps[:, :, ::-1], atol=1e-6)
    for xy, moved in zip(data.fixations, mirrored.fixations):
        np.testing.assert_array_equal(moved, np.stack([23 - xy[:, 0], xy[:, 1]], 1))
    cropped = module.moved_with_the_image(data, "Cropping1", jax.random.key(0))
    assert all(len(m) <= len(xy) for m, xy in zip(cropped.fixations, data.fixations))
