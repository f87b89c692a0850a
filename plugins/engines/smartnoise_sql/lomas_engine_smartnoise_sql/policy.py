"""Which group keys a query may release, decided at cost time from the public metadata only.

A ``GROUP BY`` releases the values of its columns. Each grouping column must be a plain column of
the dataset (no expression, no function: ``GROUP BY RANDOM()`` or ``GROUP BY income / 10`` are
refused), and its values leave only when

* **public keys**: the metadata declares the column's ``categories`` with ``public_keys: true``.
  When every grouping column is public, the query runs without thresholding and the answer holds
  exactly the declared key combinations, in declared order, absent ones included (their exact
  aggregates are zero before noise), and nothing else; or
* **thresholding**: the dataset has ``censor_dims: true`` (the default): SmartNoise-SQL drops the
  groups whose noisy count is under a threshold, paid with delta. Mixed public and non-public
  grouping columns are thresholded over their combination.

Any other ``GROUP BY`` is refused, free, naming the two settings the data owner can choose from.
Queries without ``GROUP BY`` release no key and never need thresholding.

The select list may hold grouping columns as they are (a key output) and expressions of
aggregates; a column anywhere else outside an aggregate is refused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from lomas_core.api import (
    InvalidQuery,
    Metadata,
)

__all__ = ["MAX_PUBLIC_GROUPS", "KeyPlan", "declared_values", "plan_keys"]

#: Most key combinations a query over public keys may list (the answer has one row for each).
MAX_PUBLIC_GROUPS = 10_000

Mode = Literal["none", "public", "threshold"]


@dataclass(frozen=True)
class KeyPlan:
    """How one query releases group keys."""

    mode: Mode
    #: The grouping columns (metadata names), in GROUP BY order.
    keys: tuple[str, ...] = ()
    #: With public keys: every declared key combination, in the fixed (declared) order.
    combinations: tuple[tuple[Any, ...], ...] = ()
    #: Number of columns of the answer (the select list).
    outputs: int = 0
    #: (answer position, grouping column) of each key output of the select list.
    key_outputs: tuple[tuple[int, str], ...] = ()

    @property
    def censor_dims(self) -> bool:
        """Whether SmartNoise-SQL thresholds this query's groups."""
        return self.mode == "threshold"


def _as_loaded(kind: str, value: Any) -> Any:
    """A declared category as the database returns that column's values (its Python type)."""
    if value is None:
        return None
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "boolean":
            return value if isinstance(value, bool) else str(value).strip().lower() == "true"
        if kind == "datetime":
            import pandas as pd

            return pd.Timestamp(value).to_pydatetime()
    except (TypeError, ValueError):
        return value
    return str(value)


def declared_values(metadata: Metadata, name: str) -> list[Any] | None:
    """Column ``name``'s declared categories as the database returns such values, or None."""
    column = metadata.columns[name]
    if column.categories is None:
        return None
    return list(dict.fromkeys(_as_loaded(column.type, v) for v in column.categories))


def _column_name(column: Any, metadata: Metadata) -> str | None:
    """The metadata column a SmartNoise-SQL ``Column`` names (case-insensitive), if any."""
    name = str(column.name).split(".")[-1].strip().strip('"').lower()
    return next((c for c in metadata.columns if c.lower() == name), None)


def _columns_outside_aggregates(node: Any) -> list[Any]:
    from snsql._ast.expressions.sql import AggFunction
    from snsql._ast.tokens import Column, Sql

    if isinstance(node, Column):
        return [node]
    if isinstance(node, AggFunction) or not isinstance(node, Sql):
        return []
    found: list[Any] = []
    for child in node.children():
        if child is not None:
            found.extend(_columns_outside_aggregates(child))
    return found


def _check_functions(query: Any) -> None:
    from snsql._ast.expressions.numeric import BareFunction
    from snsql._ast.expressions.sql import OverClause, RankingFunction

    for function in query.find_nodes(BareFunction):
        if str(function.name).upper() != "PI":
            raise InvalidQuery(f"{str(function.name).upper()}() is not accepted (only PI() of the "
                               "functions without arguments)")
    if query.find_nodes(RankingFunction) or query.find_nodes(OverClause):
        raise InvalidQuery("window functions (ROW_NUMBER, RANK, OVER) are not accepted")


def plan_keys(query: Any, metadata: Metadata) -> KeyPlan:
    """The key release of ``query`` (a parsed SmartNoise-SQL tree) under ``metadata``.

    Raises:
        InvalidQuery: a GROUP BY on something other than a plain column, on a column whose values
            are neither public nor thresholded, a select item that is neither an aggregate
            expression nor a grouping column, or a function that is not accepted.
    """
    from snsql._ast.tokens import Column

    _check_functions(query)
    keys: list[str] = []
    for grouping in (query.agg.groupingExpressions if query.agg is not None else []):
        expression = getattr(grouping, "expression", grouping)
        name = _column_name(expression, metadata) if isinstance(expression, Column) else None
        if name is None and isinstance(expression, Column):
            raise InvalidQuery(f"unknown column: {str(expression.name)[:60]}")
        if name is None:
            raise InvalidQuery("GROUP BY accepts only plain columns of the dataset (no expression "
                               "or function)")
        if metadata.columns[name].private_id:
            raise InvalidQuery(f"GROUP BY {name}: the column identifies persons; its values are "
                               "never released")
        if name in keys:
            raise InvalidQuery(f"GROUP BY names the column {name} twice")
        keys.append(name)

    named = list(query.select.namedExpressions)
    key_outputs: list[tuple[int, str]] = []
    for position, item in enumerate(named):
        expression = item.expression
        if isinstance(expression, Column):
            name = _column_name(expression, metadata)
            if name in keys:
                key_outputs.append((position, name))
                continue
        outside = _columns_outside_aggregates(expression)
        for column in outside:
            if _column_name(column, metadata) is None:
                raise InvalidQuery(f"unknown column: {str(column.name)[:60]}")
        if outside:
            raise InvalidQuery("select GROUP BY columns as they are (without an expression around "
                               "them) and aggregates; other columns only inside an aggregate")
    if not keys:
        return KeyPlan(mode="none", outputs=len(named))

    private = [k for k in keys if metadata.public_keys(k) is None]
    if private:
        if not metadata.censor_dims:
            raise InvalidQuery(
                f"GROUP BY {', '.join(private)}: the values of this column are not public and this "
                "dataset does not threshold rare groups. The data owner must either declare the "
                "column's categories with public_keys: true, or enable thresholding with "
                "censor_dims: true (then queries pay a delta for it)")
        return KeyPlan(mode="threshold", keys=tuple(keys), outputs=len(named),
                       key_outputs=tuple(key_outputs))
    sets = [declared_values(metadata, k) or [] for k in keys]
    size = 1
    for values in sets:
        size *= len(values)
    if size > MAX_PUBLIC_GROUPS:
        raise InvalidQuery(f"GROUP BY {', '.join(keys)} lists {size} key combinations; at most "
                           f"{MAX_PUBLIC_GROUPS} are accepted")
    return KeyPlan(mode="public", keys=tuple(keys),
                   combinations=tuple(itertools.product(*sets)), outputs=len(named),
                   key_outputs=tuple(key_outputs))
