"""The kept SQL trees and XPath statements give SmartNoise-SQL exactly what its own parsers give.

Over a grid of queries and metadata (row or person privacy, max_ids, hidden rare groups), with and
without the cache (cold and warm): the same rewritten query, the same mechanisms, the same cost and
the same statement for every dialect. A tree handed out and changed (by the library's rewrite,
this engine's statement rewrites or anything else) never reaches the next query, and the cache is
bounded in entries and in text length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lomas_engine_smartnoise_sql import backend, parse_cache
from lomas_engine_smartnoise_sql.accounting import analyse, privacy_of
from lomas_engine_smartnoise_sql.backend import make_reader, render_subquery
from lomas_engine_smartnoise_sql.calibration import ScaleCache
from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine
from lomas_engine_smartnoise_sql.metadata import to_snsql_metadata
from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery
from lomas_engine_smartnoise_sql.sql_check import prepare_sql

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

COLUMNS = {
    "id": {"type": "int", "private_id": True},
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "h": {"type": "string"},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
    "k": {"type": "int", "lower": 0, "upper": 10},
}
METADATA = [
    {"max_ids": 1, "row_privacy": True, "censor_dims": False},
    {"max_ids": 2, "row_privacy": False, "censor_dims": False},
    {"max_ids": 3, "row_privacy": False, "censor_dims": True},
]
QUERIES = [
    "SELECT COUNT(*) AS n FROM df",
    "SELECT g, AVG(x) AS m FROM df GROUP BY g",
    "SELECT g, COUNT(*) AS n, SUM(k) AS s FROM df WHERE x > 10 AND h <> 'z' GROUP BY g",
    "SELECT h, COUNT(*) AS n FROM df GROUP BY h HAVING COUNT(*) > 2 ORDER BY n DESC LIMIT 2",
    "SELECT VAR(x) AS v, STDDEV(k) AS sd, COUNT(DISTINCT id) AS people FROM df",
    "SELECT AVG(x) FROM df WHERE (k + 1) * 2 < 9 OR g = 'b'",
    "SELECT g, SUM(CASE WHEN x > 50 THEN 1 ELSE 0 END) AS big FROM df GROUP BY g",
]

#: Noise scales shared by the grid (exactly the library's: see test_snsql_calibration).
SCALES = ScaleCache(4096)


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    parse_cache.install(SmartnoiseSQLEngine.Options().parse_cache_size)


def _meta(settings: dict[str, Any]) -> Metadata:
    columns = dict(COLUMNS)
    if settings["row_privacy"]:  # no person identifier with row privacy
        columns["id"] = {"type": "int", "lower": 0, "upper": 50}
    return Metadata.model_validate({**settings, "rows": 200, "columns": columns})


def _mechanisms(subquery: Any) -> list[Any]:
    return [None if s.mechanism is None else
            (type(s.mechanism).__name__, s.mechanism.epsilon, s.mechanism.delta,
             s.mechanism.sensitivity, s.mechanism.max_contrib, s.mechanism.scale)
            for s in subquery._select_symbols]


def _analysis(sql: str, meta: Metadata, dialect: str) -> Any:
    """Everything the engine takes from SmartNoise-SQL's parse of ``sql`` before running it."""
    query = SmartnoiseSQLQuery(sql=sql, epsilon=0.5, delta=1e-5)
    printed = prepare_sql(sql, "t").sql
    reader = make_reader(None, to_snsql_metadata(meta, censor_dims=meta.censor_dims),
                         privacy_of(query, SCALES))
    try:
        epsilon, delta, subquery = analyse(reader, printed)
    except InvalidQuery as exc:  # refused alike, or not
        return ("refused", exc.message), ""
    outer = reader._rewrite(printed)[1]
    before = (str(subquery), str(outer), _mechanisms(subquery), epsilon, delta)
    return before, render_subquery(subquery, dialect).text


@pytest.mark.parametrize("settings", METADATA)
def test_cached_parses_give_the_library_result_over_a_grid(settings: dict[str, Any]) -> None:
    meta = _meta(settings)
    for dialect in ("duckdb", "postgresql", "spark"):
        for sql in QUERIES:
            parse_cache.install(0)
            assert not parse_cache.installed()
            library = _analysis(sql, meta, dialect)
            parse_cache.install(64)
            assert parse_cache.installed()
            cold = _analysis(sql, meta, dialect)
            warm = _analysis(sql, meta, dialect)
            assert parse_cache.sql_trees.hits > 0
            for got in (cold, warm):
                assert got[0] == library[0], sql
                assert _without_seeds(got[1]) == _without_seeds(library[1]), sql


def _without_seeds(text: str) -> str:
    """The statement without its per-person sampling seed (fresh for every statement)."""
    return re.sub(r"\b\d{6,}\b", "SEED", text)


