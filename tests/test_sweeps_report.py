"""The reporting half of jaxadv.sweeps: summaries, table files, markdown, progress, figures.

Every expected number comes from a tiny hand-made table whose answers are worked out below.
"""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest

from jaxadv.sweeps._figures import (
    plot_operating_characteristic,
    plot_robust_accuracy,
    plot_success_vs_queries,
)
from jaxadv.sweeps._progress import Progress, format_duration
from jaxadv.sweeps._table import (
    filter_table,
    markdown_summary,
    read_table,
    summarize,
    validate_table,
    write_table,
)

# One run per row: (eps, image, label, clean_correct, target, restart, success, l2, queries).
# The other norms follow l2 (l0 = 10·l2, l1 = 2·l2, linf = l2/10) so a test can tell which run a
# pair took its norms from.
RUNS = [
    # eps = 0.1, targeted, two targets per image, two restarts.
    # image 0: target 1 fooled by both restarts (keep l2 = 1, the smaller); target 2 never.
    (0.1, 0, 0, True, 1, 0, True, 2.0, 10),
    (0.1, 0, 0, True, 1, 1, True, 1.0, 10),
    (0.1, 0, 0, True, 2, 0, False, 0.5, 20),
    (0.1, 0, 0, True, 2, 1, False, 0.5, 20),
    # image 1: target 0 fooled by restart 1 only (l2 = 3), target 2 by restart 0 only (l2 = 4).
    (0.1, 1, 1, True, 0, 0, False, 0.5, 30),
    (0.1, 1, 1, True, 0, 1, True, 3.0, 5),
    (0.1, 1, 1, True, 2, 0, True, 4.0, 7),
    (0.1, 1, 1, True, 2, 1, False, 0.5, 9),
    # image 2: misclassified: left out of every protocol number, though "fooled".
    (0.1, 2, 2, False, 0, 0, True, 0.1, 1),
    (0.1, 2, 2, False, 0, 1, True, 0.1, 1),
    (0.1, 2, 2, False, 1, 0, True, 0.1, 1),
    (0.1, 2, 2, False, 1, 1, True, 0.1, 1),
    # image 3: robust: no target, no restart succeeds.
    (0.1, 3, 0, True, 1, 0, False, 0.5, 20),
    (0.1, 3, 0, True, 1, 1, False, 0.5, 20),
    (0.1, 3, 0, True, 2, 0, False, 0.5, 20),
    (0.1, 3, 0, True, 2, 1, False, 0.5, 20),
    # eps = 0.05: nothing fooled (one restart).
    (0.05, 0, 0, True, 1, 0, False, 0.2, 50),
    (0.05, 0, 0, True, 2, 0, False, 0.2, 50),
    (0.05, 1, 1, True, 0, 0, False, 0.2, 50),
    (0.05, 1, 1, True, 2, 0, False, 0.2, 50),
]


def make_table(runs=RUNS, victim="v", attack="a", shuffle=True):
    cols = list(zip(*runs))
    l2 = np.array(cols[7], np.float64)
    table = {
        "eps": np.array(cols[0], np.float64),
        "step_size": np.full(len(runs), 0.01),
        "victim": np.array([victim] * len(runs)),
        "attack": np.array([attack] * len(runs)),
        "image": np.array(cols[1], np.int64),
        "label": np.array(cols[2], np.int64),
        "target": np.array(cols[4], np.int64),
        "restart": np.array(cols[5], np.int64),
        "clean_correct": np.array(cols[3], bool),
        "success": np.array(cols[6], bool),
        "loss": -l2,
        "l0": 10 * l2,
        "l1": 2 * l2,
        "l2": l2,
        "linf": l2 / 10,
        "queries": np.array(cols[8], np.int64),
        "steps": np.array(cols[8], np.int64) // 2,
    }
    if shuffle:  # the summary must not depend on row order
        order = np.random.default_rng(0).permutation(len(runs))
        table = {k: v[order] for k, v in table.items()}
    return table


def concat(*tables):
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def row(summary, **where):
    keep = np.ones(len(next(iter(summary.values()))), bool)
    for k, v in where.items():
        keep &= summary[k] == v
    (i,) = np.flatnonzero(keep)
    return {k: v[i] for k, v in summary.items()}


# --------------------------------------------------------------------------------------------
# summarize


