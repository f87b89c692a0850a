"""Structured logs: a request id per HTTP request, JSON lines on request, one line per query.

``logging: {format: json}`` makes the ``lomas`` and ``uvicorn`` loggers write one JSON object per
line. Query lines (logger ``lomas.queries``) carry the request id, the user's id (``usr_...``, not
the name), the dataset, the engine, the cost, the outcome, the error code and the duration; never
the query text, the result or a token. With OpenTelemetry tracing on, lines carry the trace and
span ids.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lomas_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lomas_core.models import ArchiveRecord

__all__ = ["FIELDS", "JsonFormatter", "QueryLogger", "RequestIdMiddleware", "configure_logging",
           "request_id"]

#: The request id of the request being handled ('' outside a request).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("lomas_request_id", default="")

#: The structured fields a log record may carry (passed with ``extra=``); nothing else is written.
FIELDS = ("request_id", "user_id", "dataset", "engine", "epsilon", "delta", "outcome", "code",
          "duration_ms", "query_id")

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

query_log = logging.getLogger("lomas.queries")


def _trace_ids() -> dict[str, str]:
    if "opentelemetry.trace" not in sys.modules:  # tracing not in use: no import cost
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the known structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            out["request_id"] = rid
        for name in FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        out.update(_trace_ids())
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages can quote data.
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


def configure_logging(fmt: str) -> None:
    """Install the JSON formatter on the lomas and uvicorn loggers (``fmt == "json"``)."""
    if fmt != "json":
        return
    formatter = JsonFormatter()
    for name in ("lomas", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if name == "lomas" and not logger.handlers:
            logger.addHandler(logging.StreamHandler())
            logger.propagate = False
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        for handler in logger.handlers:
            handler.setFormatter(formatter)


class RequestIdMiddleware:
    """Takes a well-formed ``X-Request-ID`` or makes one; echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class QueryLogger:
    """Observer plugin: one INFO line per real query on ``lomas.queries``."""

    @hookimpl
    def lomas_query_completed(self, record: ArchiveRecord) -> None:
        duration = None
        if record.completed_at is not None:
            duration = round((record.completed_at - record.created_at).total_seconds() * 1000, 1)
        code = (record.error or {}).get("code") if record.status == "failed" else None
        query_log.info("query %s %s", record.id, record.status, extra={
            "request_id": request_id.get() or None, "user_id": record.user_id,
            "dataset": record.dataset, "engine": record.engine,
            "epsilon": float(record.cost.epsilon), "delta": float(record.cost.delta),
            "outcome": record.status, "code": code, "duration_ms": duration,
            "query_id": record.id})

    @hookimpl
    def lomas_query_refused(self, engine: str, code: str) -> None:
        query_log.info("query refused: %s", code,
                       extra={"request_id": request_id.get() or None, "engine": engine,
                              "outcome": "refused", "code": code})
