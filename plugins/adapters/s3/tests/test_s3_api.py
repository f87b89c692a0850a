"""The s3 adapter through the lomas HTTP API (moto's S3 server): metadata beside the data, queries
answered, and source failures a 503 naming the dataset, charged only after private data was read."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, MotoS3, table_bytes

from conftest import LOOPBACK, scoped
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

QUERY = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}


@pytest.fixture
def objects(moto: MotoS3, bucket: str) -> str:
    put = moto.client.put_object
    put(Bucket=bucket, Key="t.csv", Body=table_bytes(contract_table(), "csv"))
    put(Bucket=bucket, Key="t.parquet", Body=table_bytes(contract_table(), "parquet"))
    put(Bucket=bucket, Key="t.yaml", Body=yaml.safe_dump(CONTRACT_METADATA).encode())
    put(Bucket=bucket, Key="big.csv", Body=table_bytes(contract_table(20_000), "csv"))
    put(Bucket=bucket, Key="garbage.csv", Body=b'a,b\n1,2\n"unterminated,3,4,5\n')
    put(Bucket=bucket, Key="wrong.parquet", Body=table_bytes(contract_table().select(["age"]), "parquet"))
    return bucket


def _closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def closed() -> str:
    """An endpoint nothing listens on (allowed, so that the failure is the connection's)."""
    return _closed_endpoint()


@pytest.fixture
def harness(tmp_path, moto: MotoS3, closed: str,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[LomasHarness]:
    monkeypatch.setenv("LOMAS_TEST_S3_API", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}},
                     adapters={"s3": {"endpoint_url": moto.endpoint_url, "region": moto.region,
                                      "max_bytes": 100_000, "max_attempts": 1, "connect_timeout": 1,
                                      "allowed_endpoints": [closed], **LOOPBACK}},
                     secrets={"reader": scoped("LOMAS_TEST_S3_API", [moto.endpoint_url, closed])})
    yield h
    h.close()


def _dataset(name: str, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    options = {"bucket": bucket, "key": key, "metadata_key": "t.yaml", "credentials": "reader", **extra}
    return {"name": name, "adapter": "s3", "options": options}


def test_metadata_beside_the_data_and_queries(harness: LomasHarness, moto: MotoS3, objects: str) -> None:
    with harness.client(harness.admin_token) as admin:
        for name, key in (("csv_ds", "t.csv"), ("pq_ds", "t.parquet")):
            r = admin.post("/v1/admin/datasets", json=_dataset(name, objects, key))
            assert r.status_code == 201, r.text
            assert r.json()["options"]["credentials"] == "reader"
    token = harness.add_user("alice", grant={"csv_ds": (5.0, 0.0), "pq_ds": (5.0, 0.0)})
    with harness.client(token) as c:
        for name in ("csv_ds", "pq_ds"):
            meta = c.get(f"/v1/datasets/{name}/metadata").json()
            assert set(meta["columns"]) == set(CONTRACT_METADATA["columns"])
            for _ in range(2):
                r = c.post(f"/v1/datasets/{name}/query", json=QUERY)
                assert r.status_code == 200, r.text
                assert r.json()["result"]["value"] == 200
    assert moto.count("GET", f"/{objects}/t.parquet") == 1  # the second query came from the cache


@pytest.mark.parametrize(("case", "expected", "charged"), [
    ("missing key", "not found", False),
    ("too large", "larger than", False),
    ("unreachable", "unreachable", False),
    ("unparsable", "could not be parsed", True),
    ("columns", "does not match its metadata", True),
])
def test_source_failures(harness: LomasHarness, objects: str, closed: str, case: str, expected: str,
                         charged: bool) -> None:
    key = {"missing key": "absent.parquet", "too large": "big.csv", "unreachable": "t.parquet",
           "unparsable": "garbage.csv", "columns": "wrong.parquet"}[case]
    desc = _dataset("ds", objects, key)
    # Metadata inline, so that the unreachable store fails the data load (not the metadata read).
    desc["options"].pop("metadata_key")
    desc["metadata"] = CONTRACT_METADATA
    if case == "unreachable":
        desc["options"]["endpoint_url"] = closed
    harness.add_dataset_description(desc)
    token = harness.add_user("alice", grant={"ds": (5.0, 0.0)})
    with harness.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=QUERY)
    # Read but unusable: charged, and said so with its own code (not a retryable 503).
    assert r.status_code == (422 if charged else 503), r.text
    error = r.json()["error"]
    assert error["code"] == ("charged_failure" if charged else "dataset_unavailable")
    assert "dataset 'ds'" in error["message"] and expected in error["message"]
    assert TEST_SECRET_ACCESS_KEY not in r.text and "Traceback" not in r.text
    assert float(harness.grant("alice", "ds").spent.epsilon) == (0.5 if charged else 0.0)
