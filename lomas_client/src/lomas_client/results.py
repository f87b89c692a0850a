"""Turning the server's JSON results into Python objects.

A table result (``{"type": "table", "columns", "dtypes", "rows"}``) becomes a pandas DataFrame
whose column dtypes follow the metadata type names (int, float, string, boolean, datetime); a value
result (``{"type": "value", "value"}``) becomes the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["QueryResult", "budget_dict", "decode_result", "table_to_dataframe"]


def _column(values: list[Any], dtype: str) -> pd.Series:
    has_null = any(v is None for v in values)
    if dtype == "int":
        try:
            return pd.Series(values, dtype="Int64" if has_null else "int64")
        except (TypeError, ValueError, OverflowError):
            return pd.Series(values, dtype="float64")  # e.g. a DP sum returned as a float
    if dtype == "float":
        return pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
    if dtype == "boolean":
        return pd.Series(values, dtype="boolean" if has_null else "bool")
    if dtype == "datetime":
        return pd.Series(pd.to_datetime(values, errors="coerce"))
    if dtype == "string":
        return pd.Series(values, dtype="string")
    return pd.Series(values, dtype="object")


def table_to_dataframe(result: dict[str, Any]) -> pd.DataFrame:
    """A pandas DataFrame from a table result, with dtypes from its ``dtypes`` list."""
    columns = [str(c) for c in result.get("columns", [])]
    dtypes = list(result.get("dtypes") or [])
    dtypes += ["object"] * (len(columns) - len(dtypes))
    rows = result.get("rows") or []
    data = {name: _column([row[i] for row in rows], dtypes[i]) for i, name in enumerate(columns)}
    return pd.DataFrame(data, columns=columns)


def decode_result(result: Any) -> Any:
    """A DataFrame for a table result, the value for a value result, anything else unchanged."""
    if isinstance(result, dict):
        kind = result.get("type")
        if kind == "table" and "columns" in result:
            return table_to_dataframe(result)
        if kind == "value" and "value" in result:
            return result["value"]
    return result


def budget_dict(raw: Any) -> dict[str, float] | None:
    """``{"epsilon": float, "delta": float}`` from the server's budget shape."""
    if not isinstance(raw, dict):
        return None
    return {"epsilon": float(raw.get("epsilon", 0.0)), "delta": float(raw.get("delta", 0.0))}


@dataclass
class QueryResult:
    """The answer to one query.

    Attributes:
        result: a pandas DataFrame (table results) or the value (number, list, ...).
        epsilon: epsilon charged for this query (0 for a dummy query).
        delta: delta charged for this query (0 for a dummy query).
        remaining: your remaining budget on the dataset after the charge, ``None`` for dummies.
        query_id: the server's id of the query (in :meth:`Client.get_previous_queries`), ``None``
            for dummies.
        engine: the engine that answered.
        dummy: whether this ran on the dummy dataset (free, no privacy guarantee needed).
        raw: the server's JSON answer.
    """

    result: Any
    epsilon: float
    delta: float
    remaining: dict[str, float] | None
    query_id: str | None
    engine: str = ""
    dummy: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> QueryResult:
        """Build from the JSON of ``POST /v1/datasets/{name}/query``."""
        return cls(
            result=decode_result(body.get("result")),
            epsilon=float(body.get("epsilon") or 0.0),
            delta=float(body.get("delta") or 0.0),
            remaining=budget_dict(body.get("remaining")),
            query_id=body.get("query_id"),
            engine=str(body.get("engine") or ""),
            dummy=bool(body.get("dummy", False)),
            raw=body,
        )
