"""The one error hierarchy of lomas.

Every error a researcher or an admin can meet is a :class:`LomasError` with a stable ``code`` and an
HTTP ``status``. The server maps them to JSON in exactly one place (``lomas_core.server.errors``);
nothing else turns exceptions into responses. Messages must never carry private values, secrets or
library tracebacks: they are shown to researchers as they are.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "BudgetExceeded",
    "ChargedFailure",
    "ConfigError",
    "Conflict",
    "DatasetUnavailable",
    "IdempotencyConflict",
    "IdentityProviderUnavailable",
    "InternalError",
    "InvalidQuery",
    "InvalidRequest",
    "LomasError",
    "NotFound",
    "PayloadTooLarge",
    "PluginError",
    "QueryFailed",
    "QueryInProgress",
    "QueryTimeout",
    "StoreUnavailable",
    "Suspended",
    "TooManyQueries",
    "Unauthenticated",
]


class LomasError(Exception):
    """Base of every error lomas raises on purpose.

    Subclasses set ``code`` (machine-readable, stable, part of the API) and ``status`` (HTTP).
    """

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message"}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequest(LomasError):
    """The request is malformed (bad JSON, missing field, wrong type)."""

    code = "invalid_request"
    status = 400


class Unauthenticated(LomasError):
    """No token, or a token that is unknown or revoked."""

    code = "unauthenticated"
    status = 401


class AccessDenied(LomasError):
    """The caller may not use this dataset or endpoint.

    The message must not depend on whether the dataset exists.
    """

    code = "access_denied"
    status = 403


class Suspended(LomasError):
    """The caller's account is suspended by an administrator; nothing was charged."""

    code = "suspended"
    status = 403


class BudgetExceeded(LomasError):
    """The query's cost does not fit in the caller's remaining budget; nothing was charged."""

    code = "insufficient_budget"
    status = 403


class NotFound(LomasError):
    """An admin-visible object (user, dataset, query) does not exist."""

    code = "not_found"
    status = 404


class Conflict(LomasError):
    """The object already exists or the state forbids the change."""

    code = "conflict"
    status = 409


class IdempotencyConflict(Conflict):
    """An ``Idempotency-Key`` was reused for a different request."""

    code = "idempotency_key_reused"


class QueryInProgress(Conflict):
    """A request with the same ``Idempotency-Key`` is still running; retry later."""

    code = "query_in_progress"


class PayloadTooLarge(LomasError):
    """The request body is larger than the configured limit."""

    code = "payload_too_large"
    status = 413


class InvalidQuery(LomasError):
    """The query is well-formed JSON but the engine refuses it (unknown column, bad SQL, ...).

    Raised before any private data is touched; nothing is charged.
    """

    code = "invalid_query"
    status = 422


class QueryFailed(LomasError):
    """The query failed while running on private data. Its cost stays charged.

    The message is generic by construction: never pass library text or data values here.
    """

    code = "query_failed"
    status = 422

    def __init__(self, message: str = "The query failed while running on the dataset; "
                 "its cost stays charged.", **details: Any) -> None:
        super().__init__(message, **details)


class ChargedFailure(LomasError):
    """The query failed after private data was read, or its server died; its cost stays charged.

    Not retryable as such: sending the query again is a new, charged query. Covers data that was
    read but cannot be used (a missing column, a text value in a numeric column, a truncated
    file) and queries interrupted by a server crash. ``details.charged`` is always true.
    """

    code = "charged_failure"
    status = 422

    def __init__(self, message: str = "The query failed after the dataset was read; "
                 "its cost stays charged.", **details: Any) -> None:
        details.setdefault("charged", True)
        super().__init__(message, **details)


class TooManyQueries(LomasError):
    """The caller has too many queries in flight."""

    code = "too_many_queries"
    status = 429


class DatasetUnavailable(LomasError):
    """The dataset's source cannot be read (unreachable, timeout, too large, unparsable, ...).

    ``touched`` says whether any private data had been read when the failure happened; when it is
    False a charge made for the query is released.
    """

    code = "dataset_unavailable"
    status = 503

    def __init__(self, message: str, *, touched: bool = False, **details: Any) -> None:
        super().__init__(message, **details)
        self.touched = touched


class StoreUnavailable(LomasError):
    """The budget store cannot be reached; nothing was charged."""

    code = "store_unavailable"
    status = 503


class IdentityProviderUnavailable(LomasError):
    """The identity provider's keys could not be fetched to check a token; nothing was run."""

    code = "identity_provider_unavailable"
    status = 503


class QueryTimeout(LomasError):
    """The query ran longer than the configured limit. Its cost stays charged."""

    code = "query_timeout"
    status = 504


class InternalError(LomasError):
    """An unexpected server error. The message is generic."""

    code = "internal_error"
    status = 500


class ConfigError(LomasError):
    """The configuration is invalid; raised at start-up, never sent to researchers."""

    code = "config_error"
    status = 500


class PluginError(ConfigError):
    """A plugin is unknown, fails to import, or does not provide what it declares."""

    code = "plugin_error"
