"""JSON responses of the researcher routes: encoded once, budgets as exact decimal numerals.

Handlers return :class:`LomasJSON` directly, so FastAPI does not validate and re-serialize the
body through ``jsonable_encoder`` on every request (the OpenAPI document still describes each
response: see :data:`lomas_core.server.openapi.ROUTE_RESPONSES`). Encoding is orjson's (several
times faster than ``json.dumps`` for query results), and:

* a :class:`~decimal.Decimal` is written as the plain JSON numeral of its exact value
  (``0.850000004``, never ``0.8500000039999999`` nor a string), so a client that reads numbers
  as decimals (``lomas_client``) gets exactly what the ledger holds, and any other client reads
  an ordinary number;
* a :class:`RawJSON` (a result already encoded by an execution worker) is embedded as is, not
  decoded and encoded again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response

from lomas_core.budget import Budget, format_decimal

__all__ = ["LomasJSON", "RawJSON", "budget_json", "encode"]


class RawJSON:
    """A JSON document already encoded (``text``), embedded unchanged by :func:`encode`."""

    __slots__ = ("text",)

    def __init__(self, text: str | bytes) -> None:
        self.text = text


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("a budget must be finite")
        return orjson.Fragment(format_decimal(value))
    if isinstance(value, RawJSON):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(content: Any) -> bytes:
    """``content`` as JSON bytes (see the module docstring for decimals and raw JSON)."""
    return orjson.dumps(content, default=_default)


def budget_json(budget: Budget) -> dict[str, Decimal]:
    """``{"epsilon", "delta"}`` with the exact decimals (numerals in the JSON)."""
    return {"epsilon": budget.epsilon, "delta": budget.delta}


class LomasJSON(Response):
    """``application/json`` encoded by :func:`encode`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)
