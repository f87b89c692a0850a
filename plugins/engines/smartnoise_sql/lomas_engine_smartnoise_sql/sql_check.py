"""Checks of the researcher's SQL before SmartNoise-SQL sees it with the metadata.

The SQL is parsed by SmartNoise-SQL's own parser (its small SELECT-only grammar: no DDL, no
``ATTACH``, no ``PRAGMA``, no set operations, no arbitrary functions). On top of that:

* exactly one statement;
* every table reference must name the dataset's table: ``df`` or the dataset's name (case
  insensitive, quotes allowed). Both are rewritten to the engine's one table name, so catalog
  tables (``sqlite_master``, ``information_schema``...) and any other relation are refused;
* library messages become short researcher-facing ones (:func:`researcher_message`).
"""

from __future__ import annotations

import re
from typing import Any

from lomas_core.errors import InvalidQuery
from lomas_engine_smartnoise_sql.metadata import TABLE_NAME

__all__ = ["MAX_NESTING", "prepare_sql", "researcher_message"]

_MAX_MESSAGE = 300
#: Deepest parenthesis nesting accepted; the parser's time grows steeply with nesting.
MAX_NESTING = 64
_PARSE_ERROR = re.compile(r"^Bad token (?P<token>.{0,60}?) at line (?P<line>\d+) column (?P<col>\d+)")
_UNKNOWN_COLUMN = re.compile(r"^(?:Column cannot be found|Symbol could not be found in any "
                             r"relations:?) (?P<name>.+)$")


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."


def researcher_message(exc: BaseException) -> str:
    """A short message for a query SmartNoise-SQL refused; never a traceback.

    SmartNoise-SQL refuses queries with ``ValueError`` messages written for users ("We don't
    support aggregation over expressions: ..."): they are kept, on one line and shortened.
    They only quote the query and the public metadata. Anything else is a library failure on an
    unexpected construct and gets a generic message.
    """
    if not isinstance(exc, ValueError):
        return "SmartNoise-SQL could not analyse this query (unsupported construct)"
    # The first line is SmartNoise-SQL's own sentence; what follows quotes library internals.
    text = str(exc).strip().split("\n", 1)[0]
    parse = _PARSE_ERROR.match(text)
    if parse:
        return (f"SQL syntax error near {parse['token']!r} at line {parse['line']}, column "
                f"{parse['col']} (SmartNoise-SQL accepts one SELECT over the dataset's table)")
    unknown = _UNKNOWN_COLUMN.match(text)
    if unknown:
        return _clean(f"unknown column: {unknown['name']}")
    return _clean(text)


def _normalise(name: str) -> str:
    parts = [p.strip().strip('"`[]').lower() for p in str(name).split(".")]
    return ".".join(parts)


def _nesting(sql: str) -> int:
    """Deepest parenthesis nesting outside quoted strings and identifiers."""
    depth = deepest = 0
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def prepare_sql(sql: str, dataset: str) -> str:
    """Parse ``sql`` alone and return it with its table reference rewritten to the engine's table.

    Raises:
        InvalidQuery: not exactly one parsable SELECT statement, or a reference to any table other
            than ``df`` / ``dataset``.
    """
    from snsql._ast.ast import Table
    from snsql._ast.tokens import Identifier
    from snsql.sql.parse import QueryParser

    if _nesting(sql) > MAX_NESTING:
        raise InvalidQuery(f"the SQL nests parentheses more than {MAX_NESTING} deep")
    try:
        queries: list[Any] = QueryParser().queries(sql)
    except RecursionError:
        raise InvalidQuery("the SQL is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - every parser failure is the researcher's SQL
        raise InvalidQuery(researcher_message(exc)) from None
    if len(queries) != 1:
        raise InvalidQuery("send exactly one SELECT statement")
    query = queries[0]
    allowed = {TABLE_NAME, _normalise(dataset)}
    renamed = False
    for table in query.find_nodes(Table):
        if _normalise(table.name) not in allowed:
            raise InvalidQuery(_clean(f"unknown table {str(table.name)!r}: the dataset's table is "
                                      f"named {TABLE_NAME} (or {dataset})"))
        if str(table.name) != TABLE_NAME:
            table.name = Identifier(TABLE_NAME)
            renamed = True
    if not query.find_nodes(Table):
        raise InvalidQuery(f"the query must read FROM {TABLE_NAME} (or {dataset})")
    # SmartNoise-SQL itself re-parses the printed AST when it rewrites a query, so the printed
    # form is one it reads the same way.
    return str(query) if renamed else sql
