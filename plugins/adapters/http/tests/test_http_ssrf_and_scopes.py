"""The two attacks of the admin-side security issue, through a real server, the CLI and the adapter:

1. a dataset whose headers name a secret (S3 keys, the bootstrap admin token, a portal token) and
   whose URL is on a host of the admin's choosing: refused at registration and again at load,
   before any request reaches that host;
2. URLs that are (or resolve to, or redirect to) cloud metadata, loopback or private addresses:
   refused with a clear 400 (registration) or 503 (load, nothing charged) unless allowed.

Every response and log line of the scenario is searched for the secrets' values.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lomas_adapter_http.testing import FileServer, table_bytes
from lomas_adapter_http.transport import GuardedTransport

from lomas_core.cli import main
from lomas_core.errors import DatasetUnavailable, InvalidRequest
from lomas_core.network import AddressPolicy
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

PORTAL_SECRET = "portal-Zr7-token-never-shown"
S3_SECRET = "AKIALOMASSCOPE01:s3-scope-secret-Yq2/never+shown"
QUERY = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
CSV = table_bytes(contract_table(), "csv")


@pytest.fixture
def servers() -> Iterator[tuple[FileServer, FileServer]]:
    """The data owner's portal and the attacker's server, both on loopback."""
    with FileServer() as portal, FileServer() as evil:
        portal.put("/data/t.csv", CSV, require={"Authorization": f"Bearer {PORTAL_SECRET}"})
        portal.put("/other/t.csv", CSV)
        portal.redirect("/data/out.csv", "/other/t.csv")  # same origin, out of the secret's prefix
        evil.put("/t.csv", CSV)
        yield portal, evil


@pytest.fixture
def harness(tmp_path: Path, servers: tuple[FileServer, FileServer],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[LomasHarness]:
    portal, _ = servers
    monkeypatch.setenv("LOMAS_SCOPE_PORTAL", PORTAL_SECRET)
    monkeypatch.setenv("LOMAS_SCOPE_S3", S3_SECRET)
    h = LomasHarness(
        tmp_path, engines={"toy_faulty": {}},
        adapters={"http": {"allowed_hosts": ["127.0.0.1"], "allowed_networks": ["127.0.0.1/32"],
                           "connect_timeout": 1, "read_timeout": 2}},
        secrets={"portal": {"env": "LOMAS_SCOPE_PORTAL", "adapters": ["http"],
                            "allowed_prefixes": [portal.url("/data/")]},
                 "s3_reader": {"env": "LOMAS_SCOPE_S3", "adapters": ["s3"],
                               "endpoints": ["https://s3.example.org"], "buckets": ["research"]}})
    yield h
    h.close()


def _desc(name: str, url: str, secret: str, **extra: Any) -> dict[str, Any]:
    desc = {"name": name, "adapter": "http", "metadata": CONTRACT_METADATA,
            "options": {"url": url, "headers": {"X-Leak": {"secret": secret}}, **extra}}
    if "metadata_url" in extra:
        del desc["metadata"]  # read from metadata_url, with the headers (same origin)
    return desc


def _attacks(portal: FileServer, evil: FileServer) -> dict[str, tuple[dict[str, Any], str]]:
    """Descriptions that would send a secret where its entry does not allow, and the reason."""
    return {
        "s3 keys to the attacker": (_desc("a1", evil.url("/t.csv"), "s3_reader"),
                                    "scoped to the adapters s3, not to 'http'"),
        "bootstrap token to the attacker": (_desc("a2", evil.url("/t.csv"), "harness_admin"),
                                            "not scoped to any adapter"),
        "portal token to the attacker": (_desc("a3", evil.url("/t.csv"), "portal"),
                                         "may not be sent to this URL"),
        "portal token beside its prefix": (
            _desc("a4", portal.url("/data/t.csv"), "portal", metadata_url=portal.url("/other/m.yaml")),
            "may not be sent to this URL"),
    }


def test_secrets_sent_elsewhere_refused_by_the_api(harness: LomasHarness,
                                                   servers: tuple[FileServer, FileServer]) -> None:
    portal, evil = servers
    with harness.client(harness.admin_token) as admin:
        for what, (desc, reason) in _attacks(portal, evil).items():
            r = admin.post("/v1/admin/datasets", json=desc)
            assert r.status_code == 400, (what, r.text)
            assert reason in r.json()["error"]["message"], (what, r.text)
        # The scoped secret where its entry allows it: accepted and used.
        ok = {"name": "ok", "adapter": "http", "metadata": CONTRACT_METADATA, "options": {
            "url": portal.url("/data/t.csv"),
            "headers": {"Authorization": {"secret": "portal", "prefix": "Bearer "}}}}
        assert admin.post("/v1/admin/datasets", json=ok).status_code == 201
    token = harness.add_user("alice", grant={"ok": (5.0, 0.0)})
    with harness.client(token) as c:
        assert c.post("/v1/datasets/ok/query", json=QUERY).status_code == 200
    assert evil.count() == 0


def test_secrets_sent_elsewhere_refused_by_the_cli(harness: LomasHarness, tmp_path: Path,
                                                   servers: tuple[FileServer, FileServer],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    portal, evil = servers
    config = harness.write_config()
    for what, (desc, reason) in _attacks(portal, evil).items():
        path = tmp_path / f"{desc['name']}.yaml"
        path.write_text(yaml.safe_dump(desc))
        rc = main(["admin", "dataset", "add", str(path), "--config", str(config)])
        out, err = capsys.readouterr()
        assert rc != 0, what
        assert reason in out + err, (what, out + err)
        assert PORTAL_SECRET not in out + err and S3_SECRET not in out + err
    assert [d.name for d in harness.store.list_datasets()] == []
    assert evil.count() == 0


def test_secrets_sent_elsewhere_refused_at_load(harness: LomasHarness,
                                                servers: tuple[FileServer, FileServer],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Registered behind the checks' back (an older server, a changed config): still refused."""
    portal, evil = servers
    attacks = _attacks(portal, evil)
    # Also a redirect within the secret's origin but out of its prefix.
    attacks["redirect out of the prefix"] = (
        {"name": "a5", "adapter": "http", "metadata": CONTRACT_METADATA, "options": {
            "url": portal.url("/data/out.csv"),
            "headers": {"Authorization": {"secret": "portal", "prefix": "Bearer "}}}},
        "redirected to a URL where 'portal' may not be sent")
    for desc, _ in attacks.values():
        harness.add_dataset_description(desc)
    names = [desc["name"] for desc, _ in attacks.values()]
    token = harness.add_user("alice", grant={n: (5.0, 0.0) for n in names})
    with harness.client(token) as c:
        for what, (desc, reason) in attacks.items():
            r = c.post(f"/v1/datasets/{desc['name']}/query", json=QUERY)
            assert r.status_code == 503, (what, r.text)
            error = r.json()["error"]
            # The researcher learns that the configuration is at fault and that nothing was
            # charged; the precise reason (which secret, which scope) is for the admin's log.
            assert error["code"] == "dataset_unavailable", what
            assert (CONFIG_FAULT in error["message"] and "nothing was charged" in error["message"]
                    or reason in error["message"]), (what, error["message"])
            assert reason in caplog.text, what
            assert float(harness.grant("alice", desc["name"]).spent.epsilon) == 0.0
    assert evil.count() == 0
    assert portal.count("GET", "/other/t.csv") == 0  # the redirect was not followed