def test_a_changed_tree_never_reaches_the_next_parse() -> None:
    from snsql._ast.ast import Table
    from snsql._ast.tokens import Identifier
    from snsql.sql import private_reader

    parse_cache.install(16)
    meta = to_snsql_metadata(_meta(METADATA[1]), censor_dims=False)
    text = "SELECT g, SUM(k) AS s FROM df WHERE x > 1 GROUP BY g"
    first = private_reader.QueryParser(meta).queries(text)[0]
    for table in first.find_nodes(Table):
        table.name = Identifier("elsewhere")
    first.where = None
    first.select.namedExpressions.seq.pop()
    second = private_reader.QueryParser(meta).queries(text)[0]
    assert second is not first
    assert str(second) == str(private_reader.QueryParser.__mro__[1](meta).queries(text)[0])
    assert "elsewhere" not in str(second) and "WHERE" in str(second) and "SUM" in str(second)


def test_statement_rewrites_stay_with_their_query() -> None:
    """Per-person sampling and TRY wrapping change the rewritten tree: repeated runs of one
    query send the same statement shape every time (one TRY, one sampling order, each)."""
    statements: list[str] = []
    original = backend.DuckDBDatabase.fetch

    def spy(self: Any, statement: Any) -> Any:
        statements.append(statement.text)
        return original(self, statement)

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": rng.integers(0, 50, 200), "g": rng.choice(["a", "b", "c"], 200),
                          "h": rng.choice(["y", "z"], 200), "x": rng.uniform(0, 100, 200),
                          "k": rng.integers(0, 10, 200)})
    handle = DataHandle("t", "v1", pa.Table.from_pandas(frame, preserve_index=False))
    info = DatasetInfo(name="t", metadata=_meta(METADATA[1]))
    engine = build(SmartnoiseSQLEngine)
    query = SmartnoiseSQLQuery(sql="SELECT g, SUM(k) AS s FROM df WHERE x > 10 GROUP BY g",
                               epsilon=1.0, delta=1e-5)
    backend.DuckDBDatabase.fetch = spy  # type: ignore[method-assign]
    try:
        for _ in range(3):
            engine.run(query, handle, info)
    finally:
        backend.DuckDBDatabase.fetch = original  # type: ignore[method-assign]
    assert parse_cache.sql_trees.hits >= 2
    shapes = {_without_seeds(s) for s in statements}
    assert len(statements) == 3 and len(shapes) == 1
    assert statements[0].count("TRY") == statements[2].count("TRY") == 2
    assert statements[2].count("hash(") == 1


def test_the_cache_is_bounded_in_entries_and_length() -> None:
    from snsql.sql import private_rewriter

    parse_cache.install(3)
    for i in range(10):
        private_rewriter.QueryParser().queries(f"SELECT COUNT(*) AS n{i} FROM df")
    assert len(parse_cache.sql_trees) == 3
    small = parse_cache.LruMap(100, max_chars=50)
    for i in range(10):
        small.put(f"{i:02d}" + "x" * 18, i)  # 20 characters each
    assert len(small) == 2 and small.chars == 40
    small.put("y" * 51, 0)  # longer than the whole budget: not kept
    assert small.get("y" * 51) is None and small.get("09" + "x" * 18) == 9


def test_refused_text_is_not_kept() -> None:
    from snsql.sql import private_reader

    parse_cache.install(16)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - the library's own syntax error
            private_reader.QueryParser().queries("SELECT COUNT(* FROM df")
    assert len(parse_cache.sql_trees) == 0


def test_xpath_statements_evaluate_as_the_library_parses_them() -> None:
    from snsql._ast import tokens
    from snsql.sql.parse import QueryParser
    from snsql.xpath.parse import XPath

    parse_cache.install(16)
    assert tokens.XPath is not XPath
    tree = QueryParser().query("SELECT g, COUNT(x) AS n, SUM(k) FROM df WHERE k > 2 GROUP BY g")
    for path in ("//AggFunction", "//Column", "//AggFunction[@name='COUNT']", "//TableColumn",
                 "//Query", "//NamedExpression[@name='n']"):
        for _ in range(2):
            cached = [str(n) for n in tree.xpath(path)]
            assert cached == [str(n) for n in XPath().parse(path).evaluate(tree)], path
    assert len(parse_cache.xpaths) == 6 and parse_cache.xpaths.hits >= 6
    parse_cache.install(0)
    assert tokens.XPath is XPath


def test_the_engine_option_turns_the_cache_on_and_off() -> None:
    info = DatasetInfo(name="t", metadata=_meta(METADATA[0]))
    query = SmartnoiseSQLQuery(sql="SELECT COUNT(*) AS n FROM df", epsilon=1.0, delta=1e-5)
    build(SmartnoiseSQLEngine, {"parse_cache_size": 0}).cost(query, info)
    assert not parse_cache.installed()
    build(SmartnoiseSQLEngine, {"parse_cache_size": 8}).cost(query, info)
    assert parse_cache.installed() and parse_cache.sql_trees.size == 8
