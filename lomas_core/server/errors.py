"""The one place where exceptions become JSON error responses.

- :class:`~lomas_core.errors.LomasError` -> its status and ``{"error": {"code", "message"}}``.
- FastAPI request validation errors -> 400 ``invalid_request`` (field paths and reasons, never the
  submitted values).
- Unknown routes -> 404 ``not_found``; wrong methods -> 405 ``invalid_request``.
- Anything else -> 500 ``internal_error`` with a generic message; the real exception is logged here.

Outside the admin API, server file paths are scrubbed from every message (a library error quoting
where it is installed, an adapter naming a file): researchers learn the reason, not the layout of
the server. Admins see messages as they are.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lomas_core.errors import InternalError, InvalidRequest, LomasError, NotFound

__all__ = [
    "CatchAllMiddleware",
    "StartupFailureMiddleware",
    "error_response",
    "install_error_handlers",
    "scrub_paths",
    "send_error",
    "status_for_code",
]

log = logging.getLogger("lomas.server")

GENERIC_500 = "An unexpected error occurred on the server; it has been logged."
ADMIN_PREFIX = "/v1/admin"
_PATH_MARK = "<server path>"
# file:// URLs, absolute POSIX paths of two or more parts (API routes, /v1/..., excepted) and
# Windows drive paths.
_PATHS = re.compile(
    r"file://\S+"
    r"|(?<![\w:/.~-])(?!/v\d+/)/(?:[\w.+@~-]+/)+[\w.+@~-]*"
    r"|\b[A-Za-z]:\\(?:[^\s\\'\"]+\\)*[^\s\\'\"]*")


def scrub_paths(message: str) -> str:
    """``message`` with server file paths replaced by ``<server path>``."""
    return _PATHS.sub(_PATH_MARK, message)


def _all_error_classes(base: type[LomasError] = LomasError) -> list[type[LomasError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_all_error_classes(sub))
    return found


def status_for_code(code: str) -> int:
    """The HTTP status of an error code (used to replay a stored error)."""
    for cls in _all_error_classes():
        if cls.code == code:
            return cls.status
    return 500


def _public_dict(exc: LomasError, path: str) -> dict[str, Any]:
    body = exc.to_dict()
    if not path.startswith(ADMIN_PREFIX):
        body["error"]["message"] = scrub_paths(str(body["error"].get("message", "")))
    return body


def error_response(exc: LomasError, headers: dict[str, str] | None = None,
                   path: str = "") -> JSONResponse:
    """A JSON response for a :class:`LomasError` raised while serving ``path``."""
    return JSONResponse(_public_dict(exc, path), status_code=exc.status, headers=headers)


async def send_error(send: Send, exc: LomasError, path: str = "") -> None:
    """Send an error response from raw ASGI middleware (before the app runs)."""
    body = json.dumps(_public_dict(exc, path)).encode()
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in list(exc.errors())[:5]:
        if err.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + ("; ".join(parts) or "malformed body")


async def _lomas_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LomasError)
    if exc.status >= 500 and not isinstance(exc, InternalError):
        log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.code, exc.message)
    return error_response(exc, path=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(InvalidRequest(_validation_message(exc)))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"no such route: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        response = error_response(InvalidRequest(f"method {request.method} is not allowed here"))
        response.status_code = 405
        return response
    code = "invalid_request" if exc.status_code < 500 else "internal_error"
    message = str(exc.detail) if exc.status_code < 500 else GENERIC_500
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` and wrap it with :class:`CatchAllMiddleware`."""
    app.add_exception_handler(LomasError, _lomas_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Turn any exception escaping the app into a generic 500 (logged, never shown).

    Sits inside Starlette's own error middleware so that the exception is handled here and never
    re-raised into the server (or the test client).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except RecursionError:
            # json.loads on absurdly nested bodies: bad input, not a server fault.
            if not started:
                await send_error(send, InvalidRequest("the request body is nested too deeply"))
        except LomasError as exc:  # raised from middleware or dependencies outside routing
            if not started:
                await send_error(send, exc, str(scope.get("path", "")))
        except Exception:  # noqa: BLE001 - the last line of defence
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_error(send, InternalError(GENERIC_500))


class StartupFailureMiddleware:
    """A start-up failure with a known reason is reported in one line, not a 40-line traceback.

    Starlette sends the server the formatted traceback of a failed lifespan start-up, and uvicorn
    logs it. When the app recorded a :class:`LomasError` reason (``app.state.lomas_startup_error``),
    that line replaces the traceback; unexpected failures keep theirs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def relay(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                app = scope.get("app")
                reason = getattr(getattr(app, "state", None), "lomas_startup_error", None)
                if reason:
                    message = {**message, "message": reason}
            await send(message)

        await self.app(scope, receive, relay)
