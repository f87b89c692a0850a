"""The query lifecycle: charge once, archive, idempotent replay, release, failures, limits."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from lomas_core.testing.harness import LomasHarness, ToyFaultyEngine

META = {"max_ids": 1, "rows": 30, "columns": {
    "x": {"type": "int", "lower": 0, "upper": 9},
    "g": {"type": "string", "categories": ["a", "b", "c"]}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(30)], "g": ["a", "b", "c"] * 10})


def q(engine: str = "toy_count", **query: object) -> dict:
    return {"engine": engine, "query": {"epsilon": 0.1, **query}}


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}, "toy_faulty": {}},
                           limits={"query_timeout_seconds": 1.0, "cost_timeout_seconds": 1.0,
                                   "max_inflight_per_user": 1})
    harness.add_dataset("ds", FRAME, META)
    yield harness
    harness.close()


def spent(h: LomasHarness, user: str = "alice") -> Decimal:
    return h.grant(user, "ds").spent.epsilon


def test_charged_query_archives_and_reports_remaining(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 1e-5)})
    with h.client(token) as c:
        for _ in range(10):
            r = c.post("/v1/datasets/ds/query", json=q())
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["dummy"] is False and body["engine"] == "toy_count"
            assert body["epsilon"] == 0.1 and body["result"]["type"] == "value"
        assert spent(h) == Decimal("1.0")  # exact: ten times 0.1
        assert body["remaining"] == {"epsilon": 0.0, "delta": 1e-5}
        r = c.post("/v1/datasets/ds/query", json=q())
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_budget"
        queries = c.get("/v1/datasets/ds/queries").json()["queries"]
    assert len(queries) == 10 and {x["status"] for x in queries} == {"success"}
    assert queries[-1]["id"] == body["query_id"]


def test_cost_is_free_and_reads_no_data(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/cost", json={"engine": "toy_count", "query": {"epsilon": 0.3,
                                                                                   "delta": 1e-6}})
        assert r.json() == {"epsilon": 0.3, "delta": 1e-6}
        assert h.app_state(c).cache.loads == 0
    assert spent(h) == 0 and h.store.list_archive() == []


def test_unknown_engine_lists_enabled(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q("smartnoise_nope"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_query"
    assert "toy_count, toy_faulty" in r.json()["error"]["message"]
    assert spent(h) == 0


def test_dummy_is_free_and_never_loads_private_data(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    (h.data_dir / "ds.parquet").unlink()  # the private data is gone; dummies must not care
    with h.client(token) as c:
        body = {**q("toy_faulty"), "dummy": {"rows": 7, "seed": 3}}
        r = c.post("/v1/datasets/ds/query", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"query_id": None, "engine": "toy_faulty", "dummy": True,
                            "result": {"type": "value", "value": 7}, "epsilon": 0.0, "delta": 0.0,
                            "remaining": None}
        r = c.post("/v1/datasets/ds/dummy", json={"rows": 4, "seed": 3})
        assert r.status_code == 200 and len(r.json()["rows"]) == 4
        assert h.app_state(c).cache.loads == 0
        failing = c.post("/v1/datasets/ds/query", json={**q("toy_faulty", action="raise"),
                                                         "dummy": {"rows": 5, "seed": 1}})
        assert failing.status_code == 422
        assert "private-value" not in failing.text and "nothing was charged" in failing.text
    assert spent(h) == 0 and h.store.list_archive() == []


def test_idempotent_replay_charges_once(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        first = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "k-1"})
        again = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()  # same noisy answer, same cost, same id
        other = c.post("/v1/datasets/ds/query", json=q(epsilon=0.2), headers={"Idempotency-Key": "k-1"})
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
        engine_change = c.post("/v1/datasets/ds/query", json=q("toy_faulty"),
                               headers={"Idempotency-Key": "k-1"})
        assert engine_change.status_code == 409
    assert spent(h) == Decimal("0.1")
    assert len(h.store.list_archive()) == 1


def test_failed_query_replays_stored_error_without_rerun(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    ToyFaultyEngine.runs.clear()
    with h.client(token) as c:
        body = q("toy_faulty", action="raise")
        first = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "f"})
        again = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "f"})
    assert first.status_code == again.status_code == 422
    assert first.json() == again.json()
    assert first.json()["error"]["code"] == "query_failed"
    assert "private-value" not in first.text and "RuntimeError" not in first.text
    assert ToyFaultyEngine.runs[("ds", False)] == 1  # never re-run
    assert spent(h) == Decimal("0.1")  # the charge stays
    [record] = h.store.list_archive()
    assert record.status == "failed" and "private-value" not in str(record.error)


def test_unserializable_result_is_a_failure(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q("toy_faulty", action="unserializable"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "query_failed"
    assert spent(h) == Decimal("0.1")


def test_release_when_dataset_unavailable_untouched(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    (h.data_dir / "ds.parquet").unlink()  # deleted between the grant and the query
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "u"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "dataset_unavailable"
        assert "nothing was charged" in r.json()["error"]["message"]
        again = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "u"})
        assert again.status_code == 503
    assert spent(h) == 0
    [record] = h.store.list_archive()
    assert record.status == "released"


def test_corrupt_data_keeps_the_charge(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    (h.data_dir / "ds.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q())
    assert r.status_code == 422 and r.json()["error"]["code"] == "charged_failure"
    assert "stays charged" in r.json()["error"]["message"]
    assert spent(h) == Decimal("0.1")
    [record] = h.store.list_archive()
    assert record.status == "failed"


def test_timeout_keeps_the_charge(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q("toy_faulty", action="sleep", seconds=3))
    assert r.status_code == 504 and r.json()["error"]["code"] == "query_timeout"
    assert spent(h) == Decimal("0.1")
    assert h.store.list_archive()[0].status == "failed"


def test_slow_cost_estimation_is_refused_and_free(h: LomasHarness) -> None:
    ToyFaultyEngine.runs.clear()
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        for path in ("cost", "query"):
            r = c.post(f"/v1/datasets/ds/{path}", json=q("toy_faulty", action="slow_cost", seconds=3))
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "invalid_query"
            assert "longer than 1 seconds" in r.json()["error"]["message"]
    assert spent(h) == Decimal("0")
    assert h.store.list_archive() == []
    assert ToyFaultyEngine.runs.get(("ds", False), 0) == 0


def test_inflight_limit_and_release_after_crash(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (5.0, 0.0)})
    with h.client(token) as c:
        for _ in range(3):  # crashes release the slot
            assert c.post("/v1/datasets/ds/query", json=q("toy_faulty", action="raise")).status_code == 422
        assert c.post("/v1/datasets/ds/query", json=q()).status_code == 200
        results: list[int] = []

        def slow() -> None:
            results.append(c.post("/v1/datasets/ds/query",
                                  json=q("toy_faulty", action="sleep", seconds=0.6)).status_code)

        thread = threading.Thread(target=slow)
        thread.start()
        deadline = time.monotonic() + 5
        while h.app_state(c).inflight.inflight("alice") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = c.post("/v1/datasets/ds/query", json=q())
        thread.join()
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "too_many_queries"
        assert results == [200]
        assert h.app_state(c).inflight.inflight("alice") == 0
        assert c.post("/v1/datasets/ds/query", json=q()).status_code == 200


def test_pending_idempotency_key_is_409(h: LomasHarness) -> None:
    h.raw_config["limits"]["max_inflight_per_user"] = 4
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    body = q("toy_faulty", action="sleep", seconds=0.6)
    with h.client(token) as c:
        out: list[int] = []
        thread = threading.Thread(target=lambda: out.append(c.post(
            "/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "p"}).status_code))
        thread.start()
        deadline = time.monotonic() + 5
        while not h.store.list_archive() and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "p"})
        thread.join()
    assert r.status_code == 409 and r.json()["error"]["code"] == "query_in_progress"
    assert out == [200]
    assert spent(h) == Decimal("0.1")


def test_concurrent_charges_never_overspend(h: LomasHarness) -> None:
    h.raw_config["limits"]["max_inflight_per_user"] = None
    token = h.add_user("alice", grant={"ds": (0.5, 0.0)})
    with h.client(token) as c:
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(
            c.post("/v1/datasets/ds/query", json=q()).status_code)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes) == [200] * 5 + [403] * 7
    assert spent(h) == Decimal("0.5")
