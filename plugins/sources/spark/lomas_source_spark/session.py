"""The process's one Spark session, started lazily, and the guard on what a target runs.

The session is built once per process (a JVM is expensive) with ANSI mode pinned off (a cast
that fails or a division by zero gives NULL, never an error that could depend on a value), the
UI off, few shuffle partitions, bounded driver memory and no SQL directly on files. Each dataset
gets its own child session (``newSession``: own temporary views and SQL settings) on the same
Spark context.

:func:`check_statement` parses a statement with Spark's own parser (nothing is bound or run) and
refuses anything but one query over ``df``: no command (``SET``, ``INSERT``, ``CREATE``, ...), no
other relation, table function or file, no subquery expression, and only functions from an
allow-list. lomas renders the statements itself; this is the target's own lock-down.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ALLOWED_FUNCTIONS", "check_statement", "spark_session"]

_lock = threading.Lock()
_session: Any = None

#: Logical plan nodes (as Spark's parser produces them) a statement may hold.
_PLAN_NODES = frozenset({"Project", "Filter", "Aggregate", "Sort", "GlobalLimit", "LocalLimit",
                         "SubqueryAlias", "UnresolvedRelation", "Distinct", "OneRowRelation",
                         "UnresolvedHaving", "Join", "WithWindowDefinition", "Window"})
#: Expression nodes that hold a query plan (subqueries): refused.
_SUBQUERY_NODES = frozenset({"ScalarSubquery", "Exists", "ListQuery", "LateralSubquery",
                             "InSubquery", "UnresolvedTableValuedFunction"})
#: Functions a statement may call (what the SmartNoise-SQL engine renders for Spark, and what
#: defines ``df``); anything else (``reflect``, ``java_method``, ``input_file_name``...) is refused.
ALLOWED_FUNCTIONS = frozenset({
    "count", "sum", "avg", "min", "max", "abs", "ceil", "ceiling", "floor", "sign", "signum",
    "sqrt", "ln", "log", "log10", "log2", "exp", "round", "power", "pow", "trunc", "sin", "cos",
    "tan", "asin", "acos", "atan", "atanh", "degrees", "pi", "upper", "lower", "trim",
    "substring", "substr", "position", "locate", "char_length", "length", "coalesce", "concat",
    "nullif", "extract", "date_part", "current_date", "current_timestamp", "now", "isnan",
    "row_number", "xxhash64", "hash", "struct", "dayofweek", "year", "month", "day", "hour",
    "minute", "second", "cast", "between", "try_add", "try_subtract", "try_multiply",
})


def spark_session(master: str, driver_memory: str, shuffle_partitions: int) -> Any:
    """The process's Spark session (the arguments of the first call build it)."""
    global _session
    with _lock:
        if _session is None:
            import os

            import pyspark
            from pyspark.sql import SparkSession

            # Spark's launcher scripts otherwise start another Python to find their own home.
            os.environ.setdefault("SPARK_HOME", os.path.dirname(pyspark.__file__))

            _session = (SparkSession.builder.master(master).appName("lomas")
                        .config("spark.sql.ansi.enabled", "false")
                        .config("spark.ui.enabled", "false")
                        .config("spark.ui.showConsoleProgress", "false")
                        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
                        .config("spark.driver.memory", driver_memory)
                        .config("spark.sql.runSQLOnFiles", "false")
                        .config("spark.sql.execution.arrow.pyspark.enabled", "false")
                        .getOrCreate())
            _session.sparkContext.setLogLevel("ERROR")
            import atexit

            atexit.register(_session.stop)  # the JVM leaves before the interpreter tears down
        return _session


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _check_expression(expr: Any) -> None:
    name = str(expr.nodeName())
    if name in _SUBQUERY_NODES:
        raise ValueError("a subquery")
    if name == "UnresolvedFunction":
        parts = [str(p).lower() for p in _seq(expr.nameParts())]
        if len(parts) != 1 or parts[0] not in ALLOWED_FUNCTIONS:
            raise ValueError(f"the function {'.'.join(parts)[:40]!r}")
    for child in _seq(expr.children()):
        _check_expression(child)


def _check_plan(plan: Any) -> None:
    name = str(plan.nodeName())
    if name not in _PLAN_NODES:
        raise ValueError(f"a {name[:40]} statement")
    if name == "UnresolvedRelation":
        parts = [str(p).lower() for p in _seq(plan.multipartIdentifier())]
        if parts != ["df"]:
            raise ValueError("a relation other than df")
    for expr in _seq(plan.expressions()):
        _check_expression(expr)
    for child in _seq(plan.children()):
        _check_plan(child)


def check_statement(session: Any, statement: str) -> None:
    """Refuse ``statement`` unless it is one query over ``df`` (see the module docstring).

    Raises:
        ValueError: naming the construct refused.
    """
    parser = session._jsparkSession.sessionState().sqlParser()
    try:
        plan = parser.parsePlan(statement)
    except Exception:  # noqa: BLE001 - a py4j error wrapping Spark's ParseException
        raise ValueError("a statement Spark cannot parse") from None
    _check_plan(plan)
