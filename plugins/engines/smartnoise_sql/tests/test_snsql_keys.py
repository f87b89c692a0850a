# mypy: disable-error-code="attr-defined,union-attr"
"""Key release policy through the HTTP API: a GROUP BY releases a column's values only when they
are public categories (all of them, always, in declared order) or thresholded (delta charged);
otherwise it is refused at cost time, free, saying what the data owner can configure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.plugins import build

ENGINE = "smartnoise_sql"
GRANT = (100.0, 1e-2)
ROWS = 3000

META: dict[str, Any] = {
    "max_ids": 1, "rows": ROWS, "row_privacy": True, "censor_dims": False,
    "columns": {
        "grp": {"type": "string", "categories": ["a", "b", "c"], "public_keys": True,
                "nullable": True},
        "flag": {"type": "boolean", "categories": [True, False], "public_keys": True},
        "region": {"type": "string", "categories": ["north", "south"]},  # declared, not public
        "name": {"type": "string"},  # no categories at all
        "income": {"type": "float", "lower": 0.0, "upper": 1000.0},
        "age": {"type": "int", "lower": 0, "upper": 100},
    },
}
THRESHOLDED = {**META, "censor_dims": True}


def _frame(with_c: bool = True, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = ["a", "b", "c"] if with_c else ["a", "b"]
    grp = rng.choice(groups, ROWS).astype(object)
    grp[::97] = None  # some nulls: never a released key when keys are public
    names = rng.choice(["ann", "bob"], ROWS).astype(object)
    names[0] = "solo"  # a name held by one row only
    return pd.DataFrame({
        "grp": grp,
        "flag": rng.integers(0, 2, ROWS).astype(bool),
        "region": rng.choice(["north", "south"], ROWS),
        "name": names,
        "income": rng.uniform(0, 1000, ROWS).round(6),
        "age": rng.integers(0, 101, ROWS),
    })


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    h = LomasHarness(tmp_path_factory.mktemp("snsql-keys"), engines={ENGINE: {}})
    h.add_dataset("open", _frame(), META)
    h.add_dataset("thresholded", _frame(), THRESHOLDED)
    h.add_dataset("with_c", _frame(with_c=True), META)
    h.add_dataset("without_c", _frame(with_c=False), META)
    yield h
    h.close()


def _body(sql: str, delta: float = 1e-5, **extra: Any) -> dict[str, Any]:
    return {"engine": ENGINE, "query": {"sql": sql, "epsilon": 1.0, "delta": delta, **extra}}


@pytest.mark.parametrize("sql", [
    "SELECT income, COUNT(*) AS n FROM df GROUP BY income",
    "SELECT name, COUNT(*) AS n FROM df GROUP BY name",
    "SELECT income, COUNT(*) AS n FROM df WHERE name = 'solo' GROUP BY income",
    "SELECT region, COUNT(*) AS n FROM df GROUP BY region",
    "SELECT grp, region, COUNT(*) AS n FROM df GROUP BY grp, region",
])
def test_group_by_non_public_column_without_thresholding_is_refused_free(
        harness: LomasHarness, sql: str) -> None:
    user = f"r_{abs(hash(sql)) % 10**8}"
    token = harness.add_user(user, grant={"open": GRANT})
    with harness.client(token) as c:
        for route in ("cost", "query"):
            r = c.post(f"/v1/datasets/open/{route}", json=_body(sql))
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_query"
            assert "public_keys: true" in error["message"] and "censor_dims: true" in error["message"]
    assert harness.grant(user, "open").spent == Budget.of(0, 0)


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) AS n FROM df GROUP BY RANDOM()",
    "SELECT COUNT(*) AS n FROM df GROUP BY age / 10",
    "SELECT COUNT(*) AS n FROM df GROUP BY UPPER(grp)",
    "SELECT UPPER(grp) AS g, COUNT(*) AS n FROM df GROUP BY grp",
    "SELECT grp, age, COUNT(*) AS n FROM df GROUP BY grp",
])
@pytest.mark.parametrize("dataset", ["open", "thresholded"])
def test_group_by_other_than_plain_columns_is_refused_free(harness: LomasHarness, sql: str,
                                                          dataset: str) -> None:
    user = f"e_{dataset}_{abs(hash(sql)) % 10**8}"
    token = harness.add_user(user, grant={dataset: GRANT})
    with harness.client(token) as c:
        r = c.post(f"/v1/datasets/{dataset}/query", json=_body(sql))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", r.text
    assert harness.grant(user, dataset).spent == Budget.of(0, 0)


@pytest.mark.parametrize("column", ["income", "name", "region"])
def test_group_by_non_public_column_is_thresholded_and_pays_delta(harness: LomasHarness,
                                                                  column: str) -> None:
    token = harness.add_user(f"t_{column}", grant={"thresholded": GRANT})
    sql = f"SELECT {column}, COUNT(*) AS n FROM df GROUP BY {column}"
    frame = _frame()
    with harness.client(token) as c:
        r = c.post("/v1/datasets/thresholded/query", json=_body(sql, delta=0.0))
        assert r.status_code == 422 and "delta" in r.json()["error"]["message"]  # free
        r = c.post("/v1/datasets/thresholded/query", json=_body(sql))
        assert r.status_code == 200, r.text
        out = r.json()
    assert out["delta"] > 0
    assert harness.grant(f"t_{column}", "thresholded").spent == Budget.of(out["epsilon"], out["delta"])
    released = [row[0] for row in out["result"]["rows"]]
    assert set(released) <= set(frame[column])
    assert len(released) == len(set(released))
    if column == "income":
        # Every income is unique: each group passes the threshold with probability at most delta
        # (1e-5), so about 0.03 of the 3,000 are expected; 4 or more has odds of about 3e-8.
        assert len(released) <= 3
    if column == "name":
        assert "solo" not in released and set(released) == {"ann", "bob"}


def test_mixed_public_and_thresholded_keys(harness: LomasHarness) -> None:
    token = harness.add_user("mixed", grant={"thresholded": GRANT})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/thresholded/query",
                   json=_body("SELECT grp, name, COUNT(*) AS n FROM df GROUP BY grp, name"))
        assert r.status_code == 200, r.text
        assert r.json()["delta"] > 0
        rows = r.json()["result"]["rows"]
    # thresholding releases any frequent combination (null included), never the rare name
    assert {(g, n) for g, n, _ in rows} <= {(g, n) for g in ("a", "b", "c", None)
                                            for n in ("ann", "bob")}


def _keys(client: Any, dataset: str, sql: str, **extra: Any) -> list[Any]:
    r = client.post(f"/v1/datasets/{dataset}/query", json=_body(sql, **extra))
    assert r.status_code == 200, r.text
    return [tuple(row[:2]) if "flag" in sql else row[0] for row in r.json()["result"]["rows"]]


def test_public_keys_list_every_declared_category_whether_present_or_not(
        harness: LomasHarness) -> None:
    token = harness.add_user("public", grant={"with_c": GRANT, "without_c": GRANT})
    with harness.client(token) as c:
        for dataset in ("with_c", "without_c"):
            for sql in ("SELECT grp, COUNT(*) AS n FROM df GROUP BY grp",
                        "SELECT grp, AVG(income) AS m, SUM(age) AS s FROM df GROUP BY grp",
                        "SELECT grp, COUNT(*) AS n FROM df WHERE age > 1000 GROUP BY grp",
                        "SELECT grp, COUNT(*) AS n FROM df WHERE grp = 'c' GROUP BY grp"):
                assert _keys(c, dataset, sql) == ["a", "b", "c"], (dataset, sql)
            # the exact-aggregate rows too (no post-processing)
            r = c.post(f"/v1/datasets/{dataset}/query",
                       json=_body("SELECT grp, COUNT(*) AS n FROM df GROUP BY grp",
                                  postprocess=False))
            out = r.json()["result"]
            position = out["columns"].index("grp")
            assert [row[position] for row in out["rows"]] == ["a", "b", "c"]
            # several public columns: every combination, in declared order
            combos = _keys(c, dataset,
                           "SELECT grp, flag, COUNT(*) AS n FROM df GROUP BY grp, flag")
            assert combos == [(g, f) for g in "abc" for f in (True, False)]
        # public keys need no thresholding, so no delta is needed to run them
        r = c.post("/v1/datasets/with_c/cost",
                   json=_body("SELECT grp, COUNT(*) AS n FROM df GROUP BY grp", delta=0.0))
        assert r.status_code == 200 and r.json()["delta"] < 1e-12, r.text  # odometer rounding


def test_absent_category_gets_noise_around_zero(harness: LomasHarness) -> None:
    token = harness.add_user("absent", grant={"without_c": GRANT})
    with harness.client(token) as c:
        counts = [dict((row[0], row[1]) for row in c.post(
            "/v1/datasets/without_c/query",
            json=_body("SELECT grp, COUNT(*) AS n FROM df GROUP BY grp")).json()["result"]["rows"])
            for _ in range(5)]
    assert all(abs(answer["c"]) < 25 for answer in counts)
    assert all(answer["a"] > 1000 for answer in counts)


def test_public_keys_of_other_types_match_the_loaded_values() -> None:
    """Declared int and datetime categories meet the database's values: present ones keep their
    counts, absent ones are listed with noise around zero."""
    import pyarrow as pa
    from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine

    from lomas_core.data import DataHandle
    from lomas_core.engine import DatasetInfo
    from lomas_core.metadata import Metadata

    rows = 1000
    meta = Metadata.model_validate({
        "max_ids": 1, "rows": rows, "row_privacy": True, "censor_dims": False, "columns": {
            "yr": {"type": "int", "categories": [2020, 2021, 2022], "public_keys": True},
            "d": {"type": "datetime", "categories": ["2024-01-01", "2024-01-02"],
                    "public_keys": True}}})
    table = pa.table({"yr": [2020 + (i % 2) for i in range(rows)],
                      "d": pd.to_datetime(["2024-01-01"] * rows)})
    engine = build(SmartnoiseSQLEngine, {})
    dataset = DatasetInfo(name="typed", metadata=meta)
    handle = DataHandle("typed", "v1", table)

    def answer(sql: str) -> list[Any]:
        query = engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5})
        engine.cost(query, dataset)
        return engine.run(query, handle, dataset)["rows"]

    years = answer("SELECT yr, COUNT(*) AS n FROM df GROUP BY yr")
    assert [row[0] for row in years] == [2020, 2021, 2022]
    assert abs(years[0][1] - 500) < 25 and abs(years[2][1]) < 25
    days = answer("SELECT d, COUNT(*) AS n FROM df GROUP BY d")
    assert len(days) == 2 and abs(days[0][1] - rows) < 25 and abs(days[1][1]) < 25
