"""Pieces of the SQL that defines ``df`` on a push-down source, shared by every dialect.

Each source's ``view`` module casts the declared columns in its own dialect; these helpers then
apply the metadata's rules the same way everywhere: values outside ``categories`` read as NULL,
and with a ``private_id`` at most ``max_ids`` rows per person, ranked by a hash of each of that
person's own rows (so the selection never depends on another person's rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lomas_core.source import quote as sql_quote
from lomas_core.source import sql_literal

if TYPE_CHECKING:
    from lomas_core.metadata import Metadata

__all__ = ["bounded_per_person", "in_categories"]


def in_categories(expr: str, kind: str, categories: list[Any] | None,
                  literal: Callable[[Any, str], str] = sql_literal) -> str:
    """``expr``, NULL where its value is not one of ``categories`` (written with ``literal``);
    ``datetime`` columns and columns without categories are not clamped.

    Raises:
        ValueError: a category is not a value of ``kind`` (from ``literal``).
    """
    if categories and kind != "datetime":
        values = ", ".join(literal(v, kind) for v in categories)
        return f"CASE WHEN ({expr}) IN ({values}) THEN ({expr}) END"
    return expr


def bounded_per_person(inner: str, names: list[str], metadata: Metadata,
                       order: Callable[[str], str],
                       quote: Callable[[str], str] = sql_quote) -> str:
    """``inner`` (a SELECT of the columns ``names``) with at most ``max_ids`` rows per person and
    none without an id, each person's rows ranked by ``order(columns)``: the dialect's hash of a
    row of ``lomas_rows`` given its quoted column list. ``inner`` itself when there is no
    ``private_id`` among ``names``."""
    pid = metadata.private_id
    if pid is None or pid not in names:
        return inner
    outer = ", ".join(quote(n) for n in names)
    return (f"SELECT {outer} FROM (SELECT {outer}, row_number() OVER (PARTITION BY {quote(pid)} "
            f"ORDER BY {order(outer)}) AS lomas_rank FROM ({inner}) AS lomas_rows "
            f"WHERE {quote(pid)} IS NOT NULL) AS lomas_ranked "
            f"WHERE lomas_rank <= {int(metadata.max_ids)}")
