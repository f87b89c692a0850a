"""Typed exceptions for every error the lomas server can return.

The server answers errors as ``{"error": {"code": ..., "message": ...}}`` with a stable ``code``
(see ``docs/api.md``). :func:`error_from_response` turns such an answer into the matching exception,
keeping the server's message, so researchers can write ``except BudgetExceededError:``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "BudgetExceededError",
    "ChargedFailureError",
    "ConflictError",
    "ConnectionFailedError",
    "DatasetUnavailableError",
    "IdempotencyKeyReusedError",
    "InvalidQueryError",
    "LomasClientError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QueryFailedError",
    "QueryInProgressError",
    "QueryTimeoutError",
    "ServerError",
    "StoreUnavailableError",
    "TooManyQueriesError",
    "error_from_response",
]


class LomasClientError(Exception):
    """Base of every error raised by the client.

    Attributes:
        code: the server's error code (``"insufficient_budget"``, ...), or a client-side code such
            as ``"connection_error"``.
        message: the server's human-readable reason.
        status: the HTTP status, or ``None`` when no response was received.
        details: optional extra fields the server sent.
    """

    def __init__(self, code: str, message: str, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, status={self.status})"


class InvalidQueryError(LomasClientError):
    """The request or query was refused before touching any data (``invalid_request``,
    ``invalid_query``); nothing was charged."""


class AuthenticationError(LomasClientError):
    """The token is missing, unknown or revoked (``unauthenticated``)."""


class AccessDeniedError(LomasClientError):
    """The dataset is not granted to you, the endpoint needs the admin role (``access_denied``), or
    your account is suspended (``suspended``)."""


class BudgetExceededError(LomasClientError):
    """The query's cost does not fit your remaining budget (``insufficient_budget``); nothing was
    charged."""


class NotFoundError(LomasClientError):
    """The object or route does not exist (``not_found``)."""


class ConflictError(LomasClientError):
    """The request conflicts with the server's state (``conflict``)."""


class IdempotencyKeyReusedError(ConflictError):
    """The same ``Idempotency-Key`` was sent with a different request (``idempotency_key_reused``)."""


class QueryInProgressError(ConflictError):
    """A request with the same ``Idempotency-Key`` is still running (``query_in_progress``).

    The client retries this by itself; you see it only when the retries run out.
    """


class PayloadTooLargeError(LomasClientError):
    """The request body is over the server's limit (``payload_too_large``)."""


class QueryFailedError(LomasClientError):
    """The query failed while running on the private data (``query_failed``); its cost stays
    charged."""


class QueryTimeoutError(QueryFailedError):
    """The query ran past the server's time limit (``query_timeout``); its cost stays charged."""


class ChargedFailureError(QueryFailedError):
    """The query failed after the dataset was read, or its server stopped while answering it
    (``charged_failure``); its cost stays charged. Sending it again is a new, charged query."""


class TooManyQueriesError(LomasClientError):
    """You have too many queries in flight (``too_many_queries``)."""


class DatasetUnavailableError(LomasClientError):
    """The dataset's source cannot be read right now (``dataset_unavailable``)."""


class StoreUnavailableError(DatasetUnavailableError):
    """The server's budget store is unreachable (``store_unavailable``); nothing was charged."""


class ServerError(LomasClientError):
    """An unexpected server-side failure (``internal_error`` or another 5xx)."""


class ConnectionFailedError(LomasClientError):
    """No usable response from the server (connection refused or dropped, timeout), after retries."""


_BY_CODE: dict[str, type[LomasClientError]] = {
    "invalid_request": InvalidQueryError,
    "invalid_query": InvalidQueryError,
    "unauthenticated": AuthenticationError,
    "access_denied": AccessDeniedError,
    "suspended": AccessDeniedError,
    "insufficient_budget": BudgetExceededError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "query_in_progress": QueryInProgressError,
    "payload_too_large": PayloadTooLargeError,
    "query_failed": QueryFailedError,
    "query_timeout": QueryTimeoutError,
    "charged_failure": ChargedFailureError,
    "too_many_queries": TooManyQueriesError,
    "dataset_unavailable": DatasetUnavailableError,
    "store_unavailable": StoreUnavailableError,
    "internal_error": ServerError,
}

# When the body carries no known code (a proxy's HTML page, a framework default), the status decides.
_BY_STATUS: dict[int, tuple[str, type[LomasClientError]]] = {
    400: ("invalid_request", InvalidQueryError),
    401: ("unauthenticated", AuthenticationError),
    403: ("access_denied", AccessDeniedError),
    404: ("not_found", NotFoundError),
    405: ("invalid_request", InvalidQueryError),
    409: ("conflict", ConflictError),
    413: ("payload_too_large", PayloadTooLargeError),
    422: ("invalid_query", InvalidQueryError),  # the server's 422 is an engine refusing a payload
    429: ("too_many_queries", TooManyQueriesError),
}


def error_from_response(status: int, body: Any) -> LomasClientError:
    """The exception for an error response.

    Args:
        status: the HTTP status code.
        body: the decoded JSON body, or ``None``/text when it was not JSON.
    """
    code: str | None = None
    message: str | None = None
    details: dict[str, Any] | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code") if isinstance(err.get("code"), str) else None
            message = err.get("message") if isinstance(err.get("message"), str) else None
            details = err.get("details") if isinstance(err.get("details"), dict) else None
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    if code in _BY_CODE:
        return _BY_CODE[code](code, message or code.replace("_", " "), status, details)
    if status in _BY_STATUS:
        fallback_code, cls = _BY_STATUS[status]
    elif status >= 500:
        fallback_code, cls = "internal_error", ServerError
    else:
        fallback_code, cls = "http_error", LomasClientError
    return cls(code or fallback_code, message or f"the server answered HTTP {status}", status, details)
