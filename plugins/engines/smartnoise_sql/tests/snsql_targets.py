"""The targets the smartnoise_sql tests run queries on: in memory, and each push-down source."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from lomas_core.data import DataHandle
from lomas_core.metadata import Metadata

#: Where a query runs: in memory, or on a push-down source (skipped when not installed).
TARGETS = ["memory", "duckdb"]


def source_handle(target: str, name: str, table: Any, metadata: Metadata,
                  folder: Any) -> DataHandle:
    """``table`` on the push-down source ``target`` (written under ``folder``), opened."""
    import pyarrow.parquet as pq

    from lomas_core.config import Config
    from lomas_core.context import PluginContext
    from lomas_core.source import SourceHandle

    if target != "duckdb" or importlib.util.find_spec("lomas_source_duckdb") is None:
        pytest.skip(f"the {target} source is not installed")
    from lomas_source_duckdb.source import DuckDBSource

    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    config = Config(adapters={"duckdb": {"allowed_dirs": [str(folder)]}})
    source = DuckDBSource({"allowed_dirs": [str(folder)]}, PluginContext(config))
    opened = source.open(name, {"path": str(path)}, metadata)
    opened.check_rows()
    return SourceHandle(name, "v1", opened)
