"""Turning the server's JSON results into Python objects.

A table result (``{"type": "table", "columns", "dtypes", "rows"}``) becomes a pandas DataFrame
whose column dtypes follow the metadata type names (int, float, string, boolean, datetime); a value
result (``{"type": "value", "value"}``) becomes the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from lomas_client.budget import Budget, BudgetNumber, to_budget_number

__all__ = ["QueryResult", "budget_dict", "decode_result", "plain_floats", "table_to_dataframe"]


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


def plain_floats(value: Any) -> Any:
    """``value`` with every :class:`~decimal.Decimal` (from an exact parse) turned back into the
    float a plain JSON parse gives (results and request payloads are not budgets)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_floats(v) for v in value]
    return value


def budget_dict(raw: Any) -> Budget | None:
    """An exact :class:`~lomas_client.budget.Budget` from the server's budget shape."""
    return Budget.from_json(raw)


@dataclass
class QueryResult:
    """The answer to one query.

    Attributes:
        result: a pandas DataFrame (table results) or the value (number, list, ...).
        epsilon: epsilon charged for this query (0 for a dummy query), exact
            (:class:`~lomas_client.budget.BudgetNumber`).
        delta: delta charged for this query (0 for a dummy query), exact.
        remaining: your remaining budget on the dataset after the charge (an exact
            :class:`~lomas_client.budget.Budget`), ``None`` for dummies.
        query_id: the server's id of the query (in :meth:`Client.get_previous_queries`), ``None``
            for dummies.
        engine: the engine that answered.
        dummy: whether this ran on the dummy dataset (free, no privacy guarantee needed).
        raw: the server's JSON answer.
    """

    result: Any
    epsilon: BudgetNumber
    delta: BudgetNumber
    remaining: Budget | None
    query_id: str | None
    engine: str = ""
    dummy: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> QueryResult:
        """Build from the JSON of ``POST /v1/datasets/{name}/query`` (parsed plainly or exactly:
        budgets become exact either way, the result gets plain floats)."""
        return cls(
            result=decode_result(plain_floats(body.get("result"))),
            epsilon=to_budget_number(body.get("epsilon")),
            delta=to_budget_number(body.get("delta")),
            remaining=budget_dict(body.get("remaining")),
            query_id=body.get("query_id"),
            engine=str(body.get("engine") or ""),
            dummy=bool(body.get("dummy", False)),
            raw=plain_floats(body),
        )

    @property
    def cost(self) -> Budget:
        """What this query was charged, as an exact budget."""
        return Budget(self.epsilon, self.delta)
