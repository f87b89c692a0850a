"""Decoding of table/value results and the OpenDP payload encoding."""

from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd
import pytest
from lomas_client.results import QueryResult, decode_result, table_to_dataframe

TABLE = {"type": "table",
         "columns": ["species", "n", "mass", "ok", "when", "sparse"],
         "dtypes": ["string", "int", "float", "boolean", "datetime", "int"],
         "rows": [["Adelie", 3, 3.5, True, "2024-01-02T00:00:00", None],
                  ["Gentoo", 4, None, False, None, 7]]}


def test_table_gets_metadata_dtypes() -> None:
    frame = table_to_dataframe(TABLE)
    assert list(frame.columns) == TABLE["columns"]
    assert frame["species"].dtype == "string"
    assert frame["n"].dtype == "int64"
    assert frame["mass"].dtype == "float64" and pd.isna(frame.loc[1, "mass"])
    assert frame["ok"].dtype == bool
    assert str(frame["when"].dtype).startswith("datetime64") and pd.isna(frame.loc[1, "when"])
    assert frame["sparse"].dtype == "Int64" and frame.loc[1, "sparse"] == 7


def test_empty_table_and_values() -> None:
    empty = table_to_dataframe({"type": "table", "columns": ["a"], "dtypes": ["int"], "rows": []})
    assert list(empty.columns) == ["a"] and len(empty) == 0
    assert decode_result({"type": "value", "value": [1.5, 2.0]}) == [1.5, 2.0]
    assert decode_result(None) is None


def test_int_column_with_float_values_falls_back_to_float() -> None:
    frame = table_to_dataframe({"type": "table", "columns": ["s"], "dtypes": ["int"],
                                "rows": [[1.5], [2.0]]})
    assert frame["s"].dtype == "float64"


def test_dummy_query_result_shape() -> None:
    res = QueryResult.from_response({"query_id": None, "engine": "opendp", "dummy": True,
                                     "result": {"type": "value", "value": 3.0}, "epsilon": 0,
                                     "delta": 0, "remaining": None})
    assert (res.result, res.epsilon, res.delta, res.remaining, res.query_id, res.dummy) == \
        (3.0, 0.0, 0.0, None, None, True)


def test_import_is_light() -> None:
    code = ("import sys, lomas_client; heavy = [m for m in ('polars', 'opendp', 'fastapi', "
            "'uvicorn', 'pymongo', 's3fs', 'lomas_core') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_opendp_payloads() -> None:
    dp = pytest.importorskip("opendp.prelude")
    pl = pytest.importorskip("polars")
    from lomas_client import opendp_wire

    dp.enable_features("contrib")
    meas = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), 1.0)
    payload = opendp_wire.make_payload(meas, fixed_delta=None, column="x")
    assert dp.deserialize(payload["pipeline"]).map(1.0) == meas.map(1.0)
    assert payload["column"] == "x" and "fixed_delta" not in payload

    metadata = {"columns": {"a": {"type": "float", "lower": 0, "upper": 10},
                            "b": {"type": "string"}, "c": {"type": "int"},
                            "t": {"type": "datetime"}}}
    lf = opendp_wire.empty_lazyframe(metadata)
    assert lf.collect_schema() == pl.Schema({"a": pl.Float64, "b": pl.String, "c": pl.Int64})
    plan = lf.select(dp.len(), pl.col("a").fill_null(0.0).dp.sum((0.0, 10.0)))
    payload = opendp_wire.make_payload(plan, epsilon=1.0, fixed_delta=1e-6)
    assert payload["plan_format"] == "polars-json" and payload["epsilon"] == 1.0
    assert payload["fixed_delta"] == 1e-6
    # collect_schema() above made polars wrap the source in a cached-IR node: it is unwrapped.
    assert '"IR"' not in payload["plan"] and '"DataFrameScan"' in payload["plan"]
    rebuilt = pl.LazyFrame.deserialize(io.StringIO(payload["plan"]), format="json")
    assert rebuilt.collect_schema().names()[1:] == ["a"]

    assert opendp_wire.make_payload({"plan": "{}"}, epsilon=2.0) == {"plan": "{}", "epsilon": 2.0}
    with pytest.raises(TypeError, match="Measurement or a polars LazyFrame"):
        opendp_wire.make_payload(42)


def test_client_wire_matches_the_engine_wire() -> None:
    """The client mirrors the OpenDP engine's wire module (without depending on it)."""
    engine_wire = pytest.importorskip("lomas_engine_opendp.wire")
    dp = pytest.importorskip("opendp.prelude")
    pl = pytest.importorskip("polars")
    from lomas_client import opendp_wire

    dp.enable_features("contrib")
    metadata = {"columns": {"g": {"type": "string", "categories": ["a", "b"]},
                            "x": {"type": "float", "lower": 0, "upper": 1},
                            "k": {"type": "int"}, "ok": {"type": "boolean"}}}
    assert opendp_wire.PLAN_FORMAT == engine_wire.PLAN_FORMAT
    assert opendp_wire.polars_schema(metadata) == engine_wire.polars_schema(metadata)
    plan = opendp_wire.empty_lazyframe(metadata).group_by("g").agg(pl.len().dp.noise())
    meas = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), 1.0)
    for query, options in ((plan, {"epsilon": 1.0}), (meas, {"column": "x"})):
        assert opendp_wire.make_payload(query, fixed_delta=1e-7, **options) == \
            engine_wire.make_payload(query, fixed_delta=1e-7, **options)


def test_client_input_domain_is_the_servers() -> None:
    """Pipelines built on the client's input_domain are accepted by the engine (same domain)."""
    pytest.importorskip("lomas_engine_opendp")
    from lomas_engine_opendp.pipeline import canonical_domain

    from lomas_client import opendp_wire
    from lomas_core.metadata import Metadata

    metadata = {"columns": {"i": {"type": "int", "nullable": True}, "f": {"type": "float"},
                            "fn": {"type": "float", "nullable": True}, "s": {"type": "string"},
                            "b": {"type": "boolean"}, "t": {"type": "datetime"}}}
    meta = Metadata.model_validate(metadata)
    for column in metadata["columns"]:
        assert opendp_wire.input_domain(metadata, column) == canonical_domain(meta, column)[0]
    with pytest.raises(KeyError):
        opendp_wire.input_domain(metadata, "nope")
