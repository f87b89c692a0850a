"""Test data shared by the opendp engine tests: a generated table with known truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["METADATA", "ROWS", "make_table", "plan_measurement"]

ROWS = 3000
METADATA: dict[str, Any] = {
    "max_ids": 1,
    "rows": ROWS,
    "row_privacy": True,
    "columns": {
        "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
        "x": {"type": "float", "lower": 0.0, "upper": 100.0},
        "k": {"type": "int", "lower": 0, "upper": 10},
        "w": {"type": "float", "lower": 0.0, "upper": 10.0, "nullable": True},
    },
}


def make_table(rows: int = ROWS, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 10, rows)
    mask = rng.random(rows) < 0.1
    return pa.table({
        "g": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        "x": rng.uniform(0, 100, rows),
        "k": rng.integers(0, 11, rows),
        "w": pa.array(w, mask=mask),
    })


def plan_measurement(engine: Any, query: Any, dataset: Any) -> Any:
    """The calibrated OpenDP measurement the engine builds for a plan query."""
    return engine._measurement(query, dataset)[0]
