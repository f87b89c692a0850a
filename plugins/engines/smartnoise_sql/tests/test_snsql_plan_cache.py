"""A repeated query is parsed and checked once; refusals are never kept."""

from __future__ import annotations

from typing import Any

import pytest
from lomas_engine_smartnoise_sql import engine as engine_module
from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine
from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery

from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

META = Metadata.model_validate({"max_ids": 1, "rows": 10, "censor_dims": False, "columns": {
    "g": {"type": "string", "categories": ["a", "b"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 1.0}}})


def test_plans_are_kept_per_text_dataset_and_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = engine_module.prepare_sql

    def spy(sql: str, dataset: str) -> Any:
        calls.append(sql)
        return original(sql, dataset)

    monkeypatch.setattr(engine_module, "prepare_sql", spy)
    engine = build(SmartnoiseSQLEngine)
    ds = DatasetInfo(name="t", metadata=META)
    q = SmartnoiseSQLQuery(sql="SELECT g, COUNT(*) AS n FROM t GROUP BY g", epsilon=1.0, delta=0.0)
    first = engine._plan(q, ds)
    assert engine._plan(q, ds) == first and len(calls) == 1
    assert first[0].count("df") == 1  # the table reference rewritten, as without the cache
    other = Metadata.model_validate({**META.model_dump(), "rows": 20})
    engine._plan(q, DatasetInfo(name="t", metadata=other))
    with pytest.raises(InvalidQuery):  # another dataset's name: checked again, and refused
        engine._plan(q, DatasetInfo(name="df", metadata=META))
    assert len(calls) == 3
    bad = SmartnoiseSQLQuery(sql="SELECT x, COUNT(*) AS n FROM t GROUP BY x", epsilon=1.0, delta=0.0)
    for _ in range(2):
        with pytest.raises(InvalidQuery):
            engine._plan(bad, ds)
    assert calls.count(bad.sql) == 2
