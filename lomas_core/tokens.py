"""API tokens: issued once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_token"]

_PREFIX = "lomas_"


def new_token() -> str:
    """A fresh random token (shown to the admin once, never stored)."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. Tokens are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
