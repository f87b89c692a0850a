"""Stores written by the previous schema open with this code and are migrated in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.errors import Suspended
from lomas_core.models import AdminEvent, DatasetDescription, User
from lomas_core.plugins import make_store
from lomas_core.store import BudgetStore
from lomas_core.stores.sqlite_db import SCHEMA_VERSION
from lomas_core.testing.store_contract import make_record
from lomas_core.tokens import hash_token
from lomas_testsupport.mongo import mongodb_uri  # noqa: F401 - fixture

#: The sqlite schema of version 1, as the code before the token lifecycle created it.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, is_admin INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, user TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user);
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    user TEXT NOT NULL, dataset TEXT NOT NULL,
    initial_eps TEXT NOT NULL, initial_delta TEXT NOT NULL,
    spent_eps TEXT NOT NULL, spent_delta TEXT NOT NULL,
    PRIMARY KEY (user, dataset));
CREATE TABLE IF NOT EXISTS archive (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL, dataset TEXT NOT NULL, engine TEXT NOT NULL,
    request TEXT NOT NULL,
    cost_eps TEXT NOT NULL, cost_delta TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL, completed_at TEXT,
    result TEXT, error TEXT,
    idempotency_key TEXT,
    remaining_eps TEXT, remaining_delta TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS archive_idempotency ON archive (user, idempotency_key);
CREATE INDEX IF NOT EXISTS archive_order ON archive (created_at, seq);
CREATE INDEX IF NOT EXISTS archive_status ON archive (status);
"""

TOKEN = "lomas_a-token-issued-before-the-upgrade"


def _v1_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    db.executescript(f"""
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO users VALUES ('alice', 0), ('root', 1);
        INSERT INTO tokens VALUES ('{hash_token(TOKEN)}', 'alice'), ('{hash_token("other")}', 'alice');
        INSERT INTO datasets VALUES ('ds', '{{"name": "ds", "adapter": "local"}}');
        INSERT INTO grants VALUES ('alice', 'ds', '1.0', '0', '0.25', '0');
        INSERT INTO archive (id, user, dataset, engine, request, cost_eps, cost_delta, status,
            created_at, idempotency_key)
        VALUES ('q1', 'alice', 'ds', 'toy', '{{}}', '0.25', '0', 'success',
            '2026-01-01T00:00:00.000000+00:00', 'k1'),
               ('q2', 'gone', 'ds', 'toy', '{{}}', '0.5', '0', 'success',
            '2026-01-01T00:00:01.000000+00:00', 'k9');
    """)
    db.commit()
    db.close()


def _check_upgraded(store: BudgetStore) -> None:
    user = store.user_for_token(hash_token(TOKEN))
    assert user is not None and user.same_as(User(name="alice")) and user.id
    tokens = store.list_tokens("alice")
    assert len(tokens) == 2 and len({t.id for t in tokens}) == 2
    assert all(t.id.startswith("tok_") and t.expires_at is None for t in tokens)
    store.revoke_token("alice", tokens[0].id)
    assert len(store.list_tokens("alice")) == 1
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent == Budget.of("0.25", 0)
    store.set_suspended("alice", True)
    with pytest.raises(Suspended):
        store.charge(make_record())
    store.set_suspended("alice", False)
    store.charge(make_record())
    store.add_admin_event(AdminEvent(actor="cli:test", action="user.resume", target="user:alice"))
    assert [e.action for e in store.list_admin_events()[0]] == ["user.resume"]


def test_a_version_1_sqlite_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_sqlite(path)
    config = Config(store=PluginConfig(name="sqlite", options={"path": str(path)}))
    store = make_store(config)
    try:
        _check_upgraded(store)
        # Old records belong to the current user of their name; a removed user's to nobody.
        found = store.find_by_idempotency_key("alice", "k1")
        assert found is not None and found.id == "q1" and found.user_id == store.get_user("alice").id
        assert [r.id for r in store.list_archive(user="gone")] == ["q2"]
        store.add_user(User(name="gone"))
        assert store.find_by_idempotency_key("gone", "k9") is None
        assert store.list_archive(user="gone") == []
        # Schema 5: datasets and grants get ids; old records point at the dataset of their name.
        old = store.get_dataset("ds").id
        grant = store.get_grant("alice", "ds")
        assert old is not None and old.startswith("ds_")
        assert grant is not None and grant.id and grant.id.startswith("grt_")
        assert grant.dataset_id == old
        assert store.get_record("q1").dataset_id == old
        store.remove_dataset("ds")
        store.put_dataset(DatasetDescription(name="ds"))
        assert store.get_dataset("ds").id not in (None, old)
        assert store.get_record("q1").dataset_id == old  # not confused with the new one
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION)
    raw.close()
    again = make_store(config)  # a second start-up finds nothing to do
    try:
        assert len(again.list_tokens("alice")) == 1
        assert [u.name for u in again.list_users()] == ["alice", "gone", "root"]
    finally:
        again.close()


@pytest.fixture
def old_mongo(mongodb_uri: str) -> Iterator[dict[str, str]]:  # noqa: F811
    pytest.importorskip("lomas_store_mongodb")
    from pymongo import MongoClient

    from lomas_testsupport.mongo import drop_database, fresh_database_name

    name = fresh_database_name()
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_uri)
    db = client[name]
    db["meta"].insert_one({"_id": "units", "epsilon_digits": 12, "delta_digits": 18})
    db["users"].insert_many([{"_id": "alice", "name": "alice", "is_admin": False},
                             {"_id": "root", "name": "root", "is_admin": True}])
    db["tokens"].insert_many([{"_id": hash_token(TOKEN), "user": "alice"},
                              {"_id": hash_token("other"), "user": "alice"}])
    db["datasets"].insert_one({"_id": "old", "name": "old",
                               "description": '{"name": "old", "adapter": "local"}'})
    client.close()
    yield {"uri": mongodb_uri, "database": name}
    drop_database(mongodb_uri, name)


def test_a_mongodb_store_of_the_previous_version_is_migrated(old_mongo: dict[str, str]) -> None:
    config = Config(store=PluginConfig(name="mongodb", options=dict(old_mongo)))
    store = make_store(config)
    try:
        old = store.get_dataset("old").id
        assert old is not None and old.startswith("ds_")
        store.grant("alice", "old", Budget.of(1))
        grant = store.get_grant("alice", "old")
        assert grant is not None and grant.dataset_id == old and str(grant.id).startswith("grt_")
        store.put_dataset(DatasetDescription(name="ds"))
        store.grant("alice", "ds", Budget.of("1.0", "0"))
        store.charge(make_record(epsilon="0.25"))
        _check_upgraded(store)
    finally:
        store.close()
