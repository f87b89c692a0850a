"""Bad input always gets a clear 4xx (never a 500), and nothing is charged for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)]})
LIMIT = 16384


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}}, limits={"max_body_bytes": LIMIT,
                                                                      "max_dummy_rows": 1000})
    harness.add_dataset("ds", FRAME, META)
    yield harness
    harness.close()


BAD_BODIES: list[bytes] = [
    b"", b"{", b"nul", b"[]", b"42", b'"text"', b"null", b"{}", b'{"engine": null}',
    b'{"engine": "toy_count"}', b'{"engine": "toy_count", "query": []}',
    b'{"engine": "toy_count", "query": "x"}', b'{"engine": 1, "query": {}}',
    b'{"engine": "toy_count", "query": {"epsilon": NaN}}',
    b'{"engine": "toy_count", "query": {"epsilon": Infinity}}',
    b'{"engine": "toy_count", "query": {"epsilon": -1}}',
    b'{"engine": "toy_count", "query": {"epsilon": "lots"}}',
    b'{"engine": "toy_count", "query": {"epsilon": 1e999}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1, "extra": 1}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "dummy": 5}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "dummy": {"rows": -1}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "dummy": {"rows": 10, "seed": -3}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "dummy": {"rows": 100000}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "dummy": {"rows": true}}',
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}, "unknown": 1}',
    b'{"engine": "", "query": {}}', b'{"engine": "nope", "query": {}}',
    b'{"engine": "toy_count", "query": {"a": ' + b"[" * 1500 + b"]" * 1500 + b"}}",
    b"[" * 3000 + b"]" * 3000,
    "{\"engine\": \"t\u00f6y\", \"query\": {}}".encode(), b"\xff\xfe\x00garbage",
    b'{"engine": "toy_count", "query": {"epsilon": 0.1}}' + b" trailing",
]


def test_malformed_query_bodies_are_4xx_and_free(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        for body in BAD_BODIES:
            for ctype in ("application/json", "text/plain"):
                r = c.post("/v1/datasets/ds/query", content=body, headers={"Content-Type": ctype})
                assert 400 <= r.status_code < 500, (body[:60], r.status_code, r.text)
                error = r.json()["error"]
                assert error["code"] in ("invalid_request", "invalid_query") and error["message"]
    grant = h.grant("alice", "ds")
    assert grant.spent.is_zero()
    assert h.store.list_archive() == []


@pytest.mark.parametrize("path", ["/v1/datasets/ds/cost", "/v1/datasets/ds/dummy"])
def test_malformed_other_bodies_are_4xx(h: LomasHarness, path: str) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        for body in BAD_BODIES + [b'{"rows": "many"}', b'{"rows": 0}', b'{"seed": 1.5}']:
            if body == b"{}" and path.endswith("dummy"):
                continue  # all defaults: a valid dummy request
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:60], r.text)


def test_admin_bodies_are_4xx(h: LomasHarness) -> None:
    with h.client(h.admin_token) as c:
        for path in ("/v1/admin/users", "/v1/admin/datasets", "/v1/admin/grants"):
            for body in BAD_BODIES + [b'{"name": "bad name!"}', b'{"name": "x", "adapter": "nope"}',
                                      b'{"user": "admin", "dataset": "ds", "epsilon": -1}',
                                      b'{"user": "admin", "dataset": "ds", "epsilon": 1e400}']:
                r = c.post(path, content=body, headers={"Content-Type": "application/json"})
                assert 400 <= r.status_code < 500, (path, body[:60], r.text)
        r = c.put("/v1/admin/grants/admin/ds", json={"epsilon": "x"})
        assert r.status_code == 400


def _assert_413(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    head = b'{"engine": "toy_count", "query": {"epsilon": 0.1, "pad": "'
    yield head
    sent += len(head)
    while sent < total:
        yield b"a" * 1000
        sent += 1000
    yield b'"}}'


def test_oversized_bodies_in_process(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    big = json.dumps({"engine": "toy_count", "query": {"epsilon": 0.1, "pad": "a" * LIMIT}})
    with h.client(token) as c:
        _assert_413(c.post("/v1/datasets/ds/query", content=big,
                           headers={"Content-Type": "application/json"}))
        _assert_413(c.post("/v1/datasets/ds/query", content=_chunks(LIMIT * 3),
                           headers={"Content-Type": "application/json"}))
        _assert_413(c.post("/v1/admin/users", content=big,
                           headers={"Content-Type": "application/json"}))
        ok = c.post("/v1/datasets/ds/cost", json={"engine": "toy_count", "query": {"epsilon": 0.1}})
        assert ok.status_code == 200
    assert h.grant("alice", "ds").spent.is_zero()


def test_oversized_bodies_real_server(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with h.serve() as url:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            big = b"x" * (LIMIT * 4)
            _assert_413(c.post("/v1/datasets/ds/query", content=big))
            _assert_413(c.post("/v1/datasets/ds/query", content=_chunks(LIMIT * 50)))
            # The server still answers normally after refusing big bodies.
            r = c.post("/v1/datasets/ds/query", content=b"{not json")
            assert r.status_code == 400
            assert c.get("/health").status_code == 200
    assert h.grant("alice", "ds").spent.is_zero()


def test_unknown_routes_and_methods(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.get("/v1/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.delete("/v1/datasets/ds/budget")
        assert r.status_code == 405 and r.json()["error"]["code"] == "invalid_request"
        r = c.post("/v1/datasets/ds/query", json={"engine": "toy_count", "query": {"epsilon": 0.1}},
                   headers={"Idempotency-Key": "k" * 201})
        assert r.status_code == 400
    assert h.grant("alice", "ds").spent.is_zero()
