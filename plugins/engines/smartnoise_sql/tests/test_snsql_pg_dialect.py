"""The PostgreSQL rendering (no database needed): expressions that could raise on one row are
rewritten into forms that cannot, and those with no such form are refused at cost time, while the
same queries stay accepted on DuckDB (which runs them under ``TRY``)."""

from __future__ import annotations

from typing import Any

import pytest
from snsql_targets import info_for, rendered_text
from snsql_testdata import METADATA

from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata

META = Metadata.model_validate(METADATA)
PG = info_for("postgresql", "people", META)
DUCK = info_for("memory", "people", META)


@pytest.mark.parametrize("sql, must_hold", [
    ("SELECT COUNT(*) AS n FROM df WHERE 100 / (age - 37) > 1", "NULLIF"),
    ("SELECT COUNT(*) AS n FROM df WHERE age % (age - 40) = 1", "NULLIF"),
    ("SELECT COUNT(*) AS n FROM df WHERE SQRT(income - 500) > 3", "CASE WHEN"),
    ("SELECT COUNT(*) AS n FROM df WHERE LN(income - 2) > 3", "CASE WHEN"),
])
def test_rewritten_into_forms_that_cannot_raise(engine: Any, sql: str, must_hold: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    text = rendered_text(engine, sql, PG, monkeypatch)
    assert must_hold in text and "TRY" not in text


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) AS n FROM df WHERE CAST(grp AS INTEGER) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE POWER(income, 3) > 10",
    "SELECT COUNT(*) AS n FROM df WHERE EXP(age) > 10",
    "SELECT COUNT(*) AS n FROM df WHERE SIN(age) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE SUBSTRING(grp FROM 1 FOR 1) = 'a'",
    "SELECT COUNT(*) AS n FROM df WHERE age * " + " * ".join(["age"] * 210) + " > 0",
])
def test_no_safe_form_refused_at_cost_on_postgresql_only(engine: Any, sql: str) -> None:
    query = engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5})
    with pytest.raises(InvalidQuery):
        engine.cost(query, PG)
    if "age * age" not in sql:
        engine.cost(query, DUCK)  # DuckDB runs it under TRY


def test_per_person_sampling_orders_by_a_row_hash(engine: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    meta = Metadata.model_validate({**METADATA, "row_privacy": False, "max_ids": 2, "columns": {
        **METADATA["columns"], "pid": {"type": "int", "private_id": True}}})
    info = info_for("postgresql", "people", meta)
    text = rendered_text(engine, "SELECT COUNT(*) AS n FROM df", info, monkeypatch)
    assert "md5(" in text and "RANDOM()" not in text.upper().replace(" ", "")
