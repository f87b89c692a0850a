"""Researcher responses: each matches its documented response model, budgets travel as the exact
decimals the ledger holds (JSON numerals, not rounded doubles), and the client reads them exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from lomas_core.metadata import Metadata
from lomas_core.server import schemas
from lomas_core.server.openapi import ROUTE_RESPONSES
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)]})
# 17 significant digits: a double cannot hold it (it would print 12345678.12345679).
GRANT = "12345678.123456789"
COST = "0.100000001"


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory):
    harness = LomasHarness(tmp_path_factory.mktemp("research"), engines={"toy_count": {}})
    harness.add_dataset("ds", FRAME, META)
    harness.token = harness.add_user("rita", grant={"ds": (GRANT, "0.00001")})  # type: ignore[attr-defined]
    yield harness
    harness.close()


def _check(model: Any, body: Any) -> Any:
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_validate(body)


def test_every_research_route_answers_its_documented_model(h: LomasHarness) -> None:
    query = {"engine": "toy_count", "query": {"epsilon": float(COST)}}
    with h.client(h.token) as c:  # type: ignore[attr-defined]
        answers = {
            "GET /v1/datasets": c.get("/v1/datasets"),
            "GET /v1/datasets/{name}/metadata": c.get("/v1/datasets/ds/metadata"),
            "POST /v1/datasets/{name}/dummy": c.post("/v1/datasets/ds/dummy", json={"rows": 5}),
            "POST /v1/datasets/{name}/cost": c.post("/v1/datasets/ds/cost", json=query),
            "POST /v1/datasets/{name}/query": c.post("/v1/datasets/ds/query", json=query),
            "GET /v1/datasets/{name}/budget": c.get("/v1/datasets/ds/budget"),
            "GET /v1/datasets/{name}/queries": c.get("/v1/datasets/ds/queries"),
        }
        dummy = c.post("/v1/datasets/ds/query", json={**query, "dummy": {"rows": 5, "seed": 1}})
    for key, response in answers.items():
        assert response.status_code == 200, (key, response.text)
        assert response.headers["content-type"] == "application/json"
        _check(ROUTE_RESPONSES[key], response.json())
    assert ROUTE_RESPONSES["GET /v1/datasets/{name}/metadata"] is Metadata
    assert _check(schemas.QueryResponse, dummy.json()).remaining is None
    page = _check(schemas.ArchivePageResponse, answers["GET /v1/datasets/{name}/queries"].json())
    assert [q.status for q in page.queries] == ["success"]


def test_budgets_are_exact_decimal_numerals_in_the_json(h: LomasHarness) -> None:
    query = {"engine": "toy_count", "query": {"epsilon": float(COST)}}
    with h.client(h.token) as c:  # type: ignore[attr-defined]
        before = json.loads(c.get("/v1/datasets/ds/budget").text, parse_float=Decimal)
        answer = json.loads(c.post("/v1/datasets/ds/query", json=query).text, parse_float=Decimal)
        after = json.loads(c.get("/v1/datasets/ds/budget").text, parse_float=Decimal)
        records = json.loads(c.get("/v1/datasets/ds/queries").text, parse_float=Decimal)["queries"]
    assert after["initial"] == {"epsilon": Decimal(GRANT), "delta": Decimal("0.00001")}
    assert answer["epsilon"] == Decimal(COST)
    assert after["remaining"] == answer["remaining"]
    assert after["remaining"]["epsilon"] == before["remaining"]["epsilon"] - Decimal(COST)
    assert after["spent"]["epsilon"] + after["remaining"]["epsilon"] == Decimal(GRANT)
    assert records[-1]["epsilon"] == Decimal(COST)


def test_the_client_reads_the_ledger_digits(h: LomasHarness) -> None:
    from lomas_client import Budget, Client

    with h.serve() as url, Client(url=url, token=h.token, dataset_name="ds") as client:  # type: ignore[attr-defined]
        initial = client.get_initial_budget()
        cost = client.cost("toy_count", {"epsilon": float(COST)})
        res = client.query("toy_count", {"epsilon": float(COST)})
        budget = client.get_budget()
    assert isinstance(initial, Budget) and str(initial.epsilon) == GRANT
    assert cost == {"epsilon": Decimal(COST), "delta": 0} and res.cost == cost
    assert res.remaining == budget["remaining"]
    assert budget["spent"] + budget["remaining"] == initial
