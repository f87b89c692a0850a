"""Benchmark: memory of reading a push-down dataset into memory and handing it to OpenDP (prints;
asserts nothing).

    .venv/bin/python benchmarks/bench_load_memory.py [--rows 1000000]

Each step runs in a fresh Python process and reports the growth of its peak resident memory
(``VmHWM``) over its resident memory just before the step, next to the Arrow size of the table:

* ``load duckdb``: the ``duckdb`` source's ``load_table`` (Arrow batches from DuckDB) of a
  Parquet file, then the core's ``prepare_table`` (what the dataset cache does);
* ``opendp hand-over``: the OpenDP engine building its per-version LazyFrame
  (``prepared_frame``) from a table mapped from an Arrow IPC file, as a worker does.

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
import json, resource, sys
from pathlib import Path

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

step, folder, meta_json = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
import pyarrow as pa
from lomas_core.metadata import Metadata
from lomas_core.prepare import prepare_table
meta = Metadata.model_validate_json(meta_json)
if step == "load":
    from lomas_core.config import Config
    from lomas_core.plugins import load_plugins
    config = Config.model_validate({"adapters": {"duckdb": {"allowed_dirs": [str(folder)],
                                    "memory_limit": "4GB"}}, "engines": {}})
    source = load_plugins(config, with_store=False).adapters["duckdb"]
    import duckdb  # noqa: F401 - imported before the baseline
    before, hwm_before = rss(), hwm()
    loaded = source.load_table("bench", {"path": str(folder / "t.parquet")}, meta, None, None)
    table = prepare_table("bench", loaded.table, meta)
    del loaded
else:
    import opendp.prelude  # noqa: F401
    import polars  # noqa: F401
    from lomas_core.data import DataHandle
    from lomas_engine_opendp.plans import prepared_frame
    table = pa.ipc.open_file(pa.memory_map(str(folder / "t.arrow"), "r")).read_all()
    handle = DataHandle("bench", "v1", table)
    before, hwm_before = rss(), hwm()
    prepared_frame(handle, meta)
after = rss()
print(json.dumps({"table": table.nbytes, "before": before, "peak": max(hwm(), hwm_before),
                  "after": after}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    w = rng.uniform(0, 10, args.rows)
    table = pa.table({"g": rng.choice(["a", "b", "c"], args.rows),
                      "x": rng.uniform(0, 100, args.rows),
                      "w": pa.array(w, mask=rng.random(args.rows) < 0.1),
                      "k": rng.integers(0, 11, args.rows)})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pq.write_table(table, folder / "t.parquet")
        with pa.OSFile(str(folder / "t.arrow"), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        print(f"{args.rows:,} rows; Arrow table {table.nbytes / 2**20:.1f} MiB")
        print(f"{'step':<18} {'peak growth MiB':>16} {'x table':>8} {'kept MiB':>9}")
        for step, label in (("load", "load duckdb"), ("opendp", "opendp hand-over")):
            out = subprocess.run([sys.executable, "-c", CHILD, step, str(folder), json.dumps(META)],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{label} failed:\n{out.stderr[-3000:]}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            growth = m["peak"] - m["before"]
            print(f"{label:<18} {growth / 2**20:>16.1f} {growth / table.nbytes:>8.1f} "
                  f"{(m['after'] - m['before']) / 2**20:>9.1f}")


if __name__ == "__main__":
    main()