def test_summary_targeted_with_restarts():
    s = summarize(make_table())
    assert list(s["eps"]) == [0.05, 0.1]  # one row per grid point, sorted
    assert {"victim", "attack", "step_size"} <= set(s)
    r = row(s, eps=0.1)
    # Pairs of the 3 correctly classified images (0, 1, 3): successes [T, F], [T, T], [F, F].
    assert r["n_images"] == 4 and r["n_pairs"] == 6
    assert r["clean_accuracy"] == pytest.approx(3 / 4)
    assert r["robust_accuracy"] == pytest.approx(1 / 4)  # image 3 only
    assert r["success_rate"] == pytest.approx(3 / 6)
    assert r["success_avg"] == pytest.approx(3 / 6)
    assert r["success_best"] == pytest.approx(2 / 3)  # images 0 and 1
    assert r["success_worst"] == pytest.approx(1 / 3)  # image 1 only
    # Average case: the successful pairs, l2 = 1 (restart 1 of image 0), 3 and 4.
    assert r["l2_avg"] == pytest.approx(8 / 3)
    # Best case: image 0 -> target 1 (l2 1), image 1 -> target 0 (l2 3, smaller than 4).
    assert r["l2_best"] == pytest.approx(2.0)
    # Worst case: image 0 has a failed target (a failure); image 1 -> target 2 (l2 4).
    assert r["l2_worst"] == pytest.approx(4.0)
    for m, f in (("l0", 10.0), ("l1", 2.0), ("linf", 0.1)):  # norms come from the chosen run
        assert r[f"{m}_best"] == pytest.approx(2.0 * f)
        assert r[f"{m}_avg"] == pytest.approx(8 / 3 * f)
        assert r[f"{m}_worst"] == pytest.approx(4.0 * f)
    # Queries until the first success, restarts in order: 10, 20+20, 30+5, 7, 40, 40.
    assert r["queries_mean"] == pytest.approx((10 + 40 + 35 + 7 + 40 + 40) / 6)


def test_summary_nothing_fooled_gives_nan_norms():
    r = row(summarize(make_table()), eps=0.05)
    assert r["n_images"] == 2 and r["robust_accuracy"] == 1.0 and r["clean_accuracy"] == 1.0
    for case in ("best", "avg", "worst"):
        assert r[f"success_{case}"] == 0.0
        for m in ("l0", "l1", "l2", "linf"):
            assert math.isnan(r[f"{m}_{case}"])
    assert r["queries_mean"] == 50.0


def test_summary_untargeted():
    runs = [  # target = label; image 2 is misclassified (trivially "successful")
        (0.1, 0, 3, True, 3, 0, True, 1.5, 4),
        (0.1, 1, 4, True, 4, 0, False, 0.5, 9),
        (0.1, 2, 5, False, 5, 0, True, 0.0, 0),
    ]
    r = row(summarize(make_table(runs)), eps=0.1)
    assert r["n_pairs"] == 2
    assert r["robust_accuracy"] == pytest.approx(1 / 3)  # image 1
    assert r["clean_accuracy"] == pytest.approx(2 / 3)
    for case in ("best", "avg", "worst"):  # one target: the three cases agree
        assert r[f"success_{case}"] == pytest.approx(0.5)
        assert r[f"l2_{case}"] == pytest.approx(1.5)


def test_summary_by_merges_other_coordinates_and_separates_victims():
    table = concat(make_table(), make_table(victim="w"))
    s = summarize(table)
    assert len(s["eps"]) == 4 and set(s["victim"]) == {"v", "w"}
    # Grouping by victim only: the eps runs of a pair merge like restarts (eps=0.05 adds
    # nothing fooled), so each victim gets the eps=0.1 statistics.
    s = summarize(table, by="victim")
    assert set(s) >= {"victim", "success_best"} and "eps" not in s
    for v in ("v", "w"):
        r = row(s, victim=v)
        assert r["success_best"] == pytest.approx(2 / 3) and r["l2_avg"] == pytest.approx(8 / 3)
        assert r["robust_accuracy"] == pytest.approx(1 / 4)


def test_summary_images_with_different_numbers_of_targets():
    # Drop image 0's target 2 (as a shared target list that holds an image's label would).
    table = filter_table(make_table(), eps=0.1)
    drop = np.flatnonzero((table["image"] == 0) & (table["target"] == 2))
    r = row(summarize({k: np.delete(v, drop) for k, v in table.items()}), eps=0.1)
    # Pairs: image 0 [T (l2 1)], image 1 [T (3), T (4)], image 3 [F, F].
    assert r["n_pairs"] == 5 and r["robust_accuracy"] == pytest.approx(1 / 4)
    assert r["success_avg"] == pytest.approx(3 / 5) and r["l2_avg"] == pytest.approx(8 / 3)
    assert r["success_best"] == pytest.approx(2 / 3) and r["l2_best"] == pytest.approx(2.0)
    # Image 0 now has every target fooled: its worst case is target 1 (l2 1).
    assert r["success_worst"] == pytest.approx(2 / 3) and r["l2_worst"] == pytest.approx(2.5)
    assert r["l0_worst"] == pytest.approx(25.0)


