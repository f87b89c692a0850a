"""Benchmark: SmartNoise-SQL through the HTTP API on each target -- in memory (``local``), the
``duckdb`` source over Parquet, the ``postgresql`` source, the ``spark`` source over Parquet
(``local[2]``), and the ``duckdb`` source over the same Parquet file in S3 (``duckdb-s3``: moto's
server on loopback) or behind HTTP (``duckdb-http``: a loopback file server), read through
fsspec -- with peak memory (prints; asserts nothing).

    .venv/bin/python benchmarks/bench_pushdown.py [--rows 1000000] [--queries 7] [--workers 2]
        [--targets memory,duckdb,postgresql,spark,duckdb-s3,duckdb-http] [--memory-mb N]

For each target a real server process (harness ``serve()``, ``--workers`` execution workers)
answers, on a ``--rows`` table, the median (p50) of ``--queries`` charged queries after a first
"cold" one (load, session opening):

* COUNT: ``SELECT COUNT(*)``;
* AVG: ``SELECT AVG(x)``;
* GROUP BY 2: ``SELECT g, h, COUNT(*), AVG(x) ... GROUP BY g, h`` (public keys);
* COUNT max_ids: COUNT on the same rows declared with a ``private_id`` (two rows per person,
  ``max_ids: 1``): the cost of contribution bounding (per-id ``row_number()``) on the target.

Each worker's address-space limit (``execution.memory_mb``) is set explicitly and printed: by
default the size ``docs/admin.md`` recommends for this machine, ``RAM / (workers + 1)`` minus the
table (at least the server's default, 4096). The in-memory target with a ``private_id`` needs
about that default at 10M rows (DuckDB's per-person sampling is a window over the whole table)
and was refused at it in some runs; a refusal is a ``query_failed`` naming
``execution.memory_mb``, printed with the server log's last lines.

Peak RSS is the sum of ``VmHWM`` of the server and its workers at the end (the PostgreSQL
server's own processes and the S3/HTTP test servers, which run in this script, are not counted;
Spark's JVM, a child of the process that opens the dataset, is, and its part is also shown on its
own). PostgreSQL is started from Debian's package
(``lomas_testsupport.postgres``) and skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # lomas_testsupport (not installed)

from lomas_core.models import DatasetDescription  # noqa: E402
from lomas_core.testing.harness import LomasHarness  # noqa: E402

META: dict[str, Any] = {"max_ids": 1, "row_privacy": True, "censor_dims": False, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "h": {"type": "string", "categories": ["n", "e", "s", "w"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}
BOUNDED: dict[str, Any] = {**META, "row_privacy": False, "columns": {
    **META["columns"], "pid": {"type": "int", "private_id": True}}}
QUERIES = {
    "COUNT": ("big", "SELECT COUNT(*) AS n FROM df"),
    "AVG": ("big", "SELECT AVG(x) AS m FROM df"),
    "GROUP BY 2": ("big", "SELECT g, h, COUNT(*) AS n, AVG(x) AS m FROM df GROUP BY g, h"),
    "COUNT max_ids": ("bounded", "SELECT COUNT(*) AS n FROM df"),
}
PG_ENV = "LOMAS_BENCH_PG"


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({"g": rng.choice(["a", "b", "c"], rows), "h": rng.choice(list("nesw"), rows),
                     "x": rng.uniform(0, 100, rows), "pid": np.arange(rows) // 2})


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server, its forkserver and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _peak_mb(pid: int) -> tuple[float, float]:
    """(peak RSS of the server and its workers, of the JVMs among them), MB."""
    python, jvm = 0, 0
    for p in _tree(pid):
        try:
            is_jvm = Path(f"/proc/{p}/comm").read_text().strip() == "java"
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    if is_jvm:
                        jvm += int(line.split()[1])
                    else:
                        python += int(line.split()[1])
        except OSError:
            continue
    return python / 1024, jvm / 1024


def _memory_mb(table: pa.Table, workers: int) -> int:
    """``execution.memory_mb`` as docs/admin.md recommends: RAM / (workers + 1) minus the largest
    dataset, never below the server's default."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(4096, int((ram / (workers + 1) - table.nbytes) / 2**20))


