"""What the execution pool costs and gives, on real server processes (prints figures).

    nice -n 0 .venv/bin/python benchmarks/bench_workers.py [--rows 1000000] [--queries 15]
        [--rounds 10] [--parts hop,big,throughput,memory]

1. The worker hop: p50 of a charged smartnoise_sql COUNT on 1,000 rows over HTTP, engines in the
   server (``execution.workers: 0``) vs in one worker (aim: under 2 ms added).
2. COUNT and GROUP BY AVG on ``--rows`` rows, before (in-process) and after (one worker).
3. Four concurrent GROUP BY queries on ``--rows`` rows with 1 and with 2 workers (throughput),
   with the CPU time each process spent per query (server, workers): unlike wall-clock figures,
   these do not depend on what else runs on the machine, and they bound the throughput an idle
   machine can give (``cores / CPU per query``).
4. Memory of the server and its workers with the big dataset loaded and queried by every worker:
   summed RSS (counts shared pages once per process), summed PSS (shared pages split: the true
   total) and per-worker USS (pages only that worker holds: what one more worker costs), read from
   ``/proc/<pid>/smaps_rollup`` (the figures ``psutil.Process.memory_full_info()`` reports).

The load average is printed at the start, after each configuration and at the end: wall-clock
figures are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def _memory_mb(pid: int) -> dict[str, float]:
    """Summed RSS and PSS of ``pid`` and its descendants, and the USS of each worker (MB)."""
    out = {"rss": 0.0, "pss": 0.0, "uss_worker": 0.0}
    workers = 0
    for p in _descendants(pid):
        fields: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                name, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    fields[name] = int(rest.split()[0])
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        out["rss"] += fields.get("Rss", 0) / 1024
        out["pss"] += fields.get("Pss", 0) / 1024
        if b"forkserver" in cmdline and p != pid and fields.get("Rss", 0) > 100 * 1024:
            # A worker (the forkserver itself holds far less than a warmed engine).
            out["uss_worker"] += (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024
            workers += 1
    if workers:
        out["uss_worker"] /= workers
    return out


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return out


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

    def concurrent(self, dataset: str, sql: str, n: int = 4, rounds: int = 10) -> dict[str, float]:
        """Queries per second with ``n`` clients at once (``rounds`` batches), and the CPU seconds
        per query of the server process and of all workers together."""
        clients = [self.new_client() for _ in range(n)]
        for _ in range(2):  # every worker has loaded its copy before the clock starts
            warm = [threading.Thread(target=self.ask, args=(dataset, sql, c)) for c in clients]
            for t in warm:
                t.start()
            for t in warm:
                t.join()
        assert self.h.server_pid is not None
        pids = _descendants(self.h.server_pid)
        cpu_before = _cpu_seconds(pids)
        start = time.perf_counter()
        for _ in range(rounds):
            threads = [threading.Thread(target=self.ask, args=(dataset, sql, c)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - start
        cpu_after = _cpu_seconds(pids)
        for c in clients:
            c.close()
        used = {p: cpu_after.get(p, 0.0) - cpu_before.get(p, 0.0) for p in pids}
        total = n * rounds
        server = used.get(self.h.server_pid, 0.0)
        return {"qps": total / elapsed, "cpu_server_ms": server / total * 1000,
                "cpu_workers_ms": (sum(used.values()) - server) / total * 1000}

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self._serve.__exit__(None, None, None)
        self.h.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=10, help="batches of 4 concurrent queries")
    parser.add_argument("--parts", default="hop,big,throughput,memory")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    warnings.simplefilter("ignore")
    frames = {"small": _frame(1000), "big": _frame(args.rows)}
    cores = os.cpu_count() or 1
    print(f"cores={cores} load average (1 min) at start={os.getloadavg()[0]:.2f} "
          f"rows={args.rows} queries={args.queries} rounds={args.rounds} nice={os.nice(0)}")
    print(f"rerun: nice -n 0 {os.path.relpath(sys.executable)} benchmarks/bench_workers.py "
          f"--rows {args.rows} --queries {args.queries} --rounds {args.rounds} --parts {args.parts}")
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            wanted = (workers < 2 and parts & {"hop", "big"}) or (
                workers > 0 and "throughput" in parts) or (workers != 1 and "memory" in parts)
            if not wanted:
                continue
            with _Server(Path(tmp) / f"w{workers}", frames, workers) as s:
                f = figures.setdefault(workers, {})
                if workers < 2 and "hop" in parts:
                    f["hop"] = s.p50_ms("small", COUNT, args.queries * 4)
                if workers < 2 and "big" in parts:
                    f["count"] = s.p50_ms("big", COUNT, args.queries)
                    f["group"] = s.p50_ms("big", GROUP, args.queries)
                if workers > 0 and "throughput" in parts:
                    f.update(s.concurrent("big", GROUP, rounds=args.rounds))
                if workers != 1 and "memory" in parts:
                    if workers and "throughput" not in parts:
                        s.concurrent("big", GROUP, rounds=1)  # every worker holds its engines
                    assert s.h.server_pid is not None
                    f.update(_memory_mb(s.h.server_pid))
                print(f"workers={workers}: " + "  ".join(f"{k}={v:.2f}" for k, v in f.items())
                      + f"  (load {os.getloadavg()[0]:.2f})", flush=True)
    before, after = figures.get(0, {}), figures.get(1, {})
    if "hop" in parts:
        hop = after["hop"] - before["hop"]
        print(f"1. worker hop, 1,000-row COUNT p50: in-process {before['hop']:.2f} ms, worker "
              f"{after['hop']:.2f} ms, added {hop:.2f} ms (aim < 2 ms: "
              f"{'met' if hop < 2 else 'missed'})")
    if "big" in parts:
        for key, label in (("count", "COUNT"), ("group", "GROUP BY AVG")):
            print(f"2. {label} on {args.rows:,} rows p50: before {before[key]:.1f} ms, after "
                  f"{after[key]:.1f} ms ({after[key] / before[key]:.2f}x)")
    if "throughput" in parts:
        one, two = figures[1], figures[2]
        ratio = two["qps"] / one["qps"]
        print(f"3. four concurrent GROUP BY: 1 worker {one['qps']:.2f} q/s, 2 workers "
              f"{two['qps']:.2f} q/s, {ratio:.2f}x (aim >= 1.7x: "
              f"{'met' if ratio >= 1.7 else 'missed'})")
        for n, f in ((1, one), (2, two)):
            cpu = f["cpu_server_ms"] + f["cpu_workers_ms"]
            print(f"   {n} worker(s): CPU per query {cpu:.1f} ms (server {f['cpu_server_ms']:.1f}, "
                  f"workers {f['cpu_workers_ms']:.1f}); CPU-bound ceiling on {cores} idle cores "
                  f"{cores / cpu * 1000:.1f} q/s")
    if "memory" in parts:
        two = figures[2]
        print(f"4. memory with {args.rows:,} rows loaded: in-process RSS {before['rss']:.0f} MB "
              f"(PSS {before['pss']:.0f}); 2 workers: summed RSS {two['rss']:.0f} MB, summed PSS "
              f"{two['pss']:.0f} MB, USS per worker {two['uss_worker']:.0f} MB")
    print(f"load average (1 min) at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
