"""First and second query latency per data adapter on a 1,000,000-row dataset (prints figures).

    .venv/bin/python benchmarks/bench_adapters.py [--rows 1000000] [--formats parquet,csv]

For each adapter (``local`` file, ``http`` from a loopback file server, ``s3`` from moto's S3 server)
and format, one real lomas server process answers a cheap charged query (``toy_count``) twice: the
first query loads the dataset through the adapter into the cache, the second is served from memory
(median of a few). The ratio first/second is what the cache saves. Imports and connections are
warmed up first on 10-row files, so "first" is the cost of loading the dataset itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from lomas_adapter_http.testing import FileServer
from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, MotoS3, table_bytes

from lomas_core.testing.harness import LomasHarness

METADATA = {"max_ids": 1, "columns": {
    "group": {"type": "string", "categories": ["a", "b", "c", "d"]},
    "age": {"type": "int", "lower": 0, "upper": 100},
    "income": {"type": "float", "lower": 0.0, "upper": 1000.0},
    "flag": {"type": "boolean"}}}
QUERY = {"engine": "toy_count", "query": {"epsilon": 0.01}}


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "group": np.array(["a", "b", "c", "d"])[rng.integers(0, 4, rows)],
        "age": rng.integers(0, 101, rows),
        "income": np.round(rng.uniform(0, 1000, rows), 2),
        "flag": rng.integers(0, 2, rows).astype(bool)})


def _query(client: httpx.Client, name: str) -> float:
    start = time.perf_counter()
    r = client.post(f"/v1/datasets/{name}/query", json=QUERY)
    elapsed = time.perf_counter() - start
    assert r.status_code == 200, r.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--repeats", type=int, default=5, help="second-query samples (median)")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    table = make_table(args.rows)
    blobs = {fmt: table_bytes(table, fmt) for fmt in formats}
    os.environ["LOMAS_BENCH_S3"] = f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}"
    with tempfile.TemporaryDirectory() as tmp, FileServer() as web, MotoS3() as s3:
        s3.client.create_bucket(Bucket="bench")
        h = LomasHarness(Path(tmp), engines={"toy_count": {}},
                         # Both servers are on loopback, which the network adapters refuse
                         # unless allowed.
                         adapters={"local": {"allowed_dirs": [tmp]},
                                   "http": {"allowed_hosts": ["127.0.0.1"],
                                            "allowed_networks": ["127.0.0.1/32"]},
                                   "s3": {"endpoint_url": s3.endpoint_url, "region": s3.region,
                                          "allowed_networks": ["127.0.0.1/32"]}},
                         secrets={"bench_s3": {"env": "LOMAS_BENCH_S3", "adapters": ["s3"],
                                               "endpoints": [s3.endpoint_url],
                                               "buckets": ["bench"]}},
                         cache={"max_bytes": 8 << 30, "revalidate_seconds": 3600})
        names: list[tuple[str, str, str, int]] = []
        warm: list[str] = []
        for fmt, blob in [("tiny", table_bytes(make_table(10), "parquet")), *blobs.items()]:
            path = h.data_dir / f"bench.{fmt}"
            path.write_bytes(blob)
            web.put(f"/bench.{fmt}", blob)
            s3.client.put_object(Bucket="bench", Key=f"bench.{fmt}", Body=blob)
            declared = "parquet" if fmt == "tiny" else fmt
            options: dict[str, dict[str, Any]] = {
                "local": {"path": str(path), "format": declared},
                "http": {"url": web.url(f"/bench.{fmt}"), "format": declared},
                "s3": {"bucket": "bench", "key": f"bench.{fmt}", "credentials": "bench_s3",
                       "format": declared}}
            for adapter, opts in options.items():
                name = f"{adapter}_{fmt}"
                h.add_dataset_description({"name": name, "adapter": adapter, "options": opts,
                                           "metadata": METADATA})
                if fmt == "tiny":
                    warm.append(name)
                else:
                    names.append((name, adapter, fmt, len(blob)))
        token = h.add_user("bench", grant={n: (1e9, 0.0) for n in [*warm, *(n for n, *_ in names)]})
        print(f"{args.rows:,} rows; toy_count query through a real lomas server process")
        print(f"{'adapter':8} {'format':8} {'size':>9} {'first':>10} {'second':>10} {'ratio':>8}")
        with h.serve() as url, httpx.Client(base_url=url, timeout=600,
                                            headers={"Authorization": f"Bearer {token}"}) as c:
            # Warm-up: connection, engine and reader imports, one client per adapter (10-row files).
            for name in warm:
                _query(c, name)
            for name, *_ in names:  # metadata and cost path; reads no data
                assert c.post(f"/v1/datasets/{name}/cost", json=QUERY).status_code == 200
            for name, adapter, fmt, size in names:
                first = _query(c, name)
                second = statistics.median(_query(c, name) for _ in range(args.repeats))
                print(f"{adapter:8} {fmt:8} {size / 1e6:7.1f}MB {first * 1000:8.1f}ms "
                      f"{second * 1000:8.2f}ms {first / second:7.0f}x")
        h.close()


if __name__ == "__main__":
    main()
