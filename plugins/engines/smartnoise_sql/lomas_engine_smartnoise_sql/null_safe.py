"""The rewrite that makes SmartNoise-SQL's query safe on a database without DuckDB's ``TRY``.

One :class:`NullSafeDialect` per target (:mod:`~.pg_dialect`, :mod:`~.spark_dialect`): the
query reading the table is rewritten node by node into forms that cannot raise (or leave the
numbers) for any row, and what has no safe form is refused at cost time (nothing charged):

- ``a / b`` and ``a % b`` divide by ``NULLIF(b, 0)``;
- functions with a domain get their argument only inside it (else NULL);
- with ``numeric``, arithmetic and math functions compute in ``numeric`` (PostgreSQL);
- refused: ``POWER``, bare functions such as ``RANDOM``, math functions with neither a domain
  nor a safe form, and per dialect casts to anything but text and ``SUBSTRING``;
- at most :data:`MAX_OPERATORS` arithmetic operators.

Per-person sampling orders each person's rows by the dialect's hash of the row and a fresh seed
(:func:`~.sampling.order_sampling`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lomas_engine_smartnoise_sql.render import StatementRefused
from lomas_engine_smartnoise_sql.sampling import order_sampling

__all__ = ["MAX_OPERATORS", "NullSafeDialect"]

#: Arithmetic operators allowed in the row-level expressions of one query: numeric values from
#: the data are below 1e309 in magnitude (and at least 1e-324 apart from 0), so no chain of this
#: many operators leaves PostgreSQL's numeric range (1e131072).
MAX_OPERATORS = 200

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


@dataclass(frozen=True)
class NullSafeDialect:
    """What the rewrite does on one target (see the module docstring)."""

    #: The target as refusals name it ("PostgreSQL").
    target: str
    #: Function name -> condition on ``{e}``, its argument, for the argument to be in its domain.
    domain: Mapping[str, str]
    #: ``order(alias, seed)``: the dialect's hash of a sampling subquery's row.
    order: Callable[[str, int], str]
    #: Compute arithmetic, math functions and ``ROUND``/``TRUNC`` in ``numeric``.
    numeric: bool = False
    #: Refuse casts to anything but text.
    text_casts_only: bool = False
    #: Refuse ``SUBSTRING``.
    refuse_substring: bool = False

    def _check_and_rewrite(self, root: Any) -> int:
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
        refused: tuple[type, ...] = (PowerFunction, BareFunction)
        if self.refuse_substring:
            refused = (PowerFunction, SubstringFunction, BareFunction)
        nodes = [root, *root.find_nodes(object)] if hasattr(root, "find_nodes") else [root]
        operators = 0
        for node in nodes:
            if isinstance(node, ArithmeticExpression):
                operators += 1
                if self.numeric:
                    node.left = as_numeric(node.left)
                    node.right = as_numeric(node.right)
                if node.op in ("/", "%"):
                    node.right = null_if_zero(node.right)
            elif isinstance(node, MathFunction):
                name = str(node.name).lower()
                if self.numeric:
                    node.expression = as_numeric(node.expression)
                if name in self.domain:
                    node.expression = in_domain(node.expression, self.domain[name])
                elif name not in _SAFE_MATH:
                    raise StatementRefused(f"the function {name.upper()} on a {self.target} "
                                           "source")
            elif self.numeric and isinstance(node, (RoundFunction, TruncFunction)):
                node.expression = as_numeric(node.expression)  # no (double, int) forms
            elif self.text_casts_only and isinstance(node, CastFunction):
                if not str(node.dbtype).lower().startswith(_TEXT_TYPES):
                    raise StatementRefused("a cast to a type other than text on a "
                                           f"{self.target} source")
            elif isinstance(node, refused):
                raise StatementRefused(f"{type(node).__name__.removesuffix('Function').upper()} "
                                       f"on a {self.target} source")
        return operators

    def make_safe(self, query: Any) -> None:
        """Rewrite SmartNoise-SQL's ``query`` in place for the target.

        Raises:
            StatementRefused: a construct with no form that is safe on every row.
        """
        order_sampling(query, self.order,
                       StatementRefused("an unexpected per-person sampling subquery"))
        operators = sum(self._check_and_rewrite(root) for root in _row_level(query))
        if self.numeric:
            _numeric_everywhere(query)
        if operators > MAX_OPERATORS:
            raise StatementRefused(f"more than {MAX_OPERATORS} arithmetic operators")
