"""Stable identities through the real server and the CLI, on both stores (issue item 3).

A removed name inherits nothing: not the archive, not the answers behind old Idempotency-Keys,
not the spend. The lifetime spend of a (user, dataset) pair survives revoke and re-grant unless
the admin resets it explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from admin_testdata import QUERY, STORES, harness_on, run_cli

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness
from lomas_testsupport.mongo import mongodb_uri  # noqa: F401 - fixture


@pytest.fixture(params=STORES)
def h(request: pytest.FixtureRequest) -> Iterator[LomasHarness]:
    yield from harness_on(request)


def cli(h: LomasHarness, capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    out, err = run_cli(h, capsys, *args, expect=expect)
    return out


def test_a_new_user_of_a_removed_name_inherits_nothing(h: LomasHarness,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    old_token = h.add_user("eve", grant={"ds": (1.0, 0.0)})
    with h.client(old_token) as c:
        first = c.post("/v1/datasets/ds/query", json=QUERY, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 200, first.text
        assert len(c.get("/v1/datasets/ds/queries").json()["queries"]) == 1
    old_id = h.store.get_user("eve").id

    cli(h, capsys, "admin", "user", "remove", "eve")
    cli(h, capsys, "admin", "user", "add", "eve")
    cli(h, capsys, "admin", "grant", "eve", "ds", "--epsilon", "1")
    new_token = json.loads(cli(h, capsys, "admin", "token", "issue", "eve", "--json"))["token"]
    users = json.loads(cli(h, capsys, "admin", "user", "list", "--json"))["users"]
    new_id = next(u["id"] for u in users if u["name"] == "eve")
    assert old_id and new_id and new_id != old_id

    with h.client(new_token) as c:
        assert c.get("/v1/datasets/ds/queries").json()["queries"] == []  # not the old archive
        again = c.post("/v1/datasets/ds/query", json=QUERY, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 200, again.text
        assert again.json()["query_id"] != first.json()["query_id"]  # not the old answer
        assert [q["id"] for q in c.get("/v1/datasets/ds/queries").json()["queries"]] == [
            again.json()["query_id"]]
    assert h.grant("eve", "ds").spent == Budget.of("0.25", 0)  # charged as a new query
    # The admin still finds the old identity's records.
    with h.client(h.admin_token) as c:
        assert c.get("/v1/admin/users").json()["users"][-1]["id"] == new_id
    old = h.store.get_record(first.json()["query_id"])
    assert old.user_id == old_id


def test_spend_survives_revoke_and_regrant_unless_reset(h: LomasHarness,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    token = h.add_user("eve", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        assert c.post("/v1/datasets/ds/query", json=QUERY).status_code == 200
    cli(h, capsys, "admin", "revoke", "eve", "ds")
    with h.client(token) as c:
        assert c.post("/v1/datasets/ds/query", json=QUERY).json()["error"]["code"] == "access_denied"
    out = cli(h, capsys, "admin", "grant", "eve", "ds", "--epsilon", "1")
    assert "already spent: epsilon=0.25" in out
    assert h.grant("eve", "ds").spent == Budget.of("0.25", 0)
    cli(h, capsys, "admin", "grant", "eve", "ds", "--epsilon", "1", expect=1)  # still granted
    # Through the admin API: revoke, then re-grant with an explicit reset.
    with h.client(h.admin_token) as c:
        assert c.delete("/v1/admin/grants/eve/ds").status_code == 200
        r = c.post("/v1/admin/grants", json={"user": "eve", "dataset": "ds", "epsilon": 2})
        assert r.status_code == 201 and r.json()["spent"]["epsilon"] == 0.25
        assert c.delete("/v1/admin/grants/eve/ds").status_code == 200
        r = c.post("/v1/admin/grants", json={"user": "eve", "dataset": "ds", "epsilon": 2,
                                             "reset_spent": True})
        assert r.status_code == 201 and r.json()["spent"]["epsilon"] == 0.0
    cli(h, capsys, "admin", "revoke", "eve", "ds")
    cli(h, capsys, "admin", "grant", "eve", "ds", "--epsilon", "1", "--reset-spent")
    assert h.grant("eve", "ds").spent == Budget.of(0, 0)
