# mypy: disable-error-code="attr-defined,union-attr"
"""Through the HTTP API (in-process app, and a real uvicorn server for concurrency): charges,
refusals with the budget untouched, dummies for free, and both table names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from snsql_testdata import METADATA, make_frame

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness

GRANT = (50.0, 1e-3)
COUNT = "SELECT COUNT(*) AS n FROM df"
ENGINE = "smartnoise_sql"


def _body(sql: str, epsilon: float = 1.0, delta: float = 1e-5, **extra: Any) -> dict[str, Any]:
    return {"engine": ENGINE, "query": {"sql": sql, "epsilon": epsilon, "delta": delta, **extra}}


def _rare_frame() -> pd.DataFrame:
    frame = make_frame(2000)
    frame.loc[0, "grp"] = "rare"  # a group of one row
    return frame


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    h = LomasHarness(tmp_path_factory.mktemp("snsql-http"), engines={ENGINE: {}})
    h.add_dataset("people", make_frame(), METADATA)
    censored = {**METADATA, "censor_dims": True, "rows": 2000, "columns": {
        **METADATA["columns"], "grp": {"type": "string", "categories": ["a", "b", "c", "rare"]}}}
    h.add_dataset("censored", _rare_frame(), censored)
    yield h
    h.close()


def _spent(h: LomasHarness, user: str, dataset: str = "people") -> Budget:
    return h.grant(user, dataset).spent


def test_query_charged_its_cost_and_again_when_repeated(harness: LomasHarness) -> None:
    token = harness.add_user("repeat", grant={"people": GRANT})
    body = _body("SELECT grp, AVG(income) AS m FROM df WHERE age > 20 GROUP BY grp")
    with harness.client(token) as c:
        cost = c.post("/v1/datasets/people/cost", json=body).json()
        assert _spent(harness, "repeat") == Budget.of(0, 0)  # cost is free
        one = Budget.of(cost["epsilon"], cost["delta"])
        for n in (1, 2):
            r = c.post("/v1/datasets/people/query", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert (out["epsilon"], out["delta"]) == (cost["epsilon"], cost["delta"])
            assert out["result"]["columns"] == ["grp", "m"] and len(out["result"]["rows"]) == 3
            expected = one if n == 1 else one + one
            assert _spent(harness, "repeat") == expected
        budget = c.get("/v1/datasets/people/budget").json()
        assert budget["spent"] == (one + one).as_floats()


def test_both_table_names(harness: LomasHarness) -> None:
    token = harness.add_user("names", grant={"people": GRANT})
    with harness.client(token) as c:
        for table in ("df", "people", '"people"'):
            r = c.post("/v1/datasets/people/query", json=_body(f"SELECT COUNT(*) AS n FROM {table}"))
            assert r.status_code == 200, r.text
            assert abs(r.json()["result"]["rows"][0][0] - 10_000) < 50


def test_empty_and_suppressed_results_are_charged(harness: LomasHarness) -> None:
    token = harness.add_user("empty", grant={"people": GRANT, "censored": GRANT})
    with harness.client(token) as c:
        body = _body("SELECT grp, COUNT(*) AS n FROM df WHERE age > 500 GROUP BY grp")
        r = c.post("/v1/datasets/people/query", json=body)
        assert r.status_code == 200, r.text
        # public keys: all declared categories, each a count of nobody plus noise
        assert [row[0] for row in r.json()["result"]["rows"]] == ["a", "b", "c"]
        assert _spent(harness, "empty") == Budget.of(r.json()["epsilon"], r.json()["delta"])

        body = _body("SELECT grp, COUNT(*) AS n FROM censored GROUP BY grp", delta=1e-7)
        r = c.post("/v1/datasets/censored/query", json=body)
        assert r.status_code == 200, r.text
        groups = {row[0] for row in r.json()["result"]["rows"]}
        assert "rare" not in groups and groups == {"a", "b", "c"}
        assert r.json()["epsilon"] > 0 and r.json()["delta"] > 0
        assert _spent(harness, "empty", "censored") == Budget.of(r.json()["epsilon"],
                                                                 r.json()["delta"])


HOSTILE = {
    "other table": "SELECT COUNT(*) FROM other_table",
    "catalog": "SELECT COUNT(*) FROM sqlite_master",
    "duckdb catalog": "SELECT COUNT(*) FROM duckdb_tables",
    "drop": "SELECT COUNT(*) FROM df; DROP TABLE df",
    "attach": "ATTACH DATABASE '/tmp/lomas-pwned.db' AS pwned",
    "file read": "SELECT COUNT(*) FROM read_csv('/etc/passwd')",
    "load_extension": "SELECT load_extension('/tmp/x.so') FROM df",
    "subquery": "SELECT COUNT(*) FROM (SELECT * FROM df) AS t",
    "huge": "SELECT COUNT(*) FROM df WHERE grp = '" + "x" * 30_000 + "'",
    "deep": "SELECT COUNT(*) FROM df WHERE " + "(" * 500 + "age > 1" + ")" * 500,
    "unknown column": "SELECT AVG(wingspan) FROM df",
    "unbounded sum": "SELECT SUM(score) FROM df",
    "not sql": "please give me the raw rows",
    "raw rows": "SELECT age FROM df",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_and_hostile_sql_refused_budget_unchanged(harness: LomasHarness,
                                                            case: str) -> None:
    user = "h_" + "".join(ch for ch in case if ch.isalnum())
    token = harness.add_user(user, grant={"people": GRANT})
    with harness.client(token) as c:
        for route in ("cost", "query"):
            r = c.post(f"/v1/datasets/people/{route}", json=_body(HOSTILE[case]))
            assert 400 <= r.status_code < 500, r.text
            error = r.json()["error"]
            assert error["code"] in ("invalid_query", "invalid_request", "payload_too_large")
            assert "Traceback" not in r.text and "snsql" not in error["message"]
        r = c.post("/v1/datasets/people/query", json={**_body(HOSTILE[case]),
                                                     "dummy": {"rows": 20}})
        assert 400 <= r.status_code < 500
        assert c.get("/v1/datasets/people/queries").json()["queries"] == []
    assert _spent(harness, user) == Budget.of(0, 0)


@pytest.mark.parametrize("payload", [
    {"sql": COUNT, "epsilon": -1.0, "delta": 1e-5},
    {"sql": COUNT, "epsilon": 1.0, "delta": 2.0},
    {"sql": COUNT, "epsilon": 1.0, "delta": 1e-5, "mechanisms": {"count": "exponential"}},
    {"sql": COUNT, "epsilon": 1.0, "delta": 1e-5, "extra": True},
    {"sql": 42, "epsilon": 1.0, "delta": 1e-5},
])
def test_malformed_payloads(harness: LomasHarness, payload: dict[str, Any]) -> None:
    token = harness.add_user(f"m_{abs(hash(str(payload))) % 10**8}", grant={"people": GRANT})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query", json={"engine": ENGINE, "query": payload})
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"] in ("invalid_query", "invalid_request")


def test_dummy_is_free_and_runs_the_same_sql(harness: LomasHarness) -> None:
    token = harness.add_user("dummy", grant={"people": GRANT})
    with harness.client(token) as c:
        body = {**_body("SELECT grp, COUNT(*) AS n, AVG(age) AS m FROM people GROUP BY grp"),
                "dummy": {"rows": 300, "seed": 3}}
        r = c.post("/v1/datasets/people/query", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["dummy"] is True and out["result"]["columns"] == ["grp", "n", "m"]
        assert {row[0] for row in out["result"]["rows"]} <= {"a", "b", "c"}
    assert _spent(harness, "dummy") == Budget.of(0, 0)


def test_value_dependent_database_errors_cannot_happen(harness: LomasHarness) -> None:
    # CAST('a' AS INTEGER) fails in the database: were it an error, whether the query fails
    # would tell whether some row holds a non-number, without noise. Such rows count as NULL.
    token = harness.add_user("casts", grant={"people": GRANT})
    with harness.client(token) as c:
        for sql in ("SELECT COUNT(*) AS n FROM df WHERE CAST(grp AS INTEGER) > 1",
                    "SELECT COUNT(*) AS n FROM df WHERE age % (age - age) = 0",
                    "SELECT COUNT(*) AS n FROM df WHERE (age + 2) * 9223372036854775807 > 1"):
            r = c.post("/v1/datasets/people/query", json=_body(sql))
            assert r.status_code == 200, r.text
            assert abs(r.json()["result"]["rows"][0][0]) < 40  # no row passes; noise only
        r = c.post("/v1/datasets/people/query", json=_body(
            "SELECT grp, COUNT(*) AS n FROM df WHERE CAST(age AS VARCHAR) = '5' GROUP BY grp"))
        assert r.status_code == 200, r.text


def test_concurrent_queries_charged_their_own_cost(harness: LomasHarness) -> None:
    token = harness.add_user("concurrent", grant={"people": GRANT})
    epsilons = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    sql = "SELECT grp, SUM(age) AS s FROM df GROUP BY grp"
    answers: dict[float, Any] = {}
    errors: list[BaseException] = []
    with harness.serve() as url:
        headers = {"Authorization": f"Bearer {token}"}
        costs = {eps: httpx.post(f"{url}/v1/datasets/people/cost", json=_body(sql, eps),
                                 headers=headers, timeout=60).json() for eps in epsilons}
        start = threading.Barrier(len(epsilons))

        def ask(eps: float) -> None:
            try:
                start.wait()
                r = httpx.post(f"{url}/v1/datasets/people/query", json=_body(sql, eps),
                               headers=headers, timeout=120)
                answers[eps] = (r.status_code, r.json())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=(eps,)) for eps in epsilons]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
    assert not errors, errors
    total = Budget.of(0, 0)
    for eps in epsilons:
        status, out = answers[eps]
        assert status == 200, out
        assert (out["epsilon"], out["delta"]) == (costs[eps]["epsilon"], costs[eps]["delta"])
        assert out["epsilon"] == pytest.approx(eps)
        total = total + Budget.of(out["epsilon"], out["delta"])
    assert _spent(harness, "concurrent") == total


def test_unaliased_outputs_get_readable_names(harness: LomasHarness) -> None:
    """SmartNoise-SQL names an unaliased expression '???'; the answer names it after its text."""
    token = harness.add_user("readable", grant={"people": GRANT})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query",
                   json=_body("SELECT grp, AVG(age), COUNT(*), SUM(age) AS total FROM df GROUP BY grp",
                              epsilon=3.0, delta=1e-4))
    assert r.status_code == 200, r.text
    assert r.json()["result"]["columns"] == ["grp", "avg_age", "count", "total"]


def test_readable_columns_stay_unique() -> None:
    from lomas_engine_smartnoise_sql.engine import readable_columns

    assert readable_columns(["avg_age", "???"], "SELECT AVG(age) AS avg_age, AVG(age) FROM df") == [
        "avg_age", "avg_age_2"]
    assert readable_columns(["n"], "SELECT COUNT(*) AS n FROM df") == ["n"]
    assert readable_columns(["???", "???"], "not sql") == ["col_1", "col_2"]
