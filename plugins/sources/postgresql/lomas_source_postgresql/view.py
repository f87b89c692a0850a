"""The SQL that defines ``df`` on a PostgreSQL target: the metadata's rules as a CTE.

The session is read-only, so ``df`` is not a view but a common table expression put in front of
every statement (PostgreSQL inlines it into the statement's plan). It applies what
:mod:`lomas_core.prepare` applies to in-memory tables: declared columns in their types, values
outside ``categories`` as NULL (``CASE``), and with a ``private_id`` at most ``max_ids`` rows per
person, ranked by ``md5`` of each of that person's rows.

Numbers: ``int`` columns are ``numeric`` (``bigint`` arithmetic raises on overflow). ``float``
columns are ``double precision`` (aggregates over ``numeric`` are about ten times slower), whose
arithmetic raises on overflow *and* underflow in PostgreSQL; so NaN, infinities and values whose
magnitude is outside [1e-100, 1e100] (other than 0) read as NULL. Within that band no aggregate
of a column can leave the range of ``double precision`` (a sum of squares of 1e100 over 1e100
rows), and the engine's ``pg_dialect`` does row-level arithmetic and math functions in
``numeric``.
"""

from __future__ import annotations

from lomas_core.api import (
    Metadata,
    bounded_per_person,
    in_categories,
    quote,
)

__all__ = ["COMPATIBLE", "SAFE_MAGNITUDE", "view_sql"]

#: PostgreSQL column types (``pg_type.typname``) each metadata type may be read from; the casts
#: from these can never fail on a value.
COMPATIBLE: dict[str, frozenset[str]] = {
    "int": frozenset({"int2", "int4", "int8"}),
    "float": frozenset({"float4", "float8", "numeric", "int2", "int4", "int8"}),
    "boolean": frozenset({"bool"}),
    "datetime": frozenset({"timestamp", "timestamptz", "date"}),
}

_NON_FINITE = "('NaN', 'Infinity', '-Infinity')"

#: Magnitudes a ``double precision`` value of ``df`` may have (besides 0): see the module docstring.
SAFE_MAGNITUDE = ("1e-100", "1e100")


def _cast(name: str, kind: str, source_type: str) -> str:
    c = quote(name)
    if kind == "int":
        return f"CAST({c} AS numeric)"
    if kind == "float":
        if source_type.startswith("int"):  # below 1e19: inside the band
            return f"CAST({c} AS double precision)"
        low, high = SAFE_MAGNITUDE
        # Compared in the source's own type (a numeric above 1e308 cannot be cast); CASE tests
        # before it casts.
        return (f"CASE WHEN {c} IN {_NON_FINITE} OR abs({c}) > {high} "
                f"OR ({c} <> 0 AND abs({c}) < {low}) THEN NULL "
                f"ELSE CAST({c} AS double precision) END")
    if kind == "string":
        return f"CAST({c} AS text)"
    if kind == "boolean":
        return c
    return f"CAST({c} AS timestamp)"


def view_sql(table: str, metadata: Metadata, types: dict[str, str]) -> tuple[str, list[str]]:
    """``(SELECT that defines df, its columns)`` over ``table`` (a quoted, qualified name) whose
    columns have the PostgreSQL ``types`` ``{name: typname}``.

    Raises:
        ValueError: a column's type cannot hold its declared type, or a category is not a value
            of it (metadata mistakes; the message names the column, never a value).
    """
    cols = []
    for name, col in metadata.columns.items():
        if name not in types:
            continue
        allowed = COMPATIBLE.get(col.type)
        if allowed is not None and types[name] not in allowed:
            raise ValueError(f"column {name} is {types[name]} in the database, not {col.type}")
        expr = in_categories(_cast(name, col.type, types[name]), col.type, col.categories)
        cols.append((name, f"{expr} AS {quote(name)}"))
    if not cols:
        raise ValueError("none of the metadata's columns is in the table")
    names = [name for name, _ in cols]
    inner = f"SELECT {', '.join(sql for _, sql in cols)} FROM {table}"
    return bounded_per_person(inner, names, metadata,
                              lambda _: "md5(CAST(lomas_rows AS text))"), names
