"""Rules for reading objects over the network, shared by the ``s3`` and ``http`` adapters and the
``duckdb`` source's remote paths.

- S3 credentials kept in a named secret (:func:`parse_credentials`) and where they may be used:
  the secret's entry lists the endpoints and buckets (:func:`s3_secret_problem`); endpoints are
  compared as ``scheme://host:port`` (:func:`endpoint_key`) and must be plain http(s) URLs whose
  literal address the policy allows (:func:`endpoint_problem`).
- A URL prefix is a folder (:func:`url_under`): no sibling with a longer name, no ``..`` walk.
- :func:`guarded_resolver`: an aiohttp resolver that only hands out addresses an
  :class:`~lomas_core.network.AddressPolicy` allows (s3fs and fsspec's HTTP filesystem connect
  through aiohttp; aiohttp does not ask the resolver for IP literals, which
  :meth:`~lomas_core.network.AddressPolicy.literal_problem` checks before).

Messages never contain a URL, an address or a secret's value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from lomas_core.config import SecretRef
    from lomas_core.network import AddressPolicy

__all__ = ["AWS", "Credentials", "endpoint_key", "endpoint_problem", "guarded_resolver",
           "parse_credentials", "s3_secret_problem", "url_under"]

#: How a secret's ``endpoints`` names AWS's own endpoints (a dataset and the adapter name none).
AWS = "aws"


@dataclass(frozen=True)
class Credentials:
    """Static S3 credentials (never logged; ``repr`` hides them)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return "Credentials(***)"


def parse_credentials(value: str) -> Credentials | None:
    """Parse a credentials secret; None when it is in neither accepted form.

    Accepted: JSON ``{"access_key_id": ..., "secret_access_key": ..., "session_token": ...?}`` or
    the text ``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]``.
    """
    text = value.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        key, secret, token = (doc.get("access_key_id"), doc.get("secret_access_key"),
                              doc.get("session_token"))
        if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
            return None
        return Credentials(key, secret, token if isinstance(token, str) and token else None)
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return Credentials(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)


def endpoint_key(url: str | None) -> str:
    """An endpoint URL compared as scheme://host:port (AWS when None)."""
    if url is None:
        return AWS
    parts = urlsplit(url.strip())
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def s3_secret_problem(name: str, ref: SecretRef, endpoint: str | None, bucket: str,
                      owner: str = "the s3 adapter") -> str | None:
    """Why the credentials secret ``name`` may not be used with ``endpoint`` and ``bucket``."""
    if not ref.endpoints or not ref.buckets:
        return (f"secret '{name}' lists no endpoints or no buckets, so {owner} may use it "
                "nowhere; add both to its entry under secrets")
    if endpoint_key(endpoint) not in {e if e == AWS else endpoint_key(e) for e in ref.endpoints}:
        return f"secret '{name}' may not be used with this endpoint (see its endpoints)"
    if bucket not in ref.buckets:
        return f"secret '{name}' may not be used with bucket '{bucket}' (see its buckets)"
    return None


def endpoint_problem(url: str, policy: AddressPolicy | None = None) -> str | None:
    """Why ``url`` cannot be an S3 endpoint, or None (never echoes the URL).

    With ``policy``, an endpoint written as an IP address must be one it allows (names are checked
    after resolution, when connecting).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "endpoint_url is malformed"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "endpoint_url must be an http(s) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "endpoint_url must not carry credentials; use credentials: <secret name>"
    if policy is not None and (problem := policy.literal_problem(parts.hostname)):
        return f"endpoint_url: {problem.replace('the host resolves to', 'the endpoint is')}"
    return None


def url_under(url: str, prefix: str) -> bool:
    """Whether ``url`` lies under ``prefix``, read as a folder: ``https://h/data`` admits
    ``https://h/data/x.csv`` but not ``https://h/data-private.csv``, ``https://h.evil.org`` or a
    ``/../`` walk out of it (``.`` and ``..`` segments, also percent-encoded, are refused)."""
    if not url.startswith(prefix):
        return False
    path = urlsplit(url).path
    segments = path.replace("%2e", ".").replace("%2E", ".").split("/")
    if any(seg in (".", "..") for seg in segments):
        return False
    rest = url[len(prefix):]
    return prefix.endswith("/") or rest == "" or rest[0] in "/?#"


def guarded_resolver(policy: AddressPolicy) -> Any:
    """An ``aiohttp.abc.AbstractResolver`` that resolves in a thread and refuses the whole host
    (:class:`~lomas_core.network.AddressRefused`) when any of its addresses is refused, so a DNS
    answer that changes after a check cannot send a request elsewhere. Needs aiohttp."""
    from lomas_core.aio_resolver import GuardedResolver

    return GuardedResolver(policy)
