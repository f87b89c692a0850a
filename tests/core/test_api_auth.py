"""Authentication, access control and the admin role."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "columns": {
    "x": {"type": "int", "lower": 0, "upper": 9},
    "g": {"type": "string", "categories": ["a", "b"]}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)], "g": ["a", "b"] * 10})
QUERY = {"engine": "toy_count", "query": {"epsilon": 0.5}}


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}})
    harness.add_dataset("ds", FRAME, META)
    harness.add_dataset("other", FRAME, META)
    yield harness
    harness.close()


def test_missing_or_bad_token_is_401(h: LomasHarness) -> None:
    with h.client() as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer "}, {"Authorization": "bearer"}):
            for method, path in (("GET", "/v1/datasets"), ("GET", "/v1/datasets/ds/budget"),
                                 ("POST", "/v1/datasets/ds/query"), ("GET", "/v1/admin/users")):
                r = c.request(method, path, headers=headers, json=QUERY if method == "POST" else None)
                assert r.status_code == 401, (headers, path)
                assert r.json()["error"]["code"] == "unauthenticated"


def test_revoked_token_is_401(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        assert c.get("/v1/datasets").status_code == 200
        h.store.revoke_tokens("alice")
        assert c.get("/v1/datasets").status_code == 401


def test_health_needs_no_token(h: LomasHarness) -> None:
    with h.client() as c:
        r = c.get("/health")
        assert r.status_code == 200
        assert r.json()["status"] == "ok" and r.json()["version"]


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "metadata", None), ("GET", "budget", None), ("GET", "queries", None),
    ("POST", "dummy", {"rows": 5}), ("POST", "cost", QUERY), ("POST", "query", QUERY),
    ("POST", "query", {**QUERY, "dummy": {"rows": 5, "seed": 1}}),
])
def test_ungranted_dataset_same_403_whether_it_exists(h: LomasHarness, method: str, suffix: str,
                                                      body: dict | None) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        existing = c.request(method, f"/v1/datasets/other/{suffix}", json=body)
        missing = c.request(method, f"/v1/datasets/nothere/{suffix}", json=body)
    assert existing.status_code == missing.status_code == 403
    assert existing.json()["error"]["code"] == "access_denied"
    # Only the name the caller sent differs.
    assert existing.text.replace("other", "X") == missing.text.replace("nothere", "X")
    assert h.grant("alice", "ds").spent.is_zero()


def test_dataset_list_shows_only_grants(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        assert [d["name"] for d in c.get("/v1/datasets").json()["datasets"]] == ["ds"]


ADMIN_CALLS = [
    ("GET", "/v1/admin/plugins", None), ("GET", "/v1/admin/users", None),
    ("POST", "/v1/admin/users", {"name": "mallory", "is_admin": True}),
    ("DELETE", "/v1/admin/users/admin", None), ("POST", "/v1/admin/users/admin/tokens", None),
    ("DELETE", "/v1/admin/users/admin/tokens", None), ("GET", "/v1/admin/datasets", None),
    ("POST", "/v1/admin/datasets", {"name": "z", "options": {}}),
    ("GET", "/v1/admin/datasets/ds", None), ("DELETE", "/v1/admin/datasets/ds", None),
    ("GET", "/v1/admin/grants", None),
    ("POST", "/v1/admin/grants", {"user": "alice", "dataset": "other", "epsilon": 100}),
    ("PUT", "/v1/admin/grants/alice/ds", {"epsilon": 100, "delta": 0}),
    ("DELETE", "/v1/admin/grants/alice/ds", None), ("GET", "/v1/admin/archive", None),
]


def test_admin_endpoints_refuse_researchers(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        for method, path, body in ADMIN_CALLS:
            r = c.request(method, path, json=body)
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["code"] == "access_denied"
    assert [u.name for u in h.store.list_users()] == ["admin", "alice"]
    assert h.grant("alice", "ds").initial.epsilon == 1
    assert h.store.get_dataset("ds").name == "ds"


def test_bootstrap_admin_is_idempotent(h: LomasHarness) -> None:
    for _ in range(2):
        with h.client(h.admin_token) as c:
            assert c.get("/v1/admin/users").status_code == 200
    assert [u.name for u in h.store.list_users()] == ["admin"]


def test_openapi_documents_every_route_and_bearer_auth(h: LomasHarness) -> None:
    with h.client() as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    assert "/v1/datasets/{name}/query" in spec["paths"] and "/v1/admin/grants" in spec["paths"]
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())
