"""Conversion of lomas metadata to SmartNoise-SQL metadata, in one place.

lomas metadata is SmartNoise-style already; the differences handled here:

* the table: SmartNoise-SQL names tables in its metadata; the engine always uses one table,
  ``df`` (no schema), and rewrites ``FROM <dataset name>`` to it;
* defaults: lomas columns are non-nullable unless the metadata says otherwise; SmartNoise-SQL
  defaults to the opposite, so nullability is always passed. ``censor_dims`` is decided per
  query by the key release policy (:mod:`lomas_engine_smartnoise_sql.policy`) and passed in;
* categories: SmartNoise-SQL has no category lists. A string column's categories become its
  ``cardinality`` (informational only). A numeric column with categories and no bounds gets
  the smallest and largest category as bounds: every value is one of them, so they are true
  bounds (SmartNoise-SQL clamps to them anyway). Boolean and datetime categories are ignored;
* bounds: only ``int`` and ``float`` columns have bounds in SmartNoise-SQL; a numeric column
  without both bounds can be counted but not summed or averaged;
* ``private_id`` columns become SmartNoise-SQL keys (needed when ``row_privacy`` is false);
* extra keys SmartNoise-SQL understands are passed through: table ``clamp_counts``,
  ``clamp_columns``, ``sample_max_ids``; column ``missing_value``, ``sensitivity``.

A fresh SmartNoise-SQL ``Metadata`` is built per call: the library mutates it while it runs a
query (name comparers), so objects are never shared between requests. Building it takes
microseconds, so there is nothing to cache.
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    ColumnMetadata,
    Metadata,
)

__all__ = ["TABLE_NAME", "to_snsql_metadata"]

#: The one table name the SQL engine and SmartNoise-SQL's metadata use.
TABLE_NAME = "df"

_TABLE_PASSTHROUGH = ("clamp_counts", "clamp_columns", "sample_max_ids")
_COLUMN_PASSTHROUGH = ("missing_value", "sensitivity")


def _numeric_bounds(col: ColumnMetadata) -> tuple[float | None, float | None]:
    lower = float(col.lower) if col.lower is not None else None
    upper = float(col.upper) if col.upper is not None else None
    if lower is None and upper is None and col.categories:
        values = [float(c) for c in col.categories]
        lower, upper = min(values), max(values)
    return lower, upper


def _column(name: str, col: ColumnMetadata) -> Any:
    from snsql.metadata import Boolean, DateTime, Float, Int, String

    extra = col.model_extra or {}
    common: dict[str, Any] = {"is_key": col.private_id, "nullable": col.nullable}
    if extra.get("missing_value") is not None:
        common["missing_value"] = extra["missing_value"]
    if col.type in ("int", "float"):
        lower, upper = _numeric_bounds(col)
        if extra.get("sensitivity") is not None:
            common["sensitivity"] = extra["sensitivity"]
        if col.type == "int":
            return Int(name, lower=int(lower) if lower is not None else None,
                       upper=int(upper) if upper is not None else None, **common)
        return Float(name, lower=lower, upper=upper, **common)
    if col.type == "string":
        card = len(col.categories) if col.categories else 0
        return String(name, card=card, **common)
    if col.type == "boolean":
        return Boolean(name, **common)
    return DateTime(name, **common)


def to_snsql_metadata(meta: Metadata, table_name: str = TABLE_NAME,
                      censor_dims: bool | None = None) -> Any:
    """A new ``snsql.metadata.Metadata`` with one table ``table_name`` described by ``meta``.

    ``censor_dims`` overrides the metadata's setting (the engine passes the query's key policy).

    Raises:
        ValueError: SmartNoise-SQL refuses the metadata (e.g. a sensitivity without bounds).
    """
    from snsql.metadata import Metadata as SnsqlMetadata
    from snsql.metadata import Table

    extra = meta.model_extra or {}
    options = {k: bool(extra[k]) for k in _TABLE_PASSTHROUGH if k in extra}
    columns = [_column(name, col) for name, col in meta.columns.items()]
    table = Table("", table_name, columns, rowcount=meta.rows or 0, row_privacy=meta.row_privacy,
                  max_ids=meta.max_ids,
                  censor_dims=meta.censor_dims if censor_dims is None else censor_dims,
                  use_dpsu=False, **options)
    return SnsqlMetadata([table], "lomas", dbname="lomas")
