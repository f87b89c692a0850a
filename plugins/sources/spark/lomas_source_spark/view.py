"""The SQL that defines ``df`` on a Spark target: the metadata's rules as a temporary view.

Spark runs with ANSI mode off, so a cast of a value that does not convert is NULL. The view
applies what :mod:`lomas_core.prepare` applies to in-memory tables: declared columns cast to their
types (NaN as NULL), values outside ``categories`` as NULL (``CASE``), and with a ``private_id``
at most ``max_ids`` rows per person, ranked by ``xxhash64`` of each of that person's rows (so the
selection depends on their own rows only). Identifiers are quoted with backticks and strings
with Spark's backslash escapes (Spark does not read ``''`` as a quote inside a string).
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import Metadata, bounded_per_person, in_categories, sql_literal

__all__ = ["spark_literal", "spark_quote", "view_sql"]

_CASTS = {"int": "CAST({c} AS BIGINT)", "boolean": "CAST({c} AS BOOLEAN)",
          "string": "CAST({c} AS STRING)", "datetime": "CAST({c} AS TIMESTAMP)",
          "float": "CASE WHEN isnan(CAST({c} AS DOUBLE)) THEN NULL ELSE CAST({c} AS DOUBLE) END"}


def spark_quote(name: str) -> str:
    """A Spark SQL identifier in backticks."""
    if "\x00" in name:
        raise ValueError("NUL in an identifier")
    return "`" + name.replace("`", "``") + "`"


def spark_literal(value: Any, kind: str) -> str:
    """A metadata value as a Spark SQL literal of column type ``kind`` (see ``sql_literal``)."""
    if kind != "string":
        return sql_literal(value, kind)
    text = str(value)
    if "\x00" in text:
        raise ValueError("NUL in a string value")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _column(name: str, kind: str, categories: list[Any] | None) -> str:
    expr = in_categories(_CASTS[kind].format(c=spark_quote(name)), kind, categories,
                         spark_literal)
    return f"{expr} AS {spark_quote(name)}"


def view_sql(source: str, metadata: Metadata, present: list[str]) -> tuple[str, list[str]]:
    """``(SELECT that defines df, its columns)`` over ``source`` (a relation name).

    Raises:
        ValueError: a category is not a value of its column's type, or no column matches.
    """
    lowered = {p.lower() for p in present}
    cols = [(name, col) for name, col in metadata.columns.items() if name.lower() in lowered]
    if not cols:
        raise ValueError("none of the metadata's columns is in the source")
    select = ", ".join(_column(name, col.type, col.categories) for name, col in cols)
    inner = f"SELECT {select} FROM {source}"
    names = [name for name, _ in cols]
    return bounded_per_person(inner, names, metadata, lambda columns: f"xxhash64({columns})",
                              spark_quote), names
