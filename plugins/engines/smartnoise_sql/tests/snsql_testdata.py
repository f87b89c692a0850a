"""A generated dataset with known true values, shared by the smartnoise_sql tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROWS = 10_000

METADATA: dict[str, Any] = {
    "max_ids": 1,
    "rows": ROWS,
    "row_privacy": True,
    "censor_dims": False,
    "columns": {
        "grp": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
        "age": {"type": "int", "lower": 0, "upper": 100},
        "income": {"type": "float", "lower": 0.0, "upper": 1000.0, "nullable": True},
        "flag": {"type": "boolean"},
        "score": {"type": "float"},  # no bounds: countable, not summable
        "pid": {"type": "int", "lower": 0, "upper": ROWS},
    },
}


def make_frame(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    """Deterministic rows matching :data:`METADATA` (``income`` has some nulls)."""
    rng = np.random.default_rng(seed)
    income = rng.uniform(0.0, 1000.0, rows)
    income[::50] = np.nan
    return pd.DataFrame({
        "grp": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        "age": rng.integers(0, 101, rows),
        "income": income,
        "flag": rng.integers(0, 2, rows).astype(bool),
        "score": rng.normal(0.0, 1.0, rows),
        "pid": np.arange(rows) // 2,  # two rows per person (used with row_privacy off)
    })


def make_table(rows: int = ROWS, seed: int = 7) -> pa.Table:
    return pa.Table.from_pandas(make_frame(rows, seed), preserve_index=False)
