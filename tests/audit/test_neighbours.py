"""D and D': the canary contributes max_ids rows of extreme values and a fresh identifier."""

from __future__ import annotations

import pyarrow as pa

from lomas_core.metadata import Metadata
from lomas_core.testing.privacy_audit.neighbours import CANARY_TEXT, audit_dataset, neighbours


def test_canary_rows_are_extreme_and_new() -> None:
    meta = Metadata.model_validate({"max_ids": 3, "columns": {
        "pid": {"type": "int", "private_id": True},
        "g": {"type": "string", "categories": ["a", "b", "c"]},
        "x": {"type": "float", "lower": 0.0, "upper": 100.0},
        "y": {"type": "int", "lower": -50, "upper": 10},
        "flag": {"type": "boolean"},
        "note": {"type": "string"},
    }})
    table = pa.table({"pid": [1, 2, 7], "g": ["a", "b", "a"], "x": [10.0, 20.0, 30.0],
                      "y": [0, 5, 10], "flag": [True, True, False], "note": ["p", "q", "r"]})
    d, d_prime = neighbours(meta, table)
    assert d.equals(table)
    added = d_prime.slice(3).to_pylist()
    assert len(added) == 3 and all(row == added[0] for row in added)
    assert added[0] == {"pid": 8, "g": "c", "x": 100.0, "y": -50, "flag": False, "note": CANARY_TEXT}


def test_audit_dataset_has_a_key_only_the_canary_brings() -> None:
    meta, table = audit_dataset()
    assert meta.public_keys("species") and meta.public_keys("island") is None
    assert "Anvers" not in set(table.column("island").to_pylist())
    _, d_prime = neighbours(meta, table)
    assert d_prime.num_rows == table.num_rows + meta.max_ids
    assert d_prime.column("island").to_pylist()[-1] == "Anvers"
