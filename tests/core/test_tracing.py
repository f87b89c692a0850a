"""OpenTelemetry traces: an in-process OTLP/HTTP collector receives one query's spans, in order."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from lomas_core.logs import JsonFormatter  # noqa: E402
from lomas_core.testing.harness import LomasHarness  # noqa: E402

META = {"max_ids": 1, "rows": 30, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


class Collector:
    """Decodes OTLP/HTTP protobuf trace exports into a flat list of spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    collector.resources.append({a.key: a.value.string_value
                                                for a in rs.resource.attributes})
                    for ss in rs.scope_spans:
                        collector.spans.extend(ss.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


def test_one_query_exports_request_and_stage_spans_in_order(tmp_path: Path,
                                                           collector: Collector) -> None:
    h = LomasHarness(tmp_path, engines={"toy_count": {}},
                     observability={"tracing": {"enabled": True, "endpoint": collector.url,
                                                "service_name": "lomas-test"}})
    h.add_dataset("ds", pd.DataFrame({"x": list(range(10)) * 3}), META)
    token = h.add_user("alice-name", grant={"ds": (1.0, 0.0)})
    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    logger = logging.getLogger("lomas.queries")
    handler = Capture()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/ds/query", json={"engine": "toy_count",
                                                      "query": {"epsilon": 0.1}})
            assert r.status_code == 200
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        h.close()  # the app's shutdown flushes the exporter
    assert collector.resources and collector.resources[0]["service.name"] == "lomas-test"
    requests = [s for s in collector.spans if s.name == "POST /v1/datasets/{name}/query"]
    assert len(requests) == 1
    root = requests[0]
    children = sorted((s for s in collector.spans if s.parent_span_id == root.span_id),
                      key=lambda s: s.start_time_unix_nano)
    assert [s.name for s in children] == ["lomas.cost", "lomas.charge", "lomas.load",
                                          "lomas.run", "lomas.archive"]
    for earlier, later in zip(children, children[1:], strict=False):
        assert earlier.end_time_unix_nano <= later.start_time_unix_nano
    assert all(s.trace_id == root.trace_id for s in children)
    assert root.start_time_unix_nano <= children[0].start_time_unix_nano
    assert children[-1].end_time_unix_nano <= root.end_time_unix_nano
    assert attrs(root) == {**attrs(root), "http.route": "/v1/datasets/{name}/query",
                           "http.response.status_code": 200, "lomas.query.outcome": "success"}
    assert attrs(children[0]) == {"lomas.engine": "toy_count", "lomas.stage": "cost"}
    # the query's log line names the trace
    assert [x["trace_id"] for x in lines] == [root.trace_id.hex()]
    # nothing private or identifying: no dataset (not enabled), user, token or query text
    blob = b"".join(s.SerializeToString() for s in collector.spans)
    for private in (b"alice-name", token.encode(), b"/v1/datasets/ds/", b"epsilon", b"lomas.dataset"):
        assert private not in blob


def test_nothing_is_exported_by_default(tmp_path: Path, collector: Collector,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)
    h = LomasHarness(tmp_path, engines={"toy_count": {}})
    h.add_dataset("ds", pd.DataFrame({"x": list(range(10)) * 3}), META)
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    try:
        with h.client(token) as c:
            assert c.post("/v1/datasets/ds/query", json={"engine": "toy_count",
                                                         "query": {"epsilon": 0.1}}).status_code == 200
    finally:
        h.close()
    assert collector.spans == []
