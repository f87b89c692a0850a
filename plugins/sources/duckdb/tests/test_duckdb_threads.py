"""A dataset's connection in an execution worker runs on the worker's share of the cores
(``execution.threads_per_worker``) unless the source's own ``threads`` is set, read from DuckDB
itself inside a real worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lomas_core.testing.harness import LomasHarness, write_plugin_distribution
from lomas_core.testing.source_contract import contract_frame
from lomas_core.testing.source_http import source_metadata

#: A push-down engine answering with the ``threads`` setting of the connection it is handed.
PROBE = '''
from typing import Any

from pydantic import BaseModel

from lomas_core.api import Budget, Engine, results


class ProbeQuery(BaseModel):
    epsilon: float


class ThreadsProbe(Engine):
    Query = ProbeQuery
    pushdown = frozenset({"duckdb"})

    def cost(self, query: Any, dataset: Any) -> Any:
        return Budget.of(query.epsilon)

    def run(self, query: Any, data: Any, dataset: Any) -> Any:
        (threads,) = data.target._con.execute("SELECT current_setting('threads')").fetchone()
        return results.value(int(threads))
'''


@pytest.mark.parametrize(("source", "expected"), [({}, 3), ({"threads": 2}, 2)],
                         ids=["worker-share", "admin-setting"])
def test_the_connection_in_a_worker_uses_the_workers_threads(
        tmp_path: Path, source: dict[str, Any], expected: int) -> None:
    site = write_plugin_distribution(
        tmp_path / "site", "lomas-duckdb-threads-probe",
        {"lomas.engines": {"duckdb_probe": "duckdb_threads_probe:ThreadsProbe"}},
        {"duckdb_threads_probe.py": PROBE})
    h = LomasHarness(tmp_path / "h", engines={"duckdb_probe": {}}, plugin_paths=[site],
                     adapters={"duckdb": {"allowed_dirs": [str(tmp_path / "h")], **source}},
                     execution={"workers": 1, "threads_per_worker": 3})
    h.add_dataset("people", contract_frame(people=20), source_metadata(200), adapter="duckdb")
    token = h.add_user("alice", grant={"people": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/people/query",
                       json={"engine": "duckdb_probe", "query": {"epsilon": 1.0}})
            assert r.status_code == 200, r.text
            assert r.json()["result"]["value"] == expected
    finally:
        h.close()
