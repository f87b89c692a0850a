"""Answers on a generated dataset are within a bound derived from the mechanism's noise scale.

With Laplace noise of scale ``b = sensitivity / epsilon`` (what SmartNoise-SQL calibrates for a
count and a bounded sum; 5 % slack for the library's search), ``P(|noise| > T * b) = exp(-T)``;
``T = 16`` makes each check fail with probability about 1e-7. Sensitivities with one row per
person: COUNT 1, SUM over ``[lower, upper]`` ``max(|lower|, |upper|)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo

T = 16.0
EPSILON = 1.0


def _bound(sensitivity: float, epsilon: float = EPSILON) -> float:
    return T * 1.05 * sensitivity / epsilon


def _run(engine: Any, handle: DataHandle, dataset: DatasetInfo, sql: str,
         **extra: Any) -> pd.DataFrame:
    query = engine.parse({"sql": sql, "epsilon": EPSILON, "delta": 1e-5, **extra})
    result = engine.run(query, handle, dataset)
    assert result["type"] == "table"
    return pd.DataFrame(result["rows"], columns=result["columns"])


def _avg_bound(true_sum: float, true_count: int, sum_sensitivity: float) -> float:
    e_sum, e_count = _bound(sum_sensitivity), _bound(1.0) + 1
    return (e_sum + abs(true_sum / true_count) * e_count) / (true_count - e_count)


def test_count(engine: Any, handle: DataHandle, dataset: DatasetInfo, frame: pd.DataFrame) -> None:
    out = _run(engine, handle, dataset, "SELECT COUNT(*) AS n FROM df")
    assert abs(out["n"][0] - len(frame)) <= _bound(1.0) + 1


def test_sum_with_nulls(engine: Any, handle: DataHandle, dataset: DatasetInfo,
                        frame: pd.DataFrame) -> None:
    out = _run(engine, handle, dataset, "SELECT SUM(income) AS s, SUM(age) AS a FROM people")
    assert abs(out["s"][0] - frame["income"].sum()) <= _bound(1000.0)
    assert abs(out["a"][0] - frame["age"].sum()) <= _bound(100.0) + 1


def test_avg(engine: Any, handle: DataHandle, dataset: DatasetInfo, frame: pd.DataFrame) -> None:
    out = _run(engine, handle, dataset, "SELECT AVG(income) AS m FROM df")
    income = frame["income"].dropna()
    assert abs(out["m"][0] - income.mean()) <= _avg_bound(income.sum(), len(income), 1000.0)


def test_group_by_with_where(engine: Any, handle: DataHandle, dataset: DatasetInfo,
                             frame: pd.DataFrame) -> None:
    out = _run(engine, handle, dataset,
               "SELECT grp, COUNT(*) AS n, SUM(age) AS s, AVG(income) AS m FROM df "
               "WHERE flag = TRUE AND age >= 30 GROUP BY grp ORDER BY grp")
    sub = frame[frame["flag"] & (frame["age"] >= 30)]
    assert list(out["grp"]) == ["a", "b", "c"]
    for row in out.itertuples():
        part = sub[sub["grp"] == row.grp]
        income = part["income"].dropna()
        assert abs(row.n - len(part)) <= _bound(1.0) + 1
        assert abs(row.s - part["age"].sum()) <= _bound(100.0) + 1
        assert abs(row.m - income.mean()) <= _avg_bound(income.sum(), len(income), 1000.0)


def test_without_postprocessing_the_exact_aggregates_are_noised(
        engine: Any, handle: DataHandle, dataset: DatasetInfo, frame: pd.DataFrame) -> None:
    out = _run(engine, handle, dataset, "SELECT AVG(income) AS m FROM df", postprocess=False)
    assert list(out.columns) == ["sum_income", "count_income"]
    income = frame["income"].dropna()
    assert abs(out["sum_income"][0] - income.sum()) <= _bound(1000.0)
    assert abs(out["count_income"][0] - len(income)) <= _bound(1.0)


def test_contribution_bounding_per_person(engine: Any, handle: DataHandle,
                                          frame: pd.DataFrame) -> None:
    from snsql_testdata import METADATA

    from lomas_core.metadata import Metadata

    raw = {**METADATA, "row_privacy": False, "max_ids": 1,
           "columns": {**METADATA["columns"], "pid": {"type": "int", "private_id": True}}}
    dataset = DatasetInfo(name="people", metadata=Metadata.model_validate(raw))
    out = _run(engine, handle, dataset, "SELECT COUNT(*) AS n FROM df")
    # two rows per person, at most one kept: about half the rows
    assert abs(out["n"][0] - frame["pid"].nunique()) <= _bound(1.0) + 1


def test_nothing_matches(engine: Any, handle: DataHandle, dataset: DatasetInfo) -> None:
    # grp has public keys: every declared category is listed, with noise around zero
    grouped = _run(engine, handle, dataset,
                   "SELECT grp, COUNT(*) AS n FROM df WHERE age > 1000 GROUP BY grp")
    assert list(grouped["grp"]) == ["a", "b", "c"]
    assert all(abs(n) <= _bound(1.0) + 1 for n in grouped["n"])
    single = _run(engine, handle, dataset, "SELECT COUNT(*) AS n FROM df WHERE age > 1000")
    assert len(single) == 1 and abs(single["n"][0]) <= _bound(1.0) + 1


@pytest.mark.slow
def test_count_noise_has_the_calibrated_spread(engine: Any, handle: DataHandle,
                                               dataset: DatasetInfo, frame: pd.DataFrame) -> None:
    errors = [_run(engine, handle, dataset, "SELECT COUNT(*) AS n FROM df",
                   postprocess=False)["count_star"][0] - len(frame) for _ in range(400)]
    # Laplace(b): standard deviation sqrt(2) b, b = 1 / epsilon; 400 draws -> a few % error
    assert 1.15 <= float(np.std(errors)) <= 1.7
    assert abs(float(np.mean(errors))) <= 0.4
