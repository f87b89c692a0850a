"""Latency of the core API on a real server process (prints figures; asserts nothing).

    .venv/bin/python benchmarks/bench_core_api.py [--requests 1000] [--queries 300]

Measures p50/p99 (ms) of ``GET /v1/datasets/{name}/budget``, of a full charged query round trip
with a trivial engine (``toy_count``), and of the raw ``store.charge`` (sqlite) call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd

from lomas_core.budget import Budget
from lomas_core.models import ArchiveRecord
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 1000, "columns": {"x": {"type": "int", "lower": 0, "upper": 99}}}


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50={statistics.median(ordered) * 1000:.2f} ms  p99={p99 * 1000:.2f} ms  "
            f"(n={len(ordered)})")


def _timed(n: int, call: Callable[[int], None]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h = LomasHarness(Path(tmp), engines={"toy_count": {}})
        h.add_dataset("bench", pd.DataFrame({"x": [i % 100 for i in range(1000)]}), META)
        token = h.add_user("alice", grant={"bench": (1e9, 0.0)})
        h.add_user("raw", grant={"bench": (1e9, 0.0)})
        with h.serve() as url, httpx.Client(base_url=url, timeout=30,
                                            headers={"Authorization": f"Bearer {token}"}) as c:
            for _ in range(20):  # warm-up: connections, imports, the dataset cache
                c.get("/v1/datasets/bench/budget")
                c.post("/v1/datasets/bench/query", json={"engine": "toy_count",
                                                         "query": {"epsilon": 0.01}})

            def budget(_: int) -> None:
                assert c.get("/v1/datasets/bench/budget").status_code == 200

            def query(_: int) -> None:
                r = c.post("/v1/datasets/bench/query",
                           json={"engine": "toy_count", "query": {"epsilon": 0.01}})
                assert r.status_code == 200, r.text

            print(f"GET budget          {_percentiles(_timed(args.requests, budget))}")
            print(f"charged query       {_percentiles(_timed(args.queries, query))}")

        def charge(_: int) -> None:
            h.store.charge(ArchiveRecord(user="raw", dataset="bench", engine="toy_count",
                                         request={"epsilon": 0.01}, cost=Budget.of(0.01)))

        print(f"store.charge sqlite {_percentiles(_timed(args.requests, charge))}")
        h.close()


if __name__ == "__main__":
    main()
