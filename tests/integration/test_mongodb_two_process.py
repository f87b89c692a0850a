"""Two `lomas serve` processes on one MongoDB store never overspend a shared budget.

64 concurrent queries costing 0.1 each against a budget of 1.0, spread over two real uvicorn
server processes: exactly 10 succeed and exactly 10 archive records exist.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from lomas_core.testing.harness import LomasHarness, write_plugin_distribution
from lomas_testsupport.mongo import mongodb_database, mongodb_uri  # noqa: F401 - fixtures

pytest.importorskip("lomas_store_mongodb")

QUERIES = 64

# A tiny engine plugin declared by this test: every query costs exactly epsilon 0.1.
_ENGINE_SOURCE = '''
from typing import Any

from pydantic import BaseModel, ConfigDict

from lomas_core.api import Budget, Engine, results


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FixedTenthEngine(Engine):
    Query = _Query

    def cost(self, query: Any, dataset: Any) -> Budget:
        return Budget.of("0.1")

    def run(self, query: Any, data: Any, dataset: Any) -> Any:
        return results.value(1)

'''


def _plugin(root: Path) -> Path:
    return write_plugin_distribution(
        root, "lomas-engine-fixed-tenth",
        {"lomas.engines": {"fixed_tenth": "lomas_fixed_tenth:FixedTenthEngine"}},
        {"lomas_fixed_tenth.py": _ENGINE_SOURCE})


def test_two_servers_share_one_budget(tmp_path: Path, mongodb_uri: str,  # noqa: F811
                                      mongodb_database: str) -> None:  # noqa: F811
    import pyarrow as pa

    harness = LomasHarness(
        tmp_path, engines={"fixed_tenth": {}}, plugin_paths=[_plugin(tmp_path / "plugins")],
        store={"name": "mongodb", "options": {"uri": mongodb_uri, "database": mongodb_database}})
    try:
        harness.add_dataset("ds", pa.table({"x": list(range(20))}),
                            {"max_ids": 1, "rows": 20,
                             "columns": {"x": {"type": "int", "lower": 0, "upper": 19}}})
        token = harness.add_user("alice", grant={"ds": (1.0, 0.0)})
        statuses: list[int] = []
        codes: list[str] = []
        lock = threading.Lock()
        with harness.serve() as first, harness.serve() as second:
            start = threading.Barrier(QUERIES)

            def ask(url: str) -> None:
                with httpx.Client(base_url=url, timeout=60.0,
                                  headers={"Authorization": f"Bearer {token}"}) as client:
                    start.wait()
                    response = client.post("/v1/datasets/ds/query",
                                           json={"engine": "fixed_tenth", "query": {}})
                body = response.json()
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code != 200:
                        codes.append(body["error"]["code"])

            threads = [threading.Thread(target=ask, args=(first if i % 2 else second,))
                       for i in range(QUERIES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(statuses) == QUERIES
        assert statuses.count(200) == 10, (statuses, harness.server_log()[-2000:])
        assert set(codes) == {"insufficient_budget"}
        archive = harness.store.list_archive(user="alice", dataset="ds")
        assert len(archive) == 10
        assert all(r.status == "success" for r in archive)
        grant = harness.store.get_grant("alice", "ds")
        assert grant is not None and grant.remaining.epsilon == Decimal(0)
    finally:
        harness.close()
