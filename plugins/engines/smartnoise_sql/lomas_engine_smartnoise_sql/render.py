"""From SmartNoise-SQL's query tree to the one statement DuckDB runs, and the proof it reads it so.

The researcher's text never reaches DuckDB. SmartNoise-SQL parses it, rewrites the tree, and
:func:`render` prints that tree with every literal emitted by DuckDB's own rules (strings
single-quoted with ``''`` doubling, numbers and booleans from their values), which yields a
:class:`Statement`: the only thing :meth:`DuckDBDatabase.fetch` accepts.

:func:`verify` then asks DuckDB's parser (``json_serialize_sql``: parsing only, nothing bound or
run) how it reads the statement and refuses it unless it is exactly what was rendered: one
SELECT, no comment, no set operation, CTE or parameter, no table but ``df``, only expression kinds
and functions SmartNoise-SQL's grammar and rewriter produce (a small allow-list), no column other
than the dataset's columns and the statement's own aliases, and the same string literals, value
for value, as the tree. The same check runs at cost time on a data-less connection, so a query
that the two parsers could read differently is refused before anything is charged.

The verdict is a pure function of the statement's exact text, its rendered string literals and
the column names it may use (DuckDB's parser is the same for every connection of the process):
a statement that passed is remembered under exactly that key (a bounded, thread-safe set) and is
not parsed again; any other text, even one character apart, is parsed and checked in full. A
refusal is never remembered, so it is recomputed and raised each time.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lomas_core.api import worker_threads
from lomas_engine_smartnoise_sql.metadata import TABLE_NAME

__all__ = ["ALLOWED_FUNCTIONS", "Statement", "locked_config", "parser_connection", "render", "verify"]

#: Functions DuckDB may see: what SmartNoise-SQL's grammar and rewriter print, and nothing else
#: (no catalog, settings, file, random or extension function). Operators print as functions too.
ALLOWED_FUNCTIONS = frozenset({
    # aggregates the rewriter emits
    "count", "count_star", "sum",
    # arithmetic and comparison operators as DuckDB names them
    "+", "-", "*", "/", "%", "//", "||", "concat",
    # math (SmartNoise-SQL's mathFunctionName, ROUND, POWER, TRUNC)
    "abs", "ceil", "ceiling", "floor", "sign", "sqrt", "exp", "ln", "log", "log10", "log2", "sin",
    "cos", "tan", "asin", "acos", "atan", "atanh", "degrees", "round", "power", "pow", "trunc",
    "pi",
    # strings
    "upper", "lower", "trim", "substring", "position", "char_length", "length", "coalesce",
    # dates
    "extract", "date_part", "dayname", "current_date", "current_time", "current_timestamp",
    "get_current_time", "get_current_timestamp", "now", "today",
    # per-person sampling (rewriter) with the engine's hash ordering
    "row_number", "hash",
})

#: Expression kinds (DuckDB's ``class``) a rendered statement may hold.
_ALLOWED_CLASSES = frozenset({"COLUMN_REF", "CONSTANT", "FUNCTION", "COMPARISON", "CONJUNCTION",
                              "OPERATOR", "CASE", "CAST", "STAR", "BETWEEN", "WINDOW",
                              "TYPE"})
#: SQL's time keywords, which DuckDB's parser reads as column references (bound to functions).
_TIME_KEYWORDS = frozenset({"current_date", "current_time", "current_timestamp"})
#: Table reference kinds: the table itself and the rewriter's derived tables.
_ALLOWED_TABLE_REFS = frozenset({"BASE_TABLE", "SUBQUERY"})


class StatementRefused(ValueError):
    """DuckDB would not read the rendered statement as it was rendered (never researcher text)."""


@dataclass(frozen=True)
class Statement:
    """One rendered SELECT and the string literals it must contain, in tree order."""

    text: str
    strings: tuple[str, ...]


def _literal_sql(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StatementRefused("a non-finite number literal")
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise StatementRefused("a NUL character in a string literal")
        return "'" + value.replace("'", "''") + "'"
    raise StatementRefused(f"a literal of unexpected type {type(value).__name__}")


def render(query: Any) -> Statement:
    """Print ``query`` (a SmartNoise-SQL tree) with DuckDB-rendered literals; the tree is updated."""
    from snsql._ast.tokens import Literal

    strings: list[str] = []
    for literal in query.find_nodes(Literal):
        literal.text = _literal_sql(literal.value)
        if isinstance(literal.value, str):
            strings.append(literal.value)
    return Statement(text=str(query), strings=tuple(strings))


_local = threading.local()


def parser_connection() -> Any:
    """This thread's data-less, locked-down DuckDB connection, used only to parse statements."""
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(":memory:", config=locked_config())
        con.execute("SET lock_configuration = true")
        _local.con = con
    return con


#: Connection settings for every DuckDB connection of the engine.
LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,
}


def locked_config() -> dict[str, Any]:
    """:data:`LOCKED_CONFIG` and, in an execution worker, the worker's share of the cores
    (``execution.threads_per_worker``): each thread also reserves address space."""
    config = dict(LOCKED_CONFIG)
    threads = worker_threads()
    if threads is not None:
        config["threads"] = threads
    return config


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object of DuckDB's tree with the key it hangs from."""
    if isinstance(node, dict):
        yield key, node
        for child_key, value in node.items():
            yield from _walk(value, child_key)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, key)


def _parse(con: Any, text: str) -> dict[str, Any]:
    import duckdb

    if any(kind == duckdb.token_type.comment for _, kind in duckdb.tokenize(text)):
        raise StatementRefused("a comment")
    raw = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0]
    tree = json.loads(raw)
    if tree.get("error"):
        raise StatementRefused("a syntax DuckDB cannot parse")
    return dict(tree)


