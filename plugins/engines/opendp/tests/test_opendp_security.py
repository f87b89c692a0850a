# mypy: disable-error-code="attr-defined,union-attr"
"""User pipelines and plans are data, never code: hostile payloads are refused before OpenDP or
polars parse them (engine level; the HTTP versions are in test_opendp_http.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lomas_engine_opendp.pipeline_check import check_pipeline
from lomas_engine_opendp.wire import empty_lazyframe, make_payload, serialize_plan
from opendp_testdata import METADATA

from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _refused(engine: Any, payload: dict[str, Any], dataset: DatasetInfo, match: str = "") -> None:
    with pytest.raises(InvalidQuery, match=match):
        engine.cost(engine.parse(payload), dataset)


def _call(module: str, function: str, **kwargs: Any) -> dict[str, Any]:
    return {"__function__": function, "__module__": module, "__kwargs__": kwargs,
            "__version__": "0.14.2"}


def _count_pipeline(dp: Any) -> dict[str, Any]:
    m = dp.t.make_split_lines() >> dp.t.then_count() >> dp.m.then_laplace(1.0)
    return dict(json.loads(dp.serialize(m)))


@pytest.mark.parametrize("module,function", [
    ("os", "system"), ("builtins", "eval"), ("mod", "deserialize"),
    ("_lib", "import_optional_dependency"), ("transformations", "import_optional_dependency"),
    ("core", "measurement_invoke"), ("combinators", "make_sequential_composition"),
    ("../os", "system"), ("measurements", "__import__"),
])
def test_pipeline_naming_other_functions(engine: Any, dataset: DatasetInfo, tmp_path: Path,
                                         module: str, function: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"pipeline": json.dumps(_call(module, function, command=f"touch {marker}"))}
    _refused(engine, payload, dataset)
    assert not marker.exists()


def test_hostile_call_nested_in_a_real_pipeline(engine: Any, dp: Any, dataset: DatasetInfo,
                                                tmp_path: Path) -> None:
    tree = _count_pipeline(dp)
    tree["__kwargs__"]["measurement1"]["__kwargs__"]["scale"] = _call(
        "os", "system", command=f"touch {tmp_path / 'pwned'}")
    _refused(engine, {"pipeline": json.dumps(tree)}, dataset, "outside OpenDP")
    assert not (tmp_path / "pwned").exists()


def test_pipeline_polars_blobs_refused(engine: Any, dp: Any, dataset: DatasetInfo) -> None:
    tree = _count_pipeline(dp)
    tree["__kwargs__"]["measurement1"]["__kwargs__"]["scale"] = {"__lazyframe__": "AAAA",
                                                                 "__version__": "0.14.2"}
    _refused(engine, {"pipeline": json.dumps(tree)}, dataset, "polars")


def test_honest_but_curious_constructors_refused_by_default(dp: Any) -> None:
    tree = _call("transformations", "make_identity", domain=None, metric=None)
    with pytest.raises(InvalidQuery, match="honest-but-curious"):
        check_pipeline(tree)
    check_pipeline(tree, honest_but_curious=True)


def test_pipeline_wrong_metric_and_unknown_column(engine: Any, dp: Any,
                                                  dataset: DatasetInfo) -> None:
    lap = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), 1.0)
    _refused(engine, make_payload(lap, column="x"), dataset, "input domain")
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    idd = (dp.t.make_clamp(vec, dp.insert_delete_distance(), (0.0, 1.0)) >> dp.t.then_sum()
           >> dp.m.then_laplace(1.0))
    _refused(engine, make_payload(idd, column="x"), dataset, "metric")
    vec = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    count = dp.t.make_count(vec, dp.symmetric_distance()) >> dp.m.then_laplace(1.0)
    _refused(engine, make_payload(count, column="salary"), dataset, "not in the dataset")
    _refused(engine, make_payload(count), dataset, "column")


def test_plan_with_python_udfs(engine: Any, dataset: DatasetInfo) -> None:
    lf = empty_lazyframe(METADATA)
    for plan in (lf.select(pl.col("x").map_elements(lambda v: v, return_dtype=pl.Float64)),
                 lf.select(pl.col("x").map_batches(lambda s: s))):
        _refused(engine, {"plan": serialize_plan(plan), "epsilon": 1.0}, dataset, "not allowed")


def test_plan_scanning_a_file(engine: Any, dataset: DatasetInfo, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n")
    plan = pl.scan_csv(secret).select(pl.len().dp.noise())
    _refused(engine, {"plan": serialize_plan(plan), "epsilon": 1.0}, dataset, "not allowed")


def test_plan_with_a_second_source(engine: Any, dataset: DatasetInfo) -> None:
    lf = empty_lazyframe(METADATA)
    plan = lf.join(pl.LazyFrame({"g": ["a"]}), on="g").select(pl.len().dp.noise())
    _refused(engine, {"plan": serialize_plan(plan), "epsilon": 1.0}, dataset, "not allowed")


def test_plan_on_a_column_not_in_the_metadata(engine: Any, dataset: DatasetInfo) -> None:
    lf = pl.LazyFrame(schema={**dict(empty_lazyframe(METADATA).collect_schema()), "salary": pl.Float64})
    plan = lf.select(pl.col("salary").dp.sum((0.0, 1.0)))
    _refused(engine, {"plan": serialize_plan(plan), "epsilon": 1.0}, dataset, "salary")


def test_plan_foreign_plugin_refused_and_lib_path_rewritten(engine: Any,
                                                            dataset: DatasetInfo) -> None:
    text = serialize_plan(empty_lazyframe(METADATA).select(pl.len().dp.noise()))
    _refused(engine, {"plan": text.replace('"noise"', '"opendp_core__measurement_invoke"'),
                      "epsilon": 1.0}, dataset, "plugin")
    tree = json.loads(text)
    tree["Select"]["expr"][0]["Function"]["function"]["FfiPlugin"]["lib"] = "/tmp/evil.so"
    engine.cost(engine.parse({"plan": json.dumps(tree), "epsilon": 1.0}), dataset)


def test_plan_literal_series_are_checked(engine: Any, dataset: DatasetInfo) -> None:
    plan = empty_lazyframe(METADATA).select(pl.col("x").dp.quantile(0.5, [10.0, 50.0, 90.0]))
    text = serialize_plan(plan)
    engine.cost(engine.parse({"plan": text, "epsilon": 1.0}), dataset)
    tree = json.loads(text)
    tree["Select"]["expr"][0]["Function"]["input"][2]["Literal"]["Series"] = list(b"\x80\x04junk")
    _refused(engine, {"plan": json.dumps(tree), "epsilon": 1.0}, dataset, "literal")


def test_oversized_and_deep_payloads(engine: Any, dataset: DatasetInfo) -> None:
    with pytest.raises(InvalidQuery, match="larger"):
        engine.parse({"plan": "[" * 600_000, "epsilon": 1.0})
    _refused(engine, {"plan": "[" * 100_000 + "]" * 100_000, "epsilon": 1.0}, dataset)
    _refused(engine, {"pipeline": "[" * 100_000 + "]" * 100_000}, dataset)


def test_payload_shape_errors(engine: Any) -> None:
    for bad in ({"pipeline": "{}", "plan": "{}"}, {"plan": "{}"},
                {"pipeline": "{}", "epsilon": 1.0}, {"plan": "{}", "epsilon": -1}):
        with pytest.raises(InvalidQuery):
            engine.parse(bad)


def test_plan_after_collect_schema(engine: Any, dataset: DatasetInfo) -> None:
    import warnings

    lf = empty_lazyframe(METADATA)
    lf.collect_schema()
    plan = lf.select(pl.len().dp.noise())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = plan.serialize(format="json")  # with polars' cached-schema ("IR") wrapper
    assert '"IR"' in raw
    for text in (raw, serialize_plan(plan)):
        engine.cost(engine.parse({"plan": text, "epsilon": 1.0}), dataset)
