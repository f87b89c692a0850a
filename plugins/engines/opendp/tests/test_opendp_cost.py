# mypy: disable-error-code="attr-defined,union-attr"
"""The charge equals OpenDP's privacy map at d_in = max_ids, for every supported measure."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from lomas_engine_opendp.wire import empty_lazyframe, make_payload
from opendp_testdata import METADATA, plan_measurement

from lomas_core.budget import Budget
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata

MAX_IDS = 3


@pytest.fixture
def dataset3() -> DatasetInfo:
    return DatasetInfo(name="people", metadata=Metadata.model_validate({**METADATA,
                                                                        "max_ids": MAX_IDS}))


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _sum(dp: Any) -> Any:
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    return dp.t.make_clamp(domain, dp.symmetric_distance(), (0.0, 100.0)) >> dp.t.then_sum()


def _cost(engine: Any, payload: dict[str, Any], dataset: DatasetInfo) -> Budget:
    return engine.cost(engine.parse(payload), dataset)


def test_pure(engine: Any, dp: Any, dataset3: DatasetInfo) -> None:
    m = _sum(dp) >> dp.m.then_laplace(50.0)
    assert _cost(engine, make_payload(m, column="x"), dataset3) == Budget.of(m.map(MAX_IDS))


def test_approximate(engine: Any, dp: Any, dataset3: DatasetInfo) -> None:
    m = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_sum(dp) >> dp.m.then_gaussian(80.0)), 1e-7)
    eps, delta = m.map(MAX_IDS)
    cost = _cost(engine, make_payload(m, column="x"), dataset3)
    assert cost == Budget.of(eps, delta) and cost.delta > 0


def test_zcdp_needs_fixed_delta(engine: Any, dp: Any, dataset3: DatasetInfo) -> None:
    m = _sum(dp) >> dp.m.then_gaussian(80.0)
    with pytest.raises(InvalidQuery, match="fixed_delta"):
        _cost(engine, make_payload(m, column="x"), dataset3)
    expected = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(m), 1e-6).map(MAX_IDS)
    cost = _cost(engine, make_payload(m, column="x", fixed_delta=1e-6), dataset3)
    assert cost == Budget.of(*expected)
    assert cost.epsilon > 0 and cost.delta == Budget.of(0, 1e-6).delta


def test_smoothed(engine: Any, dp: Any, dataset3: DatasetInfo) -> None:
    m = dp.c.make_zCDP_to_approxDP(_sum(dp) >> dp.m.then_gaussian(80.0))
    with pytest.raises(InvalidQuery, match="fixed_delta"):
        _cost(engine, make_payload(m, column="x"), dataset3)
    cost = _cost(engine, make_payload(m, column="x", fixed_delta=1e-6), dataset3)
    assert cost == Budget.of(m.map(MAX_IDS).epsilon(1e-6), 1e-6)


def test_plan_pure_is_the_map_and_within_target(engine: Any, dataset3: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).group_by("g").agg(pl.len().dp.noise(),
                                                   pl.col("x").dp.sum((0.0, 100.0)))
    query = engine.parse(make_payload(plan, epsilon=0.7))
    cost = engine.cost(query, dataset3)
    m = plan_measurement(engine, query, dataset3)
    assert cost == Budget.of(m.map(MAX_IDS))
    assert 0.69 < cost.epsilon <= Budget.of(0.7).epsilon and cost.delta == 0


def test_plan_zcdp(engine: Any, dp: Any, dataset3: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).select(pl.len().dp.noise())
    payload = make_payload(plan, output_measure="zero_concentrated_divergence", rho=0.05)
    with pytest.raises(InvalidQuery, match="fixed_delta"):
        _cost(engine, payload, dataset3)
    query = engine.parse({**payload, "fixed_delta": 1e-6})
    m = plan_measurement(engine, query, dataset3)
    assert m.map(MAX_IDS) <= 0.05
    expected = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(m), 1e-6).map(MAX_IDS)
    assert engine.cost(query, dataset3) == Budget.of(*expected)


def test_plan_threshold_delta(engine: Any, dataset3: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).group_by("k").agg(pl.len().dp.noise())
    with pytest.raises(InvalidQuery, match="delta"):
        _cost(engine, make_payload(plan, epsilon=1.0), dataset3)
    query = engine.parse(make_payload(plan, epsilon=1.0, delta=1e-6))
    cost = engine.cost(query, dataset3)
    eps, delta = plan_measurement(engine, query, dataset3).map(MAX_IDS)
    assert cost == Budget.of(eps, delta)
    assert 0 < cost.delta <= Budget.of(0, 1e-6).delta and cost.epsilon <= 1


def test_plan_global_scale_pays_the_map(engine: Any, dataset3: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).select(pl.len().dp.noise())
    query = engine.parse(make_payload(plan, global_scale=2.0))
    assert engine.cost(query, dataset3) == Budget.of(
        plan_measurement(engine, query, dataset3).map(MAX_IDS))


def test_cost_is_deterministic_and_cached(engine: Any, dataset3: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).select(pl.col("k").dp.sum((0, 10)))
    payload = make_payload(plan, epsilon=0.3)
    assert _cost(engine, payload, dataset3) == _cost(engine, payload, dataset3)
    q = engine.parse(payload)
    assert engine._plans.measurement(q, dataset3, limit=1) is engine._plans.measurement(
        q, dataset3, limit=1)
