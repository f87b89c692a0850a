"""Benchmark: OpenDP polars queries through the HTTP API against raw polars (prints; asserts nothing).

    .venv/bin/python benchmarks/bench_opendp.py [--rows 1000000] [--queries 30]

For ``dp.len`` and ``dp.sum`` plans and a clamp+sum+Laplace pipeline on a ``--rows`` table it
prints the median of: the raw polars
aggregate on the same in-memory data, a full charged query round trip over HTTP on a real server
process (harness ``serve()``), and their ratio, plus the first (cold) query of each kind, which
pays the dataset load, the one-time hand-over of the data to OpenDP and the plan calibration.
Aim: HTTP median within 10x raw polars + 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import opendp.prelude as dp
import polars as pl
from lomas_engine_opendp.wire import empty_lazyframe, make_payload

from lomas_core.testing.harness import LomasHarness

META: dict[str, Any] = {"max_ids": 1, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"]},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"g": rng.choice(["a", "b", "c"], args.rows),
                          "x": rng.uniform(0, 100, args.rows)})
    meta = {**META, "rows": args.rows}
    lf = empty_lazyframe(meta)
    length: Any = pl.len()
    column: Any = pl.col("x")
    dp.enable_features("contrib")
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    pipeline = (dp.t.make_clamp(vec, dp.symmetric_distance(), (0.0, 100.0)) >> dp.t.then_sum()
                >> dp.m.then_laplace(100.0))
    cases: dict[str, tuple[dict[str, Any], Any]] = {
        "plan dp.len": (make_payload(lf.select(length.dp.noise()), epsilon=1.0),
                        lambda: frame.select(pl.len())),
        "plan dp.sum": (make_payload(lf.select(column.dp.sum((0.0, 100.0))), epsilon=1.0),
                        lambda: frame.select(pl.col("x").clip(0.0, 100.0).sum())),
        "pipeline sum": (make_payload(pipeline, column="x"),
                         lambda: frame.select(pl.col("x").clip(0.0, 100.0).sum())),
    }
    with tempfile.TemporaryDirectory() as tmp:
        h = LomasHarness(Path(tmp), engines={"opendp": {}})
        h.add_dataset("big", frame, meta)
        token = h.add_user("bench", grant={"big": (1e9, 0.5)})
        with h.serve() as url, httpx.Client(base_url=url, timeout=120,
                                            headers={"Authorization": f"Bearer {token}"}) as c:
            print(f"rows={args.rows} queries={args.queries}")
            for name, (payload, raw) in cases.items():
                body = {"engine": "opendp", "query": payload}
                start = time.perf_counter()
                r = c.post("/v1/datasets/big/query", json=body)
                cold = time.perf_counter() - start
                r.raise_for_status()
                http = []
                for _ in range(args.queries):
                    start = time.perf_counter()
                    c.post("/v1/datasets/big/query", json=body).raise_for_status()
                    http.append(time.perf_counter() - start)
                local = []
                for _ in range(args.queries):
                    start = time.perf_counter()
                    raw()
                    local.append(time.perf_counter() - start)
                ratio = _median_ms(http) / max(_median_ms(local), 1e-6)
                budget = 10 * _median_ms(local) + 50
                print(f"{name}: raw polars median={_median_ms(local):.2f} ms  "
                      f"HTTP median={_median_ms(http):.2f} ms  ratio={ratio:.1f}x  "
                      f"cold first query={cold * 1000:.0f} ms  "
                      f"aim (10x raw + 50 ms)={budget:.1f} ms -> "
                      f"{'met' if _median_ms(http) <= budget else 'missed'}")
        h.close()


if __name__ == "__main__":
    main()
