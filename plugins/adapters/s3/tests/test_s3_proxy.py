"""Proxies: the environment's are ignored; an explicit ``proxy`` carries every request (and the
adapter says so, for the admin log at start-up)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from lomas_adapter_s3.testing import table_bytes

from lomas_core.testing.engine_contract import contract_table

CSV = table_bytes(contract_table(), "csv")


class _Forward(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy that records the absolute URLs it is asked for."""

    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _relay(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
            conn.request(self.command, path, body=body or None, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for name, value in reply.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", reply.getheader("Content-Length", str(len(data)))
                             if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = _relay  # noqa: N815


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[str]


@pytest.fixture
def proxy() -> Iterator[_ProxyServer]:
    server = _ProxyServer(("127.0.0.1", 0), _Forward)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _ProxyServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_environment_proxies_are_ignored(make_adapter, moto, bucket: str, proxy: _ProxyServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, _url(proxy))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    moto.client.put_object(Bucket=bucket, Key="t.csv", Body=CSV)
    adapter = make_adapter()
    loaded = adapter.load("people", {"bucket": bucket, "key": "t.csv", "credentials": "s3"})
    assert loaded.table.num_rows == contract_table().num_rows
    assert proxy.seen == []  # straight to the (checked, pinned) endpoint
    assert adapter.startup_notices == []


def test_an_explicit_proxy_carries_every_request_and_is_announced(
        make_adapter, moto, bucket: str, proxy: _ProxyServer) -> None:
    moto.client.put_object(Bucket=bucket, Key="t.csv", Body=CSV)
    adapter = make_adapter(proxy=_url(proxy))
    loaded = adapter.load("people", {"bucket": bucket, "key": "t.csv", "credentials": "s3"})
    assert loaded.table.num_rows == contract_table().num_rows
    assert proxy.seen and all(moto.endpoint_url in line for line in proxy.seen)
    [notice] = adapter.startup_notices
    assert "by name only" in notice and "not pinned" in notice
