"""Benchmark: the mongodb budget store against the embedded sqlite store.

Prints, for each store:
  * charges per second (store API, ``--threads`` concurrent threads, charge + complete), and
  * p50 / p99 of a full query round trip over HTTP (a real ``lomas serve`` process, a trivial
    fixed-cost engine, sequential requests).

MongoDB is ``$MONGODB_URI`` when set, else a temporary nx-27017 (a wire-compatible server on
SQLite, so its figures say little about a real MongoDB deployment).

    .venv/bin/python benchmarks/bench_mongodb.py [--charges 2000] [--threads 8] [--queries 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # lomas_testsupport (not installed)

from lomas_core.budget import Budget  # noqa: E402
from lomas_core.config import Config, PluginConfig  # noqa: E402
from lomas_core.models import ArchiveRecord, DatasetDescription, User  # noqa: E402
from lomas_core.plugins import make_store  # noqa: E402
from lomas_core.store import BudgetStore  # noqa: E402
from lomas_testsupport.mongo import drop_database, fresh_database_name, running_mongodb  # noqa: E402

_ENGINE_SOURCE = '''
from typing import Any
from pydantic import BaseModel, ConfigDict
from lomas_core.api import Budget, Engine, results


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenchEngine(Engine):
    Query = _Query

    def cost(self, query: Any, dataset: Any) -> Budget:
        return Budget.of("0.001")

    def run(self, query: Any, data: Any, dataset: Any) -> Any:
        return results.value(0)

'''


def _store_specs(workdir: Path, mongo_uri: str, database: str) -> dict[str, PluginConfig]:
    return {
        "sqlite": PluginConfig(name="sqlite", options={"path": str(workdir / "bench.db")}),
        "mongodb": PluginConfig(name="mongodb", options={"uri": mongo_uri, "database": database}),
    }


def _seed(store: BudgetStore) -> None:
    store.add_user(User(name="bench"))
    store.put_dataset(DatasetDescription(name="ds"))
    store.grant("bench", "ds", Budget.of(1_000_000))


def bench_charges(store: BudgetStore, charges: int, threads: int) -> float:
    """Charges per second with ``threads`` concurrent callers (each charge is then completed)."""
    per_thread = max(1, charges // threads)
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            record = ArchiveRecord(user="bench", dataset="ds", engine="bench", request={"q": 1},
                                   cost=Budget.of("0.001"))
            store.charge(record)
            store.complete(record.id, "success", result={"type": "value", "value": 0})

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    return per_thread * threads / (time.perf_counter() - began)


def bench_round_trip(workdir: Path, store: PluginConfig, queries: int) -> tuple[float, float]:
    """p50 and p99 (milliseconds) of sequential HTTP query round trips on a real server."""
    import httpx
    import pyarrow as pa

    from lomas_core.testing.harness import LomasHarness, write_plugin_distribution

    plugins = write_plugin_distribution(
        workdir / "plugins", "lomas-engine-bench",
        {"lomas.engines": {"bench_fixed": "lomas_bench:BenchEngine"}},
        {"lomas_bench.py": _ENGINE_SOURCE})
    harness = LomasHarness(workdir / f"rt-{store.name}", engines={"bench_fixed": {}},
                           plugin_paths=[plugins], store=store.model_dump())
    try:
        harness.add_dataset("rt", pa.table({"x": [1, 2, 3]}),
                            {"max_ids": 1, "rows": 3,
                             "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}})
        token = harness.add_user("rt_user", grant={"rt": (1_000_000.0, 0.0)})
        times: list[float] = []
        with harness.serve() as url, httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            for i in range(queries + 10):
                began = time.perf_counter()
                response = client.post("/v1/datasets/rt/query", json={"engine": "bench_fixed", "query": {}})
                elapsed = (time.perf_counter() - began) * 1000
                response.raise_for_status()
                if i >= 10:  # warm-up
                    times.append(elapsed)
        cuts = statistics.quantiles(times, n=100)
        return statistics.median(times), cuts[98]
    finally:
        harness.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    database = fresh_database_name("lomas_bench")
    with tempfile.TemporaryDirectory() as tmp, running_mongodb() as uri:
        workdir = Path(tmp)
        specs = _store_specs(workdir, uri, database)
        print(f"charges={args.charges} threads={args.threads} queries={args.queries}")
        rows: list[tuple[str, Any, Any, Any]] = []
        try:
            for name, spec in specs.items():
                store = make_store(Config(store=spec), create=True)
                try:
                    _seed(store)
                    rate = bench_charges(store, args.charges, args.threads)
                finally:
                    store.close()
                p50, p99 = bench_round_trip(workdir, _fresh(spec, name), args.queries)
                rows.append((name, rate, p50, p99))
        finally:
            drop_database(uri, database)
            drop_database(uri, database + "_rt")
        print(f"{'store':<8} {'charges/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for name, rate, p50, p99 in rows:
            print(f"{name:<8} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}")


def _fresh(spec: PluginConfig, name: str) -> PluginConfig:
    """A separate, empty store for the HTTP benchmark."""
    options = dict(spec.options)
    if name == "sqlite":
        options["path"] = options["path"] + ".rt"
    else:
        options["database"] = options["database"] + "_rt"
    return PluginConfig(name=spec.name, options=options)



if __name__ == "__main__":
    main()
