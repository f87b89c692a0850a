"""The engine's DuckDB connections (the in-memory database, the parse-only connection) run on
their execution worker's share of the cores (``execution.threads_per_worker``), read from DuckDB
itself inside a real worker process."""

from __future__ import annotations

from pathlib import Path

import pytest
from snsql_testdata import METADATA, make_frame

from lomas_core.testing.harness import LomasHarness, write_plugin_distribution

#: The engine, answering with the ``threads`` setting of the database it builds for the data and
#: of its parse-only connection.
PROBE = '''
from typing import Any

import pandas as pd

from lomas_core.api import results
from lomas_engine_smartnoise_sql.backend import DuckDBDatabase
from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine
from lomas_engine_smartnoise_sql.render import parser_connection

SETTING = "SELECT current_setting('threads')"


class ThreadsProbe(SmartnoiseSQLEngine):
    def run(self, query: Any, data: Any, dataset: Any) -> Any:
        database = DuckDBDatabase(data.table, dataset.metadata)
        try:
            (threads,) = database._con.execute(SETTING).fetchone()
        finally:
            database.close()
        (parser,) = parser_connection().execute(SETTING).fetchone()
        return results.table_from_pandas(
            pd.DataFrame({"database": [int(threads)], "parser": [int(parser)]}))
'''


@pytest.mark.parametrize("threads", [1, 3])
def test_the_database_in_a_worker_uses_the_workers_threads(tmp_path: Path, threads: int) -> None:
    site = write_plugin_distribution(
        tmp_path / "site", "lomas-snsql-threads-probe",
        {"lomas.engines": {"snsql_probe": "snsql_threads_probe:ThreadsProbe"}},
        {"snsql_threads_probe.py": PROBE})
    h = LomasHarness(tmp_path / "h", engines={"snsql_probe": {}}, plugin_paths=[site],
                     execution={"workers": 1, "threads_per_worker": threads})
    h.add_dataset("people", make_frame(200), METADATA)
    token = h.add_user("alice", grant={"people": (10.0, 1e-3)})
    body = {"engine": "snsql_probe",
            "query": {"sql": "SELECT COUNT(*) AS n FROM df", "epsilon": 1.0, "delta": 1e-5}}
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/people/query", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["result"]["rows"] == [[threads, threads]]
    finally:
        h.close()
