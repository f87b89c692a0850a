"""The ``postgresql`` source through the HTTP API, on a real PostgreSQL, with engines in threads
and in the worker pool: answered where the table lives and charged; engines that cannot push down
read it into memory; an unreachable database refunded; a table over its declared ``rows`` failed with the
charge kept; cost and dummy runs never touch the database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lomas_core.budget import Budget
from lomas_core.models import DatasetDescription
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame
from lomas_testsupport.postgres import load_table

pytest.importorskip("lomas_engine_smartnoise_sql")

METADATA: dict[str, Any] = {
    "max_ids": 2, "rows": 200, "censor_dims": False, "row_privacy": False,
    "columns": {
        "pid": {"type": "int", "private_id": True, "nullable": True},
        "colour": {"type": "string", "categories": ["red", "blue"], "public_keys": True},
        "x": {"type": "float", "lower": 0, "upper": 10, "nullable": True},
    },
}
COUNT = {"engine": "smartnoise_sql",
         "query": {"sql": "SELECT colour, COUNT(*) AS n, SUM(x) AS s FROM df GROUP BY colour",
                   "epsilon": 1.0, "delta": 1e-5}}


@pytest.fixture(scope="module", params=[0, 1], ids=["threads", "pool"])
def harness(request: pytest.FixtureRequest, lomas_postgres: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    # Secrets as files: worker processes fork from a server that may have started before this
    # module set any environment variable.
    tmp = tmp_path_factory.mktemp("pg-http")
    (tmp / "pg.dsn").write_text(lomas_postgres.reader_dsn)
    (tmp / "down.dsn").write_text(lomas_postgres.reader_dsn.replace(
        f"port={lomas_postgres.port}", "port=1"))
    h = LomasHarness(tmp, engines={"smartnoise_sql": {}, "toy_count": {}},
                     adapters={"postgresql": {"statement_timeout_seconds": 30,
                                              "connect_timeout_seconds": 2}},
                     execution={"workers": request.param},
                     secrets={name: {"file": str(tmp / f"{name}.dsn"), "adapters": ["postgresql"],
                                     "allowed_hosts": ["127.0.0.1"]} for name in ("pg", "down")})
    load_table(lomas_postgres.dsn(), "http_people", contract_frame(people=60),
               reader="lomas_reader")
    for name, table, credentials, rows in (("people", "http_people", "pg", 200),
                                           ("over", "http_people", "pg", 50),
                                           ("down", "http_people", "down", 200)):
        h.add_dataset_description(DatasetDescription(
            name=name, adapter="postgresql", options={"credentials": credentials, "table": table},
            metadata={**METADATA, "rows": rows}))
    yield h
    h.close()


def _user(h: LomasHarness, prefix: str, dataset: str) -> tuple[str, str]:
    user = f"{prefix}{id(h)}"
    return user, h.add_user(user, grant={dataset: (10.0, 1e-3)})


def test_answered_on_the_database_and_charged(harness: LomasHarness) -> None:
    user, token = _user(harness, "r", "people")
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query", json=COUNT)
        assert r.status_code == 200, r.text
        rows = r.json()["result"]["rows"]
    assert [row[0] for row in rows] == ["red", "blue"]
    for _, n, _ in rows:  # 60 people with at most 2 rows each: 60 red and 60 blue rows
        assert abs(n - 60) < 30
    assert harness.grant(user, "people").spent != Budget.of(0, 0)


def test_engine_that_cannot_push_down_reads_into_memory(harness: LomasHarness) -> None:
    user = f"t{id(harness)}"
    token = harness.add_user(user, grant={"people": (10.0, 1e-3)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query",
                   json={"engine": "toy_count", "query": {"epsilon": 1.0}})
    assert r.status_code == 200, r.text
    assert harness.grant(user, "people").spent == Budget.of(1.0, 0)


def test_construct_with_no_safe_form_is_refused_free(harness: LomasHarness) -> None:
    user, token = _user(harness, "c", "people")
    body = {"engine": "smartnoise_sql", "query": {
        "sql": "SELECT COUNT(*) AS n FROM df WHERE CAST(colour AS INTEGER) > 0",
        "epsilon": 1.0, "delta": 1e-5}}
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", r.text
    assert harness.grant(user, "people").spent == Budget.of(0, 0)


def test_more_rows_than_declared_fails_and_keeps_the_charge(harness: LomasHarness) -> None:
    user, token = _user(harness, "o", "over")
    with harness.client(token) as c:
        r = c.post("/v1/datasets/over/query", json=COUNT)
    assert 400 <= r.status_code < 600 and r.status_code != 500, r.text
    assert harness.grant(user, "over").spent != Budget.of(0, 0)


def test_cost_and_dummy_never_touch_the_database(harness: LomasHarness) -> None:
    _, token = _user(harness, "d", "down")
    with harness.client(token) as c:
        assert c.post("/v1/datasets/down/cost", json=COUNT).status_code == 200
        r = c.post("/v1/datasets/down/query", json={**COUNT, "dummy": {"rows": 50, "seed": 1}})
        assert r.status_code == 200, r.text


def test_unreachable_database_is_refunded(harness: LomasHarness) -> None:
    user, token = _user(harness, "u", "down")
    with harness.client(token) as c:
        r = c.post("/v1/datasets/down/query", json=COUNT)
    assert r.status_code == 503 and r.json()["error"]["code"] == "dataset_unavailable", r.text
    assert "password" not in r.text and "port=" not in r.text
    assert harness.grant(user, "down").spent == Budget.of(0, 0)
