# mypy: disable-error-code="attr-defined,union-attr"
"""Through the real HTTP API (in-process app and a real server): hostile payloads get a 4xx with
a code and leave the budget untouched; a good query is charged exactly its cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from lomas_engine_opendp.wire import empty_lazyframe, make_payload, serialize_plan
from opendp_testdata import METADATA, make_table

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness

GRANT = (10.0, 1e-4)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    h = LomasHarness(tmp_path_factory.mktemp("opendp-http"), engines={"opendp": {}},
                     limits={"max_body_bytes": 200_000})
    h.add_dataset("people", make_table(), METADATA)
    yield h
    h.close()


@pytest.fixture(scope="module")
def dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _hostile(tmp: Path, dp: Any) -> dict[str, dict[str, Any]]:
    secret = tmp / "server-secret.csv"
    secret.write_text("x\n1\n")
    lf = empty_lazyframe(METADATA)
    bad_column = pl.LazyFrame(schema={**dict(lf.collect_schema()), "salary": pl.Float64})
    call = {"__module__": "os", "__function__": "system",
            "__kwargs__": {"command": f"touch {tmp / 'pwned'}"}}
    return {
        "os.system": {"pipeline": json.dumps(call)},
        "builtins.eval": {"pipeline": json.dumps({**call, "__module__": "builtins",
                                                  "__function__": "eval"})},
        "python udf": {"plan": serialize_plan(lf.select(
            pl.col("x").map_elements(lambda v: v, return_dtype=pl.Float64))), "epsilon": 1.0},
        "scan server file": {"plan": serialize_plan(pl.scan_csv(secret).select(
            pl.len().dp.noise())), "epsilon": 1.0},
        "unknown column": {"plan": serialize_plan(bad_column.select(
            pl.col("salary").dp.sum((0.0, 1.0)))), "epsilon": 1.0},
        "oversized": {"plan": "x" * 300_000, "epsilon": 1.0},
    }


@pytest.mark.parametrize("case", ["os.system", "builtins.eval", "python udf", "scan server file",
                                  "unknown column", "oversized"])
def test_hostile_payloads_refused_budget_unchanged(harness: LomasHarness, dp: Any, tmp_path: Path,
                                                   case: str) -> None:
    user = "u_" + "".join(c for c in case if c.isalnum())
    token = harness.add_user(user, grant={"people": GRANT})
    payload = _hostile(tmp_path, dp)[case]
    with harness.client(token) as c:
        for route in ("cost", "query"):
            r = c.post(f"/v1/datasets/people/{route}", json={"engine": "opendp", "query": payload})
            assert 400 <= r.status_code < 500, r.text
            assert r.json()["error"]["code"] in ("invalid_query", "invalid_request",
                                                 "payload_too_large")
            assert "Traceback" not in r.text
    assert harness.grant(user, "people").spent == Budget.of(0, 0)
    assert not (tmp_path / "pwned").exists()


def test_good_queries_charged_their_cost(harness: LomasHarness, dp: Any) -> None:
    token = harness.add_user("good", grant={"people": GRANT})
    plan = empty_lazyframe(METADATA).group_by("g").agg(pl.len().dp.noise(),
                                                   pl.col("k").dp.sum((0, 10)))
    domain = dp.vector_domain(dp.atom_domain(T=dp.i64))
    count = dp.t.make_count(domain, dp.symmetric_distance()) >> dp.m.then_laplace(2.0)
    spent = Budget.of(0, 0)
    with harness.client(token) as c:
        for payload in (make_payload(plan, epsilon=0.5), make_payload(count, column="k")):
            body = {"engine": "opendp", "query": payload}
            cost = c.post("/v1/datasets/people/cost", json=body).json()
            r = c.post("/v1/datasets/people/query", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert (out["epsilon"], out["delta"]) == (cost["epsilon"], cost["delta"])
            spent = spent + Budget.of(cost["epsilon"], cost["delta"])
        assert out["result"]["type"] == "value"
    assert harness.grant("good", "people").spent == spent


def test_over_real_server(harness: LomasHarness) -> None:
    token = harness.add_user("served", grant={"people": GRANT})
    payload = make_payload(empty_lazyframe(METADATA).select(pl.len().dp.noise()), epsilon=1.0)
    with harness.serve() as url:
        r = httpx.post(f"{url}/v1/datasets/people/query", timeout=60,
                       headers={"Authorization": f"Bearer {token}"},
                       json={"engine": "opendp", "query": payload})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["columns"] == ["len"] and abs(result["rows"][0][0] - 3000) < 50
