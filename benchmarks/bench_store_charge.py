"""Latency and throughput of the atomic budget charge of a store plugin.

Usage::

    python benchmarks/bench_store_charge.py                       # sqlite in a temporary folder
    python benchmarks/bench_store_charge.py --charges 5000 --threads 1 4 8
    python benchmarks/bench_store_charge.py --store mongodb --uri mongodb://127.0.0.1:27017
    python benchmarks/bench_store_charge.py --spec-json '{"name": "mongodb", "options": {...}}'

Every run (one per thread count) uses a fresh user/dataset grant in the store, charges
``--charges`` queries of epsilon 0.001 split across the threads, and prints p50/p99 latency in
milliseconds and charges per second. ``--spec-json`` wins over ``--store``/``--uri``; with sqlite
and no path, a temporary file is used and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.models import ArchiveRecord, DatasetDescription, User
from lomas_core.plugins import make_store
from lomas_core.store import BudgetStore

__all__ = ["main", "run"]

EPSILON = "0.001"


def _spec(args: argparse.Namespace, tmp: Path) -> tuple[str, dict[str, Any]]:
    if args.spec_json:
        raw = json.loads(args.spec_json)
        return str(raw["name"]), dict(raw.get("options", {}))
    if args.store == "sqlite":
        return "sqlite", {"path": args.uri or str(tmp / "bench.db")}
    return args.store, {"uri": args.uri or "mongodb://127.0.0.1:27017",
                        "database": f"lomas_bench_{uuid.uuid4().hex[:8]}"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(store: BudgetStore, charges: int, threads: int) -> dict[str, float]:
    """Charge ``charges`` times from ``threads`` threads on a fresh grant; latency figures."""
    user = f"bench_{uuid.uuid4().hex[:10]}"
    store.add_user(User(name=user))
    store.put_dataset(DatasetDescription(name=user, options={"path": "/dev/null"}))
    store.grant(user, user, Budget.of(Budget.of(EPSILON).epsilon * charges, 0))
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    per_thread = [charges // threads + (1 if i < charges % threads else 0) for i in range(threads)]

    def worker(count: int) -> None:
        mine: list[float] = []
        start.wait()
        for _ in range(count):
            record = ArchiveRecord(user=user, dataset=user, engine="bench", request={"n": 1},
                                   cost=Budget.of(EPSILON, 0))
            t0 = time.perf_counter()
            store.charge(record)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in per_thread]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    grant = store.get_grant(user, user)
    assert grant is not None and grant.remaining.epsilon == 0, "budget not exactly spent"
    return {"threads": threads, "charges": len(latencies),
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * _percentile(latencies, 0.99),
            "per_second": len(latencies) / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="sqlite", help="store plugin name (sqlite, mongodb)")
    parser.add_argument("--uri", default=None, help="sqlite file path or MongoDB URI")
    parser.add_argument("--spec-json", default=None, help='{"name": ..., "options": {...}}')
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        name, options = _spec(args, Path(tmp))
        store = make_store(Config(store=PluginConfig(name=name, options=options)), create=True)
        try:
            print(f"store={name} charges={args.charges} epsilon/charge={EPSILON}")
            print(f"{'threads':>7} {'charges':>8} {'p50 ms':>8} {'p99 ms':>8} {'charges/s':>10}")
            for threads in args.threads:
                r = run(store, args.charges, threads)
                print(f"{r['threads']:>7} {r['charges']:>8} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
                      f"{r['per_second']:>10.0f}")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
