"""What the execution pool costs and gives, on real server processes (prints figures).

    .venv/bin/python benchmarks/bench_workers.py [--rows 1000000] [--queries 15]

1. The worker hop: p50 of a charged smartnoise_sql COUNT on 1,000 rows over HTTP, engines in the
   server (``execution.workers: 0``) vs in one worker (aim: under 2 ms added).
2. COUNT and GROUP BY AVG on ``--rows`` rows, before (in-process) and after (one worker).
3. Four concurrent GROUP BY queries on ``--rows`` rows with 1 and with 2 workers (throughput).
4. Memory of the server and its workers with the big dataset loaded and queried by every worker:
   summed RSS (counts shared pages once per process) and summed PSS (shared pages split, so the
   true total) for 0 and 2 workers.

Load on the machine is printed (1-minute load average): the figures are only comparable on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lomas_core.testing.harness import LomasHarness

META: dict[str, Any] = {"max_ids": 1, "row_privacy": True, "censor_dims": False, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}
COUNT = "SELECT COUNT(*) AS n FROM df"
GROUP = "SELECT g, AVG(x) AS m FROM df GROUP BY g"


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"g": rng.choice(["a", "b", "c"], rows), "x": rng.uniform(0, 100, rows)})


def _body(sql: str) -> dict[str, Any]:
    return {"engine": "smartnoise_sql", "query": {"sql": sql, "epsilon": 1.0, "delta": 1e-6}}


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _memory_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


class _Server:
    def __init__(self, tmp: Path, frames: dict[str, pd.DataFrame], workers: int) -> None:
        self.h = LomasHarness(tmp, engines={"smartnoise_sql": {}},
                              limits={"query_timeout_seconds": 300, "cost_timeout_seconds": 60},
                              execution={"workers": workers},
                              cache={"max_bytes": 8 * 1024**3, "revalidate_seconds": 3600})
        for name, frame in frames.items():
            self.h.add_dataset(name, frame, {**META, "rows": len(frame)})
        self.token = self.h.add_user("bench", grant={n: (1e9, 0.5) for n in frames})

    def __enter__(self) -> _Server:
        self._serve = self.h.serve(timeout=180)
        self.url = self._serve.__enter__()
        self.client = self.new_client()
        return self

    def new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=600,
                            headers={"Authorization": f"Bearer {self.token}"})

    def ask(self, dataset: str, sql: str, client: httpx.Client | None = None) -> float:
        start = time.perf_counter()
        (client or self.client).post(f"/v1/datasets/{dataset}/query",
                                     json=_body(sql)).raise_for_status()
        return time.perf_counter() - start

    def p50_ms(self, dataset: str, sql: str, n: int) -> float:
        for _ in range(2):
            self.ask(dataset, sql)  # load, hand over to the engine, warm every code path
        return statistics.median(self.ask(dataset, sql) for _ in range(n)) * 1000

    def concurrent(self, dataset: str, sql: str, n: int = 4, rounds: int = 2) -> float:
        """Queries per second with ``n`` clients at once (``rounds`` batches)."""
        clients = [self.new_client() for _ in range(n)]
        for c in clients:  # every worker has loaded its copy before the clock starts
            self.ask(dataset, sql, c)
        start = time.perf_counter()
        for _ in range(rounds):
            threads = [threading.Thread(target=self.ask, args=(dataset, sql, c)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - start
        for c in clients:
            c.close()
        return n * rounds / elapsed

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self._serve.__exit__(None, None, None)
        self.h.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=15)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    frames = {"small": _frame(1000), "big": _frame(args.rows)}
    print(f"cores={os.cpu_count()} load average (1 min) at start={os.getloadavg()[0]:.2f} "
          f"rows={args.rows} queries={args.queries}")
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            with _Server(Path(tmp) / f"w{workers}", frames, workers) as s:
                f = figures.setdefault(workers, {})
                if workers < 2:
                    f["hop"] = s.p50_ms("small", COUNT, args.queries * 4)
                    f["count"] = s.p50_ms("big", COUNT, args.queries)
                    f["group"] = s.p50_ms("big", GROUP, args.queries)
                if workers > 0:
                    f["qps"] = s.concurrent("big", GROUP)
                if workers != 1:
                    assert s.h.server_pid is not None
                    f["rss"], f["pss"] = _memory_mb(s.h.server_pid)
                print(f"workers={workers}: " + "  ".join(f"{k}={v:.2f}" for k, v in f.items())
                      + f"  (load {os.getloadavg()[0]:.2f})", flush=True)
    before, after = figures[0], figures[1]
    hop = after["hop"] - before["hop"]
    print(f"1. worker hop, 1,000-row COUNT p50: in-process {before['hop']:.2f} ms, worker "
          f"{after['hop']:.2f} ms, added {hop:.2f} ms (aim < 2 ms: {'met' if hop < 2 else 'missed'})")
    for key, label in (("count", "COUNT"), ("group", "GROUP BY AVG")):
        print(f"2. {label} on {args.rows:,} rows p50: before {before[key]:.1f} ms, after "
              f"{after[key]:.1f} ms ({after[key] / before[key]:.2f}x)")
    ratio = figures[2]["qps"] / figures[1]["qps"]
    print(f"3. four concurrent GROUP BY: 1 worker {figures[1]['qps']:.2f} q/s, 2 workers "
          f"{figures[2]['qps']:.2f} q/s, {ratio:.2f}x (aim >= 1.7x: "
          f"{'met' if ratio >= 1.7 else 'missed'})")
    print(f"4. memory with {args.rows:,} rows loaded: in-process RSS {before['rss']:.0f} MB "
          f"(PSS {before['pss']:.0f}); 2 workers summed RSS {figures[2]['rss']:.0f} MB, "
          f"PSS {figures[2]['pss']:.0f} MB")
    print(f"load average (1 min) at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
