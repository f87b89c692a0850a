"""The SQL that defines ``df`` on a DuckDB target: the metadata's rules as a view.

The view reads the files in place and applies, on every query, what :mod:`lomas_core.prepare`
applies once to an in-memory table: declared columns cast to their types (``TRY_CAST``: a value
that does not convert is NULL; NaN is NULL), values outside declared ``categories`` as NULL
(``CASE``), and with a ``private_id`` at most ``max_ids`` rows per person (rows without an id
dropped). Which rows a person keeps is decided by a hash of each of that person's rows, so it
depends on their own rows only (adding or removing someone changes nobody else's selection).
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    Metadata,
    in_categories,
    quote,
)

__all__ = ["view_sql"]

_CASTS = {"int": "TRY_CAST({c} AS BIGINT)", "boolean": "TRY_CAST({c} AS BOOLEAN)",
          "string": "CAST({c} AS VARCHAR)", "datetime": "TRY_CAST({c} AS TIMESTAMP)",
          "float": "CASE WHEN isnan(TRY_CAST({c} AS DOUBLE)) THEN NULL "
                   "ELSE TRY_CAST({c} AS DOUBLE) END"}


def _column(name: str, kind: str, categories: list[Any] | None) -> str:
    expr = in_categories(_CASTS[kind].format(c=quote(name)), kind, categories)
    return f"{expr} AS {quote(name)}"


def view_sql(reader: str, metadata: Metadata, present: list[str]) -> tuple[str, list[str]]:
    """``(SELECT that defines df, its columns)`` over ``reader`` (a table function call).

    Raises:
        ValueError: a category is not a value of its column's type (a metadata mistake).
    """
    lowered = {p.lower(): p for p in present}
    cols = [(name, col) for name, col in metadata.columns.items() if name.lower() in lowered]
    if not cols:
        raise ValueError("none of the metadata's columns is in the source")
    select = ", ".join(_column(name, col.type, col.categories) for name, col in cols)
    inner = f"SELECT {select} FROM {reader}"
    names = [name for name, _ in cols]
    pid = metadata.private_id
    if pid is None or pid not in names:
        return inner, names
    outer = ", ".join(quote(n) for n in names)
    return (f"SELECT {outer} FROM ({inner}) AS lomas_rows WHERE {quote(pid)} IS NOT NULL "
            f"QUALIFY row_number() OVER (PARTITION BY {quote(pid)} ORDER BY hash(lomas_rows)) "
            f"<= {int(metadata.max_ids)}"), names
