# mypy: disable-error-code="attr-defined,union-attr"
"""Table-driven check that the charge covers what one individual really changes.

For each OpenDP constructor chain the engine accepts, D is the dataset as the server feeds it and
D' is D plus one individual contributing ``max_ids`` rows of extreme values (and D'' is D minus
``max_ids`` rows). The exact aggregate is computed on both and its true change is compared with
what the charge allows:

* pipelines: the transformation (everything before the noise) is invoked on D and D'; with
  Laplace noise of scale ``s`` the true loss is ``|T(D) - T(D')|_1 / s``, which must not exceed
  the charged epsilon; with Gaussian noise ``|T(D) - T(D')|_2^2 / (2 s^2)`` must not exceed rho.
* plans: run through the engine at a tiny global scale (so each release is the exact aggregate
  up to noise of known scale, from ``dp.summarize_polars_measurement``); the summed normalized
  change ``sum_i |out_i(D) - out_i(D')| / scale_i`` must not exceed the charged epsilon plus the
  noise slack.

Exact and fast (no sampling of many releases): a charge computed on the wrong domain, distance,
bound or ``d_in`` shows up as a change many times the charge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from lomas_engine_opendp.pipeline import _column_values, canonical_domain
from lomas_engine_opendp.wire import empty_lazyframe, make_payload
from opendp_testdata import METADATA, ROWS, make_table, plan_measurement

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata

MAX_IDS = 3
TAIL = math.log(1e9)
EXTREME: dict[str, Any] = {"g": "c", "x": 1e12, "k": 10**12, "w": 1e12}


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@pytest.fixture(scope="module")
def ds3() -> DatasetInfo:
    # rows leaves room for the added individual (the plan domain promises at most `rows` rows)
    return DatasetInfo(name="people", metadata=Metadata.model_validate(
        {**METADATA, "max_ids": MAX_IDS, "rows": ROWS + 10}))


def _neighbours(table: pa.Table) -> dict[str, pa.Table]:
    added = pa.table({name: [EXTREME[name]] * MAX_IDS for name in table.column_names},
                     schema=table.schema)
    return {"added": pa.concat_tables([table, added]), "removed": table.slice(MAX_IDS)}


def _diff(a: Any, b: Any, norm: int) -> float:
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    if norm == 1:
        return float(sum(abs(float(x) - float(y)) for x, y in zip(a, b, strict=True)))
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


# (column, transformation on the server's domain, noise, scale)
Case = tuple[str, Callable[[Any, Any], Any], str, float]


def _sym(dp: Any) -> Any:
    return dp.symmetric_distance()


PIPELINES: dict[str, Case] = {
    "count i64": ("k", lambda dp, d: dp.t.make_count(d, _sym(dp)), "laplace", 1.0),
    "count str": ("g", lambda dp, d: dp.t.make_count(d, _sym(dp)), "laplace", 1.0),
    "count distinct": ("k", lambda dp, d: dp.t.make_count_distinct(d, _sym(dp)), "laplace", 1.0),
    "clamp sum f64": ("x", lambda dp, d: dp.t.make_clamp(d, _sym(dp), (0.0, 100.0))
                      >> dp.t.then_sum(), "laplace", 100.0),
    "clamp sum i64": ("k", lambda dp, d: dp.t.make_clamp(d, _sym(dp), (0, 10))
                      >> dp.t.then_sum(), "laplace", 10.0),
    "clamp sum i64 gaussian": ("k", lambda dp, d: dp.t.make_clamp(d, _sym(dp), (0, 10))
                               >> dp.t.then_sum(), "gaussian", 10.0),
    "resize mean": ("x", lambda dp, d: dp.t.make_clamp(d, _sym(dp), (0.0, 100.0))
                    >> dp.t.then_resize(size=ROWS, constant=50.0) >> dp.t.then_mean(),
                    "laplace", 0.05),
    # make_variance and vector outputs (count_by_categories, L1 metrics) cannot be serialized by
    # OpenDP 0.14's JSON encoder, so they cannot be sent as pipelines at all.
    "is_equal, cast, sum": ("g", lambda dp, d: dp.t.make_is_equal(d, _sym(dp), "a")
                            >> dp.t.then_cast_default(dp.i64) >> dp.t.then_clamp((0, 1))
                            >> dp.t.then_sum(), "laplace", 1.0),
    "resize sized int sum": ("k", lambda dp, d: dp.t.make_clamp(d, _sym(dp), (0, 10))
                             >> dp.t.then_resize(size=ROWS, constant=5)
                             >> dp.t.make_sized_bounded_int_checked_sum(ROWS, (0, 10), T=dp.i64),
                             "laplace", 10.0),
    "nullable: drop null, count": ("w", lambda dp, d: dp.t.make_drop_null(d, _sym(dp))
                                   >> dp.t.then_count(), "laplace", 1.0),
    "nullable: impute, clamp, sum": ("w", lambda dp, d: dp.t.make_impute_constant(d, _sym(dp), 0.0)
                                     >> dp.t.then_clamp((0.0, 10.0)) >> dp.t.then_sum(),
                                     "laplace", 10.0),
}


@pytest.mark.parametrize("case", sorted(PIPELINES))
def test_pipeline_charge_covers_the_true_change(engine: Any, dp: Any, ds3: DatasetInfo,
                                                case: str) -> None:
    column, build, noise, scale = PIPELINES[case]
    domain, (_, kind, nan_ok) = canonical_domain(ds3.metadata, column)
    transformation = build(dp, domain)
    mechanism = dp.m.then_laplace(scale) if noise == "laplace" else dp.m.then_gaussian(scale)
    measurement = transformation >> mechanism
    fixed_delta = 1e-7 if noise == "gaussian" else None
    charge = engine.cost(engine.parse(make_payload(measurement, column=column,
                                                   fixed_delta=fixed_delta)), ds3)
    assert charge.epsilon > 0
    table = make_table()

    def exact(t: pa.Table) -> Any:
        values = _column_values(DataHandle("people", "x", t), column, kind, nan_ok)
        return transformation(values)

    base = exact(table)
    for name, other in _neighbours(table).items():
        if noise == "laplace":
            loss = _diff(base, exact(other), 1) / scale
            assert loss <= float(charge.epsilon) * (1 + 1e-9), (case, name, loss, charge)
        else:
            rho = measurement.map(MAX_IDS)
            true_rho = _diff(base, exact(other), 2) ** 2 / (2 * scale**2)
            assert true_rho <= rho * (1 + 1e-9), (case, name, true_rho, rho)


PLANS: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "len": lambda lf: lf.select(pl.len().dp.noise()),
    "sum f64": lambda lf: lf.select(pl.col("x").dp.sum((0.0, 100.0))),
    "sum i64": lambda lf: lf.select(pl.col("k").dp.sum((0, 10))),
    "nullable fill_null sum": lambda lf: lf.select(pl.col("w").fill_null(0.0).dp.sum((0.0, 10.0))),
    "public keys: len, sums": lambda lf: lf.group_by("g").agg(
        pl.len().dp.noise(), pl.col("k").dp.sum((0, 10)), pl.col("x").dp.sum((0.0, 100.0))),
    "filter then len": lambda lf: lf.filter(pl.col("k") > 5).select(pl.len().dp.noise()),
}
GLOBAL_SCALE = 1e-3


@pytest.mark.parametrize("case", sorted(PLANS))
def test_plan_charge_covers_the_true_change(engine: Any, dp: Any, ds3: DatasetInfo,
                                            case: str) -> None:
    plan = PLANS[case](empty_lazyframe(METADATA))
    query = engine.parse(make_payload(plan, global_scale=GLOBAL_SCALE))
    charge = engine.cost(query, ds3)
    summary = dp.summarize_polars_measurement(plan_measurement(engine, query, ds3))
    scales = dict(summary.select("column", "scale").iter_rows())
    table = make_table()

    def release(t: pa.Table, version: str) -> dict[str, Any]:
        out = engine.run(query, DataHandle("people", version, t), ds3)
        return {"columns": out["columns"], "rows": out["rows"]}

    base = release(table, "base")
    for name, other in _neighbours(table).items():
        got = release(other, name)
        assert got["columns"] == base["columns"] and len(got["rows"]) == len(base["rows"])
        loss, entries = 0.0, 0
        for row_a, row_b in zip(base["rows"], got["rows"], strict=True):
            for col, a, b in zip(base["columns"], row_a, row_b, strict=True):
                if col in scales:
                    loss += abs(float(a) - float(b)) / float(scales[col])
                    entries += 1
                else:
                    assert a == b  # keys: public, in declared order
        slack = 2 * TAIL * entries  # noise on both releases, in units of its scale
        assert loss <= float(charge.epsilon) + slack, (case, name, loss, charge)
