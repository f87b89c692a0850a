"""Prometheus metrics on /metrics: values after a scripted mix of queries, privacy of labels,
configuration (path, own port, disabled), and the liveness/readiness probes."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 30, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(30)]})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def harness(tmp_path: Path, **observability: Any) -> LomasHarness:
    h = LomasHarness(tmp_path, engines={"toy_count": {}, "toy_faulty": {}},
                     observability=observability or {})
    h.add_dataset("ds", FRAME, META)
    h.add_dataset("gone", FRAME, META)
    return h


def q(engine: str = "toy_count", epsilon: float = 0.1, **query: object) -> dict:
    return {"engine": engine, "query": {"epsilon": epsilon, **query}}


def scripted_mix(h: LomasHarness) -> tuple[str, str]:
    """3 successes, 1 failed, 1 released, 2 refused (budget, unknown engine); scrape."""
    token = h.add_user("alice-secret-name", grant={"ds": (0.35, 0.0), "gone": (1.0, 0.0)})
    (h.data_dir / "gone.parquet").unlink()
    with h.client(token) as c:
        for _ in range(3):
            assert c.post("/v1/datasets/ds/query", json=q()).status_code == 200
        r = c.post("/v1/datasets/ds/query", json=q())
        assert r.json()["error"]["code"] == "insufficient_budget"
        r = c.post("/v1/datasets/ds/query", json=q("toy_faulty", 0.01, action="raise"))
        assert r.json()["error"]["code"] == "query_failed"
        r = c.post("/v1/datasets/gone/query", json=q())
        assert r.json()["error"]["code"] == "dataset_unavailable"
        r = c.post("/v1/datasets/ds/query", json=q("made_up_engine"))
        assert r.json()["error"]["code"] == "invalid_query"
        scrape = c.get("/metrics", headers={"Authorization": ""})
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        return scrape.text, token


def test_scrape_after_scripted_mix(tmp_path: Path) -> None:
    h = harness(tmp_path)
    try:
        text, token = scripted_mix(h)
    finally:
        h.close()
    m = samples(text)
    # queries by outcome and code
    assert value(m, "lomas_queries_total", engine="toy_count", outcome="success", code="") == 3
    assert value(m, "lomas_queries_total", engine="toy_faulty", outcome="failed",
                 code="query_failed") == 1
    assert value(m, "lomas_queries_total", engine="toy_count", outcome="released", code="") == 1
    assert value(m, "lomas_queries_total", engine="toy_count", outcome="refused",
                 code="insufficient_budget") == 1
    assert value(m, "lomas_queries_total", engine="other", outcome="refused",
                 code="invalid_query") == 1
    # budget charged, aggregated (released refunds are not counted)
    assert value(m, "lomas_budget_charged_epsilon_total", dataset="_all") == pytest.approx(0.31)
    assert value(m, "lomas_budget_charged_delta_total", dataset="_all") == 0
    # lifecycle stages: cost for every prepared query, charge for every attempt at charging
    count = "lomas_query_stage_duration_seconds_count"
    assert value(m, count, engine="toy_count", stage="cost") == 5
    assert value(m, count, engine="toy_faulty", stage="cost") == 1
    assert value(m, count, engine="toy_count", stage="charge") == 5
    assert value(m, count, engine="toy_count", stage="load") == 4
    assert value(m, count, engine="toy_count", stage="run") == 3
    assert value(m, count, engine="toy_faulty", stage="run") == 1
    assert value(m, count, engine="toy_count", stage="archive") == 3
    assert value(m, count, engine="toy_faulty", stage="archive") == 1
    # requests by route template and status
    route = "/v1/datasets/{name}/query"
    assert value(m, "lomas_http_requests_total", route=route, method="POST", status="200") == 3
    assert value(m, "lomas_http_requests_total", route=route, method="POST", status="403") == 1
    assert value(m, "lomas_http_request_duration_seconds_count", route=route) == 7
    # cache: one load of ds, then hits; the missing file loads nothing
    assert value(m, "lomas_cache_misses_total") == 1
    assert value(m, "lomas_cache_hits_total") == 3
    assert value(m, "lomas_cache_evictions_total") == 0
    assert value(m, "lomas_cache_bytes") > 0
    # store: every charge timed, none raised (a refused charge is an answer, not an error)
    assert value(m, "lomas_store_operation_duration_seconds_count", operation="charge") == 6
    assert value(m, "lomas_store_errors_total", operation="ping") == 0
    # nothing private: no user name, dataset name, token or engine text from a request
    for secret in ("alice-secret-name", token, "gone", '"ds"', "made_up_engine"):
        assert secret not in text


def test_datasets_are_labelled_only_when_the_admin_says_so(tmp_path: Path) -> None:
    h = harness(tmp_path, label_datasets=True)
    try:
        text, _ = scripted_mix(h)
    finally:
        h.close()
    m = samples(text)
    assert value(m, "lomas_budget_charged_epsilon_total", dataset="ds") == pytest.approx(0.31)
    assert value(m, "lomas_budget_charged_epsilon_total", dataset="_all") == 0


def test_metrics_disabled_or_moved(tmp_path: Path) -> None:
    h = harness(tmp_path / "off", metrics={"enabled": False})
    try:
        with h.client() as c:
            assert c.get("/metrics").status_code == 404
    finally:
        h.close()
    h = harness(tmp_path / "path", metrics={"path": "/internal/prom"})
    try:
        with h.client() as c:
            assert c.get("/metrics").status_code == 404
            assert "lomas_http_requests_total" in c.get("/internal/prom").text
    finally:
        h.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = harness(tmp_path / "port", metrics={"port": port, "host": "127.0.0.1"})
    try:
        with h.client() as c:
            assert c.get("/health/live").status_code == 200
            assert c.get("/metrics").status_code == 404
            for _ in range(50):
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert r.status_code == 200
            assert 'lomas_http_requests_total{method="GET",route="/health/live",status="200"}' \
                in r.text
    finally:
        h.close()


def test_probes_live_and_ready(tmp_path: Path) -> None:
    h = harness(tmp_path)
    try:
        with h.client() as c:
            assert c.get("/health/live").json()["status"] == "ok"
            assert c.get("/health/ready").json()["status"] == "ok"
            store = h.app_state(c).store

            def down() -> None:
                raise ConnectionError("mongodb://user:pw@host is down")

            store._store.ping = down  # type: ignore[attr-defined]
            r = c.get("/health/ready")
            assert r.status_code == 503 and r.json()["unavailable"] == ["store"]
            assert "pw@host" not in r.text
            assert c.get("/health/live").status_code == 200  # a store outage restarts nothing
            m = samples(c.get("/metrics").text)
            assert value(m, "lomas_store_errors_total", operation="ping") == 1
    finally:
        h.close()


def test_worker_pool_figures(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}},
                     limits={"query_timeout_seconds": 1.0},
                     execution={"workers": 1, "memory_mb": 1024})
    h.add_dataset("ds", FRAME, META)
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            assert c.get("/health/ready").json()["status"] == "ok"
            r = c.post("/v1/datasets/ds/query",
                       json=q("toy_faulty", 0.1, action="sleep", seconds=5))
            assert r.json()["error"]["code"] == "query_timeout"
            assert c.post("/v1/datasets/ds/query", json=q("toy_faulty")).status_code == 200
            m = samples(c.get("/metrics").text)
    finally:
        h.close()
    assert value(m, "lomas_workers") == 1
    assert value(m, "lomas_workers_busy") == 0
    assert value(m, "lomas_worker_kills_total", cause="timeout") == 1
    assert value(m, "lomas_worker_restarts_total") == 1
    assert value(m, "lomas_queries_total", engine="toy_faulty", outcome="failed",
                 code="query_timeout") == 1


def test_a_failing_observer_breaks_no_query(tmp_path: Path) -> None:
    from lomas_core import hookimpl

    class Broken:
        @hookimpl
        def lomas_query_stage(self, engine: str, stage: str, seconds: float) -> None:
            raise RuntimeError("observer bug")

        @hookimpl
        def lomas_query_refused(self, engine: str, code: str) -> None:
            raise RuntimeError("observer bug")

    h = harness(tmp_path)
    token = h.add_user("alice", grant={"ds": (0.1, 0.0)})
    try:
        with h.client(token) as c:
            h.app_state(c).plugins.pm.register(Broken())
            assert c.post("/v1/datasets/ds/query", json=q()).status_code == 200
            r = c.post("/v1/datasets/ds/query", json=q())
            assert r.json()["error"]["code"] == "insufficient_budget"
    finally:
        h.close()
