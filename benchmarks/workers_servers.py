"""Real lomas servers for benchmarks/bench_workers.py, and what /proc says about their processes
(CPU time per process and per thread, RSS/PSS/USS)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lomas_core.testing.harness import LomasHarness

__all__ = ["COUNT", "GROUP", "META", "Server", "body", "cpu_seconds", "descendants", "frame",
           "memory_mb", "thread_cpu"]

META: dict[str, Any] = {"max_ids": 1, "row_privacy": True, "censor_dims": False, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}
COUNT = "SELECT COUNT(*) AS n FROM df"
GROUP = "SELECT g, AVG(x) AS m FROM df GROUP BY g"
TICK = os.sysconf("SC_CLK_TCK")


def frame(rows: int) -> pd.DataFrame:
    """``rows`` rows: a category ``g`` (3 values) and a float ``x`` in [0, 100]."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"g": rng.choice(["a", "b", "c"], rows), "x": rng.uniform(0, 100, rows)})


def body(sql: str) -> dict[str, Any]:
    """A smartnoise_sql query request."""
    return {"engine": "smartnoise_sql", "query": {"sql": sql, "epsilon": 1.0, "delta": 1e-6}}


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    return parents


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    parents = _parents()
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def memory_mb(pid: int) -> dict[str, float]:
    """Summed RSS and PSS of ``pid`` and its descendants, and the USS of each worker (MB)."""
    out = {"rss": 0.0, "pss": 0.0, "uss_worker": 0.0}
    workers = 0
    for p in descendants(pid):
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


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of ``pids``."""
    out: dict[int, float] = {}
    for p in pids:
        try:
            out[p] = _stat_cpu(Path(f"/proc/{p}/stat"))
        except OSError:
            pass
    return out


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``."""
    out: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[int(task.name)] = _stat_cpu(task / "stat")
        except OSError:
            pass
    return out


class Server:
    """A real uvicorn lomas server (smartnoise_sql) over ``frames``, with ``workers`` execution
    workers and ``threads`` per worker (None: the default)."""

    def __init__(self, tmp: Path, frames: dict[str, pd.DataFrame], workers: int,
                 threads: int | None = None) -> None:
        execution: dict[str, Any] = {"workers": workers}
        if threads is not None:
            execution["threads_per_worker"] = threads
        self.h = LomasHarness(tmp, engines={"smartnoise_sql": {}},
                              limits={"query_timeout_seconds": 300, "cost_timeout_seconds": 60},
                              execution=execution,
                              cache={"max_bytes": 8 * 1024**3, "revalidate_seconds": 3600})
        for name, data in frames.items():
            self.h.add_dataset(name, data, {**META, "rows": len(data)})
        self.token = self.h.add_user("bench", grant={n: (1e9, 0.5) for n in frames})
        self.workers = workers

    def __enter__(self) -> Server:
        self._serve = self.h.serve(timeout=180)
        self.url = self._serve.__enter__()
        assert self.h.server_pid is not None
        self.pid: int = self.h.server_pid
        self.client = self.new_client()
        return self

    def new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=600,
                            headers={"Authorization": f"Bearer {self.token}"})

    def ask(self, dataset: str, sql: str, client: httpx.Client | None = None) -> float:
        start = time.perf_counter()
        (client or self.client).post(f"/v1/datasets/{dataset}/query",
                                     json=body(sql)).raise_for_status()
        return time.perf_counter() - start

    def p50_ms(self, dataset: str, sql: str, n: int) -> float:
        for _ in range(2):
            self.ask(dataset, sql)  # load, hand over to the engine, warm every code path
        return statistics.median(self.ask(dataset, sql) for _ in range(n)) * 1000

    def batch(self, dataset: str, sql: str, clients: list[httpx.Client]) -> None:
        """One query per client, all at once; returns when all are answered.

        Raises:
            RuntimeError: a query failed (its figures would mean nothing).
        """
        failed: list[BaseException] = []

        def ask(client: httpx.Client) -> None:
            try:
                self.ask(dataset, sql, client)
            except Exception as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
                failed.append(exc)

        threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(clients)} queries failed: {failed[0]!r}")

    def warm(self, dataset: str, sql: str, n: int = 4, batches: int = 2) -> None:
        """``batches`` batches of ``n`` queries: every worker has built its engine state for
        ``dataset``."""
        clients = [self.new_client() for _ in range(n)]
        try:
            for _ in range(batches):
                self.batch(dataset, sql, clients)
        finally:
            for c in clients:
                c.close()

    def worker_pids(self) -> list[int]:
        """The worker processes: the children of the server's forkserver."""
        parents = _parents()
        forkservers = {p for p, pp in parents.items()
                       if pp == self.pid and b"forkserver" in _cmdline(p)}
        return sorted(p for p, pp in parents.items() if pp in forkservers)

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self._serve.__exit__(None, None, None)
        self.h.close()
