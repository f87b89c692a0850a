"""A pipeline's column crosses OpenDP's FFI as one buffer (numbers, booleans): the vector OpenDP
holds is exactly what the former list of Python values gave, and its size is counted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from lomas_engine_opendp.pipeline import _column_values, canonical_domain, feed_pipeline

from lomas_core.data import DataHandle
from lomas_core.metadata import Metadata

META = Metadata.model_validate({"max_ids": 1, "columns": {
    "x": {"type": "float"}, "w": {"type": "float", "nullable": True},
    "k": {"type": "int"}, "b": {"type": "boolean"}, "s": {"type": "string"}}})


def _former(values: list[Any], kind: str, nan_ok: bool) -> list[Any]:
    """The list the engine used to hand over."""
    if kind == "float":
        floats = [float("nan") if v is None else float(v) for v in values]
        return floats if nan_ok else [v for v in floats if v == v]
    present = [v for v in values if v is not None]
    return {"int": lambda: [int(v) for v in present], "bool": lambda: [bool(v) for v in present],
            "str": lambda: [str(v) for v in present]}[kind]()


@pytest.mark.parametrize("column", ["x", "w", "k", "b", "s"])
def test_fed_vector_matches_the_former_list(column: str) -> None:
    import opendp.prelude as dp
    from opendp._convert import c_to_py

    dp.enable_features("contrib")
    rng = np.random.default_rng(1)
    n = 500
    x = rng.uniform(-5, 5, n)
    x[::7] = np.nan
    table = pa.table({
        "x": pa.array(x, mask=np.arange(n) % 11 == 0),
        "w": pa.array(x, mask=np.arange(n) % 13 == 0),
        "k": pa.array(rng.integers(-9, 9, n), mask=np.arange(n) % 5 == 0),
        "b": pa.array(rng.random(n) < 0.5, mask=np.arange(n) % 3 == 0),
        "s": pa.array(rng.choice(["p", "q"], n), mask=np.arange(n) % 4 == 0),
    })
    domain, feed = canonical_domain(META, column)
    handle = DataHandle("t", "v1", table)
    obj = feed_pipeline(handle, feed, domain)
    got = c_to_py(obj)
    want = _former(table.column(column).to_pylist(), feed[1], feed[2])
    assert len(got) == len(want)
    assert all(a == b or (a != a and b != b) for a, b in zip(got, want, strict=True))
    values = _column_values(handle, *feed)
    if not isinstance(values, list):  # a buffer: counted in the handle's size
        assert handle.nbytes == table.nbytes + values.nbytes
    assert feed_pipeline(handle, feed, domain) is obj
