"""Figures of a sweep: robust accuracy against the budget, success against queries, and the
operating characteristic (probability of success within a distortion).

Each function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot state, so it works
under the Agg backend and in loops), one line per value of ``hue``, saves it when ``path`` is
given, and returns it. matplotlib is an optional dependency, imported when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxadv.metrics import NORM_NAMES, operating_characteristic, plot_operating_characteristics
from jaxadv.sweeps._table import (
    _columns,
    _group_ids,
    coordinates,
    reduce_runs,
    validate_table,
)


def _figure(panels: int = 1):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # an optional dependency
        raise ImportError("Sweep figures need matplotlib: `pip install matplotlib`.") from err
    fig = Figure(figsize=(5.5 + 3.5 * (panels - 1), 3.8), layout="constrained")
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    return fig, axes[0] if panels == 1 else list(axes)


def _finish(fig: Any, ax: Any, path: Any) -> Any:
    for one in ax if isinstance(ax, list) else [ax]:
        if len(one.lines) > 1:
            one.legend(fontsize="small")
        one.grid(alpha=0.3)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


# What a budget of each norm measures, for the axis of a panel of that norm.
BUDGET_UNITS = {
    "linf": "ℓ∞ norm of δ (largest change of one input value)",
    "l2": "ℓ2 norm of δ",
    "l1": "ℓ1 norm of δ",
    "l0": "ℓ0 of δ (input values changed)",
}


def _hue_columns(cols: Mapping[str, np.ndarray], hue: Any, argument: str = "hue") -> list[str]:
    names = [] if hue is None else [hue] if isinstance(hue, str) else list(hue)
    for name in names:
        if not isinstance(name, str) or name not in cols:
            raise ValueError(
                f"`{argument}` must name columns of the table; got {name!r}, columns are "
                f"{', '.join(map(repr, cols))}."
            )
    return names


def _lines(cols: Mapping[str, np.ndarray], hue: list[str], n: int):
    """``(label, row indices)`` per hue value, in sorted order of the hue values."""
    ids, first = _group_ids([cols[h] for h in hue], n)
    for g, row in enumerate(first):
        label = ", ".join(f"{h}={cols[h][row]}" for h in hue) if hue else None
        yield label, np.flatnonzero(ids == g)


def _constant(cols, names: list[str], rows: np.ndarray, label: Any, advice: str) -> None:
    for name in names:
        values = np.unique(cols[name][rows])
        if values.size > 1:
            where = f" within the line {label}" if label else ""
            raise ValueError(
                f"column {name!r} takes {values.size} values{where} "
                f"({', '.join(map(str, values[:4]))}{', ...' if values.size > 4 else ''}); "
                f"{advice}"
            )


def plot_robust_accuracy(
    summary: Mapping[str, Any],
    x: str = "eps",
    *,
    hue: Any = None,
    panel: Any = "auto",
    path: Any = None,
) -> Any:
    """Robust accuracy against a budget column of a :func:`summarize` table.

    Budgets of different norms are not comparable, so by default each norm gets its own panel
    (the ``norm`` column of a sweep's table), its axis labelled with what that norm's budget
    measures (:data:`BUDGET_UNITS`).

    Args:
      summary: a :func:`summarize` table.
      x: the budget column (numeric), e.g. ``"eps"``.
      hue: a column name, or several, e.g. ``"victim"``: one line per value within a panel.
        Each line must have one row per ``x`` value: filter the summary or add a column to
        ``hue`` otherwise.
      panel: a column with one panel per value (``"norm"``, or ``"attack"`` for one panel per
        family); ``"auto"``: ``"norm"`` when the summary has that column, else one panel; None:
        one panel.
      path: where to save the figure (None: not saved).

    Returns:
      The :class:`matplotlib.figure.Figure`, one axis per panel, panels in sorted order.
    """
    cols = _columns(summary, "summary")
    if not isinstance(x, str) or x not in cols:
        raise ValueError(
            f"`x` must name a column of the summary; got {x!r}, columns are "
            f"{', '.join(map(repr, cols))}."
        )
    if "robust_accuracy" not in cols:
        raise ValueError("`summary` must have a 'robust_accuracy' column (from `summarize`).")
    if cols[x].dtype.kind not in "biuf":
        raise ValueError(f"`x` must name a numeric column; {x!r} has dtype {cols[x].dtype}.")
    hue = _hue_columns(cols, hue)
    if panel == "auto":
        panel = "norm" if "norm" in cols else None
    panels = _hue_columns(cols, panel, "panel")
    n = len(cols[x])
    figures = []
    for title, in_panel in _lines(cols, panels, n):
        sub = {k: v[in_panel] for k, v in cols.items()}
        curves = []
        for label, rows in _lines(sub, hue, len(in_panel)):
            xs = sub[x][rows]
            if np.unique(xs).size != xs.size:
                where = " in the line " + ", ".join(filter(None, [title, label])) if (
                    title or label) else ""
                raise ValueError(
                    f"`summary` has several rows per {x}={xs[0]}{where}: another coordinate "
                    "varies. Filter the summary or pass that column in `hue`."
                )
            order = np.argsort(xs, kind="stable")
            curves.append((label, xs[order], sub["robust_accuracy"][rows][order]))
        norm = str(sub["norm"][0]) if panels == ["norm"] else None
        figures.append((title, norm, curves))
    fig, axes = _figure(max(len(figures), 1))  # drawn once every line is known to be valid
    axes = axes if isinstance(axes, list) else [axes]
    for ax, (title, norm, curves) in zip(axes, figures):
        for label, xs, ys in curves:
            ax.plot(xs, ys, marker="o", label=label)
        unit = BUDGET_UNITS.get(norm)
        ax.set_xlabel(f"{x}: {unit}" if unit else x)
        if title and len(figures) > 1 or norm:
            ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel("robust accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    return _finish(fig, axes if len(axes) > 1 else axes[0], path)


def plot_success_vs_queries(table: Mapping[str, Any], *, hue: Any = None, path: Any = None) -> Any:
    """The cumulative success rate against the queries spent, one line per value of ``hue``.

    A point ``(q, s)`` says that a fraction ``s`` of the (image, target) pairs of correctly
    classified images was fooled within ``q`` queries (restarts tried in order, see
    :func:`reduce_runs`). Every coordinate column other than ``hue`` must be constant within a
    line (filter the table, or add the column to ``hue``).

    Args:
      table: a sweep's result table (one row per run).
      hue: a column name, or several: one line per value.
      path: where to save the figure (None: not saved).

    Returns:
      The :class:`matplotlib.figure.Figure`.
    """
    cols = validate_table(table)
    hue = _hue_columns(cols, hue)
    others = [c for c in coordinates(cols) if c not in hue]
    curves = []
    for label, rows in _lines(cols, hue, len(cols["image"])):
        _constant(cols, others, rows, label,
                  "filter the table or add the column to `hue` to get one curve per value.")
        pairs = reduce_runs({k: v[rows] for k, v in cols.items()}, [])
        attacked = pairs["clean_correct"].astype(bool)
        hits = np.sort(pairs["queries"][attacked & pairs["success"]])
        total = max(int(np.sum(attacked)), 1)
        xs = np.concatenate([[0], hits])
        curves.append((label, xs, np.searchsorted(hits, xs, side="right") / total))
    fig, ax = _figure()
    for label, xs, ys in curves:
        ax.step(xs, ys, where="post", label=label)
    ax.set_xlabel("queries")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    return _finish(fig, ax, path)


def plot_operating_characteristic(
    table: Mapping[str, Any], *, norm: str = "l2", hue: Any = None, path: Any = None
) -> Any:
    """``P(D)``: the probability that the attack succeeds with a distortion at most ``D``, against
    ``D`` (Zhang et al., "Smooth adversarial examples", via
    :func:`jaxadv.metrics.operating_characteristic`), one line per value of ``hue``.

    Within a line every (image, target) pair of a correctly classified image is one trial; its
    runs over restarts AND over numeric coordinates (a budget sweep: eps, steps, ...) are merged
    as the paper does: success if any run succeeded, at the smallest successful ``norm``. Text
    coordinates (``victim``, ``attack``) must be constant within a line.

    Args:
      table: a sweep's result table (one row per run).
      norm: the distortion measured, one of ``"l0"``, ``"l1"``, ``"l2"``, ``"linf"``.
      hue: a column name, or several: one line per value.
      path: where to save the figure (None: not saved).

    Returns:
      The :class:`matplotlib.figure.Figure`.

    References:
      Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on
      Information Security 2020.
    """
    cols = validate_table(table)
    if norm not in NORM_NAMES:
        raise ValueError(f"`norm` must be one of {NORM_NAMES}; got {norm!r}.")
    hue = _hue_columns(cols, hue)
    text = [c for c in coordinates(cols) if c not in hue and cols[c].dtype.kind not in "biuf"]
    curves = {}
    for label, rows in _lines(cols, hue, len(cols["image"])):
        _constant(cols, text, rows, label,
                  "filter the table or add the column to `hue` to get one curve per value.")
        pairs = reduce_runs({k: v[rows] for k, v in cols.items()}, [], norm=norm)
        curves[label or norm] = operating_characteristic(
            pairs["success"], np.where(pairs["success"], pairs[norm], np.inf),
            pairs["clean_correct"],
        )
    fig, ax = _figure()
    plot_operating_characteristics(curves, ax=ax)
    if not hue:
        ax.get_legend().remove()
    ax.set_xlabel(f"distortion budget D ({norm})")
    return _finish(fig, ax, path)