#: What a researcher is told when the server's configuration forbids reading a dataset.
CONFIG_FAULT = "cannot be read with this server's configuration"


# -- SSRF ------------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: URLs on non-public addresses: (label, URL template with {port}, expected words).
PRIVATE_URLS = [
    ("cloud metadata", "http://169.254.169.254/latest/meta-data/t.csv", "link-local"),
    ("loopback", "http://127.0.0.1:{port}/t.csv", "loopback"),
    ("loopback, legacy form", "http://127.1:{port}/t.csv", "loopback"),
    ("loopback by name", "http://localhost:{port}/t.csv", "loopback"),
    ("IPv6 loopback", "http://[::1]:{port}/t.csv", "loopback"),
    ("IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:{port}/t.csv", "loopback"),
    ("private", "http://10.1.2.3:{port}/t.csv", "private"),
    ("unspecified", "http://0.0.0.0:{port}/t.csv", "unspecified"),
]
ALL_HOSTS = ["169.254.169.254", "127.0.0.1", "127.1", "localhost", "::1", "::ffff:127.0.0.1",
             "10.1.2.3", "0.0.0.0"]


@pytest.fixture
def open_harness(tmp_path: Path) -> Iterator[LomasHarness]:
    """Every host above is in allowed_hosts: only the address policy stands in the way."""
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}},
                     adapters={"http": {"allowed_hosts": ALL_HOSTS, "connect_timeout": 1}})
    yield h
    h.close()


