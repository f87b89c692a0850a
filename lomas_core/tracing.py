"""OpenTelemetry traces (optional extra ``lomas[otel]``): one span per HTTP request, one child
span per query lifecycle stage, exported over OTLP/HTTP when ``observability.tracing`` says so.

Nothing is exported by default. Spans carry the route template, the method, the status, the
engine, the stage and the query outcome; never the raw path (it names datasets), the user, the
query text or the result. Dataset names appear only with ``observability.label_datasets: true``.
Stage spans are made by an observer on the ``lomas_query_stage`` hook, from the stage's measured
duration, so third-party hooks and the metrics see the same stages.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lomas_core.errors import ConfigError
from lomas_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lomas_core.config import Config
    from lomas_core.models import ArchiveRecord

__all__ = ["Tracing", "TracingMiddleware"]


class Tracing:
    """A tracer provider of its own (not the global one) exporting to the configured endpoint."""

    def __init__(self, config: Config) -> None:
        conf = config.observability.tracing
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError("observability.tracing is enabled but OpenTelemetry is not "
                              "installed: pip install 'lomas[otel]'") from None
        headers = None
        if conf.headers_secret is not None:  # e.g. "Authorization=Bearer ..." for a SaaS backend
            raw = config.secret(conf.headers_secret)
            headers = dict(h.split("=", 1) for h in raw.split(",") if "=" in h)
        self.label_datasets = config.observability.label_datasets
        self.provider = TracerProvider(resource=Resource.create({"service.name": conf.service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=conf.endpoint, headers=headers, timeout=conf.timeout_seconds)))
        self.tracer = self.provider.get_tracer("lomas")

    def shutdown(self) -> None:
        """Flush the spans still queued and stop exporting."""
        self.provider.shutdown()

    # -- observer hooks ----------------------------------------------------------------------------
    @hookimpl
    def lomas_query_stage(self, engine: str, stage: str, seconds: float) -> None:
        end = time.time_ns()
        span = self.tracer.start_span(f"lomas.{stage}", start_time=end - int(seconds * 1e9),
                                      attributes={"lomas.engine": engine, "lomas.stage": stage})
        span.end(end_time=end)

    @hookimpl
    def lomas_query_completed(self, record: ArchiveRecord) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attribute("lomas.query.outcome", record.status)
        span.set_attribute("lomas.engine", record.engine)
        if self.label_datasets:
            span.set_attribute("lomas.dataset", record.dataset)

    @hookimpl
    def lomas_query_refused(self, engine: str, code: str) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attribute("lomas.query.outcome", "refused")
        span.set_attribute("lomas.error.code", code)


class TracingMiddleware:
    """Opens the request span (named after the route template once routing has matched)."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import trace

        method = scope.get("method", "")
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        with self.tracing.tracer.start_as_current_span(
                f"{method} request", kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method}) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route: Any = getattr(scope.get("route"), "path", None) or "other"
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
