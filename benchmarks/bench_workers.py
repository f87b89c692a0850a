"""What the execution pool costs and gives, on real server processes (prints figures).

    nice -n 0 .venv/bin/python benchmarks/bench_workers.py [--rows 1000000] [--queries 15]
        [--rounds 10] [--parts hop,big,split,throughput,memory]

1. The worker hop: p50 of a charged smartnoise_sql COUNT on 1,000 rows over HTTP, engines in the
   server (``execution.workers: 0``) vs in one worker (aim: under 2 ms added).
2. COUNT and GROUP BY AVG on ``--rows`` rows, before (in-process) and after (one worker).
3. Where a GROUP BY's time goes (``split``): the smartnoise_sql engine run in this process with
   DuckDB on 1 and on 2 threads, timing the DuckDB statement apart from the engine's Python
   (parse, rewrite, noise, results), which is single-threaded whatever DuckDB does.
4. Four concurrent GROUP BY queries on ``--rows`` rows (throughput), rounds interleaved across
   the configurations so that a busy machine slows them alike: 1 worker and 2 workers with the
   default threads per worker (the cores divided among the workers: 2 and 1 here), and 1 worker
   pinned to 1 thread (with 2 workers pinned to 1, that is the process scaling alone). For each:
   the CPU time per query of this client, the server process and the workers (unlike wall-clock
   figures these do not depend on what else runs), the worker threads that did the work, and
   the ceilings they imply: ``cores / CPU per query`` for any number of workers, and for one
   worker ``1 / its busy time per query``.
5. Memory of the server and its workers with the big dataset loaded and queried 60 times:
   summed RSS (counts shared pages once per process), summed PSS (shared pages split: the true
   total) and per-worker USS (pages only that worker holds: what one more worker costs), read from
   ``/proc/<pid>/smaps_rollup`` (the figures ``psutil.Process.memory_full_info()`` reports).

The load average is printed at the start, after each configuration and at the end: wall-clock
figures are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
from workers_servers import (
    COUNT,
    GROUP,
    META,
    Server,
    cpu_seconds,
    descendants,
    frame,
    memory_mb,
    thread_cpu,
)

from lomas_core.config import ExecutionConfig


class _Meter:
    """CPU and wall time of one server configuration over the batches measured so far."""

    def __init__(self, server: Server, n: int) -> None:
        self.server = server
        self.clients = [server.new_client() for _ in range(n)]
        self.pids = descendants(server.pid)
        self.workers = server.worker_pids()
        self.queries = 0
        self.elapsed = self.client_cpu = 0.0
        self.cpu: dict[int, float] = {}
        self._threads = {w: thread_cpu(w) for w in self.workers}

    def run(self, dataset: str, sql: str) -> None:
        before, client = cpu_seconds(self.pids), time.process_time()
        start = time.perf_counter()
        self.server.batch(dataset, sql, self.clients)
        self.elapsed += time.perf_counter() - start
        self.client_cpu += time.process_time() - client
        after = cpu_seconds(self.pids)
        for p in self.pids:
            self.cpu[p] = self.cpu.get(p, 0.0) + after.get(p, 0.0) - before.get(p, 0.0)
        self.queries += len(self.clients)

    def figures(self) -> dict[str, float]:
        per_query = 1000 / self.queries
        server = self.cpu.get(self.server.pid, 0.0)
        workers = sum(self.cpu.values()) - server
        # Threads of a worker that did at least a tenth of its work: DuckDB's threads show here.
        busy = []
        for w in self.workers:
            now = thread_cpu(w)
            used = {t: now[t] - self._threads[w].get(t, 0.0) for t in now}
            total = sum(used.values())
            busy.append(sum(1 for v in used.values() if total and v >= 0.1 * total))
        for c in self.clients:
            c.close()
        return {"qps": self.queries / self.elapsed, "cpu_client_ms": self.client_cpu * per_query,
                "cpu_server_ms": server * per_query, "cpu_workers_ms": workers * per_query,
                "busy_threads": max(busy, default=0)}


def _split(rows: int, n: int) -> dict[int, dict[str, float]]:
    """Per GROUP BY query in this process, DuckDB on 1 and 2 threads: wall and CPU ms of the
    whole engine run and of its DuckDB statement (the rest is the engine's Python)."""
    import lomas_engine_smartnoise_sql.backend as backend
    import pyarrow as pa

    from lomas_core.config import Config
    from lomas_core.context import PluginContext
    from lomas_core.data import DataHandle
    from lomas_core.engine import DatasetInfo
    from lomas_core.execution.threads import ENV
    from lomas_core.metadata import Metadata
    from lomas_core.plugins import load_engines

    spent = [0.0, 0.0]
    fetch = backend.DuckDBDatabase.fetch

    def timed_fetch(self: Any, statement: Any) -> list[Any]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fetch(self, statement)
        finally:
            spent[0] += time.perf_counter() - wall
            # process_time counts DuckDB's other threads too: the statement's whole CPU.
            spent[1] += time.process_time() - cpu

    config = Config.model_validate({"engines": {"smartnoise_sql": {}}})
    engine = dict(load_engines(config, PluginContext(config)))["smartnoise_sql"]
    info = DatasetInfo(name="big", metadata=Metadata.model_validate({**META, "rows": rows}))
    table = pa.Table.from_pandas(frame(rows), preserve_index=False)
    query = engine.parse({"sql": GROUP, "epsilon": 1.0, "delta": 1e-6})
    out: dict[int, dict[str, float]] = {}
    saved = os.environ.get(ENV)
    backend.DuckDBDatabase.fetch = timed_fetch  # type: ignore[method-assign]
    try:
        for threads in (1, 2):
            os.environ[ENV] = str(threads)  # read when the engine builds its DuckDB database
            handle = DataHandle("big", f"v{threads}", table)
            for _ in range(3):
                engine.run(query, handle, info)
            spent[:] = [0.0, 0.0]
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                engine.run(query, handle, info)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out[threads] = {"wall": wall / n * 1000, "cpu": cpu / n * 1000,
                            "db_wall": spent[0] / n * 1000, "db_cpu": spent[1] / n * 1000,
                            "py_cpu": (cpu - spent[1]) / n * 1000}
            handle.close()
    finally:
        backend.DuckDBDatabase.fetch = fetch  # type: ignore[method-assign]
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved
        engine.close()
    return out


def _throughput(tmp: Path, frames: dict[str, pd.DataFrame], rounds: int
                ) -> dict[tuple[int, int], dict[str, float]]:
    """Four concurrent GROUP BY queries per batch, ``rounds`` batches per configuration,
    interleaved; keyed by (workers, threads per worker)."""
    # The defaults, then 1 thread each (process scaling alone), then 2 workers with 2 threads each
    # (DuckDB's own default on 2 cores, what workers used before threads_per_worker).
    wanted = [(1, None), (2, None), (1, 1), (2, 1), (2, 2)]
    configs: dict[tuple[int, int], int | None] = {}
    for workers, threads in wanted:  # the same (workers, threads) measured once
        key = (workers, ExecutionConfig(workers=workers, threads_per_worker=threads).thread_count())
        configs.setdefault(key, threads)
    with ExitStack() as stack:
        meters: dict[tuple[int, int], _Meter] = {}
        for (workers, threads), setting in configs.items():
            s = stack.enter_context(Server(tmp / f"t{workers}x{threads}", frames, workers,
                                            setting))
            s.warm("big", GROUP, batches=4)  # every worker warm before the clock starts
            meters[(workers, threads)] = _Meter(s, 4)
        order = list(meters)
        for r in range(rounds):
            for key in order[r % len(order):] + order[:r % len(order)]:  # rotate who goes first
                meters[key].run("big", GROUP)
        return {key: m.figures() for key, m in meters.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=10, help="batches of 4 concurrent queries")
    parser.add_argument("--parts", default="hop,big,split,throughput,memory")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    warnings.simplefilter("ignore")
    frames = {"small": frame(1000), "big": frame(args.rows)}
    cores = ExecutionConfig.cores()
    print(f"cores={cores} load average (1 min) at start={os.getloadavg()[0]:.2f} "
          f"rows={args.rows} queries={args.queries} rounds={args.rounds} nice={os.nice(0)}")
    print(f"rerun: nice -n 0 {os.path.relpath(sys.executable)} benchmarks/bench_workers.py "
          f"--rows {args.rows} --queries {args.queries} --rounds {args.rounds} --parts {args.parts}")
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 1, 2):
            wanted = (workers < 2 and parts & {"hop", "big"}) or (workers != 1 and "memory" in parts)
            if not wanted:
                continue
            with Server(Path(tmp) / f"w{workers}", frames, workers) as s:
                f = figures.setdefault(workers, {})
                if workers < 2 and "hop" in parts:
                    f["hop"] = s.p50_ms("small", COUNT, args.queries * 4)
                if workers < 2 and "big" in parts:
                    f["count"] = s.p50_ms("big", COUNT, args.queries)
                    f["group"] = s.p50_ms("big", GROUP, args.queries)
                if workers != 1 and "memory" in parts:
                    # Every worker holds its engines, in steady state: past the first full
                    # garbage collection, which copied shared pages before workers froze them.
                    s.warm("big", GROUP, batches=15)
                    f.update(memory_mb(s.pid))
                print(f"workers={workers}: " + "  ".join(f"{k}={v:.2f}" for k, v in f.items())
                      + f"  (load {os.getloadavg()[0]:.2f})", flush=True)
        split = _split(args.rows, args.queries * 2) if "split" in parts else {}
        if split:
            print(f"split done (load {os.getloadavg()[0]:.2f})", flush=True)
        scaling = _throughput(Path(tmp), frames, args.rounds) if "throughput" in parts else {}
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
    if split:
        print(f"3. one GROUP BY on {args.rows:,} rows in-process (ms per query): wall, CPU "
              "(all threads), DuckDB statement wall / CPU, engine Python CPU (single-threaded)")
        for threads, f in split.items():
            print(f"   DuckDB threads={threads}: wall {f['wall']:.1f}, CPU {f['cpu']:.1f}, DuckDB "
                  f"{f['db_wall']:.1f} / {f['db_cpu']:.1f}, Python {f['py_cpu']:.1f}")
    if scaling:
        _report_scaling(scaling, split, cores)
    if "memory" in parts:
        two = figures[2]
        print(f"5. memory with {args.rows:,} rows loaded: in-process RSS {before['rss']:.0f} MB "
              f"(PSS {before['pss']:.0f}); 2 workers: summed RSS {two['rss']:.0f} MB, summed PSS "
              f"{two['pss']:.0f} MB, USS per worker {two['uss_worker']:.0f} MB")
    print(f"load average (1 min) at end={os.getloadavg()[0]:.2f}")


