"""A small real HTTP file server on loopback for tests and benchmarks.

It serves in-memory files with configurable behaviour (ETag / Last-Modified, no Content-Length,
slow bodies, required headers, redirects, no HEAD support) and counts and records every request,
so tests can assert on what the adapter really sent::

    with FileServer() as server:
        server.put("/data.csv", b"a,b\\n1,2\\n")
        url = server.url("/data.csv")
        ...
        assert server.count("GET", "/data.csv") == 1
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from lomas_core.api import short_digest
from lomas_core.testing.tables import table_bytes

__all__ = ["table_bytes", "FileServer", "ServedFile"]


@dataclass
class ServedFile:
    """One file and how it is served."""

    body: bytes
    etag: bool = True
    last_modified: bool = True
    content_length: bool = True
    #: Seconds to wait before the first body byte (or before the headers with ``delay_headers``).
    delay: float = 0.0
    delay_headers: bool = False
    #: Headers that must be present with these exact values, else 401.
    require: dict[str, str] = field(default_factory=dict)
    head: bool = True
    #: Answer ``Range: bytes=a-b`` requests with 206 and those bytes.
    ranges: bool = True
    modified_at: float = field(default_factory=time.time)

    @property
    def etag_value(self) -> str:
        return '"' + short_digest(self.body, 20) + '"'


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # a body without Content-Length ends when the connection closes

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner._record(self.command, path, dict(self.headers.items()))
        redirect = owner.redirects.get(path)
        if redirect is not None:
            self.send_response(redirect[1])
            self.send_header("Location", redirect[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        served = owner.files.get(path)
        if served is None:
            self.send_error(404)
            return
        if head and not served.head:
            self.send_error(405)
            return
        for name, value in served.require.items():
            if self.headers.get(name) != value:
                self.send_error(401)
                return
        if served.delay and served.delay_headers:
            time.sleep(served.delay)
        if served.etag and self.headers.get("If-None-Match") == served.etag_value:
            self.send_response(304)
            self.end_headers()
            return
        body = served.body
        wanted = _byte_range(self.headers.get("Range"), len(body)) if served.ranges else None
        self.send_response(200 if wanted is None else 206)
        if wanted is not None:
            self.send_header("Content-Range", f"bytes {wanted[0]}-{wanted[1] - 1}/{len(body)}")
            self.send_header("Accept-Ranges", "bytes")
            body = body[wanted[0]:wanted[1]]
        self.send_header("Content-Type", "application/octet-stream")
        if served.etag:
            self.send_header("ETag", served.etag_value)
        if served.last_modified:
            self.send_header("Last-Modified", formatdate(served.modified_at, usegmt=True))
        if served.content_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if served.delay and not served.delay_headers:
            self.wfile.write(body[:1])
            self.wfile.flush()
            time.sleep(served.delay)
            body = body[1:]
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a ``bytes=a-b`` or ``bytes=a-`` request within ``size``, else None."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    if not first.isdigit() or (last and not last.isdigit()) or int(first) >= size:
        return None
    return int(first), min(size, int(last) + 1 if last else size)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer


class FileServer:
    """A threaded HTTP/1.0 server on 127.0.0.1 with a free port (a context manager)."""

    def __init__(self) -> None:
        self.files: dict[str, ServedFile] = {}
        self.redirects: dict[str, tuple[str, int]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def put(self, path: str, body: bytes, **behaviour: object) -> ServedFile:
        """Serve ``body`` at ``path`` (replacing what was there); see :class:`ServedFile`."""
        served = ServedFile(body, **behaviour)  # type: ignore[arg-type]
        old = self.files.get(path)
        if old is not None and int(served.modified_at) <= int(old.modified_at):
            served.modified_at = int(old.modified_at) + 1  # Last-Modified has one-second resolution
        self.files[path] = served
        return served

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``location`` (absolute URL or path)."""
        self.redirects[path] = (location, status)

    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests matched ``method`` and ``path`` (None matches any)."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests
                       if (method is None or m == method) and (path is None or p == path))

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
