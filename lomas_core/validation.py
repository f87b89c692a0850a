"""The one formatter of pydantic errors for messages (no input values are ever echoed)."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["validation_message"]


def validation_message(exc: ValidationError, *, limit: int | None = 5, default: str = "payload",
                       drop: tuple[str, ...] = (), separator: str = "; ") -> str:
    """A summary of ``exc``: ``field.path: reason`` for its first ``limit`` errors (all with
    None), joined by ``separator``. ``default`` names an error without a location; location parts
    in ``drop`` (``body``) are left out."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in drop) or default
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return separator.join(parts)
