"""HTTP transport: timeouts, bounded retries with backoff, typed errors.

Retried (transient): connection failures and timeouts, HTTP 502/503/504 and ``409
query_in_progress``. A query request carries an ``Idempotency-Key`` chosen once per call and sent
unchanged on every retry, so the server answers a retry with the stored outcome of the first
attempt: it is never charged twice and never draws new noise.
"""

from __future__ import annotations

import json as _json
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from lomas_client.budget import jsonable
from lomas_client.errors import ConnectionFailedError, LomasClientError, ServerError, error_from_response
from lomas_client.sso import BearerAuth, TokenProvider

__all__ = ["RetryPolicy", "Transport"]

_RETRY_STATUSES = frozenset({502, 503, 504})
#: Codes with a transient-looking status that are nonetheless final answers.
_FINAL_CODES = frozenset({"query_timeout"})


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        backoff: first delay in seconds; doubled after each retry, plus up to 10% jitter.
        max_backoff: cap on one delay (also caps a server's ``Retry-After``).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = self.backoff * (2 ** (attempt - 1))
        if retry_after is not None:
            base = max(base, retry_after)
        base = min(base, self.max_backoff)
        return base + random.uniform(0, base * 0.1)


def _decode(response: httpx.Response, exact: bool = False) -> Any:
    """The JSON body (numbers with a fraction or exponent as Decimals when ``exact``), or the text."""
    try:
        if exact:
            return _json.loads(response.content, parse_float=Decimal)
        return response.json()
    except ValueError:
        return response.text or None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Transport:
    """A thin wrapper over :class:`httpx.Client` that speaks the lomas error contract."""

    def __init__(self, url: str, token: str | None, *, connect_timeout: float = 10.0,
                 read_timeout: float = 300.0, retry: RetryPolicy | None = None,
                 verify: bool | str = True, headers: dict[str, str] | None = None,
                 user_agent: str = "lomas-client") -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        all_headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                                pool=connect_timeout)
        self._http = httpx.Client(base_url=self.url, headers=all_headers, timeout=timeout,
                                  verify=verify, follow_redirects=False)

    def set_token_provider(self, provider: TokenProvider) -> None:
        """Ask ``provider`` for the bearer token before every request (in place of a token)."""
        self._http.headers.pop("Authorization", None)
        self._http.auth = BearerAuth(provider)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None,
                idempotency_key: str | None = None, exact: bool = False) -> Any:
        """Send a request, retrying transient failures; return the decoded JSON body.

        With ``exact`` every JSON number with a fraction or an exponent is a
        :class:`decimal.Decimal` read from its text (budgets), not a float.

        Raises:
            LomasClientError: a subclass matching the server's error code, or
                :class:`ConnectionFailedError` when no response came back after all retries.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        if json is not None:
            json = jsonable(json)  # budget numbers (decimals) passed back in a payload
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                failure: LomasClientError = ConnectionFailedError(
                    "connection_error",
                    f"no response from {self.url} ({type(exc).__name__}); "
                    f"gave up after {attempt + 1} attempt(s)")
                retry_after = None
            else:
                if response.is_success:
                    body = _decode(response, exact)
                    if isinstance(body, str) or (body is None and response.content):
                        raise ServerError("invalid_response", "the server's answer is not JSON",
                                          response.status_code)
                    return body
                failure = error_from_response(response.status_code, _decode(response))
                retry_after = _retry_after(response)
                if not self._transient(failure):
                    raise failure
            attempt += 1
            if attempt > self.retry.max_retries:
                raise failure
            time.sleep(self.retry.delay(attempt, retry_after))

    @staticmethod
    def _transient(error: LomasClientError) -> bool:
        if error.code in _FINAL_CODES:
            return False
        if error.code == "query_in_progress":
            return True
        return error.status in _RETRY_STATUSES
