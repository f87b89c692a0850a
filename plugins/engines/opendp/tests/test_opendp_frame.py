# mypy: disable-error-code="attr-defined,union-attr"
"""The frame OpenDP receives scans the handle's Arrow table (no copy of the data crosses OpenDP's
FFI), applies the domain rules, and gives the same answers as the prepared in-memory frame it
replaced; a researcher's plan can never name such a scan (or any other)."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from lomas_engine_opendp import frame as frame_module
from lomas_engine_opendp.frame import prepared_frame
from lomas_engine_opendp.wire import empty_lazyframe, polars_schema, serialize_plan

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata

META = Metadata.model_validate({"max_ids": 1, "rows": 5000, "row_privacy": True, "columns": {
    "g": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True},
    "x": {"type": "float", "lower": 0.0, "upper": 100.0},
    "k": {"type": "int", "lower": 0, "upper": 10},
    "w": {"type": "float", "lower": 0.0, "upper": 10.0, "nullable": True},
}})


def _dirty_table(rows: int = 4000) -> pa.Table:
    """Every rule has work: NaN, nulls in required and nullable columns, foreign categories."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 100, rows)
    x[rng.random(rows) < 0.05] = np.nan
    g = rng.choice(["a", "b", "c", "zz"], rows).astype(object)
    g[rng.random(rows) < 0.05] = None
    w = rng.uniform(0, 10, rows)
    w[rng.random(rows) < 0.05] = np.nan
    return pa.table({
        "g": pa.array(g, type=pa.string()),
        "x": pa.array(x, mask=rng.random(rows) < 0.05),
        "k": pa.array(rng.integers(0, 11, rows), mask=rng.random(rows) < 0.05),
        "w": pa.array(w, mask=rng.random(rows) < 0.1),
    })


def _reference(table: pa.Table) -> Any:
    """The prepared in-memory frame the engine used to hand over (the same rules, eagerly)."""
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr

    schema = polars_schema(META.model_dump())
    exprs = []
    for name, dtype in schema.items():
        expr = pl.col(name).cast(dtype, strict=False)
        if dtype == pl.Float64:
            expr = expr.fill_nan(None)
        categories = META.columns[name].categories
        if categories:
            expr = pl.when(expr.is_in(pl.lit(pl.Series(categories)).implode())).then(expr) \
                .otherwise(None)
        exprs.append(expr.alias(name))
    required = [n for n in schema if not META.columns[n].nullable]
    df = pl.from_arrow(table).lazy().select(exprs).drop_nulls(subset=required).collect()
    return py_to_c(df.lazy(), c_type=AnyObjectPtr, type_name="LazyFrame")


def _measure(dp: Any, plan: pl.LazyFrame) -> Any:
    """A measurement whose integer answers carry no noise in practice (scale 1e-9)."""
    domain = dp.lazyframe_domain([
        dp.series_domain("g", dp.option_domain(dp.atom_domain(T=str))),
        dp.series_domain("x", dp.atom_domain(T=float, nan=False)),
        dp.series_domain("k", dp.atom_domain(T=dp.i64)),
        dp.series_domain("w", dp.option_domain(dp.atom_domain(T=float, nan=False)))])
    domain = dp.with_margin(domain, dp.polars.Margin(by=[], max_length=5000))
    domain = dp.with_margin(domain, dp.polars.Margin(by=[pl.col("g")], max_length=5000,
                                                     max_groups=4))
    # Threshold 0 keeps every group (the thresholding itself is not under test here).
    return dp.m.make_private_lazyframe(domain, dp.symmetric_distance(),
                                       dp.approximate(dp.max_divergence()), plan,
                                       global_scale=1e-9, threshold=0)


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _plans() -> dict[str, pl.LazyFrame]:
    lf = empty_lazyframe(META.model_dump())
    return {
        "len": lf.select(pl.len().dp.noise()),
        "sum k": lf.select(pl.col("k").fill_null(0).dp.sum((0, 10))),
        "filter": lf.filter(pl.col("x") > 50.0).select(pl.len().dp.noise()),
        "filter nullable": lf.filter(pl.col("w").is_null()).select(pl.len().dp.noise()),
        "group": lf.group_by("g").agg(pl.len().dp.noise(), pl.col("k").dp.sum((0, 10))),
    }


