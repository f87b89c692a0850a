"""A scripted HTTP server on loopback: answers from a list, records what it received.

It stands in for the *server* so that the client's own behaviour (retries, idempotency keys, error
mapping) can be checked against real sockets; the live-server tests are in tests/integration.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DROP = "drop"


class Scripted:
    DROP = DROP

    def __init__(self) -> None:
        self.replies: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def push(self, *replies: Any) -> None:
        self.replies.extend(replies)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.requests.append({"method": self.command, "path": self.path,
                                   "headers": dict(self.headers),
                                   "json": json.loads(raw) if raw else None})
            reply = state.replies.pop(0) if state.replies else (500, {"error": {
                "code": "internal_error", "message": "script exhausted"}})
            if reply == DROP:
                self.close_connection = True
                self.connection.close()
                return
            status, body = reply
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, str)
                             else "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
