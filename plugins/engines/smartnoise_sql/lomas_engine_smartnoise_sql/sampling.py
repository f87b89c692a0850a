"""Per-person sampling made deterministic per query, shared by every dialect.

SmartNoise-SQL keeps at most ``max_ids`` random rows per person with ``ROW_NUMBER() OVER
(PARTITION BY id ORDER BY RANDOM())``. The databases refuse (DuckDB) or are not trusted with
volatile window orderings, so the rows are ordered instead by a hash of the whole row and a fresh
random seed per query, in the dialect's own form: the selection still depends only on each
person's own rows, so contributions stay bounded the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

__all__ = ["order_sampling"]


def order_sampling(query: Any, order: Callable[[str, int], str], unexpected: Exception) -> None:
    """Replace ``RANDOM()`` in the sampling windows of ``query`` (in place) by
    ``order(alias, seed)``: the dialect's hash of the row of the sampling subquery ``alias``.

    Raises:
        unexpected: a window over something else than an aliased subquery.
    """
    from snsql._ast.ast import AliasedSubquery, Query
    from snsql._ast.expressions.numeric import BareFunction
    from snsql._ast.expressions.sql import OverClause, SortItem
    from snsql._ast.tokens import Token

    seed = secrets.randbits(62)  # a number: the statement's string literals stay the tree's
    for node in [query, *query.find_nodes(Query)]:
        overs = node.select.find_nodes(OverClause)
        if not overs:
            continue
        relations = node.source.relations if node.source is not None else []
        primary = relations[0].primary if relations else None
        if not isinstance(primary, AliasedSubquery) or primary.alias is None:
            raise unexpected
        for over in overs:
            for item in over.find_nodes(SortItem):
                expr = item.expression
                if isinstance(expr, BareFunction) and str(expr.name).upper() == "RANDOM":
                    item.expression = Token(order(primary.alias, seed))
