"""The rewrite that makes SmartNoise-SQL's query safe on a database without DuckDB's ``TRY``.

One :class:`NullSafeDialect` per target (:mod:`~.pg_dialect`, :mod:`~.spark_dialect`): the
query reading the table is rewritten node by node into forms that cannot raise (or leave the
numbers) for any row, and what has no safe form is refused at cost time (nothing charged):

- ``a / b`` and ``a % b`` divide by ``NULLIF(b, 0)``;
- functions with a domain get their argument only inside it (else NULL);
- with ``numeric``, arithmetic and math functions compute in ``numeric`` (PostgreSQL);
- with ``checked``, ``+ - *`` print as the target's functions that are NULL on integer
  overflow, with ``try_integer_casts`` casts to ``INTEGER`` print as ``TRY_CAST``, and with
  ``exact_sums`` integer ``SUM``s of the aggregate query never wrap (Spark);
- refused: ``POWER``, bare functions such as ``RANDOM``, math functions with neither a domain
  nor a safe form, and per dialect casts to anything but text and ``SUBSTRING``;
- at most :data:`MAX_OPERATORS` arithmetic operators.

Per-person sampling orders each person's rows by the dialect's hash of the row and a fresh seed
(:func:`~.sampling.order_sampling`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lomas_engine_smartnoise_sql.render import StatementRefused
from lomas_engine_smartnoise_sql.sampling import order_sampling

__all__ = ["MAX_OPERATORS", "NullSafeDialect", "exact_integer_sums"]

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


#: 2**64 as a double literal (exact: a power of two).
_TWO_64_DOUBLE = "1.8446744073709552E19"


@functools.cache
def _checked_classes() -> tuple[Any, Any, Any, Any]:
    """Printing variants of SmartNoise-SQL's own nodes, swapped in by class (the node keeps its
    place in the tree and its attributes: no parent needs rewiring)."""
    from snsql._ast.expressions.numeric import ArithmeticExpression
    from snsql._ast.expressions.types import CastFunction
    from snsql._ast.tokens import SqlExpr, Token

    class CheckedArithmetic(ArithmeticExpression):  # type: ignore[misc]
        """``fn(left, right)``: the operator as a function that is NULL on integer overflow."""

        function = ""

        def children(self) -> list[Any]:
            return [Token(self.function), Token("("), self.left, Token(","), self.right,
                    Token(")")]

    class TryCast(CastFunction):  # type: ignore[misc]
        """``TRY_CAST(CAST(expr AS DECIMAL(38,10)) AS INTEGER)``: NULL for a value that does not
        convert or fit. Through a decimal, a string such as ``'1.0'`` converts as DuckDB's
        ``TRY_CAST`` converts it (Spark's own ``TRY_CAST`` parses integers strictly), and a
        number beyond the decimal's range is NULL instead of saturating."""

        def children(self) -> list[Any]:
            return [Token("TRY_CAST"), Token("("), Token("CAST("), self.expression,
                    Token("AS DECIMAL(38,10))"), Token("AS"), Token(self.dbtype.upper()),
                    Token(")")]

    class AsType(SqlExpr):  # type: ignore[misc]
        """``CAST(expr AS <type>)``."""

        def __init__(self, expression: Any, type_name: str) -> None:
            self.expression = expression
            self.type_name = type_name

        def children(self) -> list[Any]:
            return [Token("CAST("), self.expression, Token(f"AS {self.type_name})")]

    class GuardedSum(SqlExpr):  # type: ignore[misc]
        """An integer sum that never wraps (see :func:`exact_integer_sums`)."""

        def __init__(self, expression: Any, as_double: Any) -> None:
            self.expression = expression
            self.as_double = as_double

        def children(self) -> list[Any]:
            return [Token("(CAST(SUM("), self.expression, Token(") AS DECIMAL(38,0)) + CAST("
                    "ROUND((SUM("), self.as_double, Token(") - SUM("), self.expression,
                    Token(f")) / {_TWO_64_DOUBLE}) AS DECIMAL(38,0)) * "
                          f"CAST({2**64} AS DECIMAL(38,0)))")]

    return CheckedArithmetic, TryCast, AsType, GuardedSum


def exact_integer_sums(query: Any) -> None:
    """Integer ``SUM``s of the aggregate query that never wrap (``query`` updated in place).

    The aggregate query sums clamped columns and, for VAR and STDDEV, their products
    (``SUM(age * age)``). A 64-bit sum wraps silently on ANSI-off Spark: an exact sum off by a
    multiple of 2**64, far beyond the noise's sensitivity. Wrapping arithmetic is still exact
    modulo 2**64, and the same sum in ``DOUBLE`` (``e'``) tells how many times it wrapped, so
    each integer ``SUM(e)`` becomes::

        CAST(SUM(e) AS DECIMAL(38,0))
          + CAST(ROUND((SUM(e') - SUM(e)) / 2**64) AS DECIMAL(38,0)) * 2**64

    exact while the double sum is within 2**63 of the total (its rounding error is at most
    about rows * 1e-16 * total: totals below about 1e35 / rows), and as close as the double
    sum beyond. Both are plain ``BIGINT``/``DOUBLE`` aggregates: a
    ``DECIMAL(38,0)`` sum is 2-5 times slower on Spark.
    """
    import copy

    from snsql._ast.expressions.numeric import ArithmeticExpression
    from snsql._ast.expressions.sql import AggFunction
    from snsql._ast.tokens import Column

    as_type, guarded = _checked_classes()[2:]
    types = {str(s.name).lower(): s.expression.type()
             for s in getattr(query, "_select_symbols", None) or []}
    for named in query.select.namedExpressions:
        agg = named.expression
        if (not isinstance(agg, AggFunction) or str(agg.name).upper() != "SUM"
                or agg.quantifier is not None or types.get(str(named.name).lower()) != "int"):
            continue
        double = copy.deepcopy(agg.expression)
        if isinstance(double, Column):
            double = as_type(double, "DOUBLE")
        else:
            for node in [double, *double.find_nodes(ArithmeticExpression)]:
                if isinstance(node, ArithmeticExpression):
                    for side in ("left", "right"):
                        if isinstance(getattr(node, side), Column):
                            setattr(node, side, as_type(getattr(node, side), "DOUBLE"))
        named.expression = guarded(agg.expression, double)


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
    #: Operator -> the target's function for it that is NULL on integer overflow
    #: (``{"+": "try_add"}``); operators not listed print as they are.
    checked: Mapping[str, str] = field(default_factory=dict)
    #: Casts to ``INTEGER`` print as ``TRY_CAST`` over a decimal (NULL where the value does not
    #: convert or does not fit, as on DuckDB, instead of wrapping or saturating).
    try_integer_casts: bool = False
    #: Integer ``SUM``s of the aggregate query never wrap (:func:`exact_integer_sums`).
    exact_sums: bool = False

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
        checked_arithmetic, try_cast = _checked_classes()[:2]
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
                if str(node.op) in self.checked:
                    node.__class__ = checked_arithmetic
                    node.function = self.checked[str(node.op)]
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
            elif isinstance(node, CastFunction) and not str(node.dbtype).lower().startswith(
                    _TEXT_TYPES):
                if self.text_casts_only:
                    raise StatementRefused("a cast to a type other than text on a "
                                           f"{self.target} source")
                if self.try_integer_casts and str(node.dbtype).lower() == "integer":
                    node.__class__ = try_cast
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
        if self.exact_sums:
            exact_integer_sums(query)
        if operators > MAX_OPERATORS:
            raise StatementRefused(f"more than {MAX_OPERATORS} arithmetic operators")
