"""Dummy datasets made from public metadata."""

from __future__ import annotations

import pyarrow as pa

from lomas_core.dummy import make_dummy
from lomas_core.metadata import Metadata

META = Metadata.model_validate({"max_ids": 1, "columns": {
    "age": {"type": "int", "lower": 18, "upper": 30, "nullable": True},
    "score": {"type": "float", "lower": -1.5, "upper": 2.5},
    "open": {"type": "float"},
    "species": {"type": "string", "categories": ["Adelie", "Gentoo"]},
    "free_text": {"type": "string"},
    "flag": {"type": "boolean"},
    "when": {"type": "datetime", "lower": "2020-01-01", "upper": "2020-12-31T23:59:59"},
    "level": {"type": "int", "categories": [1, 5, 9]},
}})


def test_types_and_bounds() -> None:
    table = make_dummy(META, 500, seed=7)
    assert table.num_rows == 500
    assert table.column_names == list(META.columns)
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("species").type == pa.string()
    assert table.schema.field("flag").type == pa.bool_()
    assert pa.types.is_timestamp(table.schema.field("when").type)
    ages = [a for a in table.column("age").to_pylist() if a is not None]
    assert min(ages) >= 18 and max(ages) <= 30
    assert 0 < table.column("age").null_count < 150
    assert table.column("score").null_count == 0
    scores = table.column("score").to_pylist()
    assert min(scores) >= -1.5 and max(scores) <= 2.5
    assert set(table.column("species").to_pylist()) == {"Adelie", "Gentoo"}
    assert set(table.column("level").to_pylist()) <= {1, 5, 9}
    assert set(table.column("flag").to_pylist()) == {True, False}
    whens = table.column("when").to_pylist()
    assert min(whens).year == 2020 and max(whens).year == 2020


def test_deterministic_and_seed_dependent() -> None:
    a = make_dummy(META, 50, seed=1)
    assert a.equals(make_dummy(META, 50, seed=1))
    assert a.equals(make_dummy(META, 50, seed=1, dataset="other"))
    assert not a.equals(make_dummy(META, 50, seed=2))
    big = make_dummy(META, 300_000, seed=1)  # not memoized, still deterministic
    assert big.num_rows == 300_000 and big.slice(0, 10).equals(make_dummy(META, 300_000, seed=1).slice(0, 10))


def test_adding_a_column_keeps_the_others() -> None:
    more = Metadata.model_validate({**META.model_dump(), "columns": {
        **META.model_dump()["columns"], "extra": {"type": "int"}}})
    a, b = make_dummy(META, 20, seed=3), make_dummy(more, 20, seed=3)
    assert a.column("score").equals(b.column("score"))


def test_degenerate_bounds() -> None:
    meta = Metadata.model_validate({"columns": {"c": {"type": "int", "lower": 4, "upper": 4},
                                                "f": {"type": "float", "lower": 0.2, "upper": 0.7}}})
    table = make_dummy(meta, 10, seed=0)
    assert set(table.column("c").to_pylist()) == {4}
    assert make_dummy(meta, 1, seed=0).num_rows == 1
