"""API tokens: issued once, stored only as a hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

__all__ = ["expiry", "hash_token", "new_token"]

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
