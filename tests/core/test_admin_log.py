"""The admin audit log through the CLI and the admin API, on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_testdata import FRAME, META, QUERY, STORES, harness_on, run_cli

from lomas_core.testing.harness import LomasHarness
from lomas_core.tokens import hash_token
from lomas_testsupport.mongo import mongodb_uri  # noqa: F401 - fixture


@pytest.fixture(params=STORES)
def h(request: pytest.FixtureRequest) -> Iterator[LomasHarness]:
    yield from harness_on(request)


def cli(h: LomasHarness, capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    out, err = run_cli(h, capsys, *args, expect=expect)
    return out


def test_every_admin_change_is_logged_with_who_what_when_before_after(
        h: LomasHarness, capsys: pytest.CaptureFixture[str]) -> None:
    token = h.add_user("eve", grant={"ds": (1.0, 0.0)})  # the harness writes the store directly
    with h.client(token) as c:
        assert c.post("/v1/datasets/ds/query", json=QUERY).status_code == 200
    issued = json.loads(cli(h, capsys, "admin", "token", "issue", "eve", "--expires", "30d", "--json"))
    cli(h, capsys, "admin", "user", "suspend", "eve")
    cli(h, capsys, "admin", "user", "resume", "eve")
    cli(h, capsys, "admin", "revoke", "eve", "ds")
    cli(h, capsys, "admin", "grant", "eve", "ds", "--epsilon", "2", "--reset-spent")
    cli(h, capsys, "admin", "token", "revoke", "eve", issued["id"])
    with h.client(h.admin_token) as c:
        assert c.post("/v1/admin/users", json={"name": "bob"}).status_code == 201
        assert c.put("/v1/admin/grants/eve/ds", json={"epsilon": 3}).status_code == 200
        api_token = c.post("/v1/admin/users/bob/tokens").json()["token"]
        assert c.delete("/v1/admin/users/bob").status_code == 200
        api_view = c.get("/v1/admin/log", params={"limit": 2}).json()
    events = json.loads(cli(h, capsys, "admin", "log", "--json"))["events"]
    assert [e["action"] for e in events] == [
        "token.issue", "user.suspend", "user.resume", "grant.revoke", "grant.add", "token.revoke",
        "user.add", "budget.set", "token.issue", "user.remove"]
    by_action = {e["action"]: e for e in events}
    assert all(e["actor"].startswith("cli:") for e in events[:6])
    admin_id = h.store.get_user("admin").id
    assert all(e["actor"] == f"api:admin ({admin_id})" for e in events[6:])
    reset = by_action["grant.add"]
    assert reset["target"] == "grant:eve/ds"
    assert reset["before"]["spent"] == {"epsilon": "0.25", "delta": "0"}
    assert reset["before"]["active"] is False
    assert reset["after"]["spent"] == {"epsilon": "0", "delta": "0"} and reset["after"]["reset_spent"]
    assert by_action["user.suspend"]["after"]["suspended"] is True
    assert by_action["budget.set"]["after"]["initial"]["epsilon"] == "3"
    assert events[0]["after"]["id"] == issued["id"]
    assert len(api_view["events"]) == 2 and api_view["next_cursor"]
    text = cli(h, capsys, "admin", "log")
    assert "grant.add" in text and "grant:eve/ds" in text and "spent" in text
    everything = json.dumps(events) + text
    for value in (token, issued["token"], api_token):
        assert value not in everything and hash_token(value) not in everything
    cli(h, capsys, "admin", "log", "--limit", "1")


def test_the_log_endpoint_needs_the_admin_role(h: LomasHarness) -> None:
    token = h.add_user("eve")
    with h.client(token) as c:
        assert c.get("/v1/admin/log").status_code == 403


def test_the_api_shows_dataset_and_grant_ids_and_logs_them(h: LomasHarness) -> None:
    token = h.add_user("eve")
    with h.client(h.admin_token) as c:
        first = c.get("/v1/admin/datasets/ds").json()["id"]
        assert first.startswith("ds_")
        grant = c.post("/v1/admin/grants", json={"user": "eve", "dataset": "ds", "epsilon": 1})
        assert grant.status_code == 201
        body = grant.json()
        assert body["id"].startswith("grt_") and body["dataset_id"] == first
        assert body["warnings"] == []  # SmartNoise-SQL is not enabled here
        with h.client(token) as eve:
            assert eve.post("/v1/datasets/ds/query", json=QUERY).status_code == 200
        described = c.get("/v1/admin/datasets/ds").json()
        assert c.delete("/v1/admin/datasets/ds").json() == {"deleted": "ds", "id": first}
        described.pop("id")
        again = c.post("/v1/admin/datasets", json={**described, "id": "ds_forged"})
        assert again.status_code == 201 and again.json()["id"] not in (first, "ds_forged")
        queries = c.get("/v1/admin/archive", params={"dataset": "ds"}).json()["queries"]
        assert [q["dataset_id"] for q in queries] == [first]  # the old dataset's record
        events = c.get("/v1/admin/log").json()["events"]
    removed = next(e for e in events if e["action"] == "dataset.remove")
    added = [e for e in events if e["action"] == "dataset.put"][-1]
    assert removed["before"]["id"] == first and added["after"]["id"] == again.json()["id"]
    granted = next(e for e in events if e["action"] == "grant.add")
    assert granted["after"]["id"] == body["id"] and granted["after"]["dataset_id"] == first


def test_granting_delta_0_warns_in_the_api_response_when_smartnoise_is_enabled(
        tmp_path: Path) -> None:
    pytest.importorskip("lomas_engine_smartnoise_sql")
    harness = LomasHarness(tmp_path, engines={"toy_count": {}, "smartnoise_sql": {}})
    try:
        harness.add_dataset("ds", FRAME, META)
        harness.add_user("eve")
        with harness.client(harness.admin_token) as c:
            r = c.post("/v1/admin/grants", json={"user": "eve", "dataset": "ds", "epsilon": 1})
            assert r.status_code == 201
            [warning] = r.json()["warnings"]
            assert "SmartNoise-SQL" in warning and "cost()" in warning and '"delta"' in warning
            c.delete("/v1/admin/grants/eve/ds")
            r = c.post("/v1/admin/grants", json={"user": "eve", "dataset": "ds", "epsilon": 1,
                                                 "delta": 1e-4})
            assert r.status_code == 201 and r.json()["warnings"] == []
    finally:
        harness.close()
