"""The tidy result table of a sweep, its per-grid-point summary, and its files.

A table is a ``dict[str, np.ndarray]`` of equal-length 1-D columns with one row per attack run
(one image, one target, one restart, at one grid point). Columns fall into three roles:

* **pair keys** (:data:`PAIR_KEYS`): ``image``, ``label``, ``target``, ``restart`` say which run
  of which example a row is;
* **measurements** (:data:`MEASUREMENTS`): what the run produced (``success``, norms, ...);
* **coordinates**: every other column (``victim``, ``attack``, each hyper-parameter such as
  ``eps``, and any unknown extra column). A grid point is one combination of coordinate values.

:func:`summarize` reduces a table to one row per grid point in two stages. First the runs of one
(image, target) pair are merged: the pair succeeds if any run (restart) succeeded, and takes the
norms of its successful run with the smallest ℓ2. Then the pairs of each image are reduced over
targets with the best/average/worst-case protocol of :func:`jaxadv.metrics.case_table` (SAPF,
after Carlini & Wagner), restricted, as everywhere in :mod:`jaxadv.metrics`, to the images the
victim classifies correctly.
"""

from __future__ import annotations

import csv
import math
import os
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxadv.metrics import NORM_NAMES, case_table

PAIR_KEYS = ("image", "label", "target", "restart")
MEASUREMENTS = (
    "clean_correct", "success", "loss", "l0", "l1", "l2", "linf", "queries", "steps",
)
# The kind (numpy dtype.kind) each required column may have.
REQUIRED = {
    "victim": "USO", "attack": "USO",
    "image": "iu", "label": "iu", "target": "iu", "restart": "iu",
    "clean_correct": "b", "success": "b",
    "loss": "iuf", "l0": "iuf", "l1": "iuf", "l2": "iuf", "linf": "iuf",
    "queries": "iu", "steps": "iu",
}
_CASES = {"best": "best", "avg": "average", "worst": "worst"}
_KIND_NAMES = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float", "U": "str",
               "S": "bytes", "O": "object (str)"}


# --------------------------------------------------------------------------------------------
# Validation


def _columns(table: Any, name: str = "table") -> dict[str, np.ndarray]:
    """Checks that ``table`` maps names to 1-D arrays of one length; returns numpy columns."""
    if not isinstance(table, Mapping):
        raise ValueError(
            f"`{name}` must be a dict of column name -> 1-D array; got {type(table).__name__}."
        )
    out, length, first = {}, None, None
    for key, value in table.items():
        if not isinstance(key, str):
            raise ValueError(f"`{name}` column names must be str; got {key!r}.")
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(
                f"`{name}` column {key!r} must be 1-D (one entry per row); got shape {arr.shape}."
            )
        if length is None:
            length, first = len(arr), key
        elif len(arr) != length:
            raise ValueError(
                f"`{name}` columns must all have the same length; column {key!r} has {len(arr)} "
                f"rows but column {first!r} has {length}."
            )
        out[key] = arr
    return out


def validate_table(table: Any) -> dict[str, np.ndarray]:
    """Checks a sweep's result table and returns it as a dict of numpy columns.

    Raises ``ValueError`` naming the column when a column is not 1-D, the lengths differ, a
    required column (:data:`REQUIRED`) is missing, or a required column has the wrong kind of
    values (e.g. a float ``success``).
    """
    cols = _columns(table)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ValueError(
            f"`table` lacks the required column(s) {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(repr, cols)) or 'no columns'}."
        )
    for col, kinds in REQUIRED.items():
        kind = cols[col].dtype.kind
        if kind not in kinds:
            want = " or ".join(dict.fromkeys(_KIND_NAMES[k] for k in kinds))
            raise ValueError(
                f"`table` column {col!r} must hold {want} values; got dtype {cols[col].dtype}."
            )
    return cols


def coordinates(table: Mapping[str, Any]) -> list[str]:
    """The coordinate columns of a table: every column that is neither a pair key nor a
    measurement, in table order."""
    return [c for c in table if c not in PAIR_KEYS and c not in MEASUREMENTS]


def filter_table(table: Mapping[str, Any], **equals: Any) -> dict[str, np.ndarray]:
    """The rows whose columns equal the given values, e.g. ``filter_table(t, victim="cnn")``."""
    cols = _columns(table)
    n = len(next(iter(cols.values()))) if cols else 0
    keep = np.ones(n, bool)
    for col, value in equals.items():
        if col not in cols:
            raise ValueError(
                f"filter column {col!r} is not in the table; columns: {', '.join(map(repr, cols))}."
            )
        keep &= cols[col] == value
    return {k: v[keep] for k, v in cols.items()}


