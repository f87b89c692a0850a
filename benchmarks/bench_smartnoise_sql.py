"""Benchmark: SmartNoise-SQL queries through the HTTP API against the naive direct call and raw pandas
(prints; asserts nothing).

    .venv/bin/python benchmarks/bench_smartnoise_sql.py [--rows 1000000] [--queries 10] [--naive 3]

For ``COUNT(*)`` and ``GROUP BY ... AVG`` on a ``--rows`` table it prints the medians of:

* HTTP: a full charged query round trip on a real server process (harness ``serve()``); the first
  query of each kind (dataset load, hand-over to the SQL engine) is excluded and shown as "cold";
* naive: ``snsql.from_df(frame, metadata, privacy)`` built per query, then ``execute_df`` (what a
  server that builds a reader per query pays: the frame is copied into a new SQLite database);
* raw pandas: the same aggregate without privacy, on the in-memory frame;

and the ratios. Aim: HTTP at least 10x faster than naive for both queries.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import snsql
from lomas_engine_smartnoise_sql.metadata import to_snsql_metadata

from lomas_core.metadata import Metadata
from lomas_core.testing.harness import LomasHarness

META: dict[str, Any] = {"max_ids": 1, "row_privacy": True, "censor_dims": False, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
}}
EPSILON, DELTA = 1.0, 1e-6


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10, help="HTTP and pandas repetitions")
    parser.add_argument("--naive", type=int, default=3, help="naive repetitions (slow)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], args.rows),
                          "x": rng.uniform(0, 100, args.rows)})
    meta = {**META, "rows": args.rows}
    cases: dict[str, tuple[str, Callable[[], Any]]] = {
        "COUNT": ("SELECT COUNT(*) AS n FROM df", lambda: frame["g"].count()),
        "GROUP BY AVG": ("SELECT g, AVG(x) AS m FROM df GROUP BY g",
                         lambda: frame.groupby("g")["x"].mean()),
    }

    def naive(sql: str) -> None:
        privacy = snsql.Privacy(epsilon=EPSILON, delta=DELTA)
        reader = snsql.from_df(frame, privacy=privacy,
                               metadata=to_snsql_metadata(Metadata.model_validate(meta)))
        reader.execute_df(sql)

    with tempfile.TemporaryDirectory() as tmp:
        h = LomasHarness(Path(tmp), engines={"smartnoise_sql": {}})
        h.add_dataset("big", frame, meta)
        token = h.add_user("bench", grant={"big": (1e9, 0.5)})
        with h.serve(timeout=120) as url, httpx.Client(
                base_url=url, timeout=300, headers={"Authorization": f"Bearer {token}"}) as c:
            print(f"rows={args.rows} queries={args.queries} naive={args.naive}")
            for name, (sql, raw) in cases.items():
                body = {"engine": "smartnoise_sql",
                        "query": {"sql": sql, "epsilon": EPSILON, "delta": DELTA}}
                def ask(body: dict[str, Any] = body) -> None:
                    c.post("/v1/datasets/big/query", json=body).raise_for_status()

                cold = _timed(ask, 1)[0]
                http = _timed(ask, args.queries)
                direct = _timed(lambda sql=sql: naive(sql), args.naive)  # type: ignore[misc]
                local = _timed(raw, args.queries)
                h_ms, n_ms, p_ms = _median_ms(http), _median_ms(direct), _median_ms(local)
                print(f"{name}: HTTP median={h_ms:.1f} ms (cold first={cold * 1000:.0f} ms)  "
                      f"naive median={n_ms:.0f} ms  raw pandas median={p_ms:.3f} ms  "
                      f"naive/HTTP={n_ms / h_ms:.1f}x  HTTP/pandas={h_ms / max(p_ms, 1e-6):.0f}x  "
                      f"aim naive/HTTP >= 10x -> {'met' if n_ms >= 10 * h_ms else 'missed'}")
        h.close()


if __name__ == "__main__":
    main()
