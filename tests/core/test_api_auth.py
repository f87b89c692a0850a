"""Authentication, access control and the admin role.

The 401/403 matrix runs once per authenticator: ``token`` (static bearer tokens) and ``oidc``
(access tokens of a loopback OpenID provider, the only authenticator enabled).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lomas_core.server.openapi import ROUTE_ERRORS
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "columns": {
    "x": {"type": "int", "lower": 0, "upper": 9},
    "g": {"type": "string", "categories": ["a", "b"]}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)], "g": ["a", "b"] * 10})
QUERY = {"engine": "toy_count", "query": {"epsilon": 0.5}}


class Auth:
    """A harness and how its users get credentials, for one authenticator."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.idp: Any = None
        overrides: dict[str, Any] = {}
        if kind == "oidc":
            testing = pytest.importorskip("lomas_authenticator_oidc.testing")
            self.idp = testing.LoopbackProvider(audience="lomas").start()
            overrides["authenticators"] = {"oidc": {"issuer": self.idp.issuer, "audience": "lomas"}}
        self.h = LomasHarness(tmp_path, engines={"toy_count": {}}, **overrides)
        self.h.add_dataset("ds", FRAME, META)
        self.h.add_dataset("other", FRAME, META)

    def user(self, name: str, grant: dict[str, tuple[float, float]] | None = None,
             *, is_admin: bool = False) -> str:
        """Create a user; the credential it presents with this authenticator."""
        token = self.h.add_user(name, grant=grant, is_admin=is_admin)
        return token if self.idp is None else str(self.idp.mint(name))

    @property
    def admin(self) -> str:
        return self.h.admin_token if self.idp is None else str(self.idp.mint("admin"))

    def close(self) -> None:
        self.h.close()
        if self.idp is not None:
            self.idp.close()


@pytest.fixture(params=["token", "oidc"])
def auth(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Auth]:
    a = Auth(request.param, tmp_path)
    yield a
    a.close()


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}})
    harness.add_dataset("ds", FRAME, META)
    harness.add_dataset("other", FRAME, META)
    yield harness
    harness.close()


def test_missing_or_bad_token_is_401(auth: Auth) -> None:
    h = auth.h
    bad_jwt = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"  # JWT-shaped, signed by nobody
    with h.client() as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer "}, {"Authorization": "bearer"},
                        {"Authorization": f"Bearer {bad_jwt}"}):
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
def test_ungranted_dataset_same_403_whether_it_exists(auth: Auth, method: str, suffix: str,
                                                      body: dict | None) -> None:
    h = auth.h
    token = auth.user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        existing = c.request(method, f"/v1/datasets/other/{suffix}", json=body)
        missing = c.request(method, f"/v1/datasets/nothere/{suffix}", json=body)
    assert existing.status_code == missing.status_code == 403
    assert existing.json()["error"]["code"] == "access_denied"
    # Only the name the caller sent differs.
    assert existing.text.replace("other", "X") == missing.text.replace("nothere", "X")
    assert h.grant("alice", "ds").spent.is_zero()


def test_dataset_list_shows_only_grants(auth: Auth) -> None:
    h = auth.h
    token = auth.user("alice", grant={"ds": (1.0, 0.0)})
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


def test_admin_endpoints_refuse_researchers(auth: Auth) -> None:
    h = auth.h
    token = auth.user("alice", grant={"ds": (1.0, 0.0)})
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


def _concrete(template: str, name: str = "ds", user: str = "alice") -> str:
    return (template.replace("{name}", name).replace("{user}", user)
            .replace("{dataset}", "ds").replace("{token_id}", "nope"))


def test_auth_matrix_on_every_endpoint(auth: Auth) -> None:
    """Every route but health: 401 without a credential and with bad ones; 403 ``suspended`` for a
    suspended user; a researcher gets 403 on admin routes and on datasets not granted; the admin
    passes authentication and the role check everywhere (objects named ``ghost``: nothing changes)."""
    h = auth.h
    researcher = auth.user("alice", grant={"ds": (1.0, 0.0)})
    suspended = auth.user("zed", grant={"ds": (1.0, 0.0)})
    h.store.set_suspended("zed", True)
    admin = auth.admin
    routes = [k.split(" ", 1) for k in ROUTE_ERRORS if not k.split(" ", 1)[1].startswith("/health")]
    assert len(routes) > 20
    with h.client() as c:
        def call(method: str, path: str, credential: str | None) -> Any:
            headers = {"Authorization": f"Bearer {credential}"} if credential else {}
            return c.request(method, path, headers=headers)

        for method, template in routes:
            path = _concrete(template)
            for credential in (None, "nope", "e30.e30.e30", researcher[:-3] + "abc"):
                r = call(method, path, credential)
                assert r.status_code == 401, (auth.kind, method, path, r.text)
                assert r.json()["error"]["code"] == "unauthenticated"
            r = call(method, path, suspended)
            assert (r.status_code, r.json()["error"]["code"]) == (403, "suspended"), (method, path)
            if template.startswith("/v1/admin"):
                r = call(method, path, researcher)
                assert (r.status_code, r.json()["error"]["code"]) == (403, "access_denied"), path
                r = call(method, _concrete(template, "ghost", "ghost"), admin)
                assert r.status_code not in (401, 403), (auth.kind, method, path, r.text)
            elif "{name}" in template:
                body = ({"rows": 5} if template.endswith("dummy") else QUERY) \
                    if method == "POST" else None
                r = c.request(method, _concrete(template, "other"), json=body,
                              headers={"Authorization": f"Bearer {researcher}"})
                assert (r.status_code, r.json()["error"]["code"]) == (403, "access_denied"), path
    assert h.grant("alice", "ds").spent.is_zero()
