"""Request bodies of the REST API (validated by FastAPI; errors become 400 invalid_request) and
the researcher routes' response models (documented in the OpenAPI document)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from lomas_core.admin_input import budget_value
from lomas_core.models import NAME_PATTERN

__all__ = [
    "AdminArchiveQuery",
    "ArchivePageResponse",
    "ArchiveQuery",
    "ArchivedQuery",
    "BudgetAmounts",
    "BudgetBody",
    "BudgetResponse",
    "CostRequest",
    "DatasetListResponse",
    "DatasetSummary",
    "DummyRequest",
    "DummySpec",
    "ErrorBody",
    "GrantRequest",
    "QueryRequest",
    "QueryResponse",
    "ResultJSON",
    "TableResult",
    "UserRequest",
    "ValueResult",
    "check_json_payload",
]

_MAX_DEPTH = 64


def check_json_payload(value: Any, depth: int = 0) -> None:
    """Refuse non-finite numbers (JSON has none; they could not be archived) and deep nesting."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinities are not allowed")
    if isinstance(value, dict):
        for item in value.values():
            check_json_payload(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_payload(item, depth + 1)


class DummySpec(BaseModel):
    """Size and seed of a dummy dataset."""

    model_config = ConfigDict(extra="forbid")

    rows: StrictInt = Field(default=100, ge=1)
    seed: StrictInt = Field(default=42, ge=0, le=2**63 - 1)


class DummyRequest(DummySpec):
    """``POST /v1/datasets/{name}/dummy``."""


class CostRequest(BaseModel):
    """``POST /v1/datasets/{name}/cost``: an engine name and its query payload."""

    model_config = ConfigDict(extra="forbid")

    engine: str = Field(min_length=1, max_length=64)
    query: dict[str, Any]

    @field_validator("query")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_payload(value)
        return value


class QueryRequest(CostRequest):
    """``POST /v1/datasets/{name}/query``; ``dummy`` runs on a dummy dataset for free."""

    dummy: DummySpec | None = None


class ArchiveQuery(BaseModel):
    """Query parameters of the archive listings (``/queries``, ``/admin/archive``)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=512)
    status: Literal["pending", "success", "failed", "released"] | None = None
    engine: str | None = Field(default=None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # times without a zone are UTC, like the archive's
        return value


class AdminArchiveQuery(ArchiveQuery):
    """``GET /v1/admin/archive``: any user's and dataset's records."""

    user: str | None = Field(default=None, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)


class UserRequest(BaseModel):
    """``POST /v1/admin/users``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    is_admin: StrictBool = False


class BudgetBody(BaseModel):
    """An (epsilon, delta) budget in a request."""

    model_config = ConfigDict(extra="forbid")

    #: A number or an exact decimal string ("0.1"); never a boolean, NaN or infinity.
    epsilon: float | str
    delta: float | str = 0.0

    @field_validator("epsilon", "delta", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> str:
        return budget_value(value)


class GrantRequest(BudgetBody):
    """``POST /v1/admin/grants``."""

    user: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    #: A re-grant after a revoke keeps what the pair spent unless this is true.
    reset_spent: StrictBool = False


# -- research responses (documented in the OpenAPI document, see openapi.ROUTE_RESPONSES) ----------
class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetAmounts(_Response):
    """An (epsilon, delta) budget. Each is the server's exact decimal written as a JSON number
    (``0.850000004``, at most 9 decimal places for epsilon and 15 for delta): read the number
    text as a decimal to get it exactly (``lomas_client`` does)."""

    epsilon: float = Field(ge=0, examples=[0.5])
    delta: float = Field(ge=0, examples=[0.00001])


class DatasetSummary(_Response):
    """A dataset granted to the caller."""

    name: str
    description: str | None = None


class DatasetListResponse(_Response):
    """``GET /v1/datasets``."""

    datasets: list[DatasetSummary]


class BudgetResponse(_Response):
    """``GET /v1/datasets/{name}/budget``: initial (granted), spent and remaining."""

    initial: BudgetAmounts
    spent: BudgetAmounts
    remaining: BudgetAmounts


class TableResult(_Response):
    """A table result; ``dtypes`` use the metadata's type names."""

    type: Literal["table"]
    columns: list[str]
    dtypes: list[str]
    rows: list[list[Any]]


class ValueResult(_Response):
    """A value result (a number, a list, a model as JSON, ...)."""

    type: Literal["value"]
    value: Any


#: What a query answers: a table, a value, or another engine's JSON (null when it failed).
ResultJSON = TableResult | ValueResult | dict[str, Any] | None


class ErrorBody(BaseModel):
    """A stored error: a stable ``code``, a ``message`` and sometimes ``details``."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    details: dict[str, Any] | None = None


class ArchivedQuery(_Response):
    """One past (non-dummy) query as the archive shows it."""

    id: str
    user: str
    dataset: str
    engine: str
    #: The engine payload as sent.
    request: dict[str, Any]
    #: What was charged (exact decimals written as JSON numbers).
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0)
    status: Literal["pending", "success", "failed", "released"]
    created_at: datetime
    completed_at: datetime | None
    result: ResultJSON
    error: ErrorBody | None


class ArchivePageResponse(_Response):
    """A page of the archive, oldest first; pass ``next_cursor`` back as ``cursor``."""

    queries: list[ArchivedQuery]
    next_cursor: str | None


class QueryResponse(_Response):
    """``POST /v1/datasets/{name}/query``: the answer and what it cost."""

    query_id: str | None = Field(description="null for a dummy query")
    engine: str
    dummy: bool
    result: ResultJSON
    #: Charged (0 for a dummy query), exact decimals written as JSON numbers.
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0)
    remaining: BudgetAmounts | None = Field(description="after the charge; null for a dummy query")
