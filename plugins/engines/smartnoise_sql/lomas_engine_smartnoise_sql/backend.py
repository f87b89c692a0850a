"""The SQL engine that holds a dataset version: an in-memory DuckDB database, built once.

SmartNoise-SQL's pandas reader copies the whole frame into a fresh SQLite database every time a
reader is built. Here the data is loaded once per dataset version (``DataHandle.memo``) into
DuckDB, straight from Arrow, with the metadata's column types; every query then only builds
its own SmartNoise-SQL reader (its own privacy settings) over a new cursor of that database.

DuckDB is not one of SmartNoise-SQL's engines, so this module brings the small reader and printer
the library needs. The connection holds only the dataset's table and is locked down after
loading: no file or network access, no extension install or autoload, no replacement scans of
Python variables, configuration locked. It runs only :class:`~.render.Statement` objects: the
rewritten query tree rendered by DuckDB's rules and verified with DuckDB's parser
(:mod:`lomas_engine_smartnoise_sql.render`), never a string. Row-level expressions run under
``TRY`` so that no database error can depend on private values. The exact rows are checked and,
with public keys, completed before SmartNoise-SQL adds noise (:mod:`lomas_engine_smartnoise_sql.shape`).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from lomas_core.api import Metadata
from lomas_engine_smartnoise_sql.metadata import TABLE_NAME
from lomas_engine_smartnoise_sql.policy import KeyPlan
from lomas_engine_smartnoise_sql.render import Statement, locked_config, render, verify
from lomas_engine_smartnoise_sql.sampling import order_sampling
from lomas_engine_smartnoise_sql.shape import ExactRows, check_exact, complete_public, unquote

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DuckDBDatabase", "TargetDatabase", "make_reader", "render_subquery"]

_CASTS = {"int": "TRY_CAST({c} AS BIGINT)", "boolean": "TRY_CAST({c} AS BOOLEAN)",
          "string": "CAST({c} AS VARCHAR)", "datetime": "TRY_CAST({c} AS TIMESTAMP)",
          # NaN is not a value SmartNoise-SQL expects: it is a null.
          "float": "CASE WHEN isnan(TRY_CAST({c} AS DOUBLE)) THEN NULL ELSE TRY_CAST({c} AS DOUBLE) END"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBDatabase:
    """One dataset version in an in-memory DuckDB database (the table ``df``); read-only use.

    Args:
        table: the data; only the columns listed in ``metadata`` are loaded, cast to their type.
        metadata: the dataset's public metadata.
    """

    def __init__(self, table: pa.Table, metadata: Metadata) -> None:
        import duckdb

        self._duckdb = duckdb
        self._con = duckdb.connect(":memory:", config=locked_config())
        self._lock = threading.Lock()
        present = set(table.column_names)
        cols = [(name, col.type) for name, col in metadata.columns.items() if name in present]
        #: The table's columns: the only columns a statement may name.
        self.columns: tuple[str, ...] = tuple(name for name, _ in cols)
        select = ", ".join(_CASTS[kind].format(c=_quote(name)) + " AS " + _quote(name)
                           for name, kind in cols)
        source = table.select([name for name, _ in cols])
        #: About what DuckDB's copy holds (counted by the dataset cache through the memo).
        self.nbytes = int(source.nbytes)
        try:
            self._con.register("lomas_source", source)
            self._con.execute(f"CREATE TABLE {TABLE_NAME} AS SELECT {select} FROM lomas_source")
            self._con.unregister("lomas_source")
            self._con.execute("SET lock_configuration = true")
        except Exception:
            self._con.close()
            raise

    def fetch(self, statement: Statement) -> list[Any]:
        """Run one rendered, verified SELECT; SmartNoise-SQL's row format: names, then the rows.

        Raises:
            TypeError: ``statement`` is not a :class:`~.render.Statement` (a plain string, above
                all: researcher text never reaches the database).
            StatementRefused: DuckDB's parser does not read the statement as it was rendered.
        """
        if not isinstance(statement, Statement):
            raise TypeError("the database runs only rendered statements, never SQL text")
        with self._lock:  # cursor creation on the shared connection is serialised
            cursor = self._con.cursor()
        try:
            verify(cursor, statement, self.columns)
            cursor.execute(statement.text)
            names = tuple(d[0] for d in cursor.description or ())
            return [names, *cursor.fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        """Free the database (called when the dataset version leaves the cache)."""
        self._con.close()


class TargetDatabase:
    """A push-down source's session (:class:`lomas_core.source.SqlTarget`) seen as a database.

    The target defines ``df`` by the metadata's rules where the data lives; statements are the
    same :class:`~.render.Statement` objects, verified by DuckDB's parser exactly as for the
    in-memory database before the target runs them. Only aggregate rows come back.
    """

    #: Dialects whose statements this module renders.
    DIALECTS = frozenset({"duckdb", "postgresql", "spark"})

    def __init__(self, target: Any) -> None:
        if target.dialect not in self.DIALECTS:
            raise ValueError(f"no renderer for the {target.dialect} dialect")
        self._target = target
        self.dialect: str = target.dialect
        self.columns: tuple[str, ...] = tuple(target.columns)

    def fetch(self, statement: Statement) -> list[Any]:
        """Like :meth:`DuckDBDatabase.fetch`, on the target."""
        if not isinstance(statement, Statement):
            raise TypeError("the database runs only rendered statements, never SQL text")
        from lomas_engine_smartnoise_sql.render import parser_connection

        verify(parser_connection(), statement, self.columns, self.dialect)
        if self.dialect == "spark":
            from lomas_engine_smartnoise_sql.spark_dialect import to_spark

            return list(self._target.fetch(to_spark(statement.text)))
        return list(self._target.fetch(statement.text))


def _reservoir_key(query: Any) -> None:
    """Make SmartNoise-SQL's per-person sampling DuckDB-compatible, in place (DuckDB refuses
    volatile window orderings): rows ordered by DuckDB's ``hash`` of the row and a fresh seed."""
    order_sampling(query, lambda alias, seed: f"hash({alias}, {seed})",
                   ValueError("unexpected shape of the per-person sampling subquery"))


