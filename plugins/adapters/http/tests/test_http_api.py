"""The http adapter through the lomas HTTP API: datasets added by an admin with metadata beside the
data, queries answered, and every source failure a 503 naming the dataset, charged only when the
failure came after private data was read."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lomas_adapter_http.testing import FileServer, table_bytes

from conftest import API_SECRET, HEADER_SECRET, LOOPBACK
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

QUERY = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
MAX_BYTES = 200_000


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.put("/t.csv", table_bytes(contract_table(), "csv"),
                require={"Authorization": f"Bearer {HEADER_SECRET}"})
        srv.put("/t.yaml", yaml.safe_dump(CONTRACT_METADATA).encode())
        srv.put("/t.parquet", table_bytes(contract_table(), "parquet"))
        srv.put("/big.csv", table_bytes(contract_table(20_000), "csv"))
        srv.put("/slow.csv", table_bytes(contract_table(), "csv"), delay=3.0, delay_headers=True)
        srv.put("/garbage.parquet", b"not parquet")
        srv.put("/wrong.csv", b"group,age\na,1\n")
        yield srv


@pytest.fixture
def harness(tmp_path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LomasHarness]:
    monkeypatch.setenv("LOMAS_TEST_HTTP_API", HEADER_SECRET)
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}},
                     adapters={"http": {"max_bytes": MAX_BYTES, "read_timeout": 0.5,
                                        "connect_timeout": 1, **LOOPBACK}},
                     secrets={"api": API_SECRET})
    yield h
    h.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dataset(name: str, server: FileServer, path: str, **extra: Any) -> dict[str, Any]:
    options = {"url": server.url(path), "metadata_url": server.url("/t.yaml"), **extra}
    return {"name": name, "adapter": "http", "options": options}


def test_metadata_beside_the_data_and_queries(harness: LomasHarness, server: FileServer) -> None:
    auth = {"headers": {"Authorization": {"secret": "api", "prefix": "Bearer "}}}
    with harness.client(harness.admin_token) as admin:
        for body in (_dataset("csv_ds", server, "/t.csv", **auth),
                     _dataset("pq_ds", server, "/t.parquet")):
            r = admin.post("/v1/admin/datasets", json=body)
            assert r.status_code == 201, r.text
        r = admin.post("/v1/admin/datasets", json=_dataset(
            "bad", server, "/t.csv", headers={"Authorization": f"Bearer {HEADER_SECRET}"}))
        assert r.status_code == 400 and HEADER_SECRET not in r.text
    token = harness.add_user("alice", grant={"csv_ds": (5.0, 0.0), "pq_ds": (5.0, 0.0)})
    with harness.client(token) as c:
        for name in ("csv_ds", "pq_ds"):
            meta = c.get(f"/v1/datasets/{name}/metadata").json()
            assert meta["columns"]["age"].items() >= CONTRACT_METADATA["columns"]["age"].items()
            r = c.post(f"/v1/datasets/{name}/query", json=QUERY)
            assert r.status_code == 200, r.text
            assert r.json()["result"]["value"] == 200
    # Per dataset: once when the admin adds it (validated like the CLI does), once when first
    # served, then remembered.
    assert server.count("GET", "/t.yaml") == 4


@pytest.mark.parametrize(("path", "expected", "charged"), [
    ("/absent.csv", "not found", False),
    ("/big.csv", "larger than", False),
    ("/slow.csv", "in time", False),
    ("/t.csv", "refused access", False),  # no Authorization header configured
    ("unreachable", "unreachable", False),
    ("/garbage.parquet", "could not be parsed", True),
    ("/wrong.csv", "does not match its metadata", True),
])
def test_source_failures(harness: LomasHarness, server: FileServer, path: str, expected: str,
                         charged: bool) -> None:
    desc = _dataset("ds", server, path)
    if path == "unreachable":
        desc["options"]["url"] = f"http://127.0.0.1:{_closed_port()}/t.csv"
    harness.add_dataset_description(desc)
    token = harness.add_user("alice", grant={"ds": (5.0, 0.0)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=QUERY)
    # Read but unusable: charged, and said so with its own code (not a retryable 503).
    assert r.status_code == (422 if charged else 503), r.text
    error = r.json()["error"]
    assert error["code"] == ("charged_failure" if charged else "dataset_unavailable")
    assert "dataset 'ds'" in error["message"] and expected in error["message"]
    assert "Traceback" not in r.text
    spent = float(harness.grant("alice", "ds").spent.epsilon)
    assert spent == (0.5 if charged else 0.0)
    if not charged:
        assert "nothing was charged" in error["message"]


def test_missing_metadata_fails_before_any_charge(harness: LomasHarness, server: FileServer) -> None:
    harness.add_dataset_description(_dataset("ds", server, "/t.parquet",
                                             metadata_url=server.url("/absent.yaml")))
    token = harness.add_user("alice", grant={"ds": (5.0, 0.0)})
    with harness.client(token) as c:
        for r in (c.get("/v1/datasets/ds/metadata"), c.post("/v1/datasets/ds/query", json=QUERY)):
            assert r.status_code == 503, r.text
            assert "dataset 'ds'" in r.json()["error"]["message"]
    assert float(harness.grant("alice", "ds").spent.epsilon) == 0.0
    assert server.count("GET", "/t.parquet") == 0
