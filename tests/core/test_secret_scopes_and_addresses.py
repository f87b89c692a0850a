"""Secrets are scoped to adapters (the core's own stay the core's), and the address policy that
network adapters apply after DNS resolution."""

from __future__ import annotations

import socket

import pytest

from lomas_core.config import Config
from lomas_core.context import PluginContext
from lomas_core.errors import ConfigError
from lomas_core.network import AddressPolicy, AddressRefused, resolve_checked

ADMIN_TOKEN = "lomas_admin-token-never-shown-Hq1"


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("LOMAS_T_ADMIN", ADMIN_TOKEN)
    monkeypatch.setenv("LOMAS_T_S3", "KEY:SECRET")
    return Config.model_validate({"secrets": {
        "admin": {"env": "LOMAS_T_ADMIN"},
        "s3_reader": {"env": "LOMAS_T_S3", "adapters": ["s3"], "endpoints": ["aws"],
                      "buckets": ["research"]}},
        "bootstrap_admin": {"token": "admin"}})


def test_the_core_reads_every_secret(config: Config) -> None:
    context = PluginContext(config)
    assert context.secret("admin") == ADMIN_TOKEN
    assert context.secret("s3_reader") == "KEY:SECRET"


def test_an_adapter_reads_only_secrets_scoped_to_it(config: Config) -> None:
    s3 = PluginContext(config).for_adapter("s3")
    assert s3.secret("s3_reader") == "KEY:SECRET"
    assert s3.secret_ref("s3_reader").buckets == ["research"]
    with pytest.raises(ConfigError, match="not scoped to any adapter") as caught:
        s3.secret("admin")
    assert ADMIN_TOKEN not in caught.value.message
    assert "adapters: [s3]" in caught.value.message  # says how to scope it
    http = PluginContext(config).for_adapter("http")
    with pytest.raises(ConfigError, match="scoped to the adapters s3, not to 'http'"):
        http.secret("s3_reader")
    with pytest.raises(ConfigError, match="not defined"):
        http.secret_ref("nope")


def test_adapters_built_by_the_core_get_a_bound_context() -> None:
    from lomas_core.plugins import load_plugins

    loaded = load_plugins(Config(engines={}, adapters={"http": {}}), with_store=False)
    try:
        assert loaded.adapters["http"]._context.adapter == "http"  # type: ignore[attr-defined]
        assert loaded.context.adapter is None
    finally:
        loaded.close()


def test_old_secret_entries_still_load_and_destinations_need_adapters() -> None:
    Config.model_validate({"secrets": {"old": {"env": "X"}, "f": {"file": "/run/x"}}})
    with pytest.raises(ValueError, match="must also name the adapters"):
        Config.model_validate({"secrets": {"s": {"env": "X", "allowed_hosts": ["h"]}}})


@pytest.mark.parametrize(("address", "kind"), [
    ("169.254.169.254", "link-local"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
])
def test_non_public_addresses_refused(address: str, kind: str) -> None:
    problem = AddressPolicy(section="adapters.x").problem(address)
    assert problem is not None and kind in problem and "adapters.x" in problem
    assert address not in problem
    assert AddressPolicy(allow_private=True).problem(address) is None


def test_public_addresses_allowed_and_networks_opt_in() -> None:
    policy = AddressPolicy()
    for address in ("93.184.215.14", "2606:4700::1111", "8.8.8.8"):
        assert policy.problem(address) is None
    only = AddressPolicy.from_options(False, ["10.20.0.0/16", "::1/128"], "adapters.x")
    assert only.problem("10.20.3.4") is None and only.problem("::1") is None
    assert only.problem("::ffff:10.20.3.4") is None  # the same address, IPv4-mapped
    assert only.problem("10.21.0.1") is not None and only.problem("127.0.0.1") is not None
    with pytest.raises(ValueError, match="not an IP network"):
        AddressPolicy.from_options(False, ["ten-dot-something"], "adapters.x")


def test_resolution_is_checked_as_a_whole() -> None:
    def mixed(host: str, port: int, *args: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    with pytest.raises(AddressRefused, match="link-local"):
        resolve_checked("rebind.example", 80, AddressPolicy(), resolver=mixed)
    with pytest.raises(AddressRefused, match="loopback"):
        resolve_checked("localhost", 80, AddressPolicy())
    infos = resolve_checked("localhost", 80, AddressPolicy(allow_private=True))
    assert {info[4][0] for info in infos} <= {"127.0.0.1", "::1"}