@functools.cache
def _try_class() -> Any:
    from snsql._ast.tokens import SqlExpr, Token

    class Try(SqlExpr):  # type: ignore[misc]
        """DuckDB's ``TRY(expr)``: NULL where ``expr`` would raise an error."""

        def __init__(self, expression: Any) -> None:
            self.expression = expression

        def children(self) -> list[Any]:
            return [Token("TRY"), Token("("), self.expression, Token(")")]

    return Try


def _no_row_errors(query: Any) -> None:
    """Wrap the row-level expressions and the WHERE of the query reading the table in ``TRY``.

    A database error that depends on a row's values (a failing CAST, a modulo by zero, an
    overflow) would reveal something about the data without noise, through the query failing
    or not. With ``TRY`` such a row's value is NULL instead (a WHERE drops it), which only
    changes the exact aggregates that the mechanisms then noise.
    """
    from snsql._ast.ast import Query, Table
    from snsql._ast.expressions.sql import AllColumns
    from snsql._ast.tokens import Column

    wrap = _try_class()
    for node in [query, *query.find_nodes(Query)]:
        relations = node.source.relations if node.source is not None else []
        if not relations or not isinstance(relations[0].primary, Table):
            continue
        for named in node.select.namedExpressions:
            if named.name is not None and not isinstance(named.expression, (AllColumns, Column)):
                named.expression = wrap(named.expression)
        if node.where is not None:
            node.where.condition = wrap(node.where.condition)


def render_subquery(query: Any, dialect: str = "duckdb") -> Statement:
    """The statement the database runs for SmartNoise-SQL's rewritten ``query`` (the tree is
    updated): with ``TRY`` on DuckDB, with the rewrites of :mod:`~.pg_dialect` on PostgreSQL and
    of :mod:`~.spark_dialect` on Spark.

    Raises:
        StatementRefused: no form of the query is safe on this dialect.
    """
    if dialect == "postgresql":
        from lomas_engine_smartnoise_sql.pg_dialect import make_safe

        make_safe(query)
    elif dialect == "spark":
        from lomas_engine_smartnoise_sql.spark_dialect import make_safe as make_spark_safe

        make_spark_safe(query)
    else:
        _reservoir_key(query)
        _no_row_errors(query)
    return render(query)


@functools.cache
def _reader_class() -> Any:
    """SmartNoise-SQL's reader interface over a :class:`DuckDBDatabase` (built on first use)."""
    from snsql.sql.reader.base import NameCompare, SqlReader

    class _Names(NameCompare):  # type: ignore[misc]
        """DuckDB's rule: identifiers match case-insensitively, quoted or not."""

        def identifier_match(self, from_query: str, from_meta: str) -> bool:
            return bool(self.strip_escapes(from_query).lower() == self.strip_escapes(from_meta).lower())

    class DuckDBReader(SqlReader):  # type: ignore[misc]
        ENGINE = "DuckDB"  # not a SmartNoise-SQL engine: default name rules

        def __init__(self, database: DuckDBDatabase | TargetDatabase | None, plan: KeyPlan | None) -> None:
            super().__init__("duckdb")
            self.compare = _Names()
            self.serializer = None
            self.database = database
            self.plan = plan
            #: What the exact rows of this reader's query held (for the answer's shape check).
            self.exact = ExactRows()

        def execute(self, query: Any, *ignore: Any, accuracy: bool = False) -> list[Any]:
            raise TypeError("the DuckDB reader runs query trees only, never SQL text")

        def _execute_ast(self, query: Any, *ignore: Any, accuracy: bool = False) -> list[Any]:
            if self.database is None or self.plan is None:
                raise RuntimeError("this reader only analyses queries; it has no data")
            symbols = query._select_symbols
            statement = render_subquery(query, getattr(self.database, "dialect", "duckdb"))
            names, *rows = self.database.fetch(statement)
            keys = [s.name for s in symbols if s.mechanism is None]
            self.exact = check_exact(self.plan, names, [s.name for s in symbols], keys, rows)
            if self.plan.mode == "public":
                rows = complete_public(self.plan, self.exact, rows)
            # SmartNoise-SQL binds the outer query's columns to these by unquoted name.
            for symbol in symbols:
                symbol.name = unquote(symbol.name)
            return [tuple(names), *rows]

    return DuckDBReader


def make_reader(database: DuckDBDatabase | TargetDatabase | None, metadata: Any, privacy: Any,
                plan: KeyPlan | None = None) -> Any:
    """A new SmartNoise-SQL ``PrivateReader`` for one query (nothing in it is shared).

    Args:
        database: the dataset version's database, or None for a reader that can only analyse
            queries (costs): it has no data to run them on.
        metadata: a fresh SmartNoise-SQL metadata object (see ``to_snsql_metadata``), whose
            ``censor_dims`` is the plan's.
        privacy: this query's ``snsql.Privacy``.
        plan: the query's key plan (needed to run, not to analyse).
    """
    from snsql.sql.private_reader import PrivateReader

    return PrivateReader(_reader_class()(database, plan), metadata, privacy=privacy)
