# mypy: disable-error-code="attr-defined,union-attr"
"""Regressions for "the server owns the input domain, the distance, the keys and the contribution
bound": one test (or a few) per case of the issue, each failing on the engine before the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from lomas_engine_opendp.accounting import charge_of
from lomas_engine_opendp.errors import opendp_reason
from lomas_engine_opendp.wire import empty_lazyframe, make_payload, serialize_plan
from opendp_testdata import METADATA, ROWS

from lomas_core.budget import Budget
from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery, QueryFailed
from lomas_core.metadata import Metadata
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.plugins import build


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _cost(engine: Any, payload: dict[str, Any], dataset: DatasetInfo) -> Budget:
    return engine.cost(engine.parse(payload), dataset)


def _refused(engine: Any, payload: dict[str, Any], dataset: DatasetInfo, match: str) -> None:
    with pytest.raises(InvalidQuery, match=match):
        _cost(engine, payload, dataset)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    from opendp_testdata import make_table

    h = LomasHarness(tmp_path_factory.mktemp("opendp-regressions"), engines={"opendp": {}})
    h.add_dataset("people", make_table(), METADATA)
    yield h
    h.close()


def _http(harness: LomasHarness, user: str, route: str, payload: dict[str, Any],
          **extra: Any) -> Any:
    token = harness.add_user(user, grant={"people": (10.0, 1e-4)})
    with harness.client(token) as c:
        return c.post(f"/v1/datasets/people/{route}",
                      json={"engine": "opendp", "query": payload, **extra})


# -- 1. sized input domains: a map of 0 and exact answers --------------------------------------------
def test_sized_sum_is_refused_not_free(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    m = dp.t.make_sized_bounded_int_checked_sum(201, (0, 10)) >> dp.m.then_laplace(1.0)
    assert m.map(1) == 0  # what the old engine charged
    _refused(engine, make_payload(m, column="k"), dataset, "input domain")


def test_mean_on_a_sized_domain_is_refused(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    sized = dp.vector_domain(dp.atom_domain(bounds=(0.0, 100.0), nan=False), size=ROWS)
    m = dp.t.make_mean(sized, dp.symmetric_distance()) >> dp.m.then_laplace(1e-9)
    _refused(engine, make_payload(m, column="x"), dataset, "input domain")


def test_sized_pipeline_through_http_is_422_and_free(harness: LomasHarness, dp: Any) -> None:
    m = dp.t.make_sized_bounded_int_checked_sum(201, (0, 10)) >> dp.m.then_laplace(1.0)
    for route in ("cost", "query"):
        r = _http(harness, f"sized_{route}", route, make_payload(m, column="k"))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_query"
        assert "VectorDomain(AtomDomain(T=i64))" in r.json()["error"]["message"]  # the expected
    assert harness.grant("sized_query", "people").spent == Budget.of(0, 0)


def test_a_zero_privacy_map_is_refused(dp: Any) -> None:
    m = dp.t.make_sized_bounded_int_checked_sum(201, (0, 10)) >> dp.m.then_laplace(1.0)
    with pytest.raises(InvalidQuery, match="map is 0"):
        charge_of(m, 1, None)


# -- 2. bounds claimed by the researcher ------------------------------------------------------------
def test_claimed_bounds_are_refused(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    claimed = dp.vector_domain(dp.atom_domain(bounds=(0.0, 1.0), nan=False))
    m = dp.t.make_sum(claimed, dp.symmetric_distance()) >> dp.m.then_laplace(1.0)
    _refused(engine, make_payload(m, column="x"), dataset, "AtomDomain")
    ints = dp.vector_domain(dp.atom_domain(bounds=(0, 1)))
    m = dp.t.make_sum(ints, dp.symmetric_distance()) >> dp.m.then_laplace(1.0)
    _refused(engine, make_payload(m, column="k"), dataset, "input domain")


def test_other_input_metrics_are_refused(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    vec = dp.vector_domain(dp.atom_domain(T=dp.i64))
    m = (dp.t.make_clamp(vec, dp.insert_delete_distance(), (0, 10)) >> dp.t.then_sum()
         >> dp.m.then_laplace(1.0))
    _refused(engine, make_payload(m, column="k"), dataset, "SymmetricDistance")


# -- 3. raw-text inputs -----------------------------------------------------------------------------
def test_text_inputs_are_refused(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    lines = dp.t.make_split_lines() >> dp.t.then_count() >> dp.m.then_laplace(1.0)
    _refused(engine, make_payload(lines), dataset, "raw-text")
    frame = (dp.t.make_split_dataframe(",", ["g", "x", "k", "w"])
             >> dp.t.make_select_column("g", str) >> dp.t.then_count() >> dp.m.then_laplace(1.0))
    _refused(engine, make_payload(frame), dataset, "raw-text")
    rows = (dp.t.make_count(dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance())
            >> dp.m.then_laplace(1.0))
    _refused(engine, make_payload(rows), dataset, "column")


# -- 4. public keys only when declared --------------------------------------------------------------
def _meta(**changes: Any) -> DatasetInfo:
    meta = json.loads(json.dumps(METADATA))
    for key, value in changes.items():
        if key == "g":
            meta["columns"]["g"].update(value)
        else:
            meta[key] = value
    return DatasetInfo(name="people", metadata=Metadata.model_validate(meta))


def test_declared_categories_are_not_public_keys(engine: Any, dataset: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).group_by("g").agg(pl.len().dp.noise())
    private = _meta(g={"public_keys": False})
    _refused(engine, make_payload(plan, epsilon=1.0), private, "delta")
    _cost(engine, make_payload(plan, epsilon=1.0, delta=1e-6), private)  # thresholded
    no_threshold = _meta(g={"public_keys": False}, censor_dims=False)
    _refused(engine, make_payload(plan, epsilon=1.0), no_threshold, "public")


def _skewed_handle() -> DataHandle:
    """'c' is absent, and a value outside the categories is frequent."""
    rng = np.random.default_rng(3)
    g = ["a"] * 1000 + ["b"] * 1000 + ["zz"] * 900
    return DataHandle("people", "skewed", pa.table({
        "g": g, "x": rng.uniform(0, 100, len(g)), "k": rng.integers(0, 11, len(g)),
        "w": rng.uniform(0, 10, len(g))}))


def test_public_keys_answer_holds_exactly_the_declared_keys(engine: Any,
                                                            dataset: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).group_by("g").agg(pl.len().dp.noise())
    query = engine.parse(make_payload(plan, epsilon=1.0))
    engine.cost(query, dataset)
    out = engine.run(query, _skewed_handle(), dataset)
    assert [row[0] for row in out["rows"]] == ["a", "b", "c"]  # absent 'c' too; never 'zz'


def test_thresholded_answer_never_holds_an_undeclared_key(engine: Any) -> None:
    private = _meta(g={"public_keys": False})
    plan = empty_lazyframe(METADATA).group_by("g").agg(pl.len().dp.noise())
    query = engine.parse(make_payload(plan, epsilon=1.0, delta=1e-6))
    engine.cost(query, private)
    out = engine.run(query, _skewed_handle(), private)
    assert {row[0] for row in out["rows"]} <= {"a", "b", "c"}


def test_release_check_withholds_undeclared_or_missing_keys() -> None:
    from lomas_engine_opendp.plans import BuiltPlan, GroupSpec

    spec = GroupSpec(("g",), {"g": frozenset({"a", "b"})}, (("a",), ("b",)))
    built = BuiltPlan(measurement=None, groups=(spec,))
    assert built.released(pl.DataFrame({"g": ["b", "a"], "len": [1, 2]}))["g"].to_list() == \
        ["a", "b"]
    for bad in (["a", "zz"], ["a"], ["a", "b", "b"]):
        with pytest.raises(QueryFailed):
            built.released(pl.DataFrame({"g": bad, "len": list(range(len(bad)))}))


# -- 5. max_ids: one person moves a count by at most max_ids ----------------------------------------
def test_one_person_moves_a_count_by_at_most_max_ids(tmp_path_factory: pytest.TempPathFactory,
                                                      dp: Any) -> None:
    meta = {"max_ids": 1, "rows": 400, "row_privacy": False, "columns": {
        "pid": {"type": "int", "private_id": True}, "v": {"type": "int", "lower": 0, "upper": 9}}}
    others = list(range(1, 201))
    with LomasHarness(tmp_path_factory.mktemp("opendp-max-ids"), engines={"opendp": {}}) as h:
        h.add_dataset("with", pa.table({"pid": [0] * 10 + others, "v": [1] * 210}), meta)
        h.add_dataset("without", pa.table({"pid": others, "v": [1] * 200}), meta)
        token = h.add_user("m", grant={"with": (1e6, 0.5), "without": (1e6, 0.5)})
        count = (dp.t.make_count(dp.vector_domain(dp.atom_domain(T=dp.i64)),
                                 dp.symmetric_distance()) >> dp.m.then_laplace(1e-3))
        plan = empty_lazyframe(meta).select(pl.len().dp.noise())
        answers = []
        with h.client(token) as c:
            for name in ("with", "without"):
                got = []
                for payload in (make_payload(count, column="v"),
                                make_payload(plan, global_scale=1e-3)):
                    r = c.post(f"/v1/datasets/{name}/query",
                               json={"engine": "opendp", "query": payload})
                    assert r.status_code == 200, r.text
                    result = r.json()["result"]
                    got.append(result["value"] if "value" in result else result["rows"][0][0])
                answers.append(got)
    for with_person, without in zip(*answers, strict=True):
        assert abs(with_person - without) <= meta["max_ids"]


# -- 6. bounded work, dummy runs included -----------------------------------------------------------
def test_huge_resize_refused_at_cost_time(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    m = (dp.t.make_clamp(vec, dp.symmetric_distance(), (0.0, 100.0))
         >> dp.t.then_resize(size=10**9, constant=0.0) >> dp.t.then_mean() >> dp.m.then_laplace(1.0))
    _refused(engine, make_payload(m, column="x"), dataset, "resize's size")


def test_large_resize_refused_on_dummy_runs_too(harness: LomasHarness, dp: Any) -> None:
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    # 10**7 (not 10**9): the engine before the fix would really allocate it.
    m = (dp.t.make_clamp(vec, dp.symmetric_distance(), (0.0, 100.0))
         >> dp.t.then_resize(size=10**7, constant=0.0) >> dp.t.then_mean() >> dp.m.then_laplace(1.0))
    r = _http(harness, "resize", "query", make_payload(m, column="x"), dummy={"rows": 100})
    assert r.status_code == 422, r.text
    assert "larger than this server allows" in r.json()["error"]["message"]
    assert harness.grant("resize", "people").spent == Budget.of(0, 0)


def test_sizes_within_the_limit_are_accepted(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    m = (dp.t.make_clamp(vec, dp.symmetric_distance(), (0.0, 100.0))
         >> dp.t.then_resize(size=ROWS * 4, constant=0.0) >> dp.t.then_mean()
         >> dp.m.then_laplace(1.0))
    assert _cost(engine, make_payload(m, column="x"), dataset).epsilon > 0
    unknown = _meta(rows=None)  # absolute cap when rows is unknown (default 1,000,000)
    _cost(engine, make_payload(m, column="x"), unknown)


def test_other_sizes_are_bounded(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    count = (dp.t.make_count(dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance())
             >> dp.m.then_laplace(1.0))
    tree = json.loads(dp.serialize(count))
    tree["__kwargs__"]["transformation0"] = {  # a tree of 10**8 leaves in the middle
        "__function__": "make_b_ary_tree", "__module__": "transformations",
        "__kwargs__": {"leaf_count": 10**8, "branching_factor": 2}}
    _refused(engine, {"pipeline": json.dumps(tree), "column": "k"}, dataset, "leaf_count")
    tree["__kwargs__"]["transformation0"] = {  # 15,000 categories
        "__function__": "make_count_by_categories", "__module__": "transformations",
        "__kwargs__": {"categories": list(range(ROWS * 5))}}
    _refused(engine, {"pipeline": json.dumps(tree), "column": "k"}, dataset, "list")
    lf = empty_lazyframe(METADATA)
    _refused(engine, make_payload(lf.select(pl.len().dp.noise()).head(10**9), epsilon=1.0),
             dataset, "slice")
    quantile = lf.select(pl.col("x").dp.quantile(0.5, [float(i) for i in range(ROWS * 5)]))
    _refused(engine, {"plan": serialize_plan(quantile), "epsilon": 1.0}, dataset, "literal")
    from lomas_engine_opendp.engine import OpenDPEngine

    strict = build(OpenDPEngine, {"max_size_factor": 1})  # 3 public keys > 2 rows x 1
    _refused(strict, make_payload(lf.group_by("g").agg(pl.len().dp.noise()), epsilon=1.0),
             _meta(rows=2), "public key set")


# -- 7. no server paths in errors -------------------------------------------------------------------
def test_library_errors_carry_no_server_paths(harness: LomasHarness) -> None:
    plan = empty_lazyframe(METADATA).with_columns(pl.len().dp.noise())  # OpenDP echoes the plugin path
    r = _http(harness, "paths", "cost", make_payload(plan, epsilon=1.0))
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "not recognized" in message
    assert ".so" not in message and "site-packages" not in message and "/" not in message.replace(
        "<path>", "")


def test_opendp_reason_scrubs_paths() -> None:
    exc = RuntimeError('failed: lib "/srv/venv/lib/opendp.abi3.so" (C:\\lomas\\x.dll) ~/.cache/y')
    reason = opendp_reason(exc)
    assert "srv" not in reason and "lomas" not in reason and ".cache" not in reason
    assert opendp_reason(RuntimeError("bounds 1/2 and 3/4")) == "bounds 1/2 and 3/4"


# -- every column type is fed as a member of its server-built domain --------------------------------
def test_every_column_type_feeds_its_domain(engine: Any, dp: Any) -> None:
    import datetime

    from lomas_engine_opendp.wire import input_domain

    meta = {"max_ids": 1, "rows": 10, "columns": {
        "i": {"type": "int", "nullable": True}, "f": {"type": "float"},
        "fn": {"type": "float", "nullable": True}, "s": {"type": "string"},
        "b": {"type": "boolean"}, "t": {"type": "datetime"}}}
    info = DatasetInfo(name="types", metadata=Metadata.model_validate(meta))
    day = datetime.datetime(2024, 1, 1)
    handle = DataHandle("types", "v1", pa.table({
        "i": [1, None, 3, 4], "f": [1.0, 2.0, float("nan"), 4.0], "fn": [1.0, None, 3.0, 4.0],
        "s": ["a", "b", None, "d"], "b": [True, False, True, None], "t": [day, day, None, day]}))
    present = {"i": 3, "f": 3, "fn": 4, "s": 3, "b": 3, "t": 3}  # fn: the null arrives as NaN
    for column, expected in present.items():
        m = (dp.t.make_count(input_domain(meta, column), dp.symmetric_distance())
             >> dp.m.then_laplace(1e-6))
        query = engine.parse(make_payload(m, column=column))
        engine.cost(query, info)
        assert engine.run(query, handle, info)["value"] == expected, column


def test_real_data_beyond_the_declared_rows_is_not_released(engine: Any, table: pa.Table) -> None:
    small = _meta(rows=ROWS - 1)  # the plan domain promises at most `rows` rows
    query = engine.parse(make_payload(empty_lazyframe(METADATA).select(pl.len().dp.noise()),
                                      epsilon=1.0))
    engine.cost(query, small)
    with pytest.raises(RuntimeError, match="more rows"):
        engine.run(query, DataHandle("people", "big", table), small)
    dummy = DataHandle("people", "dummy", table, dummy=True)  # a large dummy run still works
    assert engine.run(query, dummy, small)["columns"] == ["len"]
