"""Suspension and the token lifecycle through the real server and the CLI, on both stores."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from admin_testdata import QUERY, STORES, harness_on, run_cli

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness
from lomas_core.tokens import expiry, hash_token
from lomas_testsupport.mongo import mongodb_uri  # noqa: F401 - fixture


@pytest.fixture(params=STORES)
def h(request: pytest.FixtureRequest) -> Iterator[LomasHarness]:
    yield from harness_on(request)


def cli(h: LomasHarness, capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    out, err = run_cli(h, capsys, *args, expect=expect)
    return out + err


def test_a_suspended_user_gets_403_and_is_charged_nothing(h: LomasHarness,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    token = h.add_user("eve", grant={"ds": (1.0, 0.0)})
    cli(h, capsys, "admin", "user", "suspend", "eve")
    listed = json.loads(cli(h, capsys, "admin", "user", "list", "--json"))["users"][-1]
    assert {k: listed[k] for k in ("name", "is_admin", "suspended")} == {
        "name": "eve", "is_admin": False, "suspended": True}
    with h.client(token) as c:
        for method, path in (("POST", "/v1/datasets/ds/query"), ("GET", "/v1/datasets"),
                             ("GET", "/v1/datasets/ds/budget")):
            r = c.request(method, path, json=QUERY if method == "POST" else None,
                          headers={"Idempotency-Key": "k1"} if method == "POST" else None)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "suspended"
    assert h.grant("eve", "ds").spent == Budget.of(0, 0)
    assert h.store.list_archive(user="eve") == []
    cli(h, capsys, "admin", "user", "resume", "eve")
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=QUERY, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 200, r.text
    assert h.grant("eve", "ds").spent == Budget.of("0.25", 0)
    # The admin API does the same.
    with h.client(h.admin_token) as c:
        r = c.post("/v1/admin/users/eve/suspend")
        assert r.status_code == 200 and r.json()["suspended"] is True
        assert c.post("/v1/admin/users/nobody/suspend").status_code == 404
    with h.client(token) as c:
        assert c.post("/v1/datasets/ds/query", json=QUERY).json()["error"]["code"] == "suspended"
    with h.client(h.admin_token) as c:
        assert c.post("/v1/admin/users/eve/resume").json()["suspended"] is False
    with h.client(token) as c:
        assert c.post("/v1/datasets/ds/query", json=QUERY).status_code == 200


def test_tokens_have_ids_expiry_last_use_and_are_revoked_one_by_one(
        h: LomasHarness, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # (driver DEBUG logs echo queries: off in deployments)
    caplog.set_level(logging.DEBUG, logger="lomas")
    first = h.add_user("eve", grant={"ds": (1.0, 0.0)})
    issued = json.loads(cli(h, capsys, "admin", "token", "issue", "eve", "--expires", "90d", "--json"))
    second, second_id = issued["token"], issued["id"]
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    with h.client(second) as c:
        assert c.get("/v1/datasets").status_code == 200
    listed = json.loads(cli(h, capsys, "admin", "token", "list", "eve", "--json"))["tokens"]
    assert [t["id"] for t in listed][-1] == second_id and len(listed) == 2
    mine = listed[-1]
    assert mine["last_used_at"] is not None and mine["expires_at"] is not None
    assert listed[0]["last_used_at"] is None and listed[0]["expires_at"] is None
    text = cli(h, capsys, "admin", "token", "list", "eve")
    cli(h, capsys, "admin", "token", "revoke", "eve", second_id)
    with h.client(second) as c:
        assert c.get("/v1/datasets").status_code == 401
    with h.client(first) as c:
        assert c.get("/v1/datasets").status_code == 200  # the other token still works
    cli(h, capsys, "admin", "token", "revoke", "eve", second_id, expect=1)
    cli(h, capsys, "admin", "token", "issue", "eve", "--expires", "yesterday", expect=2)

    # The admin API: issue with expiry, list, revoke one.
    with h.client(h.admin_token) as c:
        r = c.post("/v1/admin/users/eve/tokens", params={"expires": "1h"})
        assert r.status_code == 201, r.text
        third, third_id = r.json()["token"], r.json()["id"]
        views = c.get("/v1/admin/users/eve/tokens").json()["tokens"]
        assert third_id in [v["id"] for v in views]
        assert c.post("/v1/admin/users/eve/tokens", params={"expires": "soon"}).status_code == 400
        listing = json.dumps(views)
        assert c.delete(f"/v1/admin/users/eve/tokens/{third_id}").status_code == 200
        assert c.delete(f"/v1/admin/users/eve/tokens/{third_id}").status_code == 404
    with h.client(third) as c:
        assert c.get("/v1/datasets").status_code == 401

    # An expired token authenticates nobody.
    old = "lomas_expired-token-for-the-test"
    h.store.add_token("eve", hash_token(old), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with h.client(old) as c:
        r = c.get("/v1/datasets")
        assert r.status_code == 401 and old not in r.text

    # No token value or hash in listings or logs.
    secrets_seen: list[str] = [first, second, third, old]
    for value in secrets_seen:
        for where in (text, listing, json.dumps(listed), caplog.text):
            assert value not in where
            assert hash_token(value) not in where


@pytest.mark.parametrize("text", ["90d", "12h", "30m", "2w", "2999-01-01", "never"])
def test_expiry_syntax(text: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    when = expiry(text, now)
    assert when is None if text == "never" else when is not None and when > now


@pytest.mark.parametrize("text", ["0d", "-1d", "1y", "2020-01-01", "soon"])
def test_bad_expiry_refused(text: str) -> None:
    with pytest.raises(ValueError):
        expiry(text, datetime(2026, 1, 1, tzinfo=UTC))


