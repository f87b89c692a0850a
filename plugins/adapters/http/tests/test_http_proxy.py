"""Proxies: the environment's are ignored unless ``trust_env``; an explicit ``proxy`` carries every
request, and the adapter says the destination check is then by host name (for the admin log)."""

from __future__ import annotations

import pytest
from lomas_adapter_http.testing import FileServer, table_bytes

from lomas_core.testing.engine_contract import contract_table

CSV = table_bytes(contract_table(), "csv")


@pytest.fixture
def proxy() -> FileServer:
    with FileServer() as srv:  # asked "GET http://host/path", it answers as a proxy would
        yield srv


def test_environment_proxies_are_ignored_by_default(make_adapter, server: FileServer,
                                                    proxy: FileServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url(""))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    server.put("/t.csv", CSV)
    adapter = make_adapter()
    assert adapter.load("people", {"url": server.url("/t.csv")}).table.num_rows == \
        contract_table().num_rows
    assert proxy.count() == 0 and server.count(path="/t.csv") >= 1
    assert adapter.startup_notices == []


def test_an_explicit_proxy_carries_every_request_and_is_announced(
        make_adapter, server: FileServer, proxy: FileServer) -> None:
    target = server.url("/t.csv")
    proxy.put(target, CSV)
    adapter = make_adapter(proxy=proxy.url(""))
    assert adapter.load("people", {"url": target}).table.num_rows == contract_table().num_rows
    assert proxy.count(path=target) >= 1 and server.count() == 0
    [notice] = adapter.startup_notices
    assert "host name" in notice and "not pinned" in notice


def test_the_proxy_does_not_lift_the_host_checks(make_adapter, proxy: FileServer) -> None:
    from lomas_core.errors import DatasetUnavailable, InvalidRequest

    adapter = make_adapter(proxy=proxy.url(""))
    with pytest.raises((InvalidRequest, DatasetUnavailable)):  # not an allowed host
        adapter.load("people", {"url": "http://example.invalid/t.csv"})
    with pytest.raises((InvalidRequest, DatasetUnavailable)):  # metadata address, by name check
        adapter.load("people", {"url": "http://169.254.169.254/latest/meta-data"})
    assert proxy.count() == 0


@pytest.mark.parametrize("value", ["ftp://proxy:21", "http://user:pw@proxy:3128", "proxy"])
def test_a_bad_proxy_is_a_config_error(make_adapter, value: str) -> None:
    from lomas_core.errors import ConfigError

    with pytest.raises(ConfigError, match="proxy"):
        make_adapter(proxy=value)


def test_the_admin_log_says_so_at_start_up(tmp_path, proxy: FileServer) -> None:
    from lomas_core.testing.harness import LomasHarness

    h = LomasHarness(tmp_path, engines={}, adapters={"http": {
        "allowed_hosts": ["127.0.0.1"], "allowed_networks": ["127.0.0.1/32"],
        "proxy": proxy.url("")}})
    try:
        with h.client(h.admin_token) as c:
            events = c.get("/v1/admin/log").json()["events"]
        [notice] = [e for e in events if e["action"] == "adapter.notice"]
        assert notice["target"] == "adapter:http" and notice["actor"] == "server"
        assert "host name" in notice["after"]["notice"]
    finally:
        h.close()
    plain = LomasHarness(tmp_path / "plain", engines={}, adapters={"http": {
        "allowed_hosts": ["127.0.0.1"]}})
    try:
        with plain.client(plain.admin_token) as c:
            assert c.get("/v1/admin/log").json()["events"] == []
    finally:
        plain.close()
