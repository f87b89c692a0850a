"""The admin API: users, tokens, datasets, grants, archive, plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lomas_core.budget import Budget
from lomas_core.models import User
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 10, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}})
    pd.DataFrame({"x": list(range(10))}).to_parquet(harness.data_dir / "x.parquet")
    yield harness
    harness.close()


def test_full_admin_flow(h: LomasHarness) -> None:
    with h.client(h.admin_token) as admin:
        assert admin.post("/v1/admin/users", json={"name": "bob"}).status_code == 201
        assert admin.post("/v1/admin/users", json={"name": "bob"}).json()["error"]["code"] == "conflict"
        token = admin.post("/v1/admin/users/bob/tokens").json()["token"]
        desc = {"name": "xs", "options": {"path": str(h.data_dir / "x.parquet")}, "metadata": META,
                "description": "ten numbers"}
        r = admin.post("/v1/admin/datasets", json=desc)
        assert r.status_code == 201, r.text
        assert admin.post("/v1/admin/datasets", json=desc).status_code == 409
        assert admin.get("/v1/admin/datasets/xs").json()["description"] == "ten numbers"
        assert admin.get("/v1/admin/datasets/nope").status_code == 404
        r = admin.post("/v1/admin/grants", json={"user": "bob", "dataset": "xs", "epsilon": 0.3})
        assert r.status_code == 201 and r.json()["remaining"] == {"epsilon": 0.3, "delta": 0.0}
        assert admin.post("/v1/admin/grants", json={"user": "ghost", "dataset": "xs",
                                                     "epsilon": 1}).status_code == 404
        with h.client(token) as bob:
            assert bob.get("/v1/datasets").json() == {
                "datasets": [{"name": "xs", "description": "ten numbers"}]}
            r = bob.post("/v1/datasets/xs/query", json={"engine": "toy_count", "query": {"epsilon": 0.3}})
            assert r.status_code == 200
            r = admin.put("/v1/admin/grants/bob/xs", json={"epsilon": 1.0, "delta": 0})
            assert r.json()["spent"]["epsilon"] == 0.3 and r.json()["remaining"]["epsilon"] == 0.7
            grants = admin.get("/v1/admin/grants", params={"user": "bob"}).json()["grants"]
            assert [g["dataset"] for g in grants] == ["xs"]
            archive = admin.get("/v1/admin/archive", params={"user": "bob"}).json()["queries"]
            assert len(archive) == 1 and archive[0]["status"] == "success"
            assert admin.delete("/v1/admin/grants/bob/xs").status_code == 200
            assert bob.get("/v1/datasets/xs/budget").status_code == 403
            assert admin.delete("/v1/admin/users/bob/tokens").json() == {"revoked": 1}
            assert bob.get("/v1/datasets").status_code == 401
        assert admin.delete("/v1/admin/users/bob").status_code == 200
        assert admin.delete("/v1/admin/users/bob").status_code == 404
        assert admin.delete("/v1/admin/datasets/xs").status_code == 200
        assert admin.get("/v1/admin/datasets").json() == {"datasets": []}


def test_dataset_validation(h: LomasHarness) -> None:
    with h.client(h.admin_token) as admin:
        r = admin.post("/v1/admin/datasets", json={"name": "a", "adapter": "s3", "options": {}})
        assert r.status_code == 400 and "not enabled" in r.json()["error"]["message"]
        r = admin.post("/v1/admin/datasets", json={"name": "b", "options": {"path": "/etc/passwd.csv"}})
        assert r.status_code == 400 and "outside" in r.json()["error"]["message"]
        r = admin.post("/v1/admin/datasets", json={"name": "c", "options": {"nopath": 1}})
        assert r.status_code == 400
        r = admin.post("/v1/admin/datasets", json={"name": "d", "options": {"path": "x.parquet"},
                                                   "metadata": {"columns": {}}})
        assert r.status_code == 400
    assert h.store.list_datasets() == []


def test_replacing_a_dataset_invalidates_cache_and_metadata(h: LomasHarness) -> None:
    token = h.add_user("carol")
    meta_path = h.data_dir / "x.yaml"
    meta_path.write_text(yaml.safe_dump(META))
    options = {"path": str(h.data_dir / "x.parquet"), "metadata_path": str(meta_path)}
    desc = {"name": "xs", "options": options}
    with h.client(h.admin_token) as admin, h.client(token) as carol:
        assert admin.post("/v1/admin/datasets", json=desc).status_code == 201
        h.store.grant("carol", "xs", Budget.of(5))
        assert carol.get("/v1/datasets/xs/metadata").json()["rows"] == 10
        assert carol.post("/v1/datasets/xs/query", json={"engine": "toy_count",
                                                         "query": {"epsilon": 0.1}}).status_code == 200
        assert h.app_state(carol).cache.loads == 1
        pd.DataFrame({"x": list(range(5))}).to_parquet(h.data_dir / "y.parquet")
        meta_path.write_text(yaml.safe_dump({**META, "rows": 5}))
        new = {**desc, "options": {**options, "path": str(h.data_dir / "y.parquet")}}
        # The admin change happens through another app; this one sees it on its next lookup.
        assert admin.post("/v1/admin/datasets", params={"replace": "true"}, json=new).status_code == 201
        assert h.app_state(admin).cache.cached_names() == []
        assert carol.get("/v1/datasets/xs/metadata").json()["rows"] == 5


def test_plugins_listing_marks_loaded(h: LomasHarness) -> None:
    with h.client(h.admin_token) as admin:
        plugins = admin.get("/v1/admin/plugins").json()["plugins"]
    by_name = {(p["kind"], p["name"]): p for p in plugins}
    assert by_name[("engine", "toy_count")]["loaded"] is True
    assert by_name[("engine", "toy_count")]["distribution"] == "lomas-testing-toys"
    assert by_name[("store", "sqlite")]["enabled"] is True
    assert by_name[("adapter", "local")]["loaded"] is True
    assert by_name[("engine", "toy_faulty")]["loaded"] is False


def test_health_503_when_store_is_down(h: LomasHarness) -> None:
    import sqlite3

    with h.client() as c:
        assert c.get("/health").status_code == 200
        # Break the real database under the running server (the store's ping reads this table).
        with sqlite3.connect(h.tmp_path / "lomas.db") as conn:
            conn.execute("DROP TABLE meta")
        r = c.get("/health")
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
    assert r.json()["status"] == "unavailable"


@pytest.mark.parametrize(("epsilon", "delta", "reason"), [
    (1, 1, "delta must be below 1"),
    (1, False, "not bool"),
    (True, 0, "not bool"),
    (-1, 0, "negative"),
    ("lots", 0, "not a number"),
    (1, [0], "not list"),
])
def test_grants_the_cli_refuses_are_refused(h: LomasHarness, epsilon: object, delta: object,
                                            reason: str) -> None:
    h.store.add_user(User(name="bob"))
    h.add_dataset_description({"name": "xs", "options": {"path": str(h.data_dir / "x.parquet")},
                               "metadata": META})
    with h.client(h.admin_token) as admin:
        r = admin.post("/v1/admin/grants", json={"user": "bob", "dataset": "xs",
                                                 "epsilon": epsilon, "delta": delta})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_request" and reason in r.text
        assert admin.post("/v1/admin/grants", json={"user": "bob", "dataset": "xs", "epsilon": "0.1",
                                                    "delta": "1e-6"}).status_code == 201
        r = admin.put("/v1/admin/grants/bob/xs", json={"epsilon": epsilon, "delta": delta})
        assert r.status_code == 400, r.text
    grant = h.grant("bob", "xs")
    assert grant.initial == Budget.of("0.1", "1e-6")


def test_datasets_the_cli_refuses_are_refused(h: LomasHarness) -> None:
    path = str(h.data_dir / "x.parquet")
    with h.client(h.admin_token) as admin:
        r = admin.post("/v1/admin/datasets", json={"name": "xs", "options": {"path": path}})
        assert r.status_code == 400 and "has no metadata" in r.text
        bounds = {"max_ids": 1, "rows": 10, "columns": {"x": {"type": "float", "lower": 0}}}
        for bad in ("NaN", "Infinity", "-Infinity"):
            meta = json.dumps({**bounds, "columns": {"x": {"type": "float", "lower": 0,
                                                            "upper": "UPPER"}}})
            body = json.dumps({"name": "xs", "options": {"path": path}}).rstrip("}")
            body += ', "metadata": ' + meta.replace('"UPPER"', bad) + "}"
            r = admin.post("/v1/admin/datasets", content=body,
                           headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text
            assert "finite" in r.text or "invalid" in r.text
        bounds["columns"]["x"]["upper"] = 9
        assert admin.post("/v1/admin/datasets", json={"name": "xs", "options": {"path": path},
                                                      "metadata": bounds}).status_code == 201
    assert [d.name for d in h.store.list_datasets()] == ["xs"]
