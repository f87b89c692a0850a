"""Benchmark: per-query CPU time of OpenDP on the engine's scan vs an in-memory frame (prints).

    .venv/bin/python benchmarks/bench_opendp_scan.py [--rows 1000000] [--queries 20]

In process, no HTTP. The table (string column ``g`` with categories, float ``x``, as in
``bench_opendp.py``) is written to an Arrow IPC file and memory-mapped, as in a worker. For a
``dp.len`` and a ``dp.sum`` plan it prints the median CPU time (process time, so other load on
the machine counts less) of one invocation on: ``scan`` (``frame.prepared_frame``, what the engine
hands OpenDP) and ``memory`` (the same rules collected into a polars DataFrame first, what the
engine handed over before the scan), interleaved, plus the one-time cost of building each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import opendp.prelude as dp
import polars as pl
import pyarrow as pa
from lomas_engine_opendp import frame as frame_module
from lomas_engine_opendp.wire import empty_lazyframe, polars_schema

from lomas_core.data import DataHandle
from lomas_core.metadata import Metadata

META: dict[str, Any] = {"max_ids": 1, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"]},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}


def _in_memory(table: pa.Table, meta: Metadata) -> Any:
    """The frame the engine handed over before the scan: rules applied, collected once."""
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr

    schema = polars_schema(meta.model_dump())
    exprs = []
    for name, dtype in schema.items():
        expr = pl.col(name).cast(dtype, strict=False)
        if dtype == pl.Float64:
            expr = expr.fill_nan(None)
        categories = meta.columns[name].categories
        if categories:
            allowed = pl.lit(pl.Series(categories, dtype=dtype)).implode()
            expr = pl.when(expr.is_in(allowed)).then(expr).otherwise(None)
        exprs.append(expr.alias(name))
    source = pl.from_arrow(table.select(list(schema)), rechunk=False)
    assert isinstance(source, pl.DataFrame)
    frame = source.lazy().select(exprs).drop_nulls().collect()
    obj = py_to_c(frame.lazy(), c_type=AnyObjectPtr, type_name="LazyFrame")
    obj.__opendp_dict__ = {}
    return obj


def _cpu(fn: Any) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    dp.enable_features("contrib")
    from opendp.core import measurement_invoke

    rng = np.random.default_rng(0)
    table = pa.table({"g": pa.array(rng.choice(["a", "b", "c"], args.rows)),
                      "x": pa.array(rng.uniform(0, 100, args.rows))})
    meta = Metadata.model_validate({**META, "rows": args.rows})
    lf = empty_lazyframe(meta.model_dump())
    domain = dp.lazyframe_domain([dp.series_domain("g", dp.option_domain(dp.atom_domain(T=str))),
                                  dp.series_domain("x", dp.atom_domain(T=float, nan=False))])
    domain = dp.with_margin(domain, dp.polars.Margin(by=[], max_length=args.rows))
    length: Any = pl.len()
    column: Any = pl.col("x")
    plans = {"dp.len": lf.select(length.dp.noise()),
             "dp.sum": lf.select(column.dp.sum((0.0, 100.0)))}
    measurements = {name: dp.m.make_private_lazyframe(
        domain, dp.symmetric_distance(), dp.max_divergence(), plan, global_scale=1.0)
        for name, plan in plans.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        mapped = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        handle = DataHandle("t", "v1", mapped)
        start = time.process_time()
        scan = frame_module.prepared_frame(handle, meta)
        scan_build = time.process_time() - start
        start = time.process_time()
        memory = _in_memory(mapped, meta)
        memory_build = time.process_time() - start
        print(f"rows={args.rows} queries={args.queries} (CPU ms, median)")
        print(f"  build      scan {scan_build * 1000:8.1f}   memory {memory_build * 1000:8.1f}")
        for name, m in measurements.items():
            times: dict[str, list[float]] = {"scan": [], "memory": []}
            for _ in range(args.queries):
                for kind, frame in (("scan", scan), ("memory", memory)):
                    times[kind].append(_cpu(lambda f=frame, m=m: measurement_invoke(m, f).collect()))
            s, mem = (statistics.median(times[k]) * 1000 for k in ("scan", "memory"))
            print(f"  {name:10} scan {s:8.2f}   memory {mem:8.2f}   ratio {s / mem:5.2f}")
        print(f"  handle bytes {handle.nbytes}")
        handle.close()


if __name__ == "__main__":
    main()