def _clean_table(rows: int = 4000) -> pa.Table:
    """No row is dropped (only the nullable column has nulls and NaN): projections only."""
    table = _dirty_table(rows)
    rng = np.random.default_rng(4)
    return table.set_column(0, "g", pa.array(rng.choice(["a", "b", "c"], rows))) \
        .set_column(1, "x", pa.array(rng.uniform(0, 100, rows))) \
        .set_column(2, "k", pa.array(rng.integers(0, 11, rows)))


def _cast_only_table(rows: int = 4000) -> pa.Table:
    """Clean values in other Arrow types: the rules cast, and cast, they make no null."""
    table = _clean_table(rows)
    return table.set_column(0, "g", table.column("g").cast(pa.large_string())) \
        .set_column(2, "k", table.column("k").cast(pa.int32()))


EXPECTED_RULES = {
    "dirty": (frozenset({"g", "x", "w"}), ("g", "x", "k")),
    "clean": (frozenset({"w"}), ()),
    # Cast columns are fixed but, holding no null once cast, drop no row (no per-query pass).
    "cast only": (frozenset({"g", "k", "w"}), ()),
}


@pytest.mark.parametrize("batch", [None, 256])
@pytest.mark.parametrize("kind", ["dirty", "clean", "cast only"])
def test_answers_match_the_in_memory_frame(dp: Any, monkeypatch: pytest.MonkeyPatch,
                                           batch: int | None, kind: str) -> None:
    from opendp.core import measurement_invoke

    if batch is not None:  # many batches: the rules and the pushed-down filter apply per batch
        monkeypatch.setattr(frame_module, "BATCH_ROWS", batch)
    table = {"dirty": _dirty_table, "clean": _clean_table, "cast only": _cast_only_table}[kind]()
    rules = frame_module._survey(table, META)
    assert (rules.fix, rules.drop) == EXPECTED_RULES[kind]
    handle = DataHandle("t", "v1", table)
    scan, reference = prepared_frame(handle, META), _reference(table)
    for name, plan in _plans().items():
        m = _measure(dp, plan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = measurement_invoke(m, scan).collect()
            want = measurement_invoke(m, reference).collect()
        if "g" in got.columns:
            got, want = got.sort("g", nulls_last=True), want.sort("g", nulls_last=True)
        assert got.to_dicts() == want.to_dicts(), name
    assert prepared_frame(handle, META) is scan  # built once per version


def test_the_handed_over_frame_is_a_scan_holding_no_data(dp: Any) -> None:
    """What crosses OpenDP's FFI is a plan of a few KB naming a registry key, whatever the size
    of the table; the memo adds nothing to the handle's size; closing the handle releases it."""
    before = frame_module.registered()
    sizes = []
    for rows in (1000, 200_000):
        table = _dirty_table(rows)
        handle = DataHandle("t", "v1", table)
        calls: list[int] = []
        import opendp._convert as convert

        original = convert._lazyframe_to_slice

        def spy(value: Any, calls: list[int] = calls, original: Any = original) -> Any:
            calls.append(len(value.__getstate__()))
            return original(value)

        convert._lazyframe_to_slice = spy
        try:
            prepared_frame(handle, Metadata.model_validate({**META.model_dump(), "rows": rows}))
        finally:
            convert._lazyframe_to_slice = original
        sizes.append(calls[0])
        assert handle.nbytes == table.nbytes  # the scan adds no copy
        assert frame_module.registered() == before + 1
        handle.close()
        assert frame_module.registered() == before
    assert sizes[1] == pytest.approx(sizes[0], abs=64) and sizes[1] < 20_000


def test_a_table_over_rows_is_refused(dp: Any) -> None:
    handle = DataHandle("t", "v1", _dirty_table(10))
    with pytest.raises(RuntimeError, match="more rows"):
        prepared_frame(handle, Metadata.model_validate({**META.model_dump(), "rows": 5}))
    dummy = DataHandle("t", "dummy", _dirty_table(10), dummy=True)
    prepared_frame(dummy, Metadata.model_validate({**META.model_dump(), "rows": 5}))
    dummy.close()


def test_engine_runs_on_a_memory_mapped_table(engine: Any, tmp_path: Path) -> None:
    """As in a worker: the table is mapped from an IPC file; the engine answers from it."""
    from lomas_engine_opendp.wire import make_payload

    table = _dirty_table()
    path = tmp_path / "t.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    mapped = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    handle = DataHandle("t", "v1", mapped)
    info = DatasetInfo(name="t", metadata=META)
    lf = empty_lazyframe(META.model_dump()).group_by("g").agg(pl.len().dp.noise())
    query = engine.parse(make_payload(lf, epsilon=1.0))
    result = engine.run(query, handle, info)
    assert [row[0] for row in result["rows"]] == ["a", "b", "c"]
    handle.close()
    del handle, mapped
    gc.collect()


@pytest.mark.parametrize("source", ["io source", "ipc scan"])
def test_a_plan_naming_a_scan_is_refused(engine: Any, tmp_path: Path, source: str) -> None:
    """The server's scan is a Python IO source: the same node in a researcher's plan (whose
    function polars would unpickle) is refused before polars reads the plan, like a file scan."""
    from polars.io.plugins import register_io_source

    info = DatasetInfo(name="t", metadata=META)
    schema = polars_schema(META.model_dump())
    if source == "io source":
        lf = register_io_source(lambda *args: iter([]), schema=schema)
    else:
        path = tmp_path / "t.arrow"
        pl.DataFrame(schema=schema).write_ipc(path)
        lf = pl.scan_ipc(path)
    payload = {"plan": serialize_plan(lf.select(pl.len().dp.noise())), "epsilon": 1.0}
    with pytest.raises(InvalidQuery, match="not allowed"):
        engine.cost(engine.parse(payload), info)


@pytest.mark.parametrize("kind", ["dirty", "clean"])
def test_a_string_column_is_converted_once_per_version(dp: Any, monkeypatch: pytest.MonkeyPatch,
                                                       kind: str) -> None:
    """Polars copies a string column when it imports it: the scan converts it on the first query
    that reads it (after its domain rule, if it has work), keeps it as a memo counted in the
    handle's size, answers as before on later queries, and lets it go with the handle."""
    from opendp.core import measurement_invoke

    converted: list[str] = []
    convert = frame_module._convert

    def counting(data: DataHandle, name: str, *args: Any) -> Any:
        converted.append(name)
        return convert(data, name, *args)

    monkeypatch.setattr(frame_module, "_convert", counting)
    monkeypatch.setattr(frame_module, "BATCH_ROWS", 1000)  # zero-copy slices of the kept column
    table = _dirty_table() if kind == "dirty" else _clean_table()
    handle = DataHandle("t", "v1", table)
    scan, reference = prepared_frame(handle, META), _reference(table)
    assert handle.nbytes == table.nbytes and converted == []
    group = _measure(dp, _plans()["group"])
    for _ in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = measurement_invoke(group, scan).collect().sort("g", nulls_last=True)
            want = measurement_invoke(group, reference).collect().sort("g", nulls_last=True)
        assert got.to_dicts() == want.to_dicts()
    assert converted == ["g"]  # once, whatever the number of queries
    assert handle.nbytes >= table.nbytes + 16 * table.num_rows  # the kept column is counted
    before = frame_module.registered()
    handle.close()
    assert handle.nbytes == table.nbytes
    assert frame_module.registered() == before - 1


def test_the_registry_does_not_keep_a_handle_alive(dp: Any) -> None:
    before = frame_module.registered()
    handle = DataHandle("t", "v1", _clean_table(100))
    prepared_frame(handle, META)
    assert frame_module.registered() == before + 1
    del handle
    gc.collect()
    assert frame_module.registered() == before
