"""Test data for the diffprivlib engine: points on both sides of a known plane."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["METADATA", "ROWS", "make_table", "payload"]

ROWS = 10_000
METADATA: dict[str, Any] = {
    "max_ids": 1,
    "rows": ROWS,
    "row_privacy": True,
    "columns": {
        "x1": {"type": "float", "lower": -1.0, "upper": 1.0},
        "x2": {"type": "float", "lower": -1.0, "upper": 1.0, "nullable": True},
        "label": {"type": "string", "categories": ["neg", "pos"]},
        "kind": {"type": "string", "categories": ["a", "b", "c"]},
        "value": {"type": "float", "lower": -5.0, "upper": 5.0},
        "free": {"type": "float"},
        "pid": {"type": "int", "private_id": True},
    },
}


def make_table(rows: int = ROWS, seed: int = 3) -> pa.Table:
    """x1, x2 uniform on [-1, 1]; label = pos iff x1 + 2 x2 > 0.1; value = 2 x1 - x2 + noise."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-1, 1, rows)
    x2 = rng.uniform(-1, 1, rows)
    label = np.where(x1 + 2 * x2 > 0.1, "pos", "neg")
    kind = np.where(x1 > 0.3, "a", np.where(x2 > 0, "b", "c"))
    value = 2 * x1 - x2 + rng.normal(0, 0.1, rows)
    return pa.table({"x1": x1, "x2": x2, "label": label, "kind": kind, "value": value,
                     "free": rng.normal(0, 1, rows), "pid": np.arange(rows)})


def payload(*steps: tuple[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"pipeline": [{"step": s, "params": p} for s, p in steps],
                            "feature_columns": ["x1", "x2"]}
    body.update(extra)
    return body