def _remote_harness(target: str, tmp: Path, table: pa.Table, execution: dict[str, Any],
                    stores: dict[str, Any]) -> LomasHarness:
    """The ``duckdb`` source over one Parquet object in moto's S3 or on a loopback file server."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    body = buffer.getvalue()
    loopback = {"allowed_networks": ["127.0.0.1/32"]}
    secrets: dict[str, Any] = {}
    if target == "duckdb-s3":
        from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

        moto = stores["s3"]
        moto.client.create_bucket(Bucket="lomas-bench")
        moto.client.put_object(Bucket="lomas-bench", Key="bench.parquet", Body=body)
        (tmp / "s3.secret").write_text(f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
        secrets = {"reader": {"file": str(tmp / "s3.secret"), "adapters": ["duckdb"],
                              "endpoints": [moto.endpoint_url], "buckets": ["lomas-bench"]}}
        section = {"s3": {"endpoint_url": moto.endpoint_url, "region": moto.region,
                          "allowed_buckets": ["lomas-bench"], "default_credentials": "reader",
                          **loopback}}
        path = "s3://lomas-bench/bench.parquet"
    else:
        files = stores["http"]
        files.put("/bench/bench.parquet", body)
        section = {"http": {"allowed_prefixes": [files.url("/bench/")], **loopback}}
        path = files.url("/bench/bench.parquet")
    h = LomasHarness(tmp, engines={"smartnoise_sql": {}}, adapters={"duckdb": section},
                     execution=execution, secrets=secrets,
                     cache={"max_bytes": 8 * 1024**3, "revalidate_seconds": 3600})
    for name, meta in (("big", META), ("bounded", BOUNDED)):
        h.add_dataset_description(DatasetDescription(
            name=name, adapter="duckdb", options={"path": path},
            metadata={**meta, "rows": table.num_rows}))
    return h


def _harness(target: str, tmp: Path, table: pa.Table, args: argparse.Namespace,
             pg: Any, stores: dict[str, Any]) -> LomasHarness:
    rows = {"rows": table.num_rows}
    execution = {"workers": args.workers, "memory_mb": args.memory_mb}
    if target.startswith("duckdb-"):
        return _remote_harness(target, tmp, table, execution, stores)
    if target in ("memory", "duckdb", "spark"):
        adapter = "local" if target == "memory" else target
        options: dict[str, Any] = {"allowed_dirs": [str(tmp)]}
        if target == "spark":
            options.update(threads=2, driver_memory="1g")
        h = LomasHarness(tmp, engines={"smartnoise_sql": {}}, adapters={adapter: options},
                         execution=execution,
                         cache={"max_bytes": 8 * 1024**3, "revalidate_seconds": 3600})
        h.add_dataset("big", table, {**META, **rows}, adapter=adapter)
        h.add_dataset("bounded", table, {**BOUNDED, **rows}, adapter=adapter)
        return h
    from lomas_testsupport.postgres import load_table

    os.environ[PG_ENV] = pg.dsn()
    h = LomasHarness(tmp, engines={"smartnoise_sql": {}}, adapters={"postgresql": {}},
                     execution=execution,
                     secrets={"pg": {"env": PG_ENV, "adapters": ["postgresql"],
                                     "allowed_hosts": ["127.0.0.1"]}})
    load_table(pg.dsn(), "bench", table)
    for name, meta in (("big", META), ("bounded", BOUNDED)):
        h.add_dataset_description(DatasetDescription(
            name=name, adapter="postgresql", options={"credentials": "pg", "table": "bench"},
            metadata={**meta, **rows}))
    return h


def _run(target: str, table: pa.Table, args: argparse.Namespace, pg: Any,
         stores: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        h = _harness(target, Path(tmp), table, args, pg, stores)
        out["setup"] = time.perf_counter() - started
        token = h.add_user("bench", grant={"big": (1e9, 0.5), "bounded": (1e9, 0.5)})
        with h.serve(timeout=300) as url, httpx.Client(
                base_url=url, timeout=600, headers={"Authorization": f"Bearer {token}"}) as c:
            for name, (dataset, sql) in QUERIES.items():
                body = {"engine": "smartnoise_sql",
                        "query": {"sql": sql, "epsilon": 1.0, "delta": 1e-6}}
                times = []
                for _ in range(args.queries + 1):
                    start = time.perf_counter()
                    response = c.post(f"/v1/datasets/{dataset}/query", json=body)
                    if response.is_error:
                        log = h.server_log().strip().splitlines()[-5:]
                        sys.exit(f"{target} {name}: HTTP {response.status_code} {response.text}\n"
                                 + "\n".join(log))
                    times.append(time.perf_counter() - start)
                out[name] = (times[0] * 1000, statistics.median(times[1:]) * 1000)
            assert h.server_pid is not None
            out["peak"], out["jvm"] = _peak_mb(h.server_pid)
        h.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--targets", default="memory,duckdb,postgresql,spark")
    parser.add_argument("--memory-mb", type=int, default=None,
                        help="execution.memory_mb of each worker (default: see above)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    table = _table(args.rows)
    if args.memory_mb is None:
        args.memory_mb = _memory_mb(table, args.workers)
    pg = None
    targets = args.targets.split(",")
    if "postgresql" in targets:
        from lomas_testsupport.postgres import PostgresServer, find_postgres

        if find_postgres()[0] is None:
            print(f"postgresql skipped: {find_postgres()[1]}")
            targets.remove("postgresql")
        else:
            pg = PostgresServer()
    stores: dict[str, Any] = {}
    if "duckdb-s3" in targets:
        from lomas_adapter_s3.testing import MotoS3

        stores["s3"] = MotoS3().start()
    if "duckdb-http" in targets:
        from lomas_adapter_http.testing import FileServer

        stores["http"] = FileServer().start()
    print(f"rows={args.rows:,} queries={args.queries} workers={args.workers} "
          f"execution.memory_mb={args.memory_mb} (p50 ms; cold first query in brackets)")
    header = (f"{'target':<11}" + "".join(f"{q:>22}" for q in QUERIES)
              + f"{'peak RSS':>12}{'of it JVM':>11}")
    print(header)
    try:
        for target in targets:
            figures = _run(target, table, args, pg, stores)
            cells = "".join(f"{figures[q][1]:>12.1f} [{figures[q][0]:>6.0f}]" for q in QUERIES)
            total = figures["peak"] + figures["jvm"]
            print(f"{target:<11}{cells}{total:>9.0f} MB{figures['jvm']:>8.0f} MB   "
                  f"(set-up {figures['setup']:.1f} s)", flush=True)
    finally:
        if pg is not None:
            pg.close()
        for store in stores.values():
            store.stop()


if __name__ == "__main__":
    main()