def test_private_addresses_refused_at_registration(open_harness: LomasHarness, server: FileServer) -> None:
    server.put("/t.csv", CSV)
    with open_harness.client(open_harness.admin_token) as admin:
        for label, url, words in PRIVATE_URLS:
            r = admin.post("/v1/admin/datasets", json={
                "name": "ds", "adapter": "http", "metadata": CONTRACT_METADATA,
                "options": {"url": url.format(port=server.port)}})
            assert r.status_code == 400, (label, r.text)
            message = r.json()["error"]["message"]
            assert words in message and "allowed_networks" in message, (label, message)
    assert server.count() == 0


def test_private_addresses_refused_at_load_nothing_charged(open_harness: LomasHarness,
                                                          server: FileServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    server.put("/t.csv", CSV)
    for i, (_, url, _) in enumerate(PRIVATE_URLS):
        open_harness.add_dataset_description({
            "name": f"ds{i}", "adapter": "http", "metadata": CONTRACT_METADATA,
            "options": {"url": url.format(port=server.port)}})
    token = open_harness.add_user("alice", grant={f"ds{i}": (5.0, 0.0) for i in range(len(PRIVATE_URLS))})
    with open_harness.client(token) as c:
        for i, (label, _, words) in enumerate(PRIVATE_URLS):
            r = c.post(f"/v1/datasets/ds{i}/query", json=QUERY)
            assert r.status_code == 503, (label, r.text)
            message = r.json()["error"]["message"]
            assert CONFIG_FAULT in message and "nothing was charged" in message, (label, message)
            assert words in caplog.text, label  # the precise reason is in the admin's log
            assert float(open_harness.grant("alice", f"ds{i}").spent.epsilon) == 0.0
    assert server.count() == 0  # refused before connecting, not after


def test_redirects_to_private_addresses_refused(tmp_path: Path, server: FileServer) -> None:
    """The first hop is an allowed loopback server; where it redirects to is checked again."""
    port = _closed_port()
    targets = {"meta": "http://169.254.169.254/latest/meta-data/t.csv",
               "lo2": f"http://127.0.0.2:{port}/t.csv", "ten": "http://10.0.0.1/t.csv",
               "v6": f"http://[::1]:{port}/t.csv"}
    for name, target in targets.items():
        server.redirect(f"/{name}.csv", target)
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, adapters={"http": {
        "allowed_hosts": ["127.0.0.1", "169.254.169.254", "127.0.0.2", "10.0.0.1", "::1"],
        "allowed_networks": ["127.0.0.1/32"], "connect_timeout": 1}})
    for name in targets:
        h.add_dataset_description({"name": name, "adapter": "http", "metadata": CONTRACT_METADATA,
                                   "options": {"url": server.url(f"/{name}.csv")}})
    token = h.add_user("alice", grant={name: (5.0, 0.0) for name in targets})
    with h.client(token) as c:
        for name in targets:
            r = c.post(f"/v1/datasets/{name}/query", json=QUERY)
            assert r.status_code == 503, (name, r.text)
            message = r.json()["error"]["message"]
            assert "redirected to a" in message and "does not allow" in message, message
            assert float(h.grant("alice", name).spent.epsilon) == 0.0
    h.close()


