"""Request limits: body size (before parsing) and in-flight queries per user."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lomas_core.errors import InvalidRequest, PayloadTooLarge, TooManyQueries
from lomas_core.server.errors import send_error

__all__ = ["BodyLimitMiddleware", "InflightLimiter"]


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with 413 before the app parses anything.

    A declared ``Content-Length`` over the limit is refused at once. Otherwise the body is read
    (counting bytes, so chunked bodies are bounded too) into memory up to the limit and replayed to
    the app; crossing the limit while reading is refused the same way.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, InvalidRequest("invalid Content-Length header"))
                    return
                if declared > self.max_bytes:
                    await send_error(send, self._too_large())
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class InflightLimiter:
    """Count each user's queries in flight; refuse more than ``limit`` with 429."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def inflight(self, user: str) -> int:
        with self._lock:
            return self._counts.get(user, 0)

    @contextmanager
    def slot(self, user: str) -> Iterator[None]:
        """Hold one slot for ``user`` for the duration of the block (released even on errors)."""
        if self.limit is None:
            yield
            return
        with self._lock:
            current = self._counts.get(user, 0)
            if current >= self.limit:
                raise TooManyQueries(
                    f"you already have {current} queries running (limit {self.limit}); "
                    "wait for one to finish")
            self._counts[user] = current + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts.get(user, 1) - 1
                if left <= 0:
                    self._counts.pop(user, None)
                else:
                    self._counts[user] = left