#: EXTRACT's parts (SmartNoise-SQL's datePart), which DuckDB reads as string constants.
_DATE_PARTS = frozenset({"year", "month", "day", "hour", "minute", "second", "microsecond",
                         "weekday"})


def _is_date_part(text: str, location: Any, value: str) -> bool:
    """Whether a string constant is DuckDB's reading of an EXTRACT part keyword (not a literal)."""
    if not isinstance(location, int) or value.lower() not in _DATE_PARTS:
        return False
    word = text[location:location + len(value)]
    follows = text[location + len(value):location + len(value) + 1]
    return word.lower() == value.lower() and word.isalpha() and not follows.isalnum()


def verify(con: Any, statement: Statement, columns: Iterable[str],
           dialect: str = "duckdb") -> None:
    """Refuse ``statement`` unless DuckDB reads it exactly as rendered (see the module docstring).

    Args:
        con: a DuckDB connection used to parse only.
        statement: the rendered statement.
        columns: the dataset's column names (the only table columns a statement may name).
        dialect: the database that will run it (``postgresql`` and ``spark`` allow their own,
            smaller sets of functions: see :mod:`~.pg_dialect` and :mod:`~.spark_dialect`).

    Raises:
        StatementRefused: with a message naming the construct, never a data value.
    """
    if not isinstance(statement, Statement):
        raise TypeError("only rendered statements can be verified")
    names = tuple(columns)
    key = (statement.text, statement.strings, names, dialect)
    with _verified_lock:
        if key in _verified:
            _verified.move_to_end(key)
            return
    _check(con, statement, names, dialect)
    with _verified_lock:
        _verified[key] = None
        while len(_verified) > VERIFIED_CACHE_SIZE:
            _verified.popitem(last=False)


#: Verified statements remembered (see the module docstring); 0 re-parses every statement.
VERIFIED_CACHE_SIZE = 4096
_verified: OrderedDict[tuple[str, tuple[str, ...], tuple[str, ...], str], None] = OrderedDict()
_verified_lock = threading.Lock()


def _check(con: Any, statement: Statement, columns: tuple[str, ...], dialect: str) -> None:
    if dialect == "postgresql":
        from lomas_engine_smartnoise_sql.pg_dialect import PG_FUNCTIONS

        functions = PG_FUNCTIONS
    elif dialect == "spark":
        from lomas_engine_smartnoise_sql.spark_dialect import SPARK_FUNCTIONS

        functions = SPARK_FUNCTIONS
    elif dialect == "duckdb":
        functions = ALLOWED_FUNCTIONS
    else:
        raise StatementRefused(f"a statement for the unknown dialect {dialect[:20]!r}")
    tree = _parse(con, statement.text)
    statements = tree.get("statements") or []
    if len(statements) != 1 or statements[0].get("node", {}).get("type") != "SELECT_NODE":
        raise StatementRefused("not exactly one SELECT")
    if statements[0].get("named_param_map"):
        raise StatementRefused("a parameter")
    known = {c.lower() for c in columns} | {TABLE_NAME} | _TIME_KEYWORDS
    refs: list[list[str]] = []
    strings: list[str] = []
    for key, node in _walk(statements[0]):
        if node.get("alias"):
            known.add(str(node["alias"]).lower())
        kind = node.get("type")
        klass = node.get("class")
        if kind in ("SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"):
            raise StatementRefused("a set operation or CTE")
        if "cte_map" in node and (node["cte_map"] or {}).get("map"):
            raise StatementRefused("a CTE")
        if node.get("sample") or node.get("qualify"):
            raise StatementRefused("a SAMPLE or QUALIFY clause")
        if key in ("from_table", "left", "right") and klass is None and kind not in \
                _ALLOWED_TABLE_REFS:
            raise StatementRefused(f"a {str(kind).lower()[:40]} table reference")
        if kind == "BASE_TABLE":
            if (str(node.get("table_name", "")).lower() != TABLE_NAME or node.get("schema_name")
                    or node.get("catalog_name")):
                raise StatementRefused("a table other than the dataset's")
        if klass is not None:
            if klass not in _ALLOWED_CLASSES:
                raise StatementRefused(f"an expression of kind {str(klass).lower()}")
            if klass == "TYPE" and (node.get("schema") or node.get("catalog")):
                raise StatementRefused("a type from a schema")
            if klass in ("FUNCTION", "WINDOW"):
                name = str(node.get("function_name", "")).lower()
                if name not in functions or node.get("schema") or node.get("catalog"):
                    raise StatementRefused(f"the function {name[:40]!r}")
            if klass == "COLUMN_REF":
                refs.append([str(p).lower() for p in node.get("column_names", [])])
            if kind == "VALUE_CONSTANT":
                literal = node.get("literal") or {}
                if str(literal.get("kind", "")).upper() == "STRING":
                    text = str(literal.get("text"))
                    if not _is_date_part(statement.text, node.get("query_location"), text):
                        strings.append(text)
                elif "value" in node and isinstance(node["value"], dict):  # older serialisations
                    value = node["value"]
                    if str((value.get("type") or {}).get("id", "")).upper() == "VARCHAR":
                        strings.append(str(value.get("value")))
    for path in refs:
        if not path or any(part not in known for part in path):
            raise StatementRefused("a column that is neither the dataset's nor the statement's")
    if Counter(strings) != Counter(statement.strings):
        raise StatementRefused("other string literals than the ones rendered (as DuckDB reads it)")
