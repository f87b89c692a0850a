"""The two attacks of the admin-side security issue against the s3 adapter, through a real server,
the CLI and the adapter, on moto's S3 server:

1. credentials used with an endpoint or a bucket their secret's entry does not list (or a secret
   not scoped to s3 at all, like the bootstrap admin token): refused at registration and at load,
   before any request reaches the other endpoint;
2. endpoints that are (or resolve to) cloud metadata, loopback or private addresses: refused at
   start-up, registration and load (nothing charged) unless allowed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lomas_adapter_s3.resolver import GuardedResolver
from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, MotoS3, table_bytes

from lomas_core.cli import main
from lomas_core.config import Config
from lomas_core.errors import DatasetUnavailable, InvalidRequest, PluginError
from lomas_core.network import AddressPolicy, AddressRefused
from lomas_core.plugins import load_plugins
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

QUERY = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
LOOPBACK = {"allowed_networks": ["127.0.0.1/32"]}

#: What a researcher is told when the server's configuration forbids reading a dataset.
CONFIG_FAULT = "cannot be read with this server's configuration"


@pytest.fixture(scope="module")
def evil() -> Iterator[MotoS3]:
    """The attacker's S3 endpoint (allowed by the adapter, not by the credentials' entry)."""
    with MotoS3() as server:
        server.client.create_bucket(Bucket="loot")
        server.client.put_object(Bucket="loot", Key="t.csv", Body=table_bytes(contract_table(), "csv"))
        yield server


@pytest.fixture
def harness(tmp_path: Path, moto: MotoS3, evil: MotoS3,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[LomasHarness]:
    for name in ("research", "other"):
        try:
            moto.client.create_bucket(Bucket=name)
        except moto.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        moto.client.put_object(Bucket=name, Key="t.csv", Body=table_bytes(contract_table(), "csv"))
    monkeypatch.setenv("LOMAS_SCOPE_S3", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
    monkeypatch.setenv("LOMAS_SCOPE_PORTAL", "portal-token-Q8-never-shown")
    h = LomasHarness(
        tmp_path, engines={"toy_faulty": {}},
        adapters={"s3": {"endpoint_url": moto.endpoint_url, "region": moto.region,
                         "allowed_endpoints": [evil.endpoint_url], "max_attempts": 1, **LOOPBACK}},
        secrets={"s3_reader": {"env": "LOMAS_SCOPE_S3", "adapters": ["s3"],
                               "endpoints": [moto.endpoint_url], "buckets": ["research"]},
                 "portal": {"env": "LOMAS_SCOPE_PORTAL", "adapters": ["http"],
                            "allowed_hosts": ["data.example.org"]}})
    yield h
    h.close()


def _desc(name: str, bucket: str, credentials: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "adapter": "s3", "metadata": CONTRACT_METADATA,
            "options": {"bucket": bucket, "key": "t.csv", "credentials": credentials, **extra}}


def _attacks(evil: MotoS3) -> dict[str, tuple[dict[str, Any], str]]:
    return {
        "keys to the attacker's endpoint": (
            _desc("a1", "research", "s3_reader", endpoint_url=evil.endpoint_url),
            "may not be used with this endpoint"),
        "keys to the attacker's bucket": (
            _desc("a2", "loot", "s3_reader", endpoint_url=evil.endpoint_url),
            "may not be used with this endpoint"),
        "keys to another bucket": (_desc("a3", "other", "s3_reader"),
                                   "may not be used with bucket 'other'"),
        "bootstrap token as credentials": (_desc("a4", "research", "harness_admin"),
                                           "not scoped to any adapter"),
        "an http secret as credentials": (_desc("a5", "research", "portal"),
                                          "scoped to the adapters http, not to 's3'"),
        "an endpoint the adapter does not list": (
            _desc("a6", "research", "s3_reader", endpoint_url="https://s3.attacker.example"),
            "neither adapters.s3.endpoint_url nor in adapters.s3.allowed_endpoints"),
    }


def test_credentials_sent_elsewhere_refused_by_the_api(harness: LomasHarness, moto: MotoS3,
                                                       evil: MotoS3) -> None:
    before = evil.count()
    with harness.client(harness.admin_token) as admin:
        for what, (desc, reason) in _attacks(evil).items():
            r = admin.post("/v1/admin/datasets", json=desc)
            assert r.status_code == 400, (what, r.text)
            assert reason in r.json()["error"]["message"], (what, r.text)
        r = admin.post("/v1/admin/datasets", json=_desc("ok", "research", "s3_reader"))
        assert r.status_code == 201, r.text
    token = harness.add_user("alice", grant={"ok": (5.0, 0.0)})
    with harness.client(token) as c:
        assert c.post("/v1/datasets/ok/query", json=QUERY).status_code == 200
    assert evil.count() == before


def test_credentials_sent_elsewhere_refused_by_the_cli(harness: LomasHarness, tmp_path: Path,
                                                       evil: MotoS3,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = harness.write_config()
    before = evil.count()
    for what, (desc, reason) in _attacks(evil).items():
        path = tmp_path / f"{desc['name']}.yaml"
        path.write_text(yaml.safe_dump(desc))
        rc = main(["admin", "dataset", "add", str(path), "--config", str(config)])
        out, err = capsys.readouterr()
        assert rc != 0 and reason in out + err, (what, out + err)
        assert TEST_SECRET_ACCESS_KEY not in out + err
    assert harness.store.list_datasets() == []
    assert evil.count() == before


def test_credentials_sent_elsewhere_refused_at_load(harness: LomasHarness, evil: MotoS3,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    attacks = _attacks(evil)
    for desc, _ in attacks.values():
        harness.add_dataset_description(desc)
    before = evil.count()
    bodies = []
    token = harness.add_user("alice", grant={d["name"]: (5.0, 0.0) for d, _ in attacks.values()})
    with harness.client(token) as c:
        for what, (desc, reason) in attacks.items():
            r = c.post(f"/v1/datasets/{desc['name']}/query", json=QUERY)
            bodies.append(r.text)
            assert r.status_code == 503, (what, r.text)
            message = r.json()["error"]["message"]
            # The precise reason is the admin's (logs, `lomas admin dataset check`).
            assert CONFIG_FAULT in message and "nothing was charged" in message, (what, message)
            assert reason in caplog.text, what
            assert float(harness.grant("alice", desc["name"]).spent.epsilon) == 0.0
    assert evil.count() == before
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in (TEST_SECRET_ACCESS_KEY, "portal-token-Q8-never-shown", harness.admin_token):
        assert secret not in logs and not any(secret in b for b in bodies)


# -- SSRF ------------------------------------------------------------------------------------------
def _adapter(**options: Any) -> Any:
    config = Config.model_validate({"engines": {}, "adapters": {"s3": options}})
    return load_plugins(config, with_store=False).adapters["s3"]


@pytest.mark.parametrize(("endpoint", "words"), [
    ("http://169.254.169.254", "link-local"),
    ("http://127.0.0.1:9000", "loopback"),
    ("http://[::1]:9000", "loopback"),
    ("http://[::ffff:169.254.169.254]", "link-local"),
    ("http://10.0.0.5:9000", "private"),
])
def test_private_endpoints_refused_at_startup(endpoint: str, words: str) -> None:
    for options in ({"endpoint_url": endpoint}, {"allowed_endpoints": [endpoint]}):
        with pytest.raises(PluginError, match=words):
            _adapter(**options)
    _adapter(endpoint_url=endpoint, allow_private_networks=True).close()


def test_private_endpoint_refused_at_registration_and_load(tmp_path: Path, moto: MotoS3,
                                                           bucket: str) -> None:
    """A name resolving to loopback passes start-up (no DNS then) but never connects."""
    moto.client.put_object(Bucket=bucket, Key="t.csv", Body=table_bytes(contract_table(), "csv"))
    port = moto.endpoint_url.rsplit(":", 1)[1]
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, adapters={"s3": {
        "endpoint_url": f"http://localhost:{port}", "region": moto.region, "max_attempts": 1}})
    desc = {"name": "ds", "adapter": "s3", "metadata": CONTRACT_METADATA,
            "options": {"bucket": bucket, "key": "t.csv", "anonymous": True}}
    before = moto.count()
    with h.client(h.admin_token) as admin:
        r = admin.post("/v1/admin/datasets", json=desc)
        assert r.status_code == 400 and "loopback" in r.json()["error"]["message"], r.text
    h.add_dataset_description(desc)
    token = h.add_user("alice", grant={"ds": (5.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=QUERY)
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert CONFIG_FAULT in message and "nothing was charged" in message
    assert float(h.grant("alice", "ds").spent.epsilon) == 0.0
    assert moto.count() == before
    h.close()


def test_a_dataset_endpoint_on_loopback_refused(make_adapter, bucket: str) -> None:
    adapter = make_adapter(endpoint_url="http://localhost:9", allowed_networks=[])
    options = {"bucket": bucket, "key": "t.csv", "anonymous": True,
               "endpoint_url": "http://localhost:9"}
    with pytest.raises(InvalidRequest, match="loopback"):
        adapter.check_options(options)
    with pytest.raises(DatasetUnavailable, match="loopback") as caught:
        adapter.load("ds", options)
    assert caught.value.touched is False


def test_resolver_hands_out_only_allowed_addresses() -> None:
    async def resolve(policy: AddressPolicy) -> list[Any]:
        return await GuardedResolver(policy).resolve("localhost", 9000, socket.AF_INET)

    with pytest.raises(AddressRefused, match="loopback"):
        asyncio.run(resolve(AddressPolicy()))
    allowed = asyncio.run(resolve(AddressPolicy.from_options(False, ["127.0.0.0/8"], "test")))
    assert [(r["host"], r["port"], r["hostname"]) for r in allowed] == [("127.0.0.1", 9000, "localhost")]


def test_unscoped_default_credentials_warned_at_startup_and_refused(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, moto: MotoS3,
        bucket: str) -> None:
    """A config from before scopes still starts; the log says how to migrate, without the value."""
    monkeypatch.setenv("LOMAS_OLD_S3", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
    config = Config.model_validate({"engines": {}, "secrets": {"old": {"env": "LOMAS_OLD_S3"}},
                                    "adapters": {"s3": {"endpoint_url": moto.endpoint_url,
                                                        "default_credentials": "old", **LOOPBACK}}})
    with caplog.at_level(logging.WARNING):
        adapter = load_plugins(config, with_store=False).adapters["s3"]
    assert "not scoped to any adapter" in caplog.text and "adapters: [s3]" in caplog.text
    assert TEST_SECRET_ACCESS_KEY not in caplog.text
    with pytest.raises(InvalidRequest, match="not scoped to any adapter"):
        adapter.check_options({"bucket": bucket, "key": "t.csv"})
    adapter.close()
