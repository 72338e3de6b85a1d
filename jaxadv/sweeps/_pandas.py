"""Sweep tables as pandas DataFrames, with the dtypes they were written with.

``pandas.read_csv(path, comment="#")`` reads a table's CSV too, but it infers each column's type
from its text: float32 hyper-parameters come back as float64, and a column that is all NaN on
some rows or all integers may change type. These functions go through :func:`read_table`, which
restores the dtypes recorded on the file's ``#dtypes`` line. pandas is optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxadv.sweeps._table import _columns, read_table


def _pandas():
    try:
        import pandas
    except ImportError as err:  # an optional dependency
        raise ImportError("DataFrames need pandas, which is not installed: `pip install pandas`.") \
            from err
    return pandas


def to_dataframe(table: Mapping[str, Any]) -> Any:
    """A sweep's table (or a summary) as a pandas DataFrame, one column per table column.

    Args:
      table: a dict of equal-length 1-D columns, e.g. ``run.table`` or :func:`summarize`'s.

    Returns:
      A ``pandas.DataFrame`` whose numeric and bool columns keep their numpy dtypes (float32
      stays float32) and whose text columns are pandas' text columns.

    Raises:
      ImportError: pandas is not installed.
    """
    cols = _columns(table)
    return _pandas().DataFrame({name: values for name, values in cols.items()})


def read_dataframe(path: Any) -> Any:
    """Reads a table written by :func:`write_table` (``.csv`` or ``.parquet``) into pandas.

    Args:
      path: the file; its suffix gives the format.

    Returns:
      ``to_dataframe(read_table(path))``: every column with the dtype it was written with.
    """
    _pandas()  # a missing pandas is said before the file is read
    return to_dataframe(read_table(path))