# --------------------------------------------------------------------------------------------
# Grouping and the reduction of runs to (image, target) pairs


def _group_ids(columns: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Group id of each row (groups sorted by the columns' values) and each group's first row."""
    if not columns:
        return np.zeros(n, np.int64), np.zeros(min(n, 1), np.int64)
    codes = np.stack([np.unique(c, return_inverse=True)[1].reshape(-1) for c in columns], axis=1)
    _, first, ids = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return ids.reshape(-1), first


def _check_by(cols: Mapping[str, np.ndarray], by: Any) -> list[str]:
    if by is None:
        return coordinates(cols)
    names = [by] if isinstance(by, str) else list(by)
    for name in names:
        if not isinstance(name, str) or name not in cols:
            raise ValueError(
                f"`by` must name columns of the table; got {name!r}, columns are "
                f"{', '.join(map(repr, cols))}."
            )
        if name in MEASUREMENTS:
            raise ValueError(
                f"`by` must name coordinate columns, not the measurement {name!r}."
            )
    return names


def _check_per_image(cols, group_ids, n) -> None:
    """``label`` and ``clean_correct`` must be the same on every row of one image."""
    ids, first = _group_ids([group_ids, cols["image"]], n)
    for col in ("label", "clean_correct"):
        bad = np.flatnonzero(cols[col] != cols[col][first][ids])
        if bad.size:
            row = bad[0]
            raise ValueError(
                f"`table` column {col!r} must be constant for one image at one grid point; image "
                f"{cols['image'][row]} has {col}={cols[col][row]!r} on row {row} but "
                f"{cols[col][first[ids[row]]]!r} on row {first[ids[row]]}."
            )


def reduce_runs(
    table: Mapping[str, Any], group: Sequence[str], *, norm: str = "l2",
    check_duplicates: bool = False,
) -> dict[str, np.ndarray]:
    """Merges the runs of each (grid point, image, target) into one row per pair.

    Runs are the table's rows that share the ``group`` columns, the image and the target (its
    restarts, and any coordinate left out of ``group``). A pair succeeds if any run succeeded; it
    takes the norms and loss of its successful run with the smallest ``norm`` (of its first run
    by restart when none succeeded). Its ``queries`` count runs tried in restart order until the
    first success: the queries of every run up to and including it (all of them on failure).

    Returns columns ``group`` + ``image``, ``label``, ``target``, ``clean_correct``, ``success``,
    ``loss``, ``l0``, ``l1``, ``l2``, ``linf``, ``queries``, ``runs`` and ``point`` (the index of
    the pair's grid point, 0.. in sorted order), sorted by grid point, image and target.
    """
    cols = validate_table(table)
    if norm not in NORM_NAMES:
        raise ValueError(f"`norm` must be one of {NORM_NAMES}; got {norm!r}.")
    n = len(cols["image"])
    point, _ = _group_ids([cols[c] for c in group], n)
    _check_per_image(cols, point, n)
    pair, _ = _group_ids([point, cols["image"], cols["target"]], n)
    rows = np.arange(n)
    restart = cols["restart"]
    by_restart = np.lexsort((rows, restart, pair))  # pair-major, then restart, then row order
    if check_duplicates and n:
        same = (np.diff(pair[by_restart]) == 0) & (np.diff(restart[by_restart]) == 0)
        if np.any(same):
            row = by_restart[np.flatnonzero(same)[0]]
            raise ValueError(
                f"`table` holds {int(np.sum(same))} duplicate run(s): more than one row for the "
                f"same grid point, image, target and restart (e.g. image {cols['image'][row]}, "
                f"target {cols['target'][row]}, restart {restart[row]}, row {row}). Was a chunk "
                "written twice?"
            )
    success = cols["success"].astype(bool)
    sizes = np.bincount(pair) if n else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if n else sizes
    # The representative run: successful with the smallest norm, else the first by restart.
    key = np.where(success, cols[norm].astype(np.float64), np.inf)
    best = np.lexsort((rows, restart, key, pair))[starts]
    # Queries until the first success, runs taken in restart order.
    queries = cols["queries"][by_restart].astype(np.int64)
    spent = np.cumsum(queries)
    before = spent[starts] - queries[starts]
    position = rows - np.repeat(starts, sizes)
    first_hit = np.where(success[by_restart], position, np.iinfo(np.int64).max)
    stop = np.minimum(np.minimum.reduceat(first_hit, starts), sizes - 1) if n else starts
    out = {c: cols[c][best] for c in group}
    out.update({c: cols[c][best] for c in ("image", "label", "target", "clean_correct")})
    out["success"] = success[best]
    out.update({c: cols[c][best].astype(np.float64) for c in ("loss",) + NORM_NAMES})
    out["queries"] = spent[starts + stop] - before if n else np.zeros(0, np.int64)
    out["runs"] = sizes.astype(np.int64)
    out["point"] = point[best]
    return out


# --------------------------------------------------------------------------------------------
# Summary


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def _cases(success: np.ndarray, norms: dict[str, np.ndarray], image: np.ndarray) -> dict:
    """The best/avg/worst-case table over targets of image-major pairs (see ``case_table``).

    ``case_table`` wants the same number of targets for every image; a grid may give images
    different numbers (a shared target list loses each image's own label). Images are then
    bucketed by their number of targets, each bucket goes through ``case_table``, and the buckets
    are pooled: rates weighted by their denominators (images, or pairs for the average case),
    norm means by their numbers of fooled cases.
    """
    ids, first = _group_ids([image], len(image))
    per_image = np.bincount(ids, minlength=len(first))
    pooled = {c: {"n": 0.0, "ok": 0.0, **{m: 0.0 for m in NORM_NAMES}} for c in _CASES.values()}
    for k in np.unique(per_image):
        rows = np.flatnonzero(per_image[ids] == k)  # still image-major
        view = types.SimpleNamespace(
            success=success[rows], **{m: norms[m][rows] for m in NORM_NAMES}
        )
        table = case_table(view, int(k), by="l2")
        grid = success[rows].reshape(-1, int(k))
        ok = {"best": grid.any(axis=1).sum(), "average": grid.sum(),
              "worst": grid.all(axis=1).sum()}
        for case, acc in pooled.items():
            acc["n"] += grid.size if case == "average" else grid.shape[0]
            acc["ok"] += ok[case]
            for m in NORM_NAMES:
                acc[m] += table[case][m] * ok[case] if ok[case] else 0.0
    nan = float("nan")
    return {
        case: {"asr": acc["ok"] / acc["n"] if acc["n"] else nan,
               **{m: acc[m] / acc["ok"] if acc["ok"] else nan for m in NORM_NAMES}}
        for case, acc in pooled.items()
    }


def _point_stats(pairs: dict[str, np.ndarray], sel: np.ndarray) -> dict[str, float]:
    """The statistics of one grid point from its pairs (rows ``sel`` of ``pairs``)."""
    image = pairs["image"][sel]
    ids, first = _group_ids([image], len(image))
    correct_img = pairs["clean_correct"][sel][first].astype(bool)
    fooled_img = np.zeros(len(first), bool)
    np.logical_or.at(fooled_img, ids, pairs["success"][sel])
    # The protocol runs over the pairs of correctly classified images only.
    attacked = sel[pairs["clean_correct"][sel].astype(bool)]
    success = pairs["success"][attacked].astype(bool)
    stats: dict[str, float] = {
        "n_images": len(first),
        "n_pairs": attacked.size,
        "clean_accuracy": _mean(correct_img.astype(np.float64)),
        "robust_accuracy": _mean((correct_img & ~fooled_img).astype(np.float64)),
        "success_rate": _mean(success.astype(np.float64)),
    }
    cases = _cases(success, {m: pairs[m][attacked] for m in NORM_NAMES}, pairs["image"][attacked])
    for short, case in _CASES.items():
        stats[f"success_{short}"] = cases[case]["asr"]
    for m in NORM_NAMES:
        for short, case in _CASES.items():
            stats[f"{m}_{short}"] = cases[case][m]
    stats["queries_mean"] = _mean(pairs["queries"][attacked].astype(np.float64))
    return stats


def summarize(table: Mapping[str, Any], *, by: str | Sequence[str] | None = None
              ) -> dict[str, np.ndarray]:
    """One row per grid point: accuracy, success, the best/avg/worst-case protocol, queries.

    Args:
      table: a sweep's result table (:func:`validate_table`).
      by: the columns that define a grid point; default: every coordinate column (all columns
        but the pair keys and measurements). Rows that differ only in columns outside ``by``
        become extra runs of one (image, target) pair, merged like restarts (a pair succeeds if
        any run did, with the smallest successful ℓ2) — for instance ``by=["attack"]`` over an
        eps sweep gives each image's smallest successful budget.

    Returns:
      A table with the ``by`` columns and, per grid point, the columns below.

    Columns per grid point:

    * ``n_images``; ``n_pairs``, the (image, target) pairs of correctly classified images (the
      trials of the protocol; images may have different numbers of targets);
      ``clean_accuracy`` (over all images);
    * ``robust_accuracy``: the fraction of images classified correctly that no run toward any
      target fooled;
    * ``success_rate``: the fraction of successful (image, target) pairs over the correctly
      classified images (equal to ``success_avg``);
    * ``success_best/avg/worst`` and ``{l0,l1,l2,linf}_{best,avg,worst}``: the protocol of
      :func:`jaxadv.metrics.case_table` over targets (best: the successful target with the
      smallest ℓ2, fooled if any target was; avg: every pair; worst: fooled only if every target
      was, with the largest ℓ2). Norms are means over the fooled cases, NaN when there are none.
      Rates are fractions in [0, 1];
    * ``queries_mean``: mean queries per pair until its first successful restart (all restarts'
      queries for a failed pair), over the correctly classified images.
    """
    cols = validate_table(table)
    group = _check_by(cols, by)
    pairs = reduce_runs(cols, group, check_duplicates=by is None)
    n_points = int(pairs["point"].max()) + 1 if pairs["point"].size else 0
    starts = np.searchsorted(pairs["point"], np.arange(n_points + 1))
    rows = [_point_stats(pairs, np.arange(starts[g], starts[g + 1])) for g in range(n_points)]
    out = {c: pairs[c][starts[:-1]] for c in group}
    names = list(rows[0]) if rows else _point_stats_names()
    for name in names:
        dtype = np.int64 if name in ("n_images", "n_pairs") else np.float64
        out[name] = np.array([r[name] for r in rows], dtype)
    return out


def _point_stats_names() -> list[str]:
    names = ["n_images", "n_pairs", "clean_accuracy", "robust_accuracy", "success_rate"]
    names += [f"success_{c}" for c in _CASES]
    names += [f"{m}_{c}" for m in NORM_NAMES for c in _CASES]
    return names + ["queries_mean"]


# --------------------------------------------------------------------------------------------
# Files


def _format(path: Any) -> str:
    name = os.fspath(path)
    for suffix in (".csv", ".parquet"):
        if str(name).lower().endswith(suffix):
            return suffix[1:]
    raise ValueError(
        f"`path` must end in .csv or .parquet (the format is taken from the suffix); got {name!r}."
    )


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # an optional dependency
        raise ImportError(
            "Parquet tables need pyarrow, which is not installed: `pip install pyarrow` (or write "
            "a .csv path instead)."
        ) from err
    return pa, pq


def _tag(arr: np.ndarray) -> str:
    return arr.dtype.name if arr.dtype.kind in "biuf" else "str"


def _cell(value: Any, tag: str) -> str:
    if tag.startswith("float"):
        return repr(float(value))  # shortest text that reads back to the same float64
    if tag == "bool":
        return "True" if value else "False"
    return str(value)


_DTYPES_MARK = "#dtypes"


def write_table(table: Mapping[str, Any], path: Any) -> None:
    """Writes a table (a sweep's or a summary) to ``path``: ``.csv`` or ``.parquet``.

    The CSV's first line (``#dtypes,...``, skipped by ``pandas.read_csv(comment="#")``) records
    each column's dtype so :func:`read_table` restores it; floats are written with ``repr`` so the
    round trip is exact. Parquet needs pyarrow (``pip install pyarrow``).

    Args:
      table: a dict of equal-length 1-D columns.
      path: a ``.csv`` or ``.parquet`` path; the suffix picks the format.

    Raises:
      ValueError: the table is ragged or the suffix unknown.
      ImportError: a ``.parquet`` path without pyarrow.
    """
    cols = _columns(table)
    if _format(path) == "parquet":
        pa, pq = _pyarrow()
        pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()}), os.fspath(path))
        return
    tags = [_tag(v) for v in cols.values()]
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([_DTYPES_MARK] + tags)
        out.writerow(list(cols))
        for row in zip(*cols.values()):
            out.writerow([_cell(v, t) for v, t in zip(row, tags)])


_INT = re.compile(r"^[+-]?\d+$")


def _infer(values: list[str]) -> str:
    if values and all(v in ("True", "False") for v in values):
        return "bool"
    if values and all(_INT.match(v) for v in values):
        return "int64"
    try:
        [float(v) for v in values]
    except ValueError:
        return "str"
    return "float64" if values else "str"


def _parse(values: list[str], tag: str, name: str) -> np.ndarray:
    try:
        if tag == "bool":
            return np.array([v == "True" for v in values], bool)
        if tag == "str":
            return np.array(values, dtype=str)
        if tag.startswith(("int", "uint")):
            return np.array([int(v) for v in values], np.dtype(tag))
        return np.array([float(v) for v in values], np.float64).astype(np.dtype(tag))
    except (ValueError, TypeError) as err:
        raise ValueError(f"column {name!r} does not hold {tag} values: {err}") from err


def read_table(path: Any) -> dict[str, np.ndarray]:
    """Reads a table written by :func:`write_table` (``.csv`` or ``.parquet``), with its dtypes.

    A CSV without the ``#dtypes`` line (written by another tool) is read too: each column becomes
    bool, int64, float64 or str, whichever its text fits.

    Args:
      path: a ``.csv`` or ``.parquet`` file.

    Returns:
      A dict of numpy columns, each with the dtype it was written with (``str`` for text); see
      :func:`jaxadv.sweeps.read_dataframe` for a pandas DataFrame.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "missing"
        raise ValueError(
            f"`path` {os.fspath(path)!r} must be a table file written by write_table (.csv or "
            f".parquet); it is {what}."
        )
    if _format(path) == "parquet":
        _, pq = _pyarrow()
        data = pq.read_table(os.fspath(path))
        out = {}
        for name in data.column_names:
            arr = np.asarray(data.column(name).to_numpy())
            out[name] = arr.astype(str) if arr.dtype.kind == "O" else arr
        return out
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(
            f"`path` {os.fspath(path)!r} is not a CSV table written by write_table ({err})."
        ) from None
    if not lines:
        raise ValueError(f"`path` {os.fspath(path)!r} is an empty file, not a table.")
    tags = None
    if lines[0] and lines[0][0] == _DTYPES_MARK:
        tags, lines = lines[0][1:], lines[1:]
    if not lines:
        raise ValueError(f"`path` {os.fspath(path)!r} has no header row.")
    header, body = lines[0], lines[1:]
    if tags is not None and len(tags) != len(header):
        raise ValueError(
            f"`path` {os.fspath(path)!r}: the #dtypes line names {len(tags)} columns but the "
            f"header {len(header)}."
        )
    bad = [i + 2 for i, row in enumerate(body) if len(row) != len(header)]
    if bad:
        raise ValueError(
            f"`path` {os.fspath(path)!r}: line {bad[0] + (tags is not None)} has a different number"
            f" of cells than the header ({len(header)})."
        )
    out = {}
    for i, name in enumerate(header):
        values = [row[i] for row in body]
        out[name] = _parse(values, tags[i] if tags else _infer(values), name)
    return out


# --------------------------------------------------------------------------------------------
# Markdown


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _text(value: Any, digits: int) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if v != 0 and abs(v) < 10.0 ** (1 - digits):  # keep small budgets such as 2/255
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_summary(
    summary: Mapping[str, Any], *, columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A GitHub-flavoured markdown table of ``summary`` (or any table), one line per row.

    Args:
      summary: a table, typically from :func:`summarize`.
      columns: the columns to show, in order (default: all).
      digits: decimals of floats; small non-zero ones (below ``10**(1 - digits)``, e.g. a step
        size of 0.0025) get ``digits`` significant digits instead.

    Returns:
      The markdown text, one line per row, numbers right-aligned. A NaN in a coordinate column
      (a hyper-parameter that another attack family of a stacked table has, such as C&W's κ on a
      PGD row) is an empty cell; a NaN statistic (no fooled case) reads ``nan``.

    Example:
      >>> import numpy as np
      >>> from jaxadv.sweeps import markdown_summary
      >>> table = {"attack": np.array(["pgd", "cw"]), "kappa": np.array([np.nan, 2.0]),
      ...          "l2_best": np.array([np.nan, 0.5])}
      >>> print(markdown_summary(table), end="")
      | attack | kappa | l2_best |
      |:---|---:|---:|
      | pgd |  | nan |
      | cw | 2.000 | 0.500 |
    """
    cols = _columns(summary, "summary")
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"`digits` must be an integer >= 0; got {digits!r}.")
    names = list(cols) if columns is None else [columns] if isinstance(columns, str) else list(
        columns)
    for name in names:
        if name not in cols:
            raise ValueError(
                f"`columns` must name columns of the summary; got {name!r}, columns are "
                f"{', '.join(map(repr, cols))}."
            )
    if not names:
        raise ValueError("`columns` must name at least one column; got none.")
    numeric = [cols[c].dtype.kind in "iuf" for c in names]
    blank = set(names) - set(_point_stats_names())  # coordinates: NaN means "not this family's"

    lines = ["| " + " | ".join(names) + " |",
             "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
    for i in range(len(cols[names[0]])):
        cells = ["" if c in blank and _is_nan(cols[c][i]) else _text(cols[c][i], digits)
                 for c in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
