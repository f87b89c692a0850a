"""The ``duckdb`` source through the HTTP API: SmartNoise-SQL answered where the file lies, with
engines in threads and in the worker pool; engines that cannot push down read it into memory; a missing
file refunded; a table over its declared ``rows`` failed with the charge kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame

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
         "query": {"sql": "SELECT colour, COUNT(*) AS n FROM df GROUP BY colour",
                   "epsilon": 1.0, "delta": 1e-5}}


@pytest.fixture(scope="module", params=[0, 1], ids=["threads", "pool"])
def harness(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    tmp = tmp_path_factory.mktemp("duckdb-http")
    h = LomasHarness(tmp, engines={"smartnoise_sql": {}, "toy_count": {}},
                     adapters={"duckdb": {"allowed_dirs": [str(tmp)]}},
                     execution={"workers": request.param})
    h.add_dataset("people", contract_frame(people=60), METADATA, adapter="duckdb")
    h.add_dataset("over", contract_frame(people=60), {**METADATA, "rows": 50}, adapter="duckdb")
    gone = h.add_dataset("gone", contract_frame(), METADATA, adapter="duckdb")
    gone.unlink()
    yield h
    h.close()


def test_answered_on_the_source_and_charged(harness: LomasHarness) -> None:
    token = harness.add_user(f"r{id(harness)}", grant={"people": (10.0, 1e-3)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query", json=COUNT)
        assert r.status_code == 200, r.text
        rows = r.json()["result"]["rows"]
    assert [row[0] for row in rows] == ["red", "blue"]  # public keys, declared order
    for _, n in rows:  # 60 people with at most 2 rows each: 60 red and 60 blue rows
        assert abs(n - 60) < 30
    assert harness.grant(f"r{id(harness)}", "people").spent != Budget.of(0, 0)


def test_engine_that_cannot_push_down_reads_into_memory(harness: LomasHarness) -> None:
    user = f"t{id(harness)}"
    token = harness.add_user(user, grant={"people": (10.0, 1e-3)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query",
                   json={"engine": "toy_count", "query": {"epsilon": 1.0}})
    assert r.status_code == 200, r.text
    assert harness.grant(user, "people").spent == Budget.of(1.0, 0)


def test_missing_file_is_refunded(harness: LomasHarness) -> None:
    user = f"g{id(harness)}"
    token = harness.add_user(user, grant={"gone": (10.0, 1e-3)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/gone/query", json=COUNT)
    assert r.status_code == 503, r.text
    assert harness.grant(user, "gone").spent == Budget.of(0, 0)


def test_more_rows_than_declared_fails_and_keeps_the_charge(harness: LomasHarness) -> None:
    user = f"o{id(harness)}"
    token = harness.add_user(user, grant={"over": (10.0, 1e-3)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/over/query", json=COUNT)
    assert r.status_code >= 400 and r.status_code != 500, r.text
    assert "rows" not in r.json()["error"]["message"] or "metadata" in r.json()["error"]["message"]
    assert harness.grant(user, "over").spent != Budget.of(0, 0)


def test_dummy_and_cost_never_touch_the_source(harness: LomasHarness, tmp_path: Path) -> None:
    user = f"d{id(harness)}"
    token = harness.add_user(user, grant={"gone": (10.0, 1e-3)})
    with harness.client(token) as c:
        assert c.post("/v1/datasets/gone/cost", json=COUNT).status_code == 200
        r = c.post("/v1/datasets/gone/query", json={**COUNT, "dummy": {"rows": 50, "seed": 1}})
        assert r.status_code == 200, r.text
