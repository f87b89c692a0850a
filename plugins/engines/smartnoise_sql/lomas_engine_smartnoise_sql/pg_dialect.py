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
role as DuckDB's ``hash`` in ``backend._reservoir_key``). The rewrite itself is the shared
:class:`~.null_safe.NullSafeDialect`.
"""

from __future__ import annotations

from typing import Any

from lomas_engine_smartnoise_sql.null_safe import MAX_OPERATORS, NullSafeDialect

__all__ = ["MAX_OPERATORS", "PG_FUNCTIONS", "make_safe"]

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

_POSTGRESQL = NullSafeDialect(
    target="PostgreSQL",
    domain={"sqrt": "{e} >= 0", "ln": "{e} > 0", "log": "{e} > 0", "log10": "{e} > 0"},
    order=lambda alias, seed: f"md5(CAST({alias} AS TEXT) || {seed})",
    numeric=True, text_casts_only=True, refuse_substring=True)


def make_safe(query: Any) -> None:
    """Rewrite SmartNoise-SQL's ``query`` in place for PostgreSQL (see the module docstring).

    Raises:
        StatementRefused: a construct with no form that is safe on every row.
    """
    _POSTGRESQL.make_safe(query)
