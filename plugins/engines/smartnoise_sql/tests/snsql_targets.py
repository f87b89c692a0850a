"""The targets the smartnoise_sql tests run queries on: in memory, and each push-down source."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import LomasError
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

#: Where a query runs: in memory, or on a push-down source (skipped when not installed).
TARGETS = ["memory", "duckdb", "postgresql", "spark"]
_MODULES = {"duckdb": "lomas_source_duckdb", "postgresql": "lomas_source_postgresql",
            "spark": "lomas_source_spark"}
#: The spark target's source options: one local thread, small memory (one session per process).
SPARK_OPTIONS: dict[str, Any] = {"threads": 1, "driver_memory": "512m", "shuffle_partitions": 1}
_PG_SECRET_ENV = "LOMAS_SNSQL_TEST_PG"


def info_for(target: str, name: str, metadata: Metadata) -> DatasetInfo:
    """What the server tells the engine about a dataset on ``target`` (its dialect)."""
    return DatasetInfo(name=name, metadata=metadata,
                       dialect=None if target == "memory" else target)


def spy_rendered(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The statements the engine verifies from now on (in order), appended to the list returned."""
    from lomas_engine_smartnoise_sql import engine as engine_module

    seen: list[Any] = []
    original = engine_module.verify

    def spy(con: Any, statement: Any, columns: Any, *dialect: str) -> None:
        seen.append(statement)
        original(con, statement, columns, *dialect)

    monkeypatch.setattr(engine_module, "verify", spy)
    return seen


def rendered_text(engine: Any, sql: str, info: DatasetInfo,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    """The text of the statement ``engine`` renders for ``sql`` when costing it on ``info``."""
    seen = spy_rendered(monkeypatch)
    engine.cost(engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5}), info)
    assert seen, "the statement was not rendered (a cached cost?)"
    return str(seen[-1].text)


def target_handle(request: pytest.FixtureRequest, target: str, name: str, table: Any,
                  metadata: Metadata, folder: Path) -> DataHandle:
    """``table`` on ``target``: in memory as it is, else put on that push-down source."""
    if target == "memory":
        return DataHandle(name, "v1", table)
    return source_handle(request, target, name, table, metadata, folder)


def probe_outcome(engine: Any, query: Any, handle: DataHandle,
                  dataset: DatasetInfo) -> tuple[Any, ...]:
    """What a researcher learns from one query, to compare across neighbouring datasets:
    refused at cost (its code), failed (its code or exception type), or answered (the columns,
    the row count and which cells are null)."""
    try:
        engine.cost(query, dataset)
    except LomasError as exc:
        return ("refused at cost", exc.code)
    try:
        out = engine.run(query, handle, dataset)
    except LomasError as exc:
        return ("failed", exc.code)
    except Exception as exc:  # noqa: BLE001 - a failure is an outcome to compare
        return ("failed", type(exc).__name__)
    nulls = tuple(tuple(cell is None for cell in row) for row in out["rows"])
    return ("answered", tuple(out["columns"]), len(out["rows"]), nulls)


def source_handle(request: pytest.FixtureRequest, target: str, name: str, table: Any,
                  metadata: Metadata, folder: Path) -> DataHandle:
    """``table`` put on the push-down source ``target`` and opened there (``folder``: scratch)."""
    from lomas_core.config import Config
    from lomas_core.source import SourceHandle

    if importlib.util.find_spec(_MODULES[target]) is None:
        pytest.skip(f"the {target} source is not installed")
    if target == "spark" and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("the spark source needs a Java runtime (Java 17)")
    source: Any
    if target == "duckdb":
        import pyarrow.parquet as pq
        from lomas_source_duckdb.source import DuckDBSource

        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        config = Config(adapters={"duckdb": {"allowed_dirs": [str(folder)]}})
        source = build(DuckDBSource, {"allowed_dirs": [str(folder)]}, config=config)
        options: dict[str, Any] = {"path": str(path)}
    elif target == "spark":
        import pyarrow.parquet as pq
        from lomas_source_spark.source import SparkSource

        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        spark_options = {**SPARK_OPTIONS, "allowed_dirs": [str(folder)]}
        config = Config(adapters={"spark": spark_options})
        source = build(SparkSource, spark_options, config=config)
        options = {"path": str(path)}
    else:
        from lomas_source_postgresql.source import PostgresSource

        from lomas_testsupport.postgres import load_table

        server = request.getfixturevalue("lomas_postgres")
        load_table(server.dsn(), name, table, reader="lomas_reader")
        os.environ[_PG_SECRET_ENV] = server.reader_dsn
        config = Config.model_validate({
            "adapters": {"postgresql": {}},
            "secrets": {"pg": {"env": _PG_SECRET_ENV, "adapters": ["postgresql"],
                               "allowed_hosts": ["127.0.0.1"]}}})
        source = build(PostgresSource, {}, config=config)
        options = {"credentials": "pg", "table": name}
    opened = source.open(name, options, metadata)
    opened.check_rows()
    return SourceHandle(name, "v1", opened)
