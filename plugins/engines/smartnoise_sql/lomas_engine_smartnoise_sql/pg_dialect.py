"""SmartNoise-SQL's rewritten query made safe for PostgreSQL, which has no ``TRY``.

On DuckDB every row-level expression runs under ``TRY`` (see ``backend._no_row_errors``). On
PostgreSQL no such wrapper exists, so the query reading the table is rewritten node by node into
forms that cannot raise for any row, and what has no safe form is refused at cost time (nothing
charged):

- ``a / b`` and ``a % b`` divide by ``NULLIF(b, 0)``;
- ``SQRT``, ``LN``, ``LOG``, ``LOG10`` get their argument only inside their domain (else NULL);
- arithmetic and math functions compute in ``numeric``: their operands are cast to it (the
  source exposes ``float`` columns as ``double precision``, whose overflow and underflow raise,
  but only with magnitudes in [1e-100, 1e100], which cast to ``numeric`` exactly), where ``+ - *``
  cannot overflow within the bounded number of operators allowed here (:data:`MAX_OPERATORS`);
- refused: casts to anything but text, ``POWER``, ``EXP``, trigonometric and other functions that
  go through ``double precision`` (whose overflow raises), ``SUBSTRING``, ``PI``.

Per-person sampling orders each person's rows by ``md5`` of the row and a fresh seed (the same
role as DuckDB's ``hash`` in ``backend._reservoir_key``).
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

from lomas_engine_smartnoise_sql.render import StatementRefused

__all__ = ["MAX_OPERATORS", "PG_FUNCTIONS", "make_safe"]

#: Arithmetic operators allowed in the row-level expressions of one query: numeric values from
#: the data are below 1e309 in magnitude (and at least 1e-324 apart from 0), so no chain of this
#: many operators leaves PostgreSQL's numeric range (1e131072).
MAX_OPERATORS = 200

#: Functions a PostgreSQL statement may call (checked on DuckDB's reading of the statement,
#: besides the operators and aggregates of ``render.ALLOWED_FUNCTIONS``).
PG_FUNCTIONS = frozenset({
    "count", "count_star", "sum", "+", "-", "*", "/", "%", "||", "concat",
    "abs", "ceil", "ceiling", "floor", "sign", "sqrt", "ln", "log", "log10", "round", "trunc",
    "upper", "lower", "trim", "position", "char_length", "length", "coalesce",
    "extract", "date_part", "current_date", "current_time", "current_timestamp",
    "get_current_time", "get_current_timestamp", "now",
    "row_number", "nullif", "md5",
})

_DOMAIN = {"sqrt": "{e} >= 0", "ln": "{e} > 0", "log": "{e} > 0", "log10": "{e} > 0"}
_SAFE_MATH = frozenset({"abs", "ceil", "ceiling", "floor", "sign"})
_TEXT_TYPES = ("varchar", "char", "text", "string")


@functools.cache
def _classes() -> tuple[Any, Any, Any]:
    from snsql._ast.tokens import SqlExpr, Token

    class NullIfZero(SqlExpr):  # type: ignore[misc]
        """``NULLIF(expr, 0)``."""

        def __init__(self, expression: Any) -> None:
            self.expression = expression

        def children(self) -> list[Any]:
            return [Token("NULLIF"), Token("("), self.expression, Token(","), Token("0"),
                    Token(")")]

    class InDomain(SqlExpr):  # type: ignore[misc]
        """``CASE WHEN <condition on expr> THEN expr END``: NULL outside a function's domain."""

        def __init__(self, expression: Any, condition: str) -> None:
            self.expression = expression
            self.condition = condition

        def children(self) -> list[Any]:
            left, right = self.condition.split("{e}")
            return [Token("CASE WHEN"), Token(left + "("), self.expression,
                    Token(")" + right), Token("THEN"), Token("("), self.expression, Token(")"),
                    Token("END")]

    class AsNumeric(SqlExpr):  # type: ignore[misc]
        """``CAST(expr AS numeric)``."""

        def __init__(self, expression: Any) -> None:
            self.expression = expression

        def children(self) -> list[Any]:
            return [Token("CAST("), self.expression, Token("AS numeric)")]

    return NullIfZero, InDomain, AsNumeric


