"""Engines that cannot push down read a ``duckdb`` dataset into memory through the source, via the
HTTP API, with engines in threads and in the worker pool: OpenDP answered and charged; the
metadata's rules hold on the loaded table; a table over ``limits.max_load_rows`` refused free."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame

pytest.importorskip("lomas_engine_opendp")

METADATA: dict[str, Any] = {
    "max_ids": 2, "rows": 300, "censor_dims": False, "row_privacy": False,
    "columns": {
        "pid": {"type": "int", "private_id": True, "nullable": True},
        "colour": {"type": "string", "categories": ["red", "blue"], "public_keys": True},
        "x": {"type": "float", "lower": 0, "upper": 10, "nullable": True},
    },
}


@pytest.fixture(scope="module", params=[0, 1], ids=["threads", "pool"])
def harness(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    tmp = tmp_path_factory.mktemp("duckdb-load")
    h = LomasHarness(tmp, engines={"opendp": {}, "toy_faulty": {}},
                     adapters={"duckdb": {"allowed_dirs": [str(tmp)]}},
                     execution={"workers": request.param}, limits={"max_load_rows": 500})
    h.add_dataset("people", contract_frame(people=60), METADATA, adapter="duckdb")
    h.add_dataset("huge", contract_frame(people=60), {**METADATA, "rows": 1000}, adapter="duckdb")
    yield h
    h.close()


def _user(h: LomasHarness, prefix: str, dataset: str) -> tuple[str, str]:
    user = f"{prefix}{id(h)}"
    return user, h.add_user(user, grant={dataset: (10.0, 1e-3)})


def test_opendp_reads_the_source_and_is_charged(harness: LomasHarness) -> None:
    import polars as pl
    from lomas_engine_opendp.wire import empty_lazyframe, make_payload

    user, token = _user(harness, "o", "people")
    payload = make_payload(empty_lazyframe(METADATA).select(pl.len().dp.noise()), epsilon=1.0)
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query", json={"engine": "opendp", "query": payload})
        assert r.status_code == 200, r.text
    (n,), = r.json()["result"]["rows"]
    assert abs(n - 120) < 40  # 60 people, at most 2 rows each
    assert harness.grant(user, "people").spent != Budget.of(0, 0)


def test_loaded_table_follows_the_metadata(harness: LomasHarness) -> None:
    user, token = _user(harness, "t", "people")
    with harness.client(token) as c:
        r = c.post("/v1/datasets/people/query",
                   json={"engine": "toy_faulty", "query": {"epsilon": 1.0}})
        assert r.status_code == 200, r.text
    # 60 people x 4 rows, one row without an id, one extra row of person 0: max_ids keeps 2 each.
    assert r.json()["result"]["value"] == 120
    assert harness.grant(user, "people").spent == Budget.of(1.0, 0)


def test_over_the_load_limit_is_refused_free(harness: LomasHarness) -> None:
    user, token = _user(harness, "h", "huge")
    with harness.client(token) as c:
        r = c.post("/v1/datasets/huge/query",
                   json={"engine": "toy_faulty", "query": {"epsilon": 1.0}})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_query" and "limits.max_load_rows" in error["message"]
    assert harness.grant(user, "huge").spent == Budget.of(0, 0)
