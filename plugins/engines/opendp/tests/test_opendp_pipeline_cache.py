"""A repeated pipeline is checked and deserialized once; its charge and noise are unchanged."""

from __future__ import annotations

from typing import Any

import opendp.prelude as dp
import pyarrow as pa
import pytest
from lomas_engine_opendp import pipeline as pipeline_module
from lomas_engine_opendp.engine import OpenDPEngine
from lomas_engine_opendp.wire import make_payload

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

META = Metadata.model_validate({"max_ids": 2, "rows": 100, "columns": {
    "x": {"type": "float", "lower": 0.0, "upper": 10.0}, "k": {"type": "int"}}})


def test_pipelines_are_kept_and_charged_as_without_the_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = pipeline_module.build_pipeline

    def spy(text: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "build_pipeline", spy)
    dp.enable_features("contrib")
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    m = (dp.t.make_clamp(vec, dp.symmetric_distance(), (0.0, 10.0)) >> dp.t.then_sum()
         >> dp.m.then_laplace(5.0))
    cached, plain = build(OpenDPEngine), build(OpenDPEngine, {"plan_cache_size": 0})
    ds = DatasetInfo(name="t", metadata=META)
    q = cached.parse(make_payload(m, column="x"))
    data = DataHandle("t", "v1", pa.table({"x": [float(i % 10) for i in range(100)],
                                          "k": list(range(100))}))
    assert cached.cost(q, ds) == plain.cost(q, ds) == cached.cost(q, ds)
    releases = {cached.run(q, data, ds)["value"] for _ in range(5)}
    assert len(releases) > 1  # fresh noise on every run
    assert calls.count(q.pipeline) == 2  # once for the cached engine, once for the uncached
    other = DatasetInfo(name="t", metadata=Metadata.model_validate(
        {**META.model_dump(), "rows": 50}))
    cached.cost(q, other)
    assert calls.count(q.pipeline) == 3
    wrong = cached.parse(make_payload(m, column="k"))  # the domain does not match: refused
    for _ in range(2):
        with pytest.raises(InvalidQuery):
            cached.cost(wrong, ds)
    assert len(calls) == 5  # other column: checked again each time
