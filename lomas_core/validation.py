"""The one formatter of pydantic errors for messages (no input values are ever echoed)."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["validation_message"]


def validation_message(exc: ValidationError, *, limit: int = 5) -> str:
    """A short summary of ``exc``: ``field.path: reason; ...`` for its first ``limit`` errors."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
