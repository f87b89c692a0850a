"""The http adapter's own behaviour on a real loopback server: limits, secrets, redirects, versions,
metadata beside the data, and every failure mapped to a DatasetUnavailable naming the dataset."""

from __future__ import annotations

import socket

import pytest
from lomas_adapter_http.testing import FileServer, table_bytes

from conftest import HEADER_SECRET
from lomas_core.errors import DatasetUnavailable, InvalidRequest
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table

CSV = table_bytes(contract_table(), "csv")
PARQUET = table_bytes(contract_table(), "parquet")
AUTH = {"Authorization": {"secret": "api", "prefix": "Bearer "}}


def _unavailable(adapter, options, dataset: str = "people") -> DatasetUnavailable:
    with pytest.raises(DatasetUnavailable) as info:
        adapter.load(dataset, options)
    exc = info.value
    assert f"'{dataset}'" in exc.message
    assert HEADER_SECRET not in str(exc.to_dict())
    return exc


# -- limits -------------------------------------------------------------------------------------------
def test_refuses_a_file_larger_than_the_cap_from_content_length(make_adapter, server: FileServer) -> None:
    server.put("/big.csv", CSV)
    exc = _unavailable(make_adapter(max_bytes=len(CSV) - 1), {"url": server.url("/big.csv")})
    assert "larger than" in exc.message and exc.touched is False


def test_stops_reading_past_the_cap_without_content_length(make_adapter, server: FileServer) -> None:
    body = CSV * 200  # ~ 1 MB, streamed without a length
    server.put("/big.csv", body, content_length=False)
    exc = _unavailable(make_adapter(max_bytes=64 * 1024), {"url": server.url("/big.csv")})
    assert "larger than" in exc.message and exc.touched is False
    # Exactly at the cap is fine.
    server.put("/ok.csv", CSV, content_length=False)
    loaded = make_adapter(max_bytes=len(CSV)).load("people", {"url": server.url("/ok.csv")})
    assert loaded.table.num_rows == 200


def test_read_timeout_before_headers(make_adapter, server: FileServer) -> None:
    server.put("/slow.csv", CSV, delay=2.0, delay_headers=True)
    exc = _unavailable(make_adapter(read_timeout=0.3), {"url": server.url("/slow.csv")})
    assert "in time" in exc.message and exc.touched is False


def test_read_timeout_mid_body(make_adapter, server: FileServer) -> None:
    server.put("/slow.csv", CSV, delay=2.0)
    exc = _unavailable(make_adapter(read_timeout=0.3), {"url": server.url("/slow.csv")})
    assert "stopped sending" in exc.message and exc.touched is False


def test_unreachable_source(make_adapter) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = _unavailable(make_adapter(connect_timeout=1), {"url": f"http://127.0.0.1:{port}/t.csv"})
    assert "unreachable" in exc.message and exc.touched is False


def test_server_error_and_missing_file(make_adapter, server: FileServer) -> None:
    adapter = make_adapter()
    exc = _unavailable(adapter, {"url": server.url("/absent.csv")})
    assert "not found" in exc.message and exc.touched is False


# -- parsing and metadata ---------------------------------------------------------------------------
def test_unparsable_file_names_the_dataset_not_the_content(make_adapter, server: FileServer) -> None:
    server.put("/bad.parquet", b"private-row-content-42,not parquet at all")
    exc = _unavailable(make_adapter(), {"url": server.url("/bad.parquet")})
    assert "could not be parsed as parquet" in exc.message
    assert "private-row-content-42" not in str(exc.to_dict())


def test_format_option_overrides_the_extension(make_adapter, server: FileServer) -> None:
    server.put("/download", PARQUET)
    adapter = make_adapter()
    with pytest.raises(InvalidRequest, match="format"):
        adapter.check_options({"url": server.url("/download")})
    options = {"url": server.url("/download"), "format": "parquet"}
    adapter.check_options(options)
    assert adapter.load("people", options).table.num_rows == 200


def test_metadata_beside_the_data(make_adapter, server: FileServer) -> None:
    import yaml

    server.put("/t.csv", CSV)
    server.put("/t.yaml", yaml.safe_dump(CONTRACT_METADATA).encode())
    adapter = make_adapter()
    options = {"url": server.url("/t.csv"), "metadata_url": server.url("/t.yaml")}
    adapter.check_options(options)
    assert adapter.load_metadata("people", options) == CONTRACT_METADATA
    assert adapter.load_metadata("people", {"url": server.url("/t.csv")}) is None
    with pytest.raises(DatasetUnavailable, match="'people'.*not found"):
        adapter.load_metadata("people", {**options, "metadata_url": server.url("/absent.yaml")})
    server.put("/bad.yaml", b"columns: [unclosed")
    with pytest.raises(DatasetUnavailable, match="not valid YAML"):
        adapter.load_metadata("people", {**options, "metadata_url": server.url("/bad.yaml")})
    server.put("/huge.yaml", b"# " + b"x" * 5000)
    with pytest.raises(DatasetUnavailable, match="larger than"):
        make_adapter(max_metadata_bytes=1024).load_metadata(
            "people", {**options, "metadata_url": server.url("/huge.yaml")})


