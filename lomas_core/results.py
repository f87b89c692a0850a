"""JSON shapes of query results, shared by engines, the server and the client.

A table::

    {"type": "table", "columns": ["species", "count"], "dtypes": ["string", "int"],
     "rows": [["Adelie", 151], ["Gentoo", 123]]}

A value (a number, a list, ...)::

    {"type": "value", "value": 42.3}

NaN and infinities become ``null`` (JSON has neither); dtypes use the metadata's type names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["table", "table_from_pandas", "table_from_polars", "value"]


def _clean(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            return _clean(x.item())
        except (ValueError, AttributeError):
            pass
    if hasattr(x, "isoformat"):
        return x.isoformat()
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    return x


_PANDAS_KINDS = {"i": "int", "u": "int", "f": "float", "b": "boolean", "M": "datetime",
                 "m": "float"}


def _polars_dtype_name(name: str) -> str:
    lowered = name.lower()
    for prefix, kind in (("int", "int"), ("uint", "int"), ("float", "float"), ("decimal", "float"),
                         ("bool", "boolean"), ("datetime", "datetime"), ("date", "datetime")):
        if lowered.startswith(prefix):
            return kind
    return "string"


def table(columns: list[str], dtypes: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A table result from plain lists."""
    return {"type": "table", "columns": list(columns), "dtypes": list(dtypes),
            "rows": [[_clean(v) for v in row] for row in rows]}


def table_from_pandas(frame: pd.DataFrame) -> dict[str, Any]:
    """A table result from a pandas DataFrame."""
    dtypes = [_PANDAS_KINDS.get(getattr(frame[c].dtype, "kind", "O"), "string")
              for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), None).values.tolist()
    return table([str(c) for c in frame.columns], dtypes, rows)


def table_from_polars(frame: pl.DataFrame) -> dict[str, Any]:
    """A table result from a polars DataFrame."""
    dtypes = [_polars_dtype_name(str(dt)) for dt in frame.dtypes]
    return table(list(frame.columns), dtypes, [list(r) for r in frame.iter_rows()])


def value(x: Any) -> dict[str, Any]:
    """A non-table result (a number, a list of numbers, ...)."""
    return {"type": "value", "value": _clean(x)}
