"""Checks of the researcher's SQL before SmartNoise-SQL sees it with the metadata.

The SQL is parsed by SmartNoise-SQL's own parser (its small SELECT-only grammar: no DDL, no
``ATTACH``, no ``PRAGMA``, no set operations, no arbitrary functions). Before it:

* a lexical check (:func:`lexical_check`) refuses text that SmartNoise-SQL's lexer and DuckDB's
  could read differently (backslashes, prefixed, dollar-quoted or doubled-quote strings, comments,
  odd quoted identifiers): the refusal comes at cost time, free, rather than a guess.

On top of it:

* exactly one statement; what goes on is the parsed tree printed, never the text received;
* every table reference must name the dataset's table: ``df`` or the dataset's name (case
  insensitive, quotes allowed). Both are rewritten to the engine's one table name, so catalog
  tables (``sqlite_master``, ``information_schema``...) and any other relation are refused;
* library messages become short researcher-facing ones (:func:`researcher_message`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

from lomas_core.api import InvalidQuery
from lomas_engine_smartnoise_sql.metadata import TABLE_NAME

__all__ = ["MAX_NESTING", "Prepared", "lexical_check", "prepare_sql", "researcher_message"]

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


_SIMPLE_QUOTED = re.compile(r'"[A-Za-z_][A-Za-z0-9_]*"')
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")


def lexical_check(sql: str) -> None:
    """Refuse text that SmartNoise-SQL's lexer and DuckDB's could read differently.

    SmartNoise-SQL reads ``\\'`` inside a string literal as an escaped quote, DuckDB does not;
    DuckDB reads ``''`` as one quote, ``E'...'``, ``U&'...'``, ``$$...$$`` and nested comments,
    SmartNoise-SQL does not. Rather than guess, such text is refused before any charge:
    backslashes, ``$``, control characters, comments, doubled quotes, prefixed or unterminated
    string literals, quoted identifiers other than ``"name"`` (letters, digits, underscore),
    back-quoted or bracketed identifiers, and non-ASCII characters outside string literals.

    Raises:
        InvalidQuery: naming the construct (never quoting the text).
    """
    def refuse(what: str) -> NoReturn:
        raise InvalidQuery(f"the SQL contains {what}, which is not accepted: SmartNoise-SQL and "
                           "the database could read it differently")

    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "\\":
            refuse("a backslash")
        if ch == "$":
            refuse("a '$' (dollar quoting or a parameter)")
        if ch < " " and ch not in "\t\n\r" or ch == "\x7f":
            refuse("a control character")
        if ch == "'":
            if i > 0 and (_IDENT_CHAR.match(sql[i - 1]) or sql[i - 1] == "&"):
                refuse("a prefixed string literal (such as E'...', N'...' or U&'...')")
            end = sql.find("'", i + 1)
            if end < 0:
                refuse("an unterminated string literal")
            content = sql[i + 1:end]
            if "\\" in content:
                refuse("a backslash")
            if any(c < " " and c not in "\t\n\r" or c == "\x7f" for c in content):
                refuse("a control character")
            if end + 1 < n and sql[end + 1] == "'":
                refuse("a doubled quote inside a string literal")
            i = end + 1
            continue
        if ch == '"':
            quoted = _SIMPLE_QUOTED.match(sql, i)
            if quoted is None:
                refuse("a quoted identifier with characters other than letters, digits and '_'")
            i = quoted.end()
            continue
        if ch in "`[]":
            refuse("a back-quoted or bracketed identifier")
        if sql.startswith("--", i) or sql.startswith("/*", i) or sql.startswith("*/", i):
            refuse("a comment")
        if ch == "&" and i + 1 < n and sql[i + 1] in "'\"":
            refuse("a unicode escape (U&)")
        if ord(ch) > 0x7E:
            refuse("a non-ASCII character outside a string literal")
        i += 1


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


@dataclass(frozen=True)
class Prepared:
    """The researcher's query once checked: its parsed tree and that tree printed."""

    #: The tree printed (table reference rewritten); SmartNoise-SQL reads it as the tree.
    sql: str
    #: SmartNoise-SQL's tree of the query (no metadata symbols loaded).
    query: Any


def prepare_sql(sql: str, dataset: str) -> Prepared:
    """Check ``sql`` lexically, parse it alone and rewrite its table reference to the engine's table.

    Raises:
        InvalidQuery: text the two SQL dialects could read differently, not exactly one parsable
            SELECT statement, or a reference to any table other than ``df`` / ``dataset``.
    """
    from snsql._ast.ast import Table
    from snsql._ast.tokens import Identifier
    from snsql.sql.parse import QueryParser

    lexical_check(sql)
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
    for table in query.find_nodes(Table):
        if _normalise(table.name) not in allowed:
            raise InvalidQuery(_clean(f"unknown table {str(table.name)!r}: the dataset's table is "
                                      f"named {TABLE_NAME} (or {dataset})"))
        table.name = Identifier(TABLE_NAME)
    if not query.find_nodes(Table):
        raise InvalidQuery(f"the query must read FROM {TABLE_NAME} (or {dataset})")
    # What goes on is the tree printed, never the text received: SmartNoise-SQL reads the
    # printed form as the same tree (it re-parses printed trees itself when it rewrites).
    return Prepared(sql=str(query), query=query)