def test_summary_misuse():
    table = make_table()
    with pytest.raises(ValueError, match="duplicate"):
        summarize(concat(table, table))
    with pytest.raises(ValueError, match="'success'"):
        summarize({k: v for k, v in table.items() if k != "success"})
    with pytest.raises(ValueError, match="same length.*'l2'"):
        summarize({**table, "l2": table["l2"][:-1]})
    with pytest.raises(ValueError, match="'loss'.*1-D"):
        validate_table({**table, "loss": table["loss"][:, None]})
    with pytest.raises(ValueError, match="'success'.*bool"):
        validate_table({**table, "success": table["success"].astype(float)})
    with pytest.raises(ValueError, match="`by`.*'nope'"):
        summarize(table, by="nope")
    bad = {**table, "clean_correct": table["clean_correct"].copy()}
    bad["clean_correct"][np.flatnonzero(bad["image"] == 0)[0]] ^= True
    with pytest.raises(ValueError, match="'clean_correct'.*constant"):
        summarize(bad)


# --------------------------------------------------------------------------------------------
# Files and markdown


def assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].dtype.kind == "f":  # bit for bit, NaN and -0.0 included
            assert np.array_equal(a[k].view(np.uint8), b[k].view(np.uint8)), k
        else:
            assert np.array_equal(a[k], b[k]), k


