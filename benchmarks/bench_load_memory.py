"""Benchmark: memory of reading a push-down dataset into memory and handing it to OpenDP (prints;
asserts nothing).

    .venv/bin/python benchmarks/bench_load_memory.py [--rows 1000000] [--rows 10000000]

Each step runs in a fresh Python process and reports the growth of its peak resident memory
(``VmHWM``) over its resident memory just before the step, next to the Arrow size of the table:

* ``load duckdb (before)``: the ``duckdb`` source's ``load_table`` (Arrow batches from DuckDB) of
  a Parquet file into memory, then the core's ``prepare_table`` (what the dataset cache did);
* ``load duckdb to cache file``: the dataset cache with the execution pool's data folder, which
  streams the batches into the version's IPC file and maps it (what it does now);
* ``opendp frame (before)``: the former hand-over, a prepared polars DataFrame serialised across
  OpenDP's FFI, from a table mapped from an Arrow IPC file (as a worker maps it);
* ``opendp scan``: the engine's ``prepared_frame`` (a scan of the mapped table) from the same file;
* ``+ 2 queries`` (after each OpenDP step): a plan query (sum of a float, count) and a public
  group-by (count, sum of an int) run twice each through the engine on that frame: peak growth
  over the same baseline (mapped pages the queries read included), and the second run's time.
  ``kept`` is the growth still resident at the end.

The table has a ``string`` column with declared categories, a float, a nullable float and an int.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

META: dict[str, Any] = {"max_ids": 1, "row_privacy": True, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
    "w": {"type": "float", "lower": 0.0, "upper": 10.0, "nullable": True},
    "k": {"type": "int", "lower": 0, "upper": 10},
}}

CHILD = r"""
import json, sys, time, warnings
from pathlib import Path

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

warnings.simplefilter("ignore")
step, folder, meta_json = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
import pyarrow as pa
from lomas_core.metadata import Metadata
from lomas_core.prepare import prepare_table
meta = Metadata.model_validate_json(meta_json)
out = {}
if step in ("load", "cache"):
    from lomas_core.config import Config
    from lomas_core.plugins import load_plugins
    config = Config.model_validate({"adapters": {"duckdb": {"allowed_dirs": [str(folder)],
                                    "memory_limit": "4GB"}}, "engines": {}})
    source = load_plugins(config, with_store=False).adapters["duckdb"]
    import duckdb  # noqa: F401 - imported before the baseline
    options = {"path": str(folder / "t.parquet")}
    before, hwm_before = rss(), hwm()
    if step == "load":
        loaded = source.load_table("bench", options, meta, None, None)
        table = prepare_table("bench", loaded.table, meta)
        del loaded
    else:
        from lomas_core.cache import DatasetCache
        from lomas_core.models import DatasetDescription
        cache = DatasetCache(2**40, 3600, data_dir=folder / "cache")
        table = cache.get(DatasetDescription(name="bench", adapter="duckdb", options=options,
                                             metadata=meta),
                          source, meta).table
else:
    import opendp.prelude as dp
    import polars as pl
    from lomas_core.data import DataHandle
    from lomas_core.engine import DatasetInfo
    from lomas_core.testing.plugins import build
    from lomas_engine_opendp.engine import OpenDPEngine
    from lomas_engine_opendp.wire import empty_lazyframe, make_payload
    engine = build(OpenDPEngine, {})
    engine.warmup()
    lf = empty_lazyframe(meta.model_dump())
    plans = {"sum": lf.select(pl.col("x").dp.sum((0.0, 100.0)), pl.len().dp.noise()),
             "group": lf.group_by("g").agg(pl.len().dp.noise(), pl.col("k").dp.sum((0, 10)))}
    queries = {n: engine.parse(make_payload(p, epsilon=1.0)) for n, p in plans.items()}
    info = DatasetInfo(name="bench", metadata=meta)
    for query in queries.values():
        engine.cost(query, info)  # calibrated before the baseline: public work only
    table = pa.ipc.open_file(pa.memory_map(str(folder / "t.arrow"), "r")).read_all()
    handle = DataHandle("bench", "v1", table)
    before, hwm_before = rss(), hwm()
    import lomas_engine_opendp.frame as frame_module
    if step == "frame":
        from opendp._convert import py_to_c
        from opendp._lib import AnyObjectPtr
        from lomas_engine_opendp.wire import polars_schema
        schema = polars_schema(meta.model_dump())
        source = pl.from_arrow(table.select(list(schema)), rechunk=False)
        required = [n for n in schema if not meta.columns[n].nullable]
        frame = source.lazy().select([frame_module._rule(n, t, meta) for n, t in schema.items()]) \
            .drop_nulls(subset=required).collect()
        del source
        lazy = frame.lazy()
        del frame
        obj = py_to_c(lazy, c_type=AnyObjectPtr, type_name="LazyFrame")
        del lazy
        obj.__opendp_dict__ = {}
        frame_module.prepared_frame = lambda data, meta: obj  # what the engine then runs on
    else:
        frame_module.prepared_frame(handle, meta)
    out["hand_over"] = max(hwm(), hwm_before)
    for name, query in queries.items():
        times = []
        for _ in range(2):
            started = time.perf_counter()
            engine.run(query, handle, info)
            times.append(time.perf_counter() - started)
        out[name] = times[-1] * 1000
after = rss()
print(json.dumps({"table": table.nbytes, "before": before, "peak": max(hwm(), hwm_before),
                  "after": after, **out}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="table rows (repeatable; default 1,000,000)")
    args = parser.parse_args()
    for rows in args.rows or [1_000_000]:
        _bench(rows)


def _bench(rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    w = rng.uniform(0, 10, rows)
    table = pa.table({"g": rng.choice(["a", "b", "c"], rows),
                      "x": rng.uniform(0, 100, rows),
                      "w": pa.array(w, mask=rng.random(rows) < 0.1),
                      "k": rng.integers(0, 11, rows)})
    meta = {**META, "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pq.write_table(table, folder / "t.parquet")
        with pa.OSFile(str(folder / "t.arrow"), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        print(f"{rows:,} rows; Arrow table {table.nbytes / 2**20:.1f} MiB")
        print(f"{'step':<24} {'peak growth MiB':>16} {'x table':>8} {'kept MiB':>9}")
        steps = (("load", "load duckdb (before)"), ("cache", "load duckdb to cache file"),
                 ("frame", "opendp frame (before)"),
                 ("scan", "opendp scan"))
        for step, label in steps:
            out = subprocess.run([sys.executable, "-c", CHILD, step, str(folder),
                                  json.dumps(meta)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{label} failed:\n{out.stderr[-3000:]}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            first = m.get("hand_over", m["peak"]) - m["before"]
            print(f"{label:<24} {first / 2**20:>16.1f} {first / table.nbytes:>8.1f} "
                  f"{(m['after'] - m['before']) / 2**20:>9.1f}")
            if "hand_over" in m:
                growth = m["peak"] - m["before"]
                print(f"{'  + 2 queries':<24} {growth / 2**20:>16.1f} "
                      f"{growth / table.nbytes:>8.1f} {'':>9}  (ms: sum {m['sum']:.0f}, "
                      f"group-by {m['group']:.0f})")


if __name__ == "__main__":
    main()
