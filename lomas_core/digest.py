"""The one truncated digest helper (cache keys, version tags, metadata fingerprints)."""

from __future__ import annotations

import hashlib

__all__ = ["short_digest"]


def short_digest(text: str | bytes, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``text`` (UTF-8 when a str)."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:length]
