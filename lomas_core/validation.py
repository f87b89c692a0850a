"""The one formatter of pydantic errors for messages (no input values are ever echoed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lomas_core.errors import InvalidRequest

__all__ = ["parse_options", "validation_message"]

_Model = TypeVar("_Model", bound=BaseModel)


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


def parse_options(model: type[_Model], options: Mapping[str, Any], what: str) -> _Model:
    """A dataset description's ``options`` validated as ``model``.

    Raises:
        InvalidRequest: ``"<what> options: <reasons>"`` (no value echoed).
    """
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise InvalidRequest(f"{what} options: {validation_message(exc)}") from None
