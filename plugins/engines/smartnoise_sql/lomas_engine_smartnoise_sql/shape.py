"""The shape an answer can have, checked twice: on the database's exact rows, and on the answer.

A defence against any bug upstream (a rewriter, renderer or library change, a database surprise):
whatever the cause, rows that the rewritten query cannot produce never leave.

* exact rows (what DuckDB returned for the rewritten aggregate query): exactly the columns of the
  rewritten query, at most one row per group (one row in all without GROUP BY), the key columns
  being the query's grouping columns. With public keys the rows are then completed to exactly the
  declared key combinations, in declared order (absent ones with zero exact aggregates), before
  SmartNoise-SQL adds noise (:func:`complete_public`);
* the answer: as many columns as the select list (or the exact rows), at most one row per group,
  every key value within the column's declared categories, and every group among the declared
  combinations (public keys) or among the groups the database returned (thresholding).

A failure raises :class:`ShapeError`; the engine turns it into ``query_failed`` (the charge stays)
with a WARNING in the log, and the rows are dropped. Messages never quote data values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lomas_core.api import Metadata
from lomas_engine_smartnoise_sql.policy import KeyPlan, declared_values

__all__ = ["ExactRows", "ShapeError", "check_answer", "check_exact", "complete_public", "unquote"]


class ShapeError(RuntimeError):
    """Rows that the rewritten query cannot produce (an engine bug, never the researcher's)."""


@dataclass
class ExactRows:
    """What the reader learnt from the exact rows, for the answer's check."""

    #: Column names of the exact rows (the rewritten aggregate query's output).
    columns: tuple[str, ...] = ()
    #: (position in the exact rows, grouping column) of each key column.
    key_positions: tuple[tuple[int, str], ...] = ()
    #: Every group (key tuple in the plan's key order) the exact rows hold.
    groups: set[tuple[Any, ...]] = field(default_factory=set)


def unquote(name: Any) -> str:
    """A column name without its double quotes (``"group"`` is ``group``)."""
    text = str(name)
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('""', '"')
    return text


def _name(name: Any) -> str:
    """A column name as DuckDB compares it: unquoted, case-insensitive."""
    return unquote(name).lower()


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise ShapeError("a key value of an unexpected type") from None
    return value


def check_exact(plan: KeyPlan, columns: Sequence[str], expected: Sequence[str],
                key_symbols: Sequence[str], rows: Sequence[Sequence[Any]]) -> ExactRows:
    """Check the exact rows of the rewritten query; returns what the answer's check needs.

    Args:
        plan: the query's key plan.
        columns: the names DuckDB gave the result's columns.
        expected: the rewritten query's output names.
        key_symbols: the names of its outputs without a mechanism (its group keys).
        rows: the exact rows.
    """
    names = tuple(_name(c) for c in columns)
    if names != tuple(_name(c) for c in expected):
        raise ShapeError("the exact rows do not have the rewritten query's columns")
    keys_lower = [k.lower() for k in plan.keys]
    positions = [(names.index(_name(s)), _name(s)) for s in key_symbols if _name(s) in names]
    if sorted(name for _, name in positions) != sorted(keys_lower) or len(positions) != len(
            key_symbols):
        raise ShapeError("the exact rows' key columns are not the query's grouping columns")
    key_positions = tuple((pos, plan.keys[keys_lower.index(name)]) for pos, name in positions)
    order = [next(pos for pos, k in key_positions if k == key) for key in plan.keys]
    groups: set[tuple[Any, ...]] = set()
    for row in rows:
        if len(row) != len(names):
            raise ShapeError("an exact row with the wrong number of columns")
        group = tuple(_hashable(row[pos]) for pos in order)
        if group in groups:
            raise ShapeError("two exact rows for the same group")
        groups.add(group)
    if not plan.keys and len(rows) > 1:
        raise ShapeError("more than one exact row for a query without GROUP BY")
    return ExactRows(columns=tuple(columns), key_positions=key_positions, groups=groups)


def complete_public(plan: KeyPlan, exact: ExactRows, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Exactly one exact row per declared key combination, in declared order.

    Rows whose keys are not declared (nulls, or values the loader should have nulled) are dropped;
    missing combinations get zero exact aggregates, so their noisy answer reveals nothing about
    whether the combination occurs in the data.
    """
    order = [next(pos for pos, k in exact.key_positions if k == key) for key in plan.keys]
    by_group = {tuple(row[pos] for pos in order): row for row in rows}
    out: list[Any] = []
    for combination in plan.combinations:
        row = by_group.get(combination)
        if row is None:
            filled: list[Any] = [0] * len(exact.columns)
            for pos, value in zip(order, combination, strict=True):
                filled[pos] = value
            row = tuple(filled)
        out.append(row)
    exact.groups = set(plan.combinations)
    return out


def check_answer(plan: KeyPlan, metadata: Metadata, exact: ExactRows, columns: Sequence[str],
                 rows: Sequence[Sequence[Any]], key_outputs: Sequence[tuple[int, str]],
                 expected_width: int) -> None:
    """Check the answer (after noise) against what the rewritten query can produce.

    Args:
        plan: the query's key plan.
        metadata: the dataset's metadata (declared categories).
        exact: what the exact rows held (:func:`check_exact`, :func:`complete_public`).
        columns: the answer's column names.
        rows: the answer's rows.
        key_outputs: (answer position, grouping column) of the key outputs.
        expected_width: the number of columns the answer must have.
    """
    width = len(columns)
    if width != expected_width:
        raise ShapeError("the answer does not have the query's columns")
    limit = len(exact.groups) if plan.keys else 1
    if len(rows) > limit:
        raise ShapeError("more rows than groups")
    full = sorted(k for _, k in key_outputs) == sorted(plan.keys) and bool(plan.keys)
    seen_values = {key: {group[i] for group in exact.groups} for i, key in enumerate(plan.keys)}
    declared = {key: declared_values(metadata, key) for key in plan.keys}
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        if len(row) != width:
            raise ShapeError("a row with the wrong number of columns")
        for pos, key in key_outputs:
            value = _hashable(row[pos])
            categories = declared[key]
            if categories is not None and value is not None and value not in categories:
                raise ShapeError(f"a value of {key} outside its declared categories")
            if value not in seen_values[key]:
                raise ShapeError(f"a value of {key} that no group has")
        if full:
            by_key = {key: row[pos] for pos, key in key_outputs}
            group = tuple(by_key[key] for key in plan.keys)
            if group not in exact.groups:
                raise ShapeError("a group that the exact rows do not have")
            if group in seen:
                raise ShapeError("two rows for the same group")
            seen.add(group)
