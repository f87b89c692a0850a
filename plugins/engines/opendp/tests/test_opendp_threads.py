"""polars, which runs the engine's plans, sizes its thread pool to the execution worker's share
of the cores (``execution.threads_per_worker``), read from polars inside a real worker process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lomas_core.testing.harness import LomasHarness, write_plugin_distribution

#: An engine that, like the opendp engine, uses polars in the worker and answers with its pool size.
PROBE = '''
from typing import Any

from pydantic import BaseModel

from lomas_core.api import Budget, Engine, results


class ProbeQuery(BaseModel):
    epsilon: float


class ThreadsProbe(Engine):
    Query = ProbeQuery
    preload = ("polars",)

    def cost(self, query: Any, dataset: Any) -> Any:
        return Budget.of(query.epsilon)

    def run(self, query: Any, data: Any, dataset: Any) -> Any:
        import polars as pl

        return results.value(pl.thread_pool_size())
'''


def test_polars_in_a_worker_uses_the_workers_threads(tmp_path: Path) -> None:
    site = write_plugin_distribution(
        tmp_path / "site", "lomas-polars-threads-probe",
        {"lomas.engines": {"polars_probe": "polars_threads_probe:ThreadsProbe"}},
        {"polars_threads_probe.py": PROBE})
    h = LomasHarness(tmp_path / "h", engines={"polars_probe": {}}, plugin_paths=[site],
                     execution={"workers": 1, "threads_per_worker": 3})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}),
                  {"max_ids": 1, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}})
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/ds/query",
                       json={"engine": "polars_probe", "query": {"epsilon": 1.0}})
            assert r.status_code == 200, r.text
            assert r.json()["result"]["value"] == 3
    finally:
        h.close()
