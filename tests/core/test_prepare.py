"""The core's load-time guarantees: categories enforced, contributions bounded by max_ids."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lomas_core.errors import DatasetUnavailable
from lomas_core.metadata import Metadata
from lomas_core.prepare import bound_contributions, prepare_table, restrict_categories


def _meta(**table: object) -> Metadata:
    columns = table.pop("columns", None) or {
        "pid": {"type": "int", "private_id": True},
        "g": {"type": "string", "categories": ["a", "b"], "public_keys": True},
        "x": {"type": "float", "lower": 0, "upper": 10},
    }
    return Metadata.model_validate({"columns": columns, **table})


def test_values_outside_categories_become_null() -> None:
    table = pa.table({"g": ["a", "zzz", None, "b"], "k": [1, 7, 2, None]})
    meta = _meta(columns={"g": {"type": "string", "categories": ["a", "b"]},
                          "k": {"type": "int", "categories": [1, 2], "nullable": True}})
    out = restrict_categories("ds", table, meta)
    assert out.column("g").to_pylist() == ["a", None, None, "b"]
    assert out.column("k").to_pylist() == [1, None, 2, None]


def test_dictionary_columns_are_restricted_too() -> None:
    table = pa.table({"g": pa.array(["a", "q", "b"]).dictionary_encode()})
    meta = _meta(columns={"g": {"type": "string", "categories": ["a", "b"]}})
    assert restrict_categories("ds", table, meta).column("g").to_pylist() == ["a", None, "b"]


def test_categories_of_the_wrong_type_are_a_clear_dataset_error() -> None:
    meta = _meta(columns={"k": {"type": "int", "categories": ["one", "two"]}})
    with pytest.raises(DatasetUnavailable, match="categories of column k"):
        restrict_categories("ds", pa.table({"k": [1]}), meta)


def test_each_individual_keeps_at_most_max_ids_rows_in_source_order() -> None:
    table = pa.table({"pid": [7, 7, 7, 8, 7, None, 8, 9],
                      "g": ["a"] * 8, "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    out = bound_contributions("ds", table, _meta(max_ids=2, row_privacy=False))
    assert out.column("pid").to_pylist() == [7, 7, 8, 8, 9]
    assert out.column("x").to_pylist() == [1.0, 2.0, 4.0, 7.0, 8.0]


def test_truncation_is_per_person_adding_someone_changes_nobody_else() -> None:
    meta = _meta(max_ids=1, row_privacy=False)
    base = pa.table({"pid": [1, 2, 1, 3], "g": ["a"] * 4, "x": [1.0, 2.0, 3.0, 4.0]})
    extra = pa.table({"pid": [99] * 10, "g": ["b"] * 10, "x": [10.0] * 10})
    with_person = pa.concat_tables([extra.slice(0, 5), base, extra.slice(5)])
    kept = bound_contributions("ds", base, meta).to_pylist()
    kept_with = bound_contributions("ds", with_person, meta).to_pylist()
    assert [r for r in kept_with if r["pid"] != 99] == kept
    assert sum(r["pid"] == 99 for r in kept_with) == 1


def test_without_private_id_nothing_is_dropped() -> None:
    meta = _meta(columns={"x": {"type": "float"}}, max_ids=3)
    table = pa.table({"x": [1.0, 1.0, 1.0, 1.0]})
    assert bound_contributions("ds", table, meta).num_rows == 4


def test_prepare_table_applies_every_step() -> None:
    table = pa.table({"pid": [1, 1, 2], "g": ["a", "b", "nope"], "x": [1, 2, 3], "secret": [0, 0, 0]})
    out = prepare_table("ds", table, _meta(max_ids=1, row_privacy=False))
    assert out.column_names == ["pid", "g", "x"]
    assert out.to_pylist() == [{"pid": 1, "g": "a", "x": 1.0}, {"pid": 2, "g": None, "x": 3.0}]


def test_more_rows_than_declared_is_refused_for_every_engine() -> None:
    table = pa.table({"pid": [1, 2, 3], "g": ["a", "b", "a"], "x": [1, 2, 3]})
    assert prepare_table("ds", table, _meta(rows=3)).num_rows == 3
    with pytest.raises(DatasetUnavailable, match="more rows than its public metadata"):
        prepare_table("ds", table, _meta(rows=2))