def test_allowed_when_the_operator_says_so(tmp_path: Path, server: FileServer) -> None:
    server.put("/t.csv", CSV)
    for i, allow in enumerate(({"allow_private_networks": True},
                               {"allowed_networks": ["127.0.0.0/8"]})):
        h = LomasHarness(tmp_path / str(i), engines={"toy_faulty": {}},
                         adapters={"http": {"allowed_hosts": ["127.0.0.1"], **allow}})
        h.add_dataset_description({"name": "ds", "adapter": "http", "metadata": CONTRACT_METADATA,
                                   "options": {"url": server.url("/t.csv")}})
        token = h.add_user("alice", grant={"ds": (5.0, 0.0)})
        with h.client(token) as c:
            assert c.post("/v1/datasets/ds/query", json=QUERY).status_code == 200
        h.close()


def test_no_allow_list_reads_from_nowhere(make_adapter, server: FileServer) -> None:
    adapter = make_adapter(allowed_hosts=None, allowed_networks=[])
    with pytest.raises(InvalidRequest, match="reads from nowhere"):
        adapter.check_options({"url": server.url("/t.csv")})
    with pytest.raises(DatasetUnavailable, match="reads from nowhere"):
        adapter.load("ds", {"url": server.url("/t.csv")})
    assert server.count() == 0


# -- the transport connects to the address it checked -----------------------------------------
def test_transport_connects_to_the_checked_address_with_the_name_as_host(server: FileServer) -> None:
    """A name resolved by the guard: the request reaches that address, Host still carries the name;
    the next connection resolves again and is refused when the name now points elsewhere."""
    server.put("/t.csv", CSV)
    answers = iter(["127.0.0.1", "169.254.169.254"])

    def rebinding(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        assert host == "data.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    transport = GuardedTransport(AddressPolicy.from_options(False, ["127.0.0.1/32"], "test"),
                                 resolver=rebinding)
    with httpx.Client(transport=transport) as client:
        url = f"http://data.example.test:{server.port}/t.csv"
        assert client.get(url).content == CSV
        assert server.requests[-1][2]["Host"] == f"data.example.test:{server.port}"
        with pytest.raises(httpx.ConnectError, match="link-local"):
            client.get(url)  # HTTP/1.0: a new connection, a new answer, checked again
    assert server.count() == 1


# -- no secret value anywhere ----------------------------------------------------------------------
def test_no_secret_value_in_responses_or_logs(harness: LomasHarness, caplog: pytest.LogCaptureFixture,
                                              servers: tuple[FileServer, FileServer]) -> None:
    portal, evil = servers
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    attacks = _attacks(portal, evil)
    with harness.client(harness.admin_token) as admin:
        for desc, _ in attacks.values():
            bodies.append(admin.post("/v1/admin/datasets", json=desc).text)
        for desc, _ in attacks.values():
            harness.add_dataset_description(desc)
        bodies.append(admin.get("/v1/admin/datasets").text)
    token = harness.add_user("alice", grant={d["name"]: (5.0, 0.0) for d, _ in attacks.values()})
    with harness.client(token) as c:
        for desc, _ in attacks.values():
            bodies.append(c.post(f"/v1/datasets/{desc['name']}/query", json=QUERY).text)
            bodies.append(c.get(f"/v1/datasets/{desc['name']}/metadata").text)
    assert any("dataset_unavailable" in b for b in bodies)
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records  # something was logged at DEBUG
    for secret in (PORTAL_SECRET, S3_SECRET, *S3_SECRET.split(":"), harness.admin_token):
        for i, body in enumerate(bodies):
            assert secret not in body, f"response {i}"
        assert secret not in logs
        # The portal's token went only under its prefix; nothing went to the attacker.
        for _, path, headers in evil.requests + portal.requests:
            if secret == PORTAL_SECRET and path.startswith("/data/") and (path, headers) in [
                    (p, h) for _, p, h in portal.requests]:
                continue  # its own prefix on the portal: where it may go
            assert secret not in str(headers), path
