# mypy: disable-error-code="attr-defined,union-attr"
"""The shared engine contract, run on the opendp engine."""

from __future__ import annotations

from typing import Any

import pytest

from lomas_core.testing.engine_contract import CONTRACT_METADATA, EngineContract


def _plan_payloads() -> list[dict[str, Any]]:
    import polars as pl
    from lomas_engine_opendp.wire import empty_lazyframe, make_payload

    lf = empty_lazyframe(CONTRACT_METADATA)
    return [
        make_payload(lf.select(pl.len().dp.noise()), epsilon=1.0),
        make_payload(lf.group_by("group").agg(pl.len().dp.noise(), pl.col("age").dp.sum((0, 100))),
                     epsilon=1.0, delta=1e-6),
    ]


class TestOpenDPContract(EngineContract):
    engine_name = "opendp"
    heavy_modules = ("opendp", "polars")

    @pytest.fixture
    def valid_payloads(self) -> list[dict[str, Any]]:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        domain = dp.vector_domain(dp.atom_domain(T=dp.i64))
        count = dp.t.make_count(domain, dp.symmetric_distance()) >> dp.m.then_laplace(1.0)
        return [{"pipeline": dp.serialize(count), "column": "age"}, *_plan_payloads()]

    @pytest.fixture
    def invalid_payloads(self) -> list[dict[str, Any]]:
        return [
            {"pipeline": '{"__function__": "system", "__module__": "os", "__kwargs__": {}}'},
            {"plan": "{}", "epsilon": 1.0},
            {"plan": '{"Select": 1}', "epsilon": 1.0},
        ]
