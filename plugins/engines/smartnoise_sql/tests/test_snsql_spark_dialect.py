"""The Spark rendering (no Spark needed): NaN-producing functions get their argument only inside
their domain, overflowing functions are refused at cost time, casts stay allowed (to INTEGER as TRY_CAST),
+ - * are overflow-checked, integer sums never wrap (float sums stay as they are), and the
verified text is rewritten lexically for Spark's parser."""

from __future__ import annotations

from typing import Any

import pytest
from snsql_targets import info_for, rendered_text
from snsql_testdata import METADATA

from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata

META = Metadata.model_validate(METADATA)
SPARK = info_for("spark", "people", META)


@pytest.mark.parametrize("sql, must_hold", [
    ("SELECT COUNT(*) AS n FROM df WHERE 100 / (age - 37) > 1", "NULLIF"),
    ("SELECT COUNT(*) AS n FROM df WHERE SQRT(income - 500) > 3", "CASE WHEN"),
    ("SELECT COUNT(*) AS n FROM df WHERE ASIN(income - 2) > 0", "BETWEEN -1 AND 1"),
    ("SELECT COUNT(*) AS n FROM df WHERE CAST(grp AS INTEGER) > 0",
     "TRY_CAST ( CAST( grp AS DECIMAL(38,10)) AS INTEGER )"),
    ("SELECT COUNT(*) AS n FROM df WHERE CAST(grp AS FLOAT) > 0", " CAST ( grp AS FLOAT )"),
    ("SELECT COUNT(*) AS n FROM df WHERE CAST(income AS VARCHAR) = 'a'", " CAST ( income AS"),
    ("SELECT COUNT(*) AS n FROM df WHERE age * 3 + 1 > 1",
     "try_add ( try_multiply ( age , 3 ) , 1 )"),
    ("SELECT COUNT(*) AS n FROM df WHERE income - 3 > 1", "try_subtract ( income , 3 )"),
    ("SELECT SUM(age) AS s FROM df",
     "(CAST(SUM( age ) AS DECIMAL(38,0)) + CAST(ROUND((SUM( CAST( age AS DOUBLE) ) - SUM( age ))"
     " / 1.8446744073709552E19) AS DECIMAL(38,0)) * CAST(18446744073709551616 AS DECIMAL(38,0)))"
     " AS sum_age"),
    ("SELECT VAR(age) AS v FROM df",
     "(CAST(SUM( age * age ) AS DECIMAL(38,0)) + CAST(ROUND((SUM( CAST( age AS DOUBLE) * "
     "CAST( age AS DOUBLE) ) - SUM( age * age )) / 1.8446744073709552E19)"),
])
def test_rewritten_for_spark(engine: Any, sql: str, must_hold: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = rendered_text(engine, sql, SPARK, monkeypatch)
    assert must_hold in text and "TRY (" not in text  # DuckDB's TRY() does not exist on Spark


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) AS n FROM df WHERE POWER(income, 3) > 10",
    "SELECT COUNT(*) AS n FROM df WHERE EXP(age) > 10",
    "SELECT COUNT(*) AS n FROM df WHERE SIN(age) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE age * " + " * ".join(["age"] * 210) + " > 0",
])
def test_no_safe_form_refused_at_cost_on_spark(engine: Any, sql: str) -> None:
    query = engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5})
    with pytest.raises(InvalidQuery):
        engine.cost(query, SPARK)


def test_float_sums_are_not_cast(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    text = rendered_text(engine, "SELECT SUM(income) AS s, VAR(income) AS v FROM df", SPARK,
                         monkeypatch)
    assert "DECIMAL" not in text and "SUM(income * income)" in text and "SUM(income)" in text


def test_lexical_form_for_spark() -> None:
    from lomas_engine_smartnoise_sql.render import StatementRefused
    from lomas_engine_smartnoise_sql.spark_dialect import to_spark

    assert to_spark('SELECT "a""b" FROM df WHERE x = \'it\'\'s\\\'') == \
        "SELECT `a\"b` FROM df WHERE x = 'it\\'s\\\\'"
    with pytest.raises(StatementRefused):
        to_spark("SELECT 'open")