def _cpu_total(f: dict[str, float]) -> float:
    return f["cpu_client_ms"] + f["cpu_server_ms"] + f["cpu_workers_ms"]


def _report_scaling(scaling: dict[tuple[int, int], dict[str, float]],
                    split: dict[int, dict[str, float]], cores: int) -> None:
    """Throughput of each configuration, the two ratios, and why they are what they are."""
    print("4. four concurrent GROUP BY queries, interleaved rounds (CPU ms per query; 'cores "
          "busy' = q/s x CPU per query):")
    for (workers, threads), f in scaling.items():
        total = _cpu_total(f)
        print(f"   {workers} worker(s) x {threads} thread(s): {f['qps']:.1f} q/s; CPU client "
              f"{f['cpu_client_ms']:.1f} + server {f['cpu_server_ms']:.1f} + workers "
              f"{f['cpu_workers_ms']:.1f} = {total:.1f}; cores busy {f['qps'] * total / 1000:.2f}"
              f" of {cores}; busy threads per worker {f['busy_threads']:.0f}")
    auto1 = (1, ExecutionConfig(workers=1).thread_count())
    auto2 = (2, ExecutionConfig(workers=2).thread_count())
    pairs = [("default threads per worker", auto1, auto2),
             ("process scaling alone, both pinned to 1 thread per worker", (1, 1), (2, 1))]
    db = split[1]["db_cpu"] if split else 0.0
    for label, one, two in pairs:
        if one not in scaling or two not in scaling:
            continue
        ratio = scaling[two]["qps"] / scaling[one]["qps"]
        aim = f" (aim >= 1.7x: {'met' if ratio >= 1.7 else 'missed'})" if one == auto1 else ""
        busy = scaling[one]["qps"] * _cpu_total(scaling[one]) / 1000
        print(f"   2 workers x {two[1]} vs 1 worker x {one[1]} ({label}): {ratio:.2f}x{aim}; "
              f"1 worker kept {busy:.2f} of {cores} cores busy")
        # What an idle machine allows, from CPU figures (which do not depend on the load): one
        # worker answers one task at a time, so it is busy at least its CPU per query less what
        # DuckDB's extra threads take off (the statement's CPU, 3., perfectly parallel); and no
        # configuration gets past every core busy (cores / CPU per query of client, server and
        # workers).
        worker = scaling[one]["cpu_workers_ms"] - (db * (1 - 1 / one[1]) if split else 0.0)
        rate1 = min(1000 / worker, cores * 1000 / _cpu_total(scaling[one]))
        rate2 = cores * 1000 / _cpu_total(scaling[two])
        print(f"     on an idle machine, from the CPU figures: 1 worker <= min(1000 / {worker:.1f} "
              f"ms busy per query, {cores} cores / {_cpu_total(scaling[one]):.1f} ms) = "
              f"{rate1:.1f} q/s; 2 workers <= {cores} cores / {_cpu_total(scaling[two]):.1f} ms = "
              f"{rate2:.1f} q/s; both at their bound: {rate2 / rate1:.2f}x (one worker falls "
              f"short of its bound by the hand-over between tasks, so a little more)")
    if split:
        py = split[1]["py_cpu"]
        print(f"   per query a worker runs {py:.1f} ms of single-threaded engine Python and "
              f"{db:.1f} ms CPU of DuckDB statement (3.): with 1 thread it is busy at least "
              f"{py + db:.1f} ms per query, with 2 at least {py + db / 2:.1f} ms "
              f"(measured in-process wall {split[1]['wall']:.1f} and {split[2]['wall']:.1f} ms)")

if __name__ == "__main__":
    main()
