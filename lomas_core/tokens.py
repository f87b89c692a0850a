"""API tokens: issued once, stored only as a hash; their last use recorded off the request path."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["LAST_USED_SECONDS", "LastUsed", "expiry", "hash_token", "last_used_seconds",
           "new_token"]

log = logging.getLogger("lomas.tokens")

#: Tokens whose last write a process remembers (beyond it, it forgets and may write again).
_MAX_REMEMBERED = 100_000

_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

_PREFIX = "lomas_"


def new_token() -> str:
    """A fresh random token (shown to the admin once, never stored)."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. Tokens are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """When a token issued ``now`` with ``--expires text`` expires: a duration (``90d``, ``12h``,
    ``30m``, ``2w``) or an ISO date/time (UTC when no zone). None for no text or ``never``.

    Raises ValueError for anything else or an instant not in the future.
    """
    if text is None or text.strip().lower() in ("", "never"):
        return None
    now = now or datetime.now(UTC)
    raw = text.strip().lower()
    match = _DURATION.match(raw)
    if match:
        when = now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError("use a duration such as 90d, 12h, 30m, 2w, an ISO date/time, "
                             "or 'never'") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when <= now:
        raise ValueError("the expiry must be in the future")
    return when


#: Default of the stores' ``token_last_used_seconds`` option.
LAST_USED_SECONDS = 60.0


def last_used_seconds(options: Mapping[str, Any], store: str) -> float:
    """The ``token_last_used_seconds`` store option: how often at most a token's last-used time
    is written (default 60; 0 writes it on every request)."""
    from lomas_core.errors import ConfigError

    value = options.get("token_last_used_seconds", LAST_USED_SECONDS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**7:
        raise ConfigError(f"{store} store: 'token_last_used_seconds' must be a number of seconds "
                          ">= 0")
    return float(value)


class LastUsed:
    """Records tokens' last use off the request path: at most one write per token per
    ``resolution``, made by a background thread, so authentication itself never writes.

    ``write(token_hash, when)`` is the store's write. A crash loses at most the last
    ``resolution`` of last-used times (they are informational; nothing depends on them).
    """

    def __init__(self, write: Callable[[str, datetime], None], resolution: float) -> None:
        self._write = write
        self.resolution = timedelta(seconds=resolution)
        self._lock = threading.Lock()
        self._written: dict[str, datetime] = {}
        self._queue: queue.SimpleQueue[tuple[str, datetime] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def touch(self, token_hash: str, stored: datetime | None, now: datetime) -> None:
        """The token was used ``now``; ``stored`` is the last-used time the store holds."""
        if stored is not None and now - stored < self.resolution:
            return
        with self._lock:
            last = self._written.get(token_hash)
            if last is not None and now - last < self.resolution:
                return
            if len(self._written) >= _MAX_REMEMBERED:
                self._written.clear()
            self._written[token_hash] = now
            self._start()
        self._queue.put((token_hash, now))

    def _start(self) -> None:
        if os.getpid() != self._pid:  # forked: the parent's thread is not here
            self._thread, self._pid = None, os.getpid()
            self._queue = queue.SimpleQueue()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="lomas-token-last-used",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._apply(*item)

    def _apply(self, token_hash: str, when: datetime) -> None:
        try:
            self._write(token_hash, when)
        except Exception as exc:  # noqa: BLE001 - informational; never the token in the log
            log.warning("could not record a token's last use: %s", type(exc).__name__)

    def flush(self) -> None:
        """Write what is queued, now (tests and shutdown)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=30)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._apply(*item)
