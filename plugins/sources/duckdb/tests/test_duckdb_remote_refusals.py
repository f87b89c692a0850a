"""What the ``duckdb`` source refuses on remote paths, before any network I/O where it can: other
buckets, hosts and prefixes, ``..`` walks, credentials not scoped to it; and the clear,
content-free errors of a missing object, bad credentials, a redirect and a loopback address."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("lomas_adapter_s3.testing")
pytest.importorskip("lomas_adapter_http.testing")

from lomas_adapter_http.testing import FileServer  # noqa: E402
from lomas_adapter_s3.testing import TEST_SECRET_ACCESS_KEY, MotoS3  # noqa: E402
from remote_fixtures import LOOPBACK, new_bucket, parquet_bytes, reader_secret, s3_options  # noqa: E402

from lomas_core.config import Config  # noqa: E402
from lomas_core.errors import ConfigError, DatasetUnavailable, InvalidRequest  # noqa: E402
from lomas_core.plugins import load_plugins  # noqa: E402
from lomas_core.source import SqlSource  # noqa: E402
from lomas_core.testing.source_contract import contract_frame, contract_metadata  # noqa: E402

Make = Callable[..., SqlSource]


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with FileServer() as server:
        server.put("/data/t.parquet", parquet_bytes(contract_frame()))
        server.put("/private/t.parquet", parquet_bytes(contract_frame()))
        server.redirect("/data/moved.parquet", server.url("/private/t.parquet"))
        yield server


@pytest.fixture
def bucket(moto: MotoS3) -> str:
    name = new_bucket(moto)
    moto.client.put_object(Bucket=name, Key="data/t.parquet", Body=parquet_bytes(contract_frame()))
    return name


@pytest.fixture
def make(moto: MotoS3, files: FileServer) -> Iterator[Make]:
    made: list[SqlSource] = []

    def make(s3: dict[str, Any] | None = None, http: dict[str, Any] | None = None,
             secrets: dict[str, Any] | None = None) -> SqlSource:
        options: dict[str, Any] = {"threads": 1}
        if s3 is not None:
            options["s3"] = s3
        if http is not None:
            options["http"] = http
        config = Config.model_validate({"adapters": {"duckdb": options}, "engines": {},
                                        "secrets": secrets or {"reader": reader_secret(moto)}})
        source = load_plugins(config, with_store=False).adapters["duckdb"]
        assert isinstance(source, SqlSource)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def _refused(source: SqlSource, options: dict[str, Any], *words: str) -> str:
    with pytest.raises(InvalidRequest) as info:
        source.check_options(options)
    for word in words:
        assert word in info.value.message
    return info.value.message


def test_s3_paths_outside_the_allowed_buckets_and_folders(make: Make, moto: MotoS3,
                                                         bucket: str) -> None:
    source = make(s3=s3_options(moto, [bucket]))
    source.check_options({"path": f"s3://{bucket}/data/t.parquet", "credentials": "reader"})
    _refused(source, {"path": "s3://lomas-duck-63/data/t.parquet"}, "allowed_buckets")
    _refused(source, {"path": f"s3://{bucket}/data/../../other/t.parquet"}, "'..'")
    _refused(source, {"path": f"s3://{bucket}/data/%2e%2e/t.parquet"}, "'%'")
    _refused(source, {"path": f"s3://{bucket}//t.parquet"}, "empty segments")
    _refused(source, {"path": "s3://Not_A_Bucket/t.parquet"}, "valid bucket")
    _refused(source, {"path": files_url_like()}, "adapters.duckdb.http")  # no http section


def files_url_like() -> str:
    return "https://data.example.org/registers/t.parquet"


def test_http_paths_outside_the_allowed_prefixes(make: Make, files: FileServer) -> None:
    source = make(http={"allowed_prefixes": [files.url("/data/")], **LOOPBACK})
    source.check_options({"path": files.url("/data/t.parquet")})
    _refused(source, {"path": files.url("/private/t.parquet")}, "allowed_prefixes")
    _refused(source, {"path": files.url("/data-private/t.parquet")}, "allowed_prefixes")
    other_host = files.url("/data/t.parquet").replace("127.0.0.1", "localhost")
    _refused(source, {"path": other_host}, "allowed_prefixes")
    _refused(source, {"path": files.url("/data/../private/t.parquet")}, "'..'")
    _refused(source, {"path": files.url("/data/t.parquet?x=1")}, "query")
    _refused(source, {"path": files.url("/data/")}, "one file")
    _refused(source, {"path": files.url("/data/*.parquet")}, "one file")
    _refused(source, {"path": files.url("/data/t.parquet"), "credentials": "reader"}, "s3://")
    _refused(source, {"path": "s3://lomas-duck-0/t.parquet"}, "adapters.duckdb.s3")


def test_loopback_is_refused_unless_allowed(make: Make, moto: MotoS3, files: FileServer) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        make(s3=s3_options(moto, ["lomas-duck-0"], allowed_networks=[]))
    source = make(http={"allowed_prefixes": [files.url("/data/")]})
    _refused(source, {"path": files.url("/data/t.parquet")}, "loopback")
    # A name that resolves to loopback passes the static check and is refused when connecting.
    named = files.url("/data/t.parquet").replace("127.0.0.1", "localhost")
    source = make(http={"allowed_prefixes": [named.rsplit("/", 1)[0] + "/"]})
    before = files.count(path="/data/t.parquet")
    with pytest.raises(DatasetUnavailable) as info:
        source.open("people", {"path": named}, contract_metadata())
    assert "loopback" in info.value.message and not info.value.touched
    assert "localhost" not in info.value.message
    assert files.count(path="/data/t.parquet") == before


def test_credentials_must_be_scoped_to_the_source_bucket_and_endpoint(make: Make, moto: MotoS3,
                                                                      bucket: str) -> None:
    s3 = s3_options(moto, [bucket])
    path = {"path": f"s3://{bucket}/data/t.parquet"}
    cases = {
        "adapters": {**reader_secret(moto, "LOMAS_TEST_DUCK_A"), "adapters": ["s3"]},
        "buckets": reader_secret(moto, "LOMAS_TEST_DUCK_B", buckets=["lomas-duck-63"]),
        "endpoints": {**reader_secret(moto, "LOMAS_TEST_DUCK_C"),
                      "endpoints": ["https://s3.example.org"]},
        "format": reader_secret(moto, "LOMAS_TEST_DUCK_D", value="no-colon-here"),
    }
    for word, entry in cases.items():
        source = make(s3=s3, secrets={"reader": entry})
        message = _refused(source, {**path, "credentials": "reader"})
        assert word in message, message
        assert "no-colon-here" not in message
    source = make(s3=s3)
    _refused(source, {**path, "credentials": "nobody"}, "credentials")


def test_missing_objects_are_unavailable_and_touch_nothing(make: Make, moto: MotoS3,
                                                          bucket: str, files: FileServer) -> None:
    source = make(s3=s3_options(moto, [bucket]),
                  http={"allowed_prefixes": [files.url("/data/")], **LOOPBACK})
    for path in (f"s3://{bucket}/data/absent.parquet", f"s3://{bucket}/empty/",
                 files.url("/data/absent.parquet")):
        options = {"path": path, **({"credentials": "reader"} if path.startswith("s3") else {})}
        with pytest.raises(DatasetUnavailable) as info:
            source.open("people", options, contract_metadata())
        assert info.value.message == "dataset 'people': source file not found"
        assert not info.value.touched
        with pytest.raises(DatasetUnavailable):
            source.version(options)


def test_a_redirect_is_not_followed(make: Make, files: FileServer) -> None:
    source = make(http={"allowed_prefixes": [files.url("/data/")], **LOOPBACK})
    before = files.count(path="/private/t.parquet")
    with pytest.raises(DatasetUnavailable) as info:
        source.open("people", {"path": files.url("/data/moved.parquet")}, contract_metadata())
    assert "redirect" in info.value.message and "127.0.0.1" not in info.value.message
    assert files.count(path="/private/t.parquet") == before


def test_bad_credentials_are_a_clear_refusal(make: Make, bucket: str) -> None:
    with MotoS3() as strict:  # its own server: signature checking is switched on process-wide
        strict.client.create_bucket(Bucket=bucket)
        strict.client.put_object(Bucket=bucket, Key="t.parquet", Body=parquet_bytes(contract_frame()))
        strict.require_auth()
        os.environ["LOMAS_TEST_DUCK_BAD"] = f"AKIAWRONGKEY0000:{TEST_SECRET_ACCESS_KEY}"
        source = make(s3=s3_options(strict, [bucket]),
                      secrets={"reader": reader_secret(strict, "LOMAS_TEST_DUCK_BAD",
                                                       value=os.environ["LOMAS_TEST_DUCK_BAD"])})
        with pytest.raises(DatasetUnavailable) as info:
            source.open("people", {"path": f"s3://{bucket}/t.parquet", "credentials": "reader"},
                        contract_metadata())
    assert "refused access" in info.value.message and not info.value.touched
    assert TEST_SECRET_ACCESS_KEY not in info.value.message


def test_unreadable_content_names_no_content(make: Make, moto: MotoS3, bucket: str) -> None:
    moto.client.put_object(Bucket=bucket, Key="data/bad.parquet", Body=b"PAR1 secret-value PAR1")
    source = make(s3=s3_options(moto, [bucket]))
    with pytest.raises(DatasetUnavailable) as info:
        source.open("people", {"path": f"s3://{bucket}/data/bad.parquet", "credentials": "reader"},
                    contract_metadata())
    assert info.value.touched and "secret-value" not in info.value.message
    assert info.value.message == "dataset 'people': its files could not be read as parquet"


def test_the_connection_cannot_write_to_the_store(make: Make, moto: MotoS3, bucket: str) -> None:
    source = make(s3=s3_options(moto, [bucket]))
    target = source.open("people", {"path": f"s3://{bucket}/data/", "credentials": "reader"},
                         contract_metadata())
    try:
        for statement in (f"COPY (SELECT 1 AS a) TO 's3://{bucket}/data/out.csv'",
                          f"EXPORT DATABASE 's3://{bucket}/data/export'"):
            with pytest.raises(Exception):  # noqa: B017 - DuckDB wraps the filesystem's refusal
                target.fetch(statement)
        assert target.fetch("SELECT count(*) FROM df")[1] == (10,)
    finally:
        target.close()
    keys = [o["Key"] for o in moto.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["data/t.parquet"]


def test_http_headers_come_from_scoped_secrets(make: Make, files: FileServer) -> None:
    files.put("/data/locked.parquet", parquet_bytes(contract_frame()),
              require={"Authorization": "Bearer tok-Zq9v-never-shown"})
    url = files.url("/data/locked.parquet")
    os.environ["LOMAS_TEST_DUCK_TOKEN"] = "tok-Zq9v-never-shown"

    def token(**where: Any) -> dict[str, Any]:
        return {"token": {"env": "LOMAS_TEST_DUCK_TOKEN", "adapters": ["duckdb"], **where}}

    http = {"allowed_prefixes": [files.url("/data/")], **LOOPBACK}
    header = {"Authorization": {"secret": "token", "prefix": "Bearer "}}
    source = make(http=http, secrets=token(allowed_prefixes=[files.url("/data/")]))
    target = source.open("people", {"path": url, "headers": header}, contract_metadata())
    try:
        assert target.fetch("SELECT count(*) FROM df")[1] == (10,)
    finally:
        target.close()
    assert source.version({"path": url, "headers": header})
    with pytest.raises(DatasetUnavailable) as info:  # without the header: the server's 401
        source.open("people", {"path": url}, contract_metadata())
    assert "refused access" in info.value.message and not info.value.touched
    _refused(source, {"path": url, "headers": {"Authorization": "Bearer tok"}}, "{secret: <name>}")
    _refused(source, {"path": url, "headers": {"X-Note": "a\r\nb"}}, "line break")
    elsewhere = make(http=http, secrets=token(allowed_prefixes=[files.url("/other/")]))
    message = _refused(elsewhere, {"path": url, "headers": header}, "allowed_prefixes")
    with pytest.raises(DatasetUnavailable):  # checked again at use, before any request
        elsewhere.open("people", {"path": url, "headers": header}, contract_metadata())
    unscoped = make(http=http, secrets=token())
    _refused(unscoped, {"path": url, "headers": header}, "may send it nowhere")
    for text in (message, info.value.message):
        assert "tok-Zq9v" not in text


def test_headers_and_credentials_go_with_their_own_kind_of_path(make: Make, moto: MotoS3,
                                                                bucket: str, files: FileServer,
                                                                tmp_path: Any) -> None:
    source = make(s3=s3_options(moto, [bucket]),
                  http={"allowed_prefixes": [files.url("/data/")], **LOOPBACK})
    _refused(source, {"path": f"s3://{bucket}/data/t.parquet", "headers": {"X-A": "1"}},
             "headers are for http")
    _refused(source, {"path": files.url("/data/t.parquet"), "credentials": "reader"},
             "credentials are for s3")
    _refused(source, {"path": str(tmp_path / "t.parquet"), "credentials": "reader"},
             "remote paths")


def test_a_server_without_range_requests_is_refused_before_reading(make: Make,
                                                                  files: FileServer) -> None:
    files.put("/data/whole.parquet", parquet_bytes(contract_frame()), ranges=False)
    source = make(http={"allowed_prefixes": [files.url("/data/")], **LOOPBACK})
    with pytest.raises(DatasetUnavailable) as info:
        source.open("people", {"path": files.url("/data/whole.parquet")}, contract_metadata())
    assert "range requests" in info.value.message and not info.value.touched


def test_s3_glob_and_folder_read_what_they_match(make: Make, moto: MotoS3, bucket: str) -> None:
    put = moto.client.put_object
    put(Bucket=bucket, Key="data/2025/a.parquet", Body=parquet_bytes(contract_frame()))
    put(Bucket=bucket, Key="data/2026/b.parquet", Body=parquet_bytes(contract_frame()))
    source = make(s3=s3_options(moto, [bucket], default_credentials="reader"))
    counts = {}
    for path in (f"s3://{bucket}/data/*/a.parquet", f"s3://{bucket}/data/202?/*.parquet",
                 f"s3://{bucket}/data/"):
        options = {"path": path}
        before = source.version(options)
        target = source.open("people", options, contract_metadata(max_ids=100))
        try:
            counts[path] = target.fetch("SELECT count(*) FROM df")[1][0]
        finally:
            target.close()
        assert source.version(options) == before
    # 21 rows with an id per file; the folder also holds the fixture's data/t.parquet.
    assert list(counts.values()) == [21, 42, 63]
    folder = {"path": f"s3://{bucket}/data/"}
    before = source.version(folder)
    put(Bucket=bucket, Key="data/2027/c.parquet", Body=parquet_bytes(contract_frame()))
    assert source.version(folder) != before


def test_a_store_that_is_down_is_unreachable_not_missing(make: Make, moto: MotoS3) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    s3 = {**s3_options(moto, ["lomas-duck-63"]), "endpoint_url": closed}
    source = make(s3=s3, http={"allowed_prefixes": [closed + "/data/"], **LOOPBACK},
                  secrets={"reader": {**reader_secret(moto), "endpoints": [closed]}})
    for options in ({"path": closed + "/data/t.parquet"},
                    {"path": "s3://lomas-duck-63/t.parquet", "credentials": "reader"}):
        with pytest.raises(DatasetUnavailable) as info:
            source.open("people", options, contract_metadata())
        assert info.value.message == "dataset 'people': the store is unreachable", options
        assert not info.value.touched