def _row_level(query: Any) -> list[Any]:
    """The row-level expressions (select list and WHERE) of the queries reading the table."""
    from snsql._ast.ast import Query, Table

    roots: list[Any] = []
    for node in [query, *query.find_nodes(Query)]:
        relations = node.source.relations if node.source is not None else []
        if not relations or not isinstance(relations[0].primary, Table):
            continue
        roots.extend(named.expression for named in node.select.namedExpressions)
        if node.where is not None:
            roots.append(node.where.condition)
    return roots


def _check_and_rewrite(root: Any) -> int:
    from snsql._ast.expressions.numeric import (
        ArithmeticExpression,
        BareFunction,
        MathFunction,
        PowerFunction,
        RoundFunction,
        TruncFunction,
    )
    from snsql._ast.expressions.string import SubstringFunction
    from snsql._ast.expressions.types import CastFunction

    null_if_zero, in_domain, as_numeric = _classes()
    nodes = [root, *root.find_nodes(object)] if hasattr(root, "find_nodes") else [root]
    operators = 0
    for node in nodes:
        if isinstance(node, ArithmeticExpression):
            operators += 1
            node.left = as_numeric(node.left)
            node.right = as_numeric(node.right)
            if node.op in ("/", "%"):
                node.right = null_if_zero(node.right)
        elif isinstance(node, MathFunction):
            name = str(node.name).lower()
            node.expression = as_numeric(node.expression)
            if name in _DOMAIN:
                node.expression = in_domain(node.expression, _DOMAIN[name])
            elif name not in _SAFE_MATH:
                raise StatementRefused(f"the function {name.upper()} on a PostgreSQL source")
        elif isinstance(node, (RoundFunction, TruncFunction)):  # no (double, int) forms
            node.expression = as_numeric(node.expression)
        elif isinstance(node, CastFunction):
            if not str(node.dbtype).lower().startswith(_TEXT_TYPES):
                raise StatementRefused("a cast to a type other than text on a PostgreSQL source")
        elif isinstance(node, (PowerFunction, SubstringFunction, BareFunction)):
            raise StatementRefused(f"{type(node).__name__.removesuffix('Function').upper()} on a "
                                   "PostgreSQL source")
    return operators


def _reservoir_md5(query: Any) -> None:
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
            raise StatementRefused("an unexpected per-person sampling subquery")
        for over in overs:
            for item in over.find_nodes(SortItem):
                expr = item.expression
                if isinstance(expr, BareFunction) and str(expr.name).upper() == "RANDOM":
                    item.expression = Token(f"md5(CAST({primary.alias} AS TEXT) || {seed})")


def _numeric_everywhere(query: Any) -> None:
    """Arithmetic of the outer queries too (over a subquery's ``double precision`` columns)
    computes in ``numeric``: there a product of values near 1e-100 would underflow, and
    PostgreSQL raises on underflow."""
    from snsql._ast.expressions.numeric import ArithmeticExpression

    as_numeric = _classes()[2]
    for node in query.find_nodes(ArithmeticExpression):
        for side in ("left", "right"):
            operand = getattr(node, side)
            if type(operand).__name__ not in ("AsNumeric", "NullIfZero"):
                setattr(node, side, as_numeric(operand))


def make_safe(query: Any) -> None:
    """Rewrite SmartNoise-SQL's ``query`` in place for PostgreSQL (see the module docstring).

    Raises:
        StatementRefused: a construct with no form that is safe on every row.
    """
    _reservoir_md5(query)
    operators = sum(_check_and_rewrite(root) for root in _row_level(query))
    _numeric_everywhere(query)
    if operators > MAX_OPERATORS:
        raise StatementRefused(f"more than {MAX_OPERATORS} arithmetic operators")
