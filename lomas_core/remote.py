"""Rules for reading objects over the network, shared by the ``s3`` and ``http`` adapters and the
``duckdb`` source's remote paths.

- S3 credentials kept in a named secret (:func:`parse_credentials`) and where they may be used:
  the secret's entry lists the endpoints and buckets (:func:`s3_secret_problem`); endpoints are
  compared as ``scheme://host:port`` (:func:`endpoint_key`) and must be plain http(s) URLs whose
  literal address the policy allows (:func:`endpoint_problem`).
- A URL prefix is a folder (:func:`url_under`): no sibling with a longer name, no ``..`` walk.
- HTTP headers of a dataset (:class:`HeaderSecret`, :func:`header_problems`): a credential comes
  from a named secret whose entry lists the hosts or URL prefixes it may be sent to
  (:func:`http_secret_problem`), never from a literal in the description.
- :func:`guarded_resolver`: an aiohttp resolver that only hands out addresses an
  :class:`~lomas_core.network.AddressPolicy` allows (s3fs and fsspec's HTTP filesystem connect
  through aiohttp; aiohttp does not ask the resolver for IP literals, which
  :meth:`~lomas_core.network.AddressPolicy.literal_problem` checks before).

Messages never contain a URL, an address or a secret's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from lomas_core.config import SecretRef
    from lomas_core.network import AddressPolicy

__all__ = ["AWS", "Credentials", "HeaderSecret", "endpoint_key", "endpoint_problem",
           "guarded_resolver", "header_problems", "http_secret_problem", "parse_credentials",
           "s3_secret_problem", "url_under"]

#: How a secret's ``endpoints`` names AWS's own endpoints (a dataset and the adapter name none).
AWS = "aws"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
# Header names whose value is a credential: it must come from a named secret, never be written in
# a dataset description (which the admin state stores and the admin API shows).
_SENSITIVE = re.compile(r"auth|cookie|key|token|secret|password|signature", re.IGNORECASE)


class HeaderSecret(BaseModel):
    """A header value read from the server's secret called ``secret`` (``prefix`` is prepended)."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=1, max_length=128)
    prefix: str = Field(default="", max_length=64)


def header_problems(headers: Mapping[str, str | HeaderSecret]) -> list[str]:
    """Why a dataset's headers cannot be used (never echoes a value): an invalid name, a literal
    value for a header that carries a credential, a line break."""
    problems = []
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            problems.append(f"'{name[:40]}' is not a valid header name")
        elif isinstance(value, str):
            if _SENSITIVE.search(name):
                problems.append(f"header '{name}' carries a credential: give it as "
                                "{secret: <name>} instead of a literal value")
            elif "\r" in value or "\n" in value:
                problems.append(f"header '{name}' has a line break in its value")
    return problems


def http_secret_problem(name: str, ref: SecretRef, url: str,
                        owner: str = "the http adapter") -> str | None:
    """Why the secret ``name`` (entry ``ref``) may not be sent to ``url``, or None.

    The entry must list ``allowed_hosts`` and/or ``allowed_prefixes``; the URL must satisfy both
    when both are given. Never names the URL or the value.
    """
    if ref.allowed_hosts is None and ref.allowed_prefixes is None:
        return (f"secret '{name}' lists no allowed_hosts or allowed_prefixes, so {owner} "
                "may send it nowhere; add them to its entry under secrets")
    host = (urlsplit(url).hostname or "").lower()
    if ref.allowed_hosts is not None and host not in {h.lower() for h in ref.allowed_hosts}:
        return f"secret '{name}' may not be sent to this URL's host (see its allowed_hosts)"
    if ref.allowed_prefixes is not None and not any(url_under(url, p) for p in ref.allowed_prefixes):
        return f"secret '{name}' may not be sent to this URL (see its allowed_prefixes)"
    return None


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
