"""The researcher's entry point: :class:`Client`.

Example::

    from lomas_client import Client
    client = Client(url="http://localhost:8000", token="...", dataset_name="penguins")
    client.get_dataset_metadata()
    res = client.smartnoise_sql.query("SELECT COUNT(*) AS n FROM df", epsilon=0.5, delta=1e-5)
    res.result        # a pandas DataFrame
    res.remaining     # Budget(epsilon=9.5, delta=0.00001): exact decimals
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata as _importlib_metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import pandas as pd

from lomas_client.budget import Budget, to_budget_number
from lomas_client.engines import DiffPrivLibClient, OpenDPClient, SmartnoiseSQLClient
from lomas_client.results import QueryResult, decode_result, plain_floats, table_to_dataframe
from lomas_client.transport import RetryPolicy, Transport

if TYPE_CHECKING:
    from lomas_client.sso import OidcSession

__all__ = ["Client"]


def _version() -> str:
    try:
        return _importlib_metadata.version("lomas-client")
    except _importlib_metadata.PackageNotFoundError:
        return "0"


class Client:
    """A connection to a lomas server, bound to one dataset.

    Every argument left out is read from the environment: ``LOMAS_URL``, ``LOMAS_TOKEN`` and
    ``LOMAS_DATASET``.

    Args:
        url: the server's base URL, e.g. ``http://localhost:8000``.
        token: your bearer token.
        dataset_name: the dataset the dataset-level methods work on (may be changed later through
            the ``dataset_name`` attribute).
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for an answer (queries on big datasets may take a while).
        max_retries: how many times a transient failure is retried (connection dropped, 502/503/504,
            a previous attempt still running). Retries of a query reuse its ``Idempotency-Key``, so
            they are never charged twice.
        backoff: first retry delay in seconds, doubled on each retry.
        verify: TLS verification (``False`` or a CA bundle path).
        headers: extra HTTP headers.
        token_provider: a callable returning the bearer token, called before every request (in
            place of ``token``; e.g. an :class:`~lomas_client.sso.OidcSession`). See also
            :meth:`login`.
    """

    def __init__(self, url: str | None = None, token: str | None = None,
                 dataset_name: str | None = None, *, connect_timeout: float = 10.0,
                 read_timeout: float = 300.0, max_retries: int = 3, backoff: float = 0.5,
                 verify: bool | str = True, headers: dict[str, str] | None = None,
                 token_provider: Callable[[], str] | None = None) -> None:
        url = url or os.environ.get("LOMAS_URL")
        if not url:
            raise ValueError("no server URL: pass url=... or set LOMAS_URL")
        _check_url(url)
        if token is not None and token_provider is not None:
            raise ValueError("pass either token=... or token_provider=..., not both")
        token = None if token_provider is not None else token or os.environ.get("LOMAS_TOKEN")
        self._verify = verify
        self._sso: OidcSession | None = None
        self.dataset_name: str | None = dataset_name or os.environ.get("LOMAS_DATASET")
        self._transport = Transport(
            url, token, connect_timeout=connect_timeout, read_timeout=read_timeout,
            retry=RetryPolicy(max_retries=max_retries, backoff=backoff), verify=verify,
            headers=headers, user_agent=f"lomas-client/{_version()}")
        if token_provider is not None:
            self._transport.set_token_provider(token_provider)
        self._metadata: tuple[str, dict[str, Any]] | None = None
        self.smartnoise_sql = SmartnoiseSQLClient(self)
        self.opendp = OpenDPClient(self)
        self.diffprivlib = DiffPrivLibClient(self)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._transport.url

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, dataset_name={self.dataset_name!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connections."""
        self._transport.close()
        if self._sso is not None:
            self._sso.close()

    def login(self, issuer: str | None = None, client_id: str | None = None, *,
              scope: str = "openid", audience: str | None = None,
              out: Callable[[str], Any] = print, **session_options: Any) -> OidcSession:
        """Log in through your institution's identity provider (OAuth 2.0 device flow).

        Prints a URL and a code; open the URL in any browser, enter the code and log in. This call
        returns once the login is approved; from then on every request carries a fresh access token
        (refreshed before it expires).

        Args:
            issuer: the provider's issuer URL (default ``$LOMAS_OIDC_ISSUER``); your lomas
                administrator tells you this and the client id.
            client_id: the provider's client id for lomas researchers (``$LOMAS_OIDC_CLIENT_ID``).
            scope: scopes to request (add ``offline_access`` if your provider needs it to issue
                refresh tokens).
            audience: the API audience, for providers that need it on the request (Auth0).
            out: where the instructions go (default ``print``).
            session_options: more :class:`~lomas_client.sso.OidcSession` options
                (``refresh_margin``, ``timeout``).

        Raises:
            LoginError: the code expired or the login was denied or failed.
        """
        from lomas_client.sso import OidcSession

        issuer = issuer or os.environ.get("LOMAS_OIDC_ISSUER")
        client_id = client_id or os.environ.get("LOMAS_OIDC_CLIENT_ID")
        if not issuer or not client_id:
            raise ValueError("login needs issuer=... and client_id=... (or $LOMAS_OIDC_ISSUER and "
                             "$LOMAS_OIDC_CLIENT_ID); ask your lomas administrator")
        session_options.setdefault("verify", self._verify)
        session = OidcSession(issuer, client_id, scope=scope, audience=audience, **session_options)
        session.login(out=out)
        previous, self._sso = self._sso, session
        if previous is not None:
            previous.close()
        self._transport.set_token_provider(session)
        return session

    # -- plumbing ----------------------------------------------------------------------------------

    def _dataset_path(self, suffix: str) -> str:
        if not self.dataset_name:
            raise ValueError("no dataset: pass dataset_name=... or set LOMAS_DATASET")
        return f"/v1/datasets/{quote(self.dataset_name, safe='')}/{suffix}"

    def _get(self, path: str, *, exact: bool = False) -> Any:
        return self._transport.request("GET", path, exact=exact)

    def _post(self, path: str, body: dict[str, Any], *, idempotency_key: str | None = None,
              exact: bool = False) -> Any:
        return self._transport.request("POST", path, json=body, idempotency_key=idempotency_key,
                                       exact=exact)

    # -- server and datasets -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}`` when the server is up (no token needed)."""
        return dict(self._get("/health"))

    def list_datasets(self) -> list[dict[str, Any]]:
        """The datasets granted to you: ``[{"name", "description"}, ...]``."""
        return list(self._get("/v1/datasets").get("datasets", []))

    def get_dataset_metadata(self) -> dict[str, Any]:
        """The dataset's public metadata (max_ids, rows, columns with types and bounds, ...)."""
        body = dict(self._get(self._dataset_path("metadata")))
        self._metadata = (str(self.dataset_name), body)
        return body

    def _cached_metadata(self) -> dict[str, Any]:
        if self._metadata is None or self._metadata[0] != self.dataset_name:
            return self.get_dataset_metadata()
        return self._metadata[1]

    def get_dummy_dataset(self, nb_rows: int = 100, seed: int = 42) -> pd.DataFrame:
        """A synthetic dataset with the real one's schema, made from public metadata only.

        Use it to develop queries; nothing is charged. Columns get the metadata's types.
        """
        body = self._post(self._dataset_path("dummy"), {"rows": nb_rows, "seed": seed})
        if isinstance(body, dict) and body.get("type") == "table":
            meta_columns = self._cached_metadata().get("columns") or {}
            sent = list(body.get("dtypes") or [])
            dtypes = []
            for i, name in enumerate(body.get("columns", [])):
                column = meta_columns.get(name)
                fallback = sent[i] if i < len(sent) else "object"
                dtypes.append(column.get("type", fallback) if isinstance(column, dict) else fallback)
            return table_to_dataframe({**body, "dtypes": dtypes})
        result = decode_result(body)
        return result if isinstance(result, pd.DataFrame) else pd.DataFrame(result)

    # -- budget --------------------------------------------------------------------------------------

    def get_budget(self) -> dict[str, Budget]:
        """``{"initial": B, "spent": B, "remaining": B}``, each an exact :class:`Budget`.

        A :class:`Budget` is a ``dict`` ``{"epsilon", "delta"}`` of exact decimals (see
        :mod:`lomas_client.budget`): ``b["epsilon"]``, ``b.epsilon``, ``b == {"epsilon": 0.5,
        "delta": 0}`` and arithmetic with floats all work, without float rounding.
        """
        body = self._get(self._dataset_path("budget"), exact=True)
        return {k: Budget.from_json(body.get(k)) or Budget() for k in ("initial", "spent", "remaining")}

    def get_initial_budget(self) -> Budget:
        """The budget you were granted on this dataset (exact)."""
        return self.get_budget()["initial"]

    def get_total_spent_budget(self) -> Budget:
        """What your queries have spent so far (exact)."""
        return self.get_budget()["spent"]

    def get_remaining_budget(self) -> Budget:
        """What you can still spend (exact)."""
        return self.get_budget()["remaining"]

    def get_previous_queries(self, *, status: str | None = None, engine: str | None = None,
                             since: str | None = None, until: str | None = None,
                             limit: int | None = None,
                             page_size: int = 500) -> list[dict[str, Any]]:
        """Your past (non-dummy) queries on this dataset, oldest first.

        Each record has ``id``, ``engine``, ``request``, ``epsilon`` and ``delta`` (exact
        :class:`~lomas_client.budget.BudgetNumber` values), ``status``,
        ``created_at``, ``completed_at``, ``result`` (a DataFrame for tables) and ``error``.
        Filters: ``status`` (pending, success, failed, released), ``engine``, and ISO times
        ``since`` (inclusive) / ``until`` (exclusive). ``limit`` caps how many are returned
        (default: all); they are fetched ``page_size`` at a time.
        """
        records: list[dict[str, Any]] = []
        for raw in self.iter_previous_queries(status=status, engine=engine, since=since,
                                              until=until, page_size=page_size):
            if limit is not None and len(records) >= limit:
                break
            records.append(raw)
        return records

    def iter_previous_queries(self, *, status: str | None = None, engine: str | None = None,
                              since: str | None = None, until: str | None = None,
                              page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Like :meth:`get_previous_queries`, one page of ``page_size`` records fetched at a time."""
        params: dict[str, Any] = {k: v for k, v in (("status", status), ("engine", engine),
                                                    ("since", since), ("until", until))
                                  if v is not None}
        params["limit"] = max(1, min(page_size, 1000))
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            body = self._get(self._dataset_path("queries") + "?" + urlencode(query), exact=True)
            for raw in body.get("queries", []):
                record = plain_floats(raw)
                record["epsilon"] = to_budget_number(raw.get("epsilon"))
                record["delta"] = to_budget_number(raw.get("delta"))
                record["result"] = decode_result(record.get("result"))
                yield record
            cursor = body.get("next_cursor")
            if not cursor:
                return

    # -- any engine ----------------------------------------------------------------------------------

    def cost(self, engine: str, payload: dict[str, Any]) -> Budget:
        """The exact (epsilon, delta) a query would be charged (the engine's cost rounded up to
        the server's charge precision), computed from public metadata only; free."""
        body = self._post(self._dataset_path("cost"), {"engine": engine, "query": payload},
                          exact=True)
        return Budget.from_json(body) or Budget()

    def query(self, engine: str, payload: dict[str, Any], dummy: bool = False, nb_rows: int = 100,
              seed: int = 42, *, idempotency_key: str | None = None) -> QueryResult:
        """Run a query with any engine the server offers (including third-party engines).

        Args:
            engine: the engine's name (``smartnoise_sql``, ``opendp``, ...).
            payload: the engine's query object (see the engine's documentation).
            dummy: run on a dummy dataset of ``nb_rows`` rows made with ``seed``; free.
            idempotency_key: defaults to a fresh uuid4; reused unchanged on every retry.

        Raises:
            BudgetExceededError, InvalidQueryError, QueryFailedError, ...: see
            :mod:`lomas_client.errors`.
        """
        body: dict[str, Any] = {"engine": engine, "query": payload,
                                "dummy": {"rows": nb_rows, "seed": seed} if dummy else None}
        key = idempotency_key or str(uuid.uuid4())
        answer = self._post(self._dataset_path("query"), body, idempotency_key=key, exact=True)
        return QueryResult.from_response(answer)


def _check_url(url: str) -> None:
    """Refuse a URL without an http(s) scheme now, not after retries end in a transport error."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid server URL {url!r}: it needs a scheme and a host, "
                         f"e.g. 'http://{url.split('://')[-1] or 'localhost:8000'}'")
