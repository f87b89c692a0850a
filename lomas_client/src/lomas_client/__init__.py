"""lomas-client: query sensitive datasets on a lomas server and receive differentially private
answers.

Quick start::

    from lomas_client import Client
    client = Client(url="http://localhost:8000", token="...", dataset_name="penguins")
    client.get_dataset_metadata()
    client.smartnoise_sql.query("SELECT COUNT(*) AS n FROM df", epsilon=0.5, delta=1e-5).result
    client.get_remaining_budget()   # Budget(epsilon=..., delta=...): exact decimals
"""

from __future__ import annotations

from lomas_client.budget import Budget, BudgetNumber
from lomas_client.client import Client
from lomas_client.errors import (
    AccessDeniedError,
    AuthenticationError,
    BudgetExceededError,
    ChargedFailureError,
    ConflictError,
    ConnectionFailedError,
    DatasetUnavailableError,
    IdempotencyKeyReusedError,
    InvalidQueryError,
    LomasClientError,
    NotFoundError,
    PayloadTooLargeError,
    QueryFailedError,
    QueryInProgressError,
    QueryTimeoutError,
    ServerError,
    StoreUnavailableError,
    TooManyQueriesError,
)
from lomas_client.results import QueryResult
from lomas_client.sso import LoginError, OidcSession

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "Budget",
    "BudgetExceededError",
    "BudgetNumber",
    "ChargedFailureError",
    "Client",
    "ConflictError",
    "ConnectionFailedError",
    "DatasetUnavailableError",
    "IdempotencyKeyReusedError",
    "InvalidQueryError",
    "LoginError",
    "LomasClientError",
    "NotFoundError",
    "OidcSession",
    "PayloadTooLargeError",
    "QueryFailedError",
    "QueryInProgressError",
    "QueryResult",
    "QueryTimeoutError",
    "ServerError",
    "StoreUnavailableError",
    "TooManyQueriesError",
]
