"""The ``smartnoise_sql`` engine: differentially private SQL answered by SmartNoise-SQL."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    Budget,
    DataHandle,
    DatasetInfo,
    Engine,
    InvalidQuery,
    PluginContext,
    QueryFailed,
    SourceHandle,
    metadata_hash,
    results,
)
from lomas_engine_smartnoise_sql import parse_cache
from lomas_engine_smartnoise_sql.accounting import analyse, privacy_of
from lomas_engine_smartnoise_sql.backend import (
    DuckDBDatabase,
    TargetDatabase,
    make_reader,
    render_subquery,
)
from lomas_engine_smartnoise_sql.calibration import ScaleCache
from lomas_engine_smartnoise_sql.metadata import to_snsql_metadata
from lomas_engine_smartnoise_sql.policy import KeyPlan, plan_keys
from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery
from lomas_engine_smartnoise_sql.render import StatementRefused, parser_connection, verify
from lomas_engine_smartnoise_sql.shape import ShapeError, check_answer
from lomas_engine_smartnoise_sql.sql_check import Prepared, prepare_sql

__all__ = ["SmartnoiseSQLEngine", "SmartnoiseSQLOptions", "answer_table"]

log = logging.getLogger("lomas.engines.smartnoise_sql")

_CostKey = tuple[str, str, float, float, tuple[tuple[str, str], ...], str]


class SmartnoiseSQLOptions(BaseModel):
    """``engines.smartnoise_sql`` options in the server config."""

    model_config = ConfigDict(extra="forbid")

    #: Costs kept in memory (a cost is a pure function of metadata, SQL and privacy settings);
    #: as many checked, parsed queries (a pure function of the SQL text, dataset name and metadata).
    cost_cache_size: int = Field(default=1024, ge=0)
    #: Calibrated noise scales kept in memory (a scale is a pure function of a mechanism's public
    #: inputs: epsilon share, delta, bounds, max_ids; see ``calibration``). 0: search every time.
    scale_cache_size: int = Field(default=4096, ge=0)
    #: SQL texts whose SmartNoise-SQL parse trees are kept in memory (copied out for each query;
    #: see ``parse_cache``), also bounded by their total length. 0: the library parses every time.
    parse_cache_size: int = Field(default=256, ge=0)


class SmartnoiseSQLEngine(Engine):
    """Runs ``{"sql", "epsilon", "delta", "mechanisms", "postprocess"}`` queries."""

    Options: ClassVar[type[BaseModel]] = SmartnoiseSQLOptions
    Query: ClassVar[type[BaseModel]] = SmartnoiseSQLQuery
    preload = ("duckdb", "snsql", "sqlalchemy", "antlr4", "pandas", "scipy.stats",
               "opendp.prelude")
    pushdown: ClassVar[frozenset[str]] = TargetDatabase.DIALECTS

    def __init__(self, options: SmartnoiseSQLOptions | None = None,
                 context: PluginContext | None = None) -> None:
        # The core validated the options against ``Options`` (None: the defaults, for tests).
        self.options = options or SmartnoiseSQLOptions()
        self._log = context.logger if context is not None else log
        self._costs: OrderedDict[_CostKey, Budget] = OrderedDict()
        self._costs_lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, str, str], tuple[str, KeyPlan]] = OrderedDict()
        self._scales = ScaleCache(self.options.scale_cache_size)
        self._parsers_ready = False

    def warmup(self) -> None:
        """Import SmartNoise-SQL and DuckDB and calibrate one mechanism (seconds, paid once)."""
        from lomas_core.api import Metadata

        meta = Metadata.model_validate({"columns": {"x": {"type": "float", "lower": 0, "upper": 1}}})
        self.cost(SmartnoiseSQLQuery(sql="SELECT SUM(x) FROM df", epsilon=1.0, delta=1e-6),
                  DatasetInfo(name="warmup", metadata=meta))
        import duckdb  # noqa: F401

    def _parsers(self) -> None:
        """Have SmartNoise-SQL use the cached parsers (on first use: importing the library is
        left to the processes that run queries)."""
        if not self._parsers_ready:
            parse_cache.install(self.options.parse_cache_size)
            self._parsers_ready = True

    # -- cost (public metadata only) ---------------------------------------------------------------
    def _snsql_metadata(self, dataset: DatasetInfo, plan: KeyPlan) -> Any:
        try:
            return to_snsql_metadata(dataset.metadata, censor_dims=plan.censor_dims)
        except ValueError as exc:
            raise InvalidQuery("the dataset's metadata cannot be used by SmartNoise-SQL: "
                               + " ".join(str(exc).split())[:200]) from None

    def _plan(self, query: SmartnoiseSQLQuery, dataset: DatasetInfo) -> tuple[str, KeyPlan]:
        """The checked query as SmartNoise-SQL will read it (the printed tree) and its key plan.

        Both are pure functions of the SQL text, the dataset's name and its metadata, and are
        immutable (a string and a frozen plan): they are kept, so a repeated query is not parsed
        and checked again here. A refusal is not kept.
        """
        key = (query.sql, dataset.name, metadata_hash(dataset.metadata))
        with self._costs_lock:
            hit = self._plans.get(key)
            if hit is not None:
                self._plans.move_to_end(key)
                return hit
        prepared: Prepared = prepare_sql(query.sql, dataset.name)
        planned = (prepared.sql, plan_keys(prepared.query, dataset.metadata))
        if self.options.cost_cache_size:
            with self._costs_lock:
                self._plans[key] = planned
                while len(self._plans) > self.options.cost_cache_size:
                    self._plans.popitem(last=False)
        return planned

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        assert isinstance(query, SmartnoiseSQLQuery)
        self._parsers()
        sql, plan = self._plan(query, dataset)
        key: _CostKey = (metadata_hash(dataset.metadata), sql, query.epsilon, query.delta,
                         tuple((query.mechanisms or {}).items()), dataset.dialect or "duckdb")
        with self._costs_lock:
            if key in self._costs:
                self._costs.move_to_end(key)
                return self._costs[key]
        reader = make_reader(None, self._snsql_metadata(dataset, plan),
                             privacy_of(query, self._scales))
        epsilon, delta, subquery = analyse(reader, sql)
        self._check_rendering(subquery, dataset)
        try:
            budget = Budget.of(epsilon, delta)
        except ValueError:
            raise InvalidQuery("SmartNoise-SQL found no finite privacy cost for this query") from None
        if self.options.cost_cache_size:
            with self._costs_lock:
                self._costs[key] = budget
                while len(self._costs) > self.options.cost_cache_size:
                    self._costs.popitem(last=False)
        return budget

    @staticmethod
    def _check_rendering(subquery: Any, dataset: DatasetInfo) -> None:
        """Render the rewritten query as it will run and have DuckDB's parser confirm it (free)."""
        try:
            dialect = dataset.dialect or "duckdb"
            statement = render_subquery(subquery, dialect)
            verify(parser_connection(), statement, list(dataset.metadata.columns), dialect)
        except StatementRefused as exc:
            raise InvalidQuery(f"the statement this query becomes for the database would contain "
                               f"{exc}, which is not accepted") from None

    # -- run (after the charge, or on a dummy) -----------------------------------------------------
    def _execute(self, reader: Any, sql: str, postprocess: bool) -> tuple[list[str], list[Any]]:
        """SmartNoise-SQL's answer: its column names and rows."""
        if postprocess:
            header, *rows = reader.execute(sql)
            return [str(c) for c in header], [list(row) for row in rows]
        rows = [list(row) for row in reader.execute(sql, postprocess=False)]
        # Without post-processing SmartNoise-SQL returns the noisy exact-aggregate rows without
        # their header; their names are those of the aggregate query the reader executed.
        return [str(c) for c in reader.reader.exact.columns], rows

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        assert isinstance(query, SmartnoiseSQLQuery)
        self._parsers()
        sql, plan = self._plan(query, dataset)
        meta = dataset.metadata
        database: DuckDBDatabase | TargetDatabase
        if isinstance(data, SourceHandle):  # runs where the data lives
            database = TargetDatabase(data.target)
        else:
            database = data.memo(f"smartnoise_sql:{metadata_hash(meta)}",
                                 lambda: DuckDBDatabase(data.table, meta))
        reader = make_reader(database, self._snsql_metadata(dataset, plan),
                             privacy_of(query, self._scales), plan)
        try:
            columns, rows = self._execute(reader, sql, query.postprocess)
            exact = reader.reader.exact
            if query.postprocess:
                key_outputs, width = plan.key_outputs, plan.outputs
            else:
                key_outputs, width = exact.key_positions, len(exact.columns)
            check_answer(plan, meta, exact, columns, rows, key_outputs, width)
        except (ShapeError, StatementRefused) as exc:
            # An engine bug, not the researcher's query: the rows are dropped, the charge stays.
            # These messages name constructs and columns only, never data values.
            check = "shape check" if isinstance(exc, ShapeError) else "statement check"
            self._log.warning("smartnoise_sql: a query on '%s' failed the %s (%s: %s); nothing "
                              "was released, the charge stays", dataset.name, check,
                              type(exc).__name__, exc)
            raise QueryFailed() from None
        if query.postprocess:
            columns = readable_columns(columns, query.sql)
        return answer_table(columns, rows)

    def close(self) -> None:
        with self._costs_lock:
            self._costs.clear()
            self._plans.clear()
        self._scales.clear()
        parse_cache.sql_trees.clear()


