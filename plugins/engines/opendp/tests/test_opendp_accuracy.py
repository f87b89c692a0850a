# mypy: disable-error-code="attr-defined,union-attr"
"""Accuracy on a generated dataset with known truth, within bounds derived from the noise scale.

Each check allows ``scale * ln(1 / ALPHA)`` of Laplace noise (fails with probability ~1e-9).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from lomas_engine_opendp.wire import empty_lazyframe, make_payload
from opendp_testdata import METADATA, ROWS, plan_measurement

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo

ALPHA = 1e-9
TAIL = math.log(1 / ALPHA)


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _run(engine: Any, payload: dict[str, Any], handle: DataHandle, dataset: DatasetInfo) -> Any:
    query = engine.parse(payload)
    engine.cost(query, dataset)
    return engine.run(query, handle, dataset)


def test_pipeline_count(engine: Any, dp: Any, handle: DataHandle, dataset: DatasetInfo) -> None:
    scale = 2.0
    domain = dp.vector_domain(dp.atom_domain(T=dp.i64))
    m = dp.t.make_count(domain, dp.symmetric_distance()) >> dp.m.then_laplace(scale)
    out = _run(engine, make_payload(m, column="k"), handle, dataset)
    assert abs(out["value"] - ROWS) <= scale * TAIL


def test_pipeline_sum(engine: Any, dp: Any, table: pa.Table, handle: DataHandle,
                      dataset: DatasetInfo) -> None:
    scale = 100.0
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    m = (dp.t.make_clamp(domain, dp.symmetric_distance(), (0.0, 100.0)) >> dp.t.then_sum()
         >> dp.m.then_laplace(scale))
    out = _run(engine, make_payload(m, column="x"), handle, dataset)
    truth = sum(table.column("x").to_pylist())
    assert abs(out["value"] - truth) <= scale * TAIL


def test_pipeline_mean(engine: Any, dp: Any, table: pa.Table, handle: DataHandle,
                       dataset: DatasetInfo) -> None:
    scale = 0.05
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    m = (dp.t.make_clamp(domain, dp.symmetric_distance(), (0.0, 100.0))
         >> dp.t.then_resize(size=ROWS, constant=50.0) >> dp.t.then_mean()
         >> dp.m.then_laplace(scale))
    out = _run(engine, make_payload(m, column="x"), handle, dataset)
    values = table.column("x").to_pylist()
    assert abs(out["value"] - sum(values) / len(values)) <= scale * TAIL


def test_pipeline_nullable_float_column_gets_nulls_as_nan(engine: Any, dp: Any, table: pa.Table,
                                                         handle: DataHandle,
                                                         dataset: DatasetInfo) -> None:
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=True))
    m = (dp.t.make_drop_null(domain, dp.symmetric_distance()) >> dp.t.then_count()
         >> dp.m.then_laplace(1.0))
    out = _run(engine, make_payload(m, column="w"), handle, dataset)
    present = sum(v is not None for v in table.column("w").to_pylist())
    assert abs(out["value"] - present) <= TAIL


def test_plan_grouped_len_sum_mean(engine: Any, table: pa.Table, handle: DataHandle,
                                   dataset: DatasetInfo) -> None:
    import opendp.prelude as dp

    plan = empty_lazyframe(METADATA).group_by("g").agg(
        pl.len().dp.noise(),
        pl.col("k").dp.sum((0, 10)).alias("k_sum"),
        pl.col("x").dp.mean((0.0, 100.0)).alias("x_mean"))
    payload = make_payload(plan, epsilon=3.0)
    query = engine.parse(payload)
    measurement = plan_measurement(engine, query, dataset)
    summary = dp.summarize_polars_measurement(measurement)
    scales = {(c, a): v for c, a, v in summary.select("column", "aggregate", "scale").iter_rows()}
    out = _run(engine, payload, handle, dataset)
    truth = pl.from_arrow(table).group_by("g").agg(
        pl.len().alias("len"), pl.col("k").sum().alias("k_sum"), pl.col("x").sum().alias("x_sum"))
    got = {row[0]: dict(zip(out["columns"], row, strict=True)) for row in out["rows"]}
    assert [row[0] for row in out["rows"]] == ["a", "b", "c"]  # public keys, declared order
    for g, n, k_sum, x_sum in truth.iter_rows():
        assert abs(got[g]["len"] - n) <= scales["len", "Frame Length"] * TAIL
        assert abs(got[g]["k_sum"] - k_sum) <= scales["k_sum", "Sum"] * TAIL
        # dp.mean is a noisy sum over a noisy count: bound it by the worst corners.
        sum_err = scales["x_mean", "Sum"] * TAIL
        len_err = scales["x_mean", "Length"] * TAIL
        low = (x_sum - sum_err) / (n + len_err)
        high = (x_sum + sum_err) / max(n - len_err, 1)
        assert low <= got[g]["x_mean"] <= high
