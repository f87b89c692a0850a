"""Benchmark: DiffPrivLib fits through the HTTP API against DiffPrivLib in process (prints only).

    .venv/bin/python benchmarks/bench_diffprivlib.py [--rows 100000] [--fits 5]

For a few pipelines on a ``--rows`` table (two bounded features, a two-class target) it prints the
median wall time of: the same DiffPrivLib estimators fitted in process on a numpy array (bounds
and norms given, as the server does), and a full charged query round trip over HTTP on a real
server process (harness ``serve()``: parse, cost with its public trial fit, charge, data
preparation and resize, fit, JSON export), their difference, and the first (cold) query, which
also pays the dataset load and the pandas conversion.
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

from lomas_core.testing.harness import LomasHarness


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _payload(*steps: tuple[str, dict[str, Any]], target: bool = True) -> dict[str, Any]:
    return {"pipeline": [{"step": s, "params": p} for s, p in steps],
            "feature_columns": ["x1", "x2"], "target_columns": ["label"] if target else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--fits", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import diffprivlib.models as m

    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(-1, 1, args.rows), rng.uniform(-1, 1, args.rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "label": np.where(x1 + 2 * x2 > 0, "pos", "neg")})
    meta = {"max_ids": 1, "rows": args.rows, "columns": {
        "x1": {"type": "float", "lower": -1.0, "upper": 1.0},
        "x2": {"type": "float", "lower": -1.0, "upper": 1.0},
        "label": {"type": "string", "categories": ["neg", "pos"]}}}
    X = frame[["x1", "x2"]].to_numpy()
    y = (frame["label"] == "pos").to_numpy().astype(int)
    n_train = args.rows - args.rows // 5
    box = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    local: dict[str, tuple[dict[str, Any], Callable[[], Any]]] = {
        "LogisticRegression": (_payload(("LogisticRegression", {"epsilon": 1.0})),
                               lambda: m.LogisticRegression(epsilon=1.0, data_norm=2 ** 0.5)
                               .fit(X[:n_train], y[:n_train])),
        "GaussianNB": (_payload(("GaussianNB", {"epsilon": 1.0})),
                       lambda: m.GaussianNB(epsilon=1.0, bounds=box).fit(X[:n_train], y[:n_train])),
        "StandardScaler+LogisticRegression": (
            _payload(("StandardScaler", {"epsilon": 0.5}), ("LogisticRegression", {"epsilon": 1.0})),
            lambda: m.LogisticRegression(epsilon=1.0, data_norm=3.0).fit(
                m.StandardScaler(epsilon=0.5, bounds=box).fit_transform(X[:n_train]), y[:n_train])),
        "KMeans(4)": (_payload(("KMeans", {"epsilon": 1.0, "n_clusters": 4}), target=False),
                      lambda: m.KMeans(4, epsilon=1.0, bounds=box).fit(X[:n_train])),
    }
    with tempfile.TemporaryDirectory() as tmp:
        h = LomasHarness(Path(tmp), engines={"diffprivlib": {}})
        h.add_dataset("big", frame, meta)
        token = h.add_user("bench", grant={"big": (1e9, 0.5)})
        with h.serve() as url, httpx.Client(base_url=url, timeout=300,
                                            headers={"Authorization": f"Bearer {token}"}) as c:
            print(f"rows={args.rows} (train {n_train}) fits={args.fits}")
            for name, (payload, fit) in local.items():
                body = {"engine": "diffprivlib", "query": payload}
                start = time.perf_counter()
                c.post("/v1/datasets/big/query", json=body).raise_for_status()
                cold = time.perf_counter() - start
                http, inproc = [], []
                for _ in range(args.fits):
                    start = time.perf_counter()
                    c.post("/v1/datasets/big/query", json=body).raise_for_status()
                    http.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    fit()
                    inproc.append(time.perf_counter() - start)
                print(f"{name}: in process median={_median_ms(inproc):.1f} ms  "
                      f"HTTP median={_median_ms(http):.1f} ms  "
                      f"overhead={_median_ms(http) - _median_ms(inproc):.1f} ms  "
                      f"cold first query={cold * 1000:.0f} ms")
        h.close()


if __name__ == "__main__":
    main()
