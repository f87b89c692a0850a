"""Connection handling: config, secrets, unreachable servers, lazy imports, plugin loading."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lomas_store_mongodb.store import MongoStore

from lomas_core.budget import Budget
from lomas_core.config import Config
from lomas_core.errors import ConfigError, PluginError, StoreUnavailable
from lomas_core.models import ArchiveRecord, DatasetDescription, User
from lomas_core.plugins import make_store
from lomas_testsupport.mongo import fresh_database_name, start_nx27017


def test_the_mongodb_entry_point_names_the_store_class() -> None:
    from lomas_store_mongodb.store import MongoStore

    from lomas_core.plugins import load_classes

    assert load_classes("store", ["mongodb"]) == {"mongodb": MongoStore}


def test_built_through_the_plugin_system_with_a_uri_secret(
        mongodb_uri: str, mongodb_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOMAS_TEST_MONGO_URI", mongodb_uri)
    config = Config.model_validate({
        "store": {"name": "mongodb", "options": {
            "uri_secret": "mongo", "database": mongodb_database,
            "write_concern": {"w": 1, "j": None}, "read_concern": "local"}},
        "secrets": {"mongo": {"env": "LOMAS_TEST_MONGO_URI"}}})
    store = make_store(config, create=True)
    try:
        assert isinstance(store, MongoStore) and store.name == "mongodb"
        store.ping()
    finally:
        store.close()


def test_bad_options_name_the_field() -> None:
    config = Config.model_validate({"store": {"name": "mongodb", "options": {"database": "x"}}})
    with pytest.raises(PluginError, match="uri"):
        make_store(config)


def test_unreachable_at_start_up_names_the_host_not_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOMAS_TEST_BAD_MONGO", "mongodb://lomas:s3cret-pw@127.0.0.1:9/")
    config = Config.model_validate({
        "store": {"name": "mongodb", "options": {"uri_secret": "m", "server_selection_timeout_ms": 300}},
        "secrets": {"m": {"env": "LOMAS_TEST_BAD_MONGO"}}})
    with pytest.raises(ConfigError) as info:
        make_store(config)
    assert "127.0.0.1:9" in info.value.message
    assert "s3cret" not in info.value.message and "lomas:" not in info.value.message


def test_credentials_inline_in_the_config_are_refused() -> None:
    with pytest.raises(ConfigError, match="uri_secret") as info:
        MongoStore.from_options({"uri": "mongodb://lomas:s3cret-pw@127.0.0.1:9/"})
    assert "s3cret" not in info.value.message


def test_server_down_during_operation_is_503_and_nothing_is_charged() -> None:
    server = start_nx27017()
    try:
        name = fresh_database_name()
        store = MongoStore.from_options({"uri": server.uri, "database": name,
                                         "server_selection_timeout_ms": 500,
                                         "connect_timeout_ms": 500, "socket_timeout_ms": 1000},
                                        create=True)
        store.add_user(User(name="alice"))
        store.put_dataset(DatasetDescription(name="ds"))
        store.grant("alice", "ds", Budget.of(1))
        server.stop(remove_data=False)
        record = ArchiveRecord(user="alice", dataset="ds", engine="t", request={}, cost=Budget.of(0.5))
        with pytest.raises(StoreUnavailable) as info:
            store.charge(record)
        assert info.value.status == 503 and "nothing was charged" in info.value.message
        with pytest.raises(StoreUnavailable):
            store.ping()
        store.close()
        # Same data, same port: the grant is untouched.
        server.restart()
        again = MongoStore.from_options({"uri": server.uri, "database": name})
        grant = again.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal(0)
        assert again.list_archive() == []
        again.close()
    finally:
        server.stop()

