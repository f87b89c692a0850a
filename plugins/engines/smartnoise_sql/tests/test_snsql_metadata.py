"""``to_snsql_metadata``: every lomas metadata field lands where SmartNoise-SQL reads it."""

from __future__ import annotations

from typing import Any

import pytest
from lomas_engine_smartnoise_sql.metadata import TABLE_NAME, to_snsql_metadata
from snsql.metadata import Boolean, DateTime, Float, Int, String

from lomas_core.metadata import Metadata


def _table(raw: dict[str, Any]) -> Any:
    meta = to_snsql_metadata(Metadata.model_validate(raw))
    tables = meta.tables()
    assert len(tables) == 1
    return tables[0]


def test_types_bounds_and_nullable() -> None:
    table = _table({"columns": {
        "i": {"type": "int", "lower": -5, "upper": 10},
        "f": {"type": "float", "lower": 0.5, "upper": 2.5, "nullable": True},
        "s": {"type": "string"},
        "b": {"type": "boolean", "nullable": True},
        "d": {"type": "datetime", "lower": "2020-01-01", "upper": "2021-01-01"},
        "u": {"type": "float"},
    }})
    cols = table.m_columns
    assert isinstance(cols["i"], Int) and (cols["i"].lower, cols["i"].upper) == (-5, 10)
    assert isinstance(cols["i"].lower, int)
    assert isinstance(cols["f"], Float) and (cols["f"].lower, cols["f"].upper) == (0.5, 2.5)
    assert isinstance(cols["s"], String)
    assert isinstance(cols["b"], Boolean)
    assert isinstance(cols["d"], DateTime)
    assert cols["u"].unbounded and cols["u"].lower is None
    # lomas columns are not nullable unless said so; SmartNoise-SQL's default is the opposite
    assert [cols[c].nullable for c in "ifsbdu"] == [False, True, False, True, False, False]
    assert not any(c.is_key for c in cols.values())


def test_table_level_fields() -> None:
    table = _table({"max_ids": 3, "rows": 1234, "row_privacy": False, "censor_dims": True,
                    "columns": {"pid": {"type": "int", "private_id": True},
                                "x": {"type": "float", "lower": 0, "upper": 1}}})
    assert table.name == TABLE_NAME and table.schema == ""
    assert (table.max_ids, table.rowcount, table.row_privacy, table.censor_dims) == (3, 1234, False, True)
    assert table.use_dpsu is False
    assert [c.name for c in table.key_cols()] == ["pid"]


def test_defaults_are_lomas_defaults() -> None:
    table = _table({"columns": {"x": {"type": "int", "lower": 0, "upper": 1}}})
    # thresholding (censor_dims) is lomas' default too; the engine overrides it per query
    assert (table.max_ids, table.rowcount, table.row_privacy, table.censor_dims) == (1, 0, True, True)
    assert table.clamp_columns is True and table.clamp_counts is False


def test_categories() -> None:
    table = _table({"columns": {
        "s": {"type": "string", "categories": ["x", "y", "z"]},
        "i": {"type": "int", "categories": [3, 1, 7]},
        "f": {"type": "float", "categories": [0.5, 1.5], "lower": 0.0, "upper": 2.0},
        "b": {"type": "boolean", "categories": [True, False]},
    }})
    cols = table.m_columns
    assert cols["s"].card == 3
    # numeric categories without bounds give bounds; explicit bounds win
    assert (cols["i"].lower, cols["i"].upper) == (1, 7)
    assert (cols["f"].lower, cols["f"].upper) == (0.0, 2.0)
    assert isinstance(cols["b"], Boolean)


def test_passthrough_of_smartnoise_keys() -> None:
    table = _table({"clamp_counts": True, "sample_max_ids": False, "columns": {
        "x": {"type": "float", "lower": 0, "upper": 10, "missing_value": 5.0},
        "y": {"type": "int", "lower": 0, "upper": 10, "sensitivity": 10},
    }})
    assert table.clamp_counts is True and table.sample_max_ids is False
    assert table.m_columns["x"].missing_value == 5.0 and table.m_columns["x"].nullable is False
    assert table.m_columns["y"].sensitivity == 10


def test_column_names_that_are_table_keys_stay_columns() -> None:
    table = _table({"columns": {"rows": {"type": "int", "lower": 0, "upper": 5},
                                "max_ids": {"type": "string"}}})
    assert set(table.m_columns) == {"rows", "max_ids"}


def test_each_call_builds_a_new_object() -> None:
    meta = Metadata.model_validate({"columns": {"x": {"type": "int", "lower": 0, "upper": 1}}})
    assert to_snsql_metadata(meta) is not to_snsql_metadata(meta)


def test_refused_metadata_is_a_value_error() -> None:
    meta = Metadata.model_validate({"columns": {"x": {"type": "float", "sensitivity": 3}}})
    with pytest.raises(ValueError, match="sensitivity"):
        to_snsql_metadata(meta)
