"""The s3 adapter's own behaviour on moto's S3 server: credentials by secret name, versions, limits,
metadata beside the data, and every failure mapped to a DatasetUnavailable naming the dataset."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import yaml
from lomas_adapter_s3.testing import TEST_SECRET_ACCESS_KEY, MotoS3, table_bytes

from lomas_core.errors import ConfigError, DatasetUnavailable, InvalidRequest
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table

CSV = table_bytes(contract_table(), "csv")
PARQUET = table_bytes(contract_table(), "parquet")


def _unavailable(adapter, options, *secrets: str, dataset: str = "people") -> DatasetUnavailable:
    with pytest.raises(DatasetUnavailable) as info:
        adapter.load(dataset, options)
    exc = info.value
    assert f"'{dataset}'" in exc.message
    for secret in (TEST_SECRET_ACCESS_KEY, *secrets):
        assert secret not in str(exc.to_dict())
    return exc


@pytest.fixture
def objects(moto: MotoS3, bucket: str) -> dict[str, str]:
    moto.client.put_object(Bucket=bucket, Key="data/t.csv", Body=CSV)
    moto.client.put_object(Bucket=bucket, Key="data/t.parquet", Body=PARQUET)
    moto.client.put_object(Bucket=bucket, Key="data/t.yaml", Body=yaml.safe_dump(CONTRACT_METADATA))
    return {"bucket": bucket, "key": "data/t.parquet", "credentials": "s3"}


# -- reading --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["data/t.csv", "data/t.parquet"])
def test_reads_csv_and_parquet_with_metadata_beside(make_adapter, objects, key: str) -> None:
    adapter = make_adapter()
    options = {**objects, "key": key, "metadata_key": "data/t.yaml"}
    adapter.check_options(options)
    assert adapter.load("people", options).table.to_pylist() == contract_table().to_pylist()
    assert adapter.load_metadata("people", options) == CONTRACT_METADATA
    assert adapter.load_metadata("people", {**objects, "key": key}) is None


def test_metadata_failures(make_adapter, moto: MotoS3, objects) -> None:
    adapter = make_adapter()
    with pytest.raises(DatasetUnavailable, match="'people' \\(metadata\\): the object was not found"):
        adapter.load_metadata("people", {**objects, "metadata_key": "data/absent.yaml"})
    moto.client.put_object(Bucket=objects["bucket"], Key="bad.yaml", Body=b"columns: [unclosed")
    with pytest.raises(DatasetUnavailable, match="not valid YAML"):
        adapter.load_metadata("people", {**objects, "metadata_key": "bad.yaml"})
    with pytest.raises(DatasetUnavailable, match="larger than"):
        make_adapter(max_metadata_bytes=16).load_metadata(
            "people", {**objects, "metadata_key": "data/t.yaml"})


def test_default_credentials_and_options_never_hold_a_key(make_adapter, objects) -> None:
    adapter = make_adapter(default_credentials="s3")
    options = {k: v for k, v in objects.items() if k != "credentials"}
    assert adapter.load("people", options).table.num_rows == 200
    for literal in ({"key_id": "AKIA", "secret": "x"}, {"aws_secret_access_key": "x"}):
        with pytest.raises(InvalidRequest):
            adapter.check_options({**options, **literal})


def test_version_from_etag_changes_with_the_object(make_adapter, moto: MotoS3, objects) -> None:
    adapter = make_adapter()
    first = adapter.version(objects)
    assert first is not None and first.startswith("etag:")
    assert adapter.load("people", objects).version == first
    gets = moto.count("GET", f"/{objects['bucket']}/{objects['key']}")
    assert adapter.version(objects) == first
    assert moto.count("GET", f"/{objects['bucket']}/{objects['key']}") == gets  # HEAD only
    moto.client.put_object(Bucket=objects["bucket"], Key=objects["key"],
                           Body=table_bytes(contract_table(10), "parquet"))
    assert adapter.version(objects) != first


def test_version_id_on_versioned_buckets(make_adapter, moto: MotoS3, bucket: str) -> None:
    moto.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = moto.client.put_object(Bucket=bucket, Key="t.csv", Body=CSV)
    adapter = make_adapter()
    options = {"bucket": bucket, "key": "t.csv", "credentials": "s3"}
    assert adapter.version(options) == f"version:{put['VersionId']}"
    again = moto.client.put_object(Bucket=bucket, Key="t.csv", Body=CSV)  # same bytes, new version
    assert adapter.version(options) == f"version:{again['VersionId']}"


# -- failures ---------------------------------------------------------------------------------------------
def test_missing_key_and_missing_bucket(make_adapter, objects) -> None:
    adapter = make_adapter()
    for options in ({**objects, "key": "data/absent.csv"}, {**objects, "bucket": "no-such-bucket"},
                    {**objects, "key": "data", "format": "csv"}):
        exc = _unavailable(adapter, options)
        assert "not found" in exc.message and exc.touched is False


def test_unknown_format_at_load_time(make_adapter, objects) -> None:
    exc = _unavailable(make_adapter(), {**objects, "key": "data/t.bin"})
    assert "format" in exc.message and exc.touched is False


def test_too_large_refused_before_reading(make_adapter, moto: MotoS3, objects) -> None:
    path = f"/{objects['bucket']}/{objects['key']}"
    gets = moto.count("GET", path)
    exc = _unavailable(make_adapter(max_bytes=len(PARQUET) - 1), objects)
    assert "larger than" in exc.message and exc.touched is False
    assert moto.count("GET", path) == gets
    assert make_adapter(max_bytes=len(PARQUET)).load("people", objects).table.num_rows == 200


def test_unparsable_object(make_adapter, moto: MotoS3, objects) -> None:
    moto.client.put_object(Bucket=objects["bucket"], Key="bad.parquet", Body=b"private-cell-77,x\n")
    exc = _unavailable(make_adapter(), {**objects, "key": "bad.parquet"})
    assert "could not be parsed" in exc.message and exc.touched is True
    assert "private-cell-77" not in str(exc.to_dict())


def test_empty_object_is_unparsable_not_unreachable(make_adapter, moto: MotoS3, objects) -> None:
    moto.client.put_object(Bucket=objects["bucket"], Key="empty.csv", Body=b"")
    exc = _unavailable(make_adapter(), {**objects, "key": "empty.csv"})
    assert "could not be parsed" in exc.message


def test_unreachable_endpoint(make_adapter, objects) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = _unavailable(make_adapter(endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=1), objects)
    assert "unreachable" in exc.message and exc.touched is False


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_timeout(make_adapter, objects, silent_endpoint: str) -> None:
    exc = _unavailable(make_adapter(endpoint_url=silent_endpoint, read_timeout=0.5), objects)
    assert "in time" in exc.message and exc.touched is False


def test_credentials_secret_problems(make_adapter, objects) -> None:
    adapter = make_adapter()
    for name, expected in (("undefined", "not defined"), ("garbled", "credentials format"),
                           ("unset", "cannot be read")):
        with pytest.raises(InvalidRequest, match=expected):
            adapter.check_options({**objects, "credentials": name})
    exc = _unavailable(adapter, {**objects, "credentials": "garbled"}, "no-colon-here")
    assert "credentials" in exc.message and exc.touched is False
    exc = _unavailable(adapter, {**objects, "credentials": "unset"})
    assert exc.touched is False


def test_bad_credentials_refused(make_adapter, objects) -> None:
    # moto checks signatures only in its IAM mode, which is process-wide: a server of its own.
    with MotoS3() as strict:
        strict.client.create_bucket(Bucket="strict")
        strict.client.put_object(Bucket="strict", Key="t.csv", Body=CSV)
        key_id, secret = strict.require_auth()
        adapter = make_adapter(endpoint_url=strict.endpoint_url, secrets={
            "good": f"{key_id}:{secret}", "wrong": f"{key_id}:not-{secret}",
            "json": f'{{"access_key_id": "{key_id}", "secret_access_key": "{secret}"}}'})
        options = {"bucket": "strict", "key": "t.csv"}
        assert adapter.load("people", {**options, "credentials": "good"}).table.num_rows == 200
        assert adapter.load("people", {**options, "credentials": "json"}).table.num_rows == 200
        for name in ("wrong", "s3"):
            exc = _unavailable(adapter, {**options, "credentials": name}, secret)
            assert "refused access" in exc.message and exc.touched is False


def test_allowed_buckets_and_endpoint_rules(make_adapter, objects) -> None:
    adapter = make_adapter(allowed_buckets=["only-this"])
    with pytest.raises(InvalidRequest, match="allowed_buckets"):
        adapter.check_options(objects)
    exc = _unavailable(adapter, objects)
    assert "allowed_buckets" in exc.message
    plain = make_adapter()
    for endpoint in ("ftp://host", "http://user:pw@host"):
        with pytest.raises(InvalidRequest, match="endpoint_url"):
            plain.check_options({**objects, "endpoint_url": endpoint})
    with pytest.raises(ConfigError):
        make_adapter(endpoint_url="http://user:pw@host")