#: Column kinds of plain Python values that pandas stores as is (``bool`` is not an ``int`` here).
_KINDS: dict[type, str] = {int: "int", float: "float", str: "string", bool: "boolean"}
_INT64 = 1 << 63


def answer_table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """The result table of SmartNoise-SQL's rows: ``results.table_from_pandas`` of their frame.

    SmartNoise-SQL answers with plain ints, floats and strings; a column of one such type is
    written directly, as pandas would write it (~0.2 ms less than building the frame). Anything
    else (no rows, nulls, mixed or other types, repeated names, ints beyond 64 bits) goes through
    pandas.
    """
    kinds: list[str] = []
    if rows and len(set(columns)) == len(columns):
        for i in range(len(columns)):
            types = {type(row[i]) for row in rows}
            kind = _KINDS.get(types.pop()) if len(types) == 1 else None
            if kind is None or (kind == "int" and not all(-_INT64 <= row[i] < _INT64
                                                           for row in rows)):
                break
            kinds.append(kind)
    if len(kinds) != len(columns) or not rows:
        import pandas as pd

        return results.table_from_pandas(pd.DataFrame(rows, columns=columns))
    return results.table(columns, kinds, rows)


#: The name SmartNoise-SQL gives an output column without an alias.
UNNAMED = "???"


def readable_columns(columns: list[str], sql: str) -> list[str]:
    """``columns`` with SmartNoise-SQL's ``???`` (an unaliased expression) replaced by a name made
    from the expression's text (``AVG(x)`` -> ``avg_x``), unique among the columns."""
    if UNNAMED not in columns:
        return columns
    import re

    try:
        from snsql.sql.parse import QueryParser

        texts = [str(ne.expression) for ne in QueryParser().query(sql).select.namedExpressions]
    except Exception:  # noqa: BLE001 - names only: fall back to positions
        texts = []
    if len(texts) != len(columns):
        texts = [f"col_{i + 1}" for i in range(len(columns))]
    taken = {c for c in columns if c != UNNAMED}
    out = []
    for i, name in enumerate(columns):
        if name == UNNAMED:
            base = re.sub(r"[^0-9a-z]+", "_", texts[i].lower()).strip("_") or f"col_{i + 1}"
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
        out.append(name)
    return out
