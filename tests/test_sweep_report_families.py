"""Sweep reports across attack families: which hyper-parameters a table keeps, one figure panel
per norm, and tables read back into pandas with their dtypes."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_mlp_victim
from jaxadv import attacks
from jaxadv.sweeps import (
    BUDGET_UNITS,
    Grid,
    budget_norm,
    concat_tables,
    markdown_summary,
    plot_robust_accuracy,
    read_dataframe,
    run_grid,
    summarize,
    to_dataframe,
    used_fields,
    write_table,
)
from test_sweeps_report import make_table

VICTIM = make_mlp_victim()
X0 = jnp.full((4, 4, 1), 0.5)
KEY = jax.random.key_data(jax.random.key(0))


def fields_of(attack):
    hp = attack.hparams(eps=0.1)
    return set(used_fields(attack, VICTIM, hp, X0, jnp.int32(0), jnp.int32(0), KEY))


def test_used_fields_follow_each_family():
    # What each step rule and objective reads, by their definitions (only traced, no compile).
    assert fields_of(attacks.pgd(norm="linf", steps=2)) == {"eps", "step_size", "rel_step_size"}
    assert fields_of(attacks.pgd(norm="l1", steps=2)) == {
        "eps", "step_size", "rel_step_size", "sparsity"}
    assert "decay" in fields_of(attacks.mi_fgsm(steps=2))
    cw = fields_of(attacks.cw_l2(steps=2, search_steps=1))
    assert {"kappa", "initial_const", "step_size"} <= cw and "decay" not in cw


@pytest.mark.slow  # one compilation (~3 s); tests/test_sweeps.py checks the columns by default
def test_table_keeps_used_and_swept_fields_and_unused_ones_change_nothing():
    images = jax.random.uniform(jax.random.key(1), (1, 4, 4, 1))
    labels = np.argmax(VICTIM.batch(images), axis=-1)
    grid = Grid(attacks.pgd(norm="linf", steps=1), images, labels,
                params={"eps": [0.2], "kappa": [0.0, 5.0]})
    table = run_grid(VICTIM, grid, progress=False).table
    hparams = [c for c in table if c in attacks.HParams._fields]
    assert hparams == ["eps", "step_size", "kappa", "rel_step_size"]  # kappa only as swept
    assert set(table["norm"]) == {"linf"}
    # The analysis says PGD-CE never reads kappa: both settings must give the same runs.
    k0, k5 = table["kappa"] == 0.0, table["kappa"] == 5.0
    for col in ("success", "loss", "l2", "linf"):
        np.testing.assert_array_equal(table[col][k0], table[col][k5])


def test_budget_norm():
    assert budget_norm(attacks.fgsm()) == "linf"  # the constraint's norm
    assert budget_norm(attacks.fmn(norm="l2")) == "l2"  # the attack's own
    assert budget_norm(attacks.cw_l2()) == "l2"  # the name's suffix
    assert budget_norm(attacks.ddn()) == ""  # nothing says


def two_families():
    """A PGD table (no kappa) stacked on a C&W-like table (with kappa)."""
    pgd = make_table(attack="pgd")
    pgd["norm"] = np.full(len(pgd["image"]), "linf")
    cw = make_table(attack="cw")
    cw["norm"] = np.full(len(cw["image"]), "l2")
    cw["kappa"] = np.full(len(cw["image"]), 2.0, np.float32)
    return concat_tables([pgd, cw])


def test_summary_leaves_other_families_hyperparameters_blank():
    table = two_families()
    assert np.isnan(table["kappa"][table["attack"] == "pgd"]).all()
    text = markdown_summary(summarize(table), columns=["attack", "eps", "kappa", "n_images"])
    rows = [line for line in text.splitlines()[2:]]
    assert rows == [
        "| cw | 0.050 | 2.000 | 2 |",
        "| cw | 0.100 | 2.000 | 4 |",
        "| pgd | 0.050 |  | 2 |",
        "| pgd | 0.100 |  | 4 |",
    ]
    # A NaN statistic is still written out.
    assert "| nan |" in markdown_summary(summarize(table), columns=["attack", "l2_best"])


def test_robust_accuracy_has_one_panel_per_norm():
    fig = plot_robust_accuracy(summarize(two_families()), hue="attack")
    l2, linf = fig.axes  # sorted by norm
    assert l2.get_title() == "norm=l2" and linf.get_title() == "norm=linf"
    assert l2.get_xlabel() == "eps: " + BUDGET_UNITS["l2"]
    assert linf.get_xlabel() == "eps: " + BUDGET_UNITS["linf"]
    assert [line.get_label() for line in l2.lines] == ["attack=cw"]
    assert [line.get_label() for line in linf.lines] == ["attack=pgd"]
    assert list(linf.lines[0].get_ydata()) == pytest.approx([1.0, 0.25])  # worked out in
    one = plot_robust_accuracy(summarize(two_families()), hue="norm", panel=None)  # test_sweeps_report
    assert len(one.axes) == 1 and len(one.axes[0].lines) == 2
    by_family = plot_robust_accuracy(summarize(two_families()), panel="attack")
    assert [ax.get_title() for ax in by_family.axes] == ["attack=cw", "attack=pgd"]
    with pytest.raises(ValueError, match="`panel`.*'nope'"):
        plot_robust_accuracy(summarize(two_families()), panel="nope")


def test_tables_read_back_into_pandas_with_their_dtypes(tmp_path):
    pytest.importorskip("pandas")
    table = two_families()
    table["eps"] = table["eps"].astype(np.float32)
    for name in ("t.csv", "s.csv"):
        data = table if name == "t.csv" else summarize(table)
        write_table(data, tmp_path / name)
        frame = read_dataframe(tmp_path / name)
        assert list(frame.columns) == list(data)
        for col, values in data.items():
            if values.dtype.kind in "biuf":
                assert frame[col].dtype == values.dtype, col
                np.testing.assert_array_equal(frame[col].to_numpy(), values)
            else:
                assert list(frame[col]) == list(values), col
    assert to_dataframe(table)["kappa"].dtype == np.float32


def test_without_pandas_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        to_dataframe(make_table())