def awkward_table():
    t = make_table()
    n = len(t["eps"])
    t["loss"] = np.random.default_rng(1).normal(size=n) / 3.0
    t["loss"][:4] = [np.nan, -0.0, 1e-300, np.inf]
    t["l2"] = t["l2"].astype(np.float32) / np.float32(3)
    t["restart"] = t["restart"].astype(np.int32)
    t["victim"] = np.array(['cnn, "small"', "ViT|é"] * (n // 2))
    t["note"] = np.array(["123"] * n)  # text that looks like a number stays text
    return t


def test_csv_round_trip_is_exact(tmp_path):
    t = awkward_table()
    write_table(t, tmp_path / "t.csv")
    assert_same(t, read_table(tmp_path / "t.csv"))
    s = summarize(make_table())  # summaries (NaN norms) too
    write_table(s, tmp_path / "s.csv")
    assert_same(s, read_table(tmp_path / "s.csv"))


def test_csv_without_dtype_line_is_inferred(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("eps,image,success,victim\n0.1,3,True,cnn\n0.25,4,False,vit\n")
    t = read_table(path)
    assert t["eps"].dtype == np.float64 and t["image"].dtype == np.int64
    assert t["success"].dtype == bool and t["victim"].dtype.kind == "U"
    assert list(t["eps"]) == [0.1, 0.25] and list(t["victim"]) == ["cnn", "vit"]


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    t = awkward_table()
    write_table(t, tmp_path / "t.parquet")
    assert_same(t, read_table(tmp_path / "t.parquet"))


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(ImportError, match="pip install pyarrow"):
        write_table(make_table(), tmp_path / "t.parquet")


def test_file_suffix_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.parquet.*t\.json"):
        write_table(make_table(), tmp_path / "t.json")


def test_markdown_summary():
    s = summarize(make_table())
    text = markdown_summary(s, columns=["victim", "eps", "n_images", "success_best", "l2_best"])
    assert text == (
        "| victim | eps | n_images | success_best | l2_best |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| v | 0.050 | 2 | 0.000 | nan |\n"
        "| v | 0.100 | 4 | 0.667 | 2.000 |\n"
    )
    assert markdown_summary(s, digits=1).count("\n") == 4  # all columns, header + rule + 2 rows
    small = markdown_summary({"step_size": np.array([0.0025, 2 / 255, 0.5])})
    assert small.splitlines()[2:] == ["| 0.0025 |", "| 0.00784 |", "| 0.500 |"]
    with pytest.raises(ValueError, match="`columns`.*'nope'"):
        markdown_summary(s, columns=["nope"])
    with pytest.raises(ValueError, match="`digits`"):
        markdown_summary(s, digits=-1)


# --------------------------------------------------------------------------------------------
# Progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_on_a_terminal_redraws_one_line():
    out, clock = FakeTerminal(), FakeClock()
    with Progress(10, 100, done=4, stream=out, clock=clock) as p:
        assert out.getvalue() == "\rsweep: 4/10 chunks (40%) | -- attacks/s | ETA --"
        clock.now += 2.0
        p.advance()
        # Only the chunk run here counts: 100 attacks in 2 s, not the 4 resumed chunks.
        assert p.rate == pytest.approx(50.0)
        assert p.eta == pytest.approx(5 * 100 / 50.0)  # 5 chunks left
        clock.now += 4.0
        p.advance(2)
        # Once a second call finished, the first chunk (compilation) leaves the rate.
        assert p.rate == pytest.approx(50.0) and p.eta == pytest.approx(6.0)
        clock.now += 1.0
        p.advance()
        assert p.rate == pytest.approx(60.0) and p.eta == pytest.approx(2 * 100 / 60.0)
        assert "\n" not in out.getvalue()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\r") == 4
    assert text.split("\r")[-1] == "sweep: 8/10 chunks (80%) | 60 attacks/s | ETA 0:00:03\n"


def test_progress_rate_skips_the_compiling_chunk():
    clock = FakeClock()
    p = Progress(4, 10, enabled=False, clock=clock)
    clock.now += 30.0  # compile + run
    p.advance()
    assert p.rate == pytest.approx(10 / 30)
    clock.now += 1.0
    p.advance()
    assert p.rate == pytest.approx(10.0) and p.eta == pytest.approx(2.0)


def test_progress_off_a_terminal():
    quiet = io.StringIO()
    with Progress(3, 8, stream=quiet) as p:
        p.advance()
    assert quiet.getvalue() == ""  # auto: no display in a log file
    forced, clock = io.StringIO(), FakeClock()
    with Progress(3, 8, stream=forced, enabled=True, clock=clock, label="grid") as p:
        clock.now += 4.0
        p.advance()
    lines = forced.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in forced.getvalue()
    assert lines[1] == "grid: 1/3 chunks (33%) | 2 attacks/s | ETA 0:00:08"
    off = FakeTerminal()
    with Progress(3, 8, stream=off, enabled=False) as p:
        p.advance(3)
    assert off.getvalue() == "" and p.eta == 0.0


def test_progress_misuse_and_durations():
    with pytest.raises(ValueError, match="`done`"):
        Progress(3, 8, done=4)
    with pytest.raises(ValueError, match="`attacks_per_chunk`"):
        Progress(3, 0)
    p = Progress(3, 8, done=2, enabled=False)
    with pytest.raises(ValueError, match="`n`"):
        p.advance(2)
    assert format_duration(3725) == "1:02:05" and format_duration(90061) == "1d+1:01:01"


# --------------------------------------------------------------------------------------------
# Figures


def test_plot_robust_accuracy(tmp_path):
    s = summarize(concat(make_table(), make_table(victim="w")))
    fig = plot_robust_accuracy(s, x="eps", hue="victim", path=tmp_path / "ra.png")
    assert (tmp_path / "ra.png").stat().st_size > 0
    lines = fig.axes[0].lines
    assert len(lines) == 2
    assert list(lines[0].get_xdata()) == [0.05, 0.1]
    assert list(lines[0].get_ydata()) == pytest.approx([1.0, 0.25])
    with pytest.raises(ValueError, match="several rows"):  # two victims on one line
        plot_robust_accuracy(s, x="eps")
    with pytest.raises(ValueError, match="`x`.*'budget'"):
        plot_robust_accuracy(s, x="budget")
    with pytest.raises(ValueError, match="`hue`.*'nope'"):
        plot_robust_accuracy(s, hue="nope")


def test_plot_success_vs_queries(tmp_path):
    fig = plot_success_vs_queries(make_table(), hue="eps", path=tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 0
    lines = fig.axes[0].lines
    assert len(lines) == 2
    # eps = 0.1: fooled pairs after 10, 35 and 7 queries, out of 6 pairs.
    assert list(lines[1].get_xdata()) == [0, 7, 10, 35]
    assert list(lines[1].get_ydata()) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    with pytest.raises(ValueError, match="'eps' takes 2 values"):
        plot_success_vs_queries(make_table())


def test_plot_operating_characteristic(tmp_path):
    table = concat(make_table(), make_table(victim="w"))
    fig = plot_operating_characteristic(table, hue="victim", path=tmp_path / "oc.png")
    assert (tmp_path / "oc.png").stat().st_size > 0
    lines = fig.axes[0].lines
    assert len(lines) == 2
    # Runs merged over restarts and eps: fooled pairs at l2 = 1, 3, 4, out of 6.
    assert list(lines[0].get_xdata()) == [0, 1, 3, 4]
    assert list(lines[0].get_ydata()) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    one = plot_operating_characteristic(make_table(), norm="linf")
    assert len(one.axes[0].lines) == 1
    assert list(one.axes[0].lines[0].get_xdata()) == pytest.approx([0, 0.1, 0.3, 0.4])
    with pytest.raises(ValueError, match="'victim' takes 2 values"):
        plot_operating_characteristic(table)
    with pytest.raises(ValueError, match="`norm`"):
        plot_operating_characteristic(table, norm="l3", hue="victim")