# -- header secrets -----------------------------------------------------------------------------------
def test_header_from_a_named_secret(make_adapter, server: FileServer) -> None:
    server.put("/t.csv", CSV, require={"Authorization": f"Bearer {HEADER_SECRET}"})
    adapter = make_adapter()
    options = {"url": server.url("/t.csv"), "headers": AUTH}
    adapter.check_options(options)
    assert adapter.version(options) is not None
    assert adapter.load("people", options).table.num_rows == 200
    exc = _unavailable(adapter, {"url": server.url("/t.csv")})
    assert "refused access" in exc.message and exc.touched is False


def test_wrong_secret_refused_without_showing_it(make_adapter, server: FileServer) -> None:
    server.put("/t.csv", CSV, require={"Authorization": "Bearer something-else"})
    exc = _unavailable(make_adapter(), {"url": server.url("/t.csv"), "headers": AUTH})
    assert "refused access" in exc.message


def test_secret_headers_must_name_a_defined_secret(make_adapter, server: FileServer) -> None:
    adapter = make_adapter()
    url = server.url("/t.csv")
    for headers in ({"Authorization": "Bearer literal-token"}, {"X-Api-Key": "literal"},
                    {"Authorization": {"secret": "nope"}}, {"bad header": "x"}):
        with pytest.raises(InvalidRequest) as info:
            adapter.check_options({"url": url, "headers": headers})
        assert "literal-token" not in info.value.message
    adapter.check_options({"url": url, "headers": {"Accept": "text/csv"}})
    # Defined but unreadable at load time: unavailable, untouched, no secret name leaks its value.
    exc = _unavailable(adapter, {"url": url, "headers": {"Authorization": {"secret": "unset"}}})
    assert "not configured" in exc.message and exc.touched is False


# -- redirects and URL rules --------------------------------------------------------------------------
def test_redirects_followed_up_to_the_limit(make_adapter, server: FileServer) -> None:
    server.put("/t.csv", CSV)
    for i in range(4):
        server.redirect(f"/r{i}", f"/r{i + 1}" if i < 3 else "/t.csv")
    adapter = make_adapter(max_redirects=3)
    assert adapter.load("people", {"url": server.url("/r1"), "format": "csv"}).table.num_rows == 200
    exc = _unavailable(adapter, {"url": server.url("/r0"), "format": "csv"})
    assert "redirected more than 3 times" in exc.message


def test_secret_header_not_sent_to_another_origin(make_adapter, server: FileServer) -> None:
    with FileServer() as other:
        other.put("/t.csv", CSV)
        server.redirect("/t.csv", other.url("/t.csv"))
        adapter = make_adapter()
        loaded = adapter.load("people", {"url": server.url("/t.csv"), "headers": AUTH})
        assert loaded.table.num_rows == 200
        assert other.count("GET", "/t.csv") == 1
        for _, _, headers in other.requests:
            assert all(HEADER_SECRET not in v for v in headers.values())
        assert any(h.get("Authorization") == f"Bearer {HEADER_SECRET}" for _, _, h in server.requests)


def test_allowed_prefixes_apply_to_urls_and_redirects(make_adapter, server: FileServer) -> None:
    server.put("/data/t.csv", CSV)
    server.put("/private.csv", CSV)
    server.redirect("/data/sneaky.csv", "/private.csv")
    adapter = make_adapter(allowed_prefixes=[server.url("/data")])
    adapter.check_options({"url": server.url("/data/t.csv")})
    for url in (server.url("/private.csv"), server.url("/data/../private.csv"),
                server.url("/data-private.csv"), "file:///etc/passwd", "http://u:p@127.0.0.1/x.csv"):
        with pytest.raises(InvalidRequest):
            adapter.check_options({"url": url, "format": "csv"})
    exc = _unavailable(adapter, {"url": server.url("/data/sneaky.csv")})
    assert "redirected" in exc.message
    assert server.count("GET", "/private.csv") == 0


# -- versions -------------------------------------------------------------------------------------------
def test_version_from_etag_then_last_modified_via_head(make_adapter, server: FileServer) -> None:
    adapter = make_adapter()
    served = server.put("/t.csv", CSV)
    options = {"url": server.url("/t.csv")}
    assert adapter.version(options) == f"etag:{served.etag_value}"
    assert adapter.load("people", options).version == adapter.version(options)
    assert server.count("GET") == 1  # version() never downloads
    server.put("/t.csv", CSV, etag=False)
    modified = adapter.version(options)
    assert modified is not None and modified.startswith("modified:")
    server.put("/t.csv", CSV + b"a,1,2.0,true\n", etag=False)
    assert adapter.version(options) != modified


def test_no_validators_or_no_head_gives_no_version(make_adapter, server: FileServer) -> None:
    adapter = make_adapter()
    options = {"url": server.url("/t.csv")}
    server.put("/t.csv", CSV, etag=False, last_modified=False)
    assert adapter.version(options) is None
    server.put("/t.csv", CSV, head=False)
    assert adapter.version(options) is None
    loaded = adapter.load("people", options)
    assert loaded.version.startswith("etag:")
    server.put("/t.csv", CSV, etag=False, last_modified=False)
    assert adapter.load("people", options).version.startswith("sha256:")


def test_unknown_format_at_load_time_is_unavailable(make_adapter, server: FileServer) -> None:
    server.put("/t.bin", CSV)
    exc = _unavailable(make_adapter(), {"url": server.url("/t.bin")})
    assert "format" in exc.message and exc.touched is False
    assert server.count("GET", "/t.bin") == 0
