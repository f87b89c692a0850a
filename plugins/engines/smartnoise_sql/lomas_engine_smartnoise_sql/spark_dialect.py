"""SmartNoise-SQL's rewritten query made safe for Spark, and its text in Spark's syntax.

The Spark source pins ANSI mode off, so Spark itself returns NULL where DuckDB or PostgreSQL
would raise: a division or modulo by zero, a cast of a string that does not convert, a logarithm
of a number that is not positive. What ANSI-off Spark does *not* turn into NULL: a value that is
not a number (``SQRT(-1)``, ``ASIN(2)`` are NaN; ``EXP``/``POWER`` overflow to infinity), which
would pass unclamped into a sum, and integer overflow, which wraps silently (``+ - *``, a cast
to a narrower integer, and ``SUM`` of a ``BIGINT``: an exact sum off by 2**64, far beyond what
the noise covers). So the query reading the table is rewritten like the PostgreSQL one
(:mod:`~.pg_dialect`), minus the cast refusal:

- ``a / b`` and ``a % b`` divide by ``NULLIF(b, 0)`` (NULL even if ANSI mode were on);
- ``+ - *`` print as ``try_add``/``try_subtract``/``try_multiply``: NULL on a 64-bit integer
  (or decimal) overflow, as DuckDB's ``TRY`` makes it, instead of a wrapped value; doubles
  follow IEEE (an overflow is infinite, as on DuckDB). PostgreSQL computes exactly in
  ``numeric`` instead; the targets differ only for values beyond 64 bits;
- casts to ``INTEGER`` print as ``TRY_CAST(CAST(e AS DECIMAL(38,10)) AS INTEGER)``: NULL for a
  value that does not convert or fit, as DuckDB's ``TRY_CAST`` (a plain ANSI-off cast wraps a
  ``BIGINT`` into an ``INT`` and saturates a ``DOUBLE``; Spark's own ``TRY_CAST`` would refuse
  ``'1.0'``); other casts stay as they are (ANSI off: NULL for what does not convert);
- ``SQRT``, ``LN``, ``LOG``, ``LOG10``, ``LOG2``, ``ASIN``, ``ACOS`` get their argument only inside
  their domain (else NULL);
- integer ``SUM``s of the aggregate query (and VAR's and STDDEV's sums of squares) are exact,
  never wrapped (:func:`~.null_safe.exact_integer_sums`): the 64-bit sum, corrected by the
  multiple of 2**64 that the same sum in ``DOUBLE`` shows it wrapped by;
- refused at cost time: ``POWER``, ``EXP`` and the remaining trigonometric functions (no form
  that cannot overflow or leave the numbers), and bare functions such as ``RANDOM``;
- at most :data:`~.null_safe.MAX_OPERATORS` arithmetic operators.

Aggregates over expressions and ``GROUP BY`` expressions never reach a target: SmartNoise-SQL
and the key policy refuse them at cost time.

Per-person sampling orders each person's rows by ``xxhash64`` of the row and a fresh seed. The
rewrite itself is the shared :class:`~.null_safe.NullSafeDialect`.

The statement is verified with DuckDB's parser like every other (:func:`~.render.verify`);
:func:`to_spark` then rewrites only its lexical form for Spark: ``"name"`` identifiers in
backticks and string literals with backslash escapes (Spark does not read ``''`` as a quote).
"""

from __future__ import annotations

from typing import Any

from lomas_engine_smartnoise_sql.null_safe import NullSafeDialect
from lomas_engine_smartnoise_sql.render import StatementRefused

__all__ = ["SPARK_FUNCTIONS", "make_safe", "to_spark"]

#: Functions a Spark statement may call (checked on DuckDB's reading of the statement).
SPARK_FUNCTIONS = frozenset({
    "count", "count_star", "sum", "+", "-", "*", "/", "%", "||", "concat",
    "abs", "ceil", "ceiling", "floor", "sign", "sqrt", "ln", "log", "log10", "log2", "round",
    "trunc", "asin", "acos", "upper", "lower", "trim", "position", "char_length", "length",
    "coalesce", "substring", "extract", "date_part", "current_date", "current_timestamp",
    "row_number", "nullif", "xxhash64", "struct", "try_add", "try_subtract", "try_multiply",
})

_SPARK = NullSafeDialect(
    target="Spark",
    domain={"sqrt": "{e} >= 0", "ln": "{e} > 0", "log": "{e} > 0", "log10": "{e} > 0",
            "log2": "{e} > 0", "asin": "{e} BETWEEN -1 AND 1", "acos": "{e} BETWEEN -1 AND 1"},
    order=lambda alias, seed: f"xxhash64(struct({alias}.*), {seed})",
    checked={"+": "try_add", "-": "try_subtract", "*": "try_multiply"},
    try_integer_casts=True, exact_sums=True)


def make_safe(query: Any) -> None:
    """Rewrite SmartNoise-SQL's ``query`` in place for Spark (see the module docstring).

    Raises:
        StatementRefused: a construct with no form that is safe on every row.
    """
    _SPARK.make_safe(query)


def to_spark(text: str) -> str:
    """A rendered, verified statement in Spark's lexical form (same tokens otherwise).

    ``"a""b"`` becomes ``` `a"b` ``` and ``'it''s'`` becomes ``'it\\'s'`` (backslashes doubled).

    Raises:
        StatementRefused: an unterminated quote (never produced by the renderer).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch not in "'\"":
            out.append(ch)
            i += 1
            continue
        value: list[str] = []
        j = i + 1
        while True:
            if j >= n:
                raise StatementRefused("an unterminated quote")
            if text[j] == ch:
                if j + 1 < n and text[j + 1] == ch:
                    value.append(ch)
                    j += 2
                    continue
                break
            value.append(text[j])
            j += 1
        content = "".join(value)
        if ch == '"':
            out.append("`" + content.replace("`", "``") + "`")
        else:
            out.append("'" + content.replace("\\", "\\\\").replace("'", "\\'") + "'")
        i = j + 1
    return "".join(out)
