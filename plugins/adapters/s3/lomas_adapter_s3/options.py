"""Options of the ``s3`` adapter (server config) and of its datasets, and credential parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lomas_core.api import (
    AddressPolicy,
    SecretRef,
    check_proxy_url,
)

__all__ = ["AWS", "Credentials", "S3AdapterOptions", "S3DatasetOptions", "endpoint_key",
           "endpoint_problem", "parse_credentials", "secret_destination_problem"]

#: How a secret's ``endpoints`` names AWS's own endpoints (a dataset and the adapter name none).
AWS = "aws"

_BUCKET = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"


class S3AdapterOptions(BaseModel):
    """Server-side options (config ``adapters.s3``); datasets may override the endpoint/region."""

    model_config = ConfigDict(extra="forbid")

    #: The store's endpoint; none means AWS. Datasets may name only this one or allowed_endpoints.
    endpoint_url: str | None = None
    #: Other endpoints datasets may name (``endpoint_url`` in their options).
    allowed_endpoints: list[str] = Field(default_factory=list)
    region: str | None = None
    #: Secret name used when a dataset names no ``credentials`` (else the boto default chain).
    default_credentials: str | None = None
    #: When set, datasets may only name these buckets.
    allowed_buckets: list[str] | None = None
    max_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_metadata_bytes: int = Field(default=1024**2, ge=1)
    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    read_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: Attempts per S3 call (botocore's and s3fs' retries on throttling and transient errors).
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Connect to loopback, link-local, private and other non-public addresses too.
    allow_private_networks: bool = False
    #: Non-public networks (CIDR) the adapter may connect to anyway, e.g. [10.20.0.0/16].
    allowed_networks: list[str] = Field(default_factory=list)
    #: A proxy for every S3 request (``http://host:port``). Environment proxies (HTTPS_PROXY, ...)
    #: are ignored. With a proxy, the proxy resolves the endpoint's name: destinations are
    #: checked by endpoint name only, and the resolver's check applies to the proxy's address.
    proxy: str | None = Field(default=None, max_length=2048)

    @model_validator(mode="after")
    def _networks(self) -> S3AdapterOptions:
        self.policy()  # a CIDR that does not parse is a config error
        if self.proxy is not None:
            check_proxy_url(self.proxy)
        return self

    def policy(self) -> AddressPolicy:
        return AddressPolicy.from_options(self.allow_private_networks, self.allowed_networks,
                                          "adapters.s3")


class S3DatasetOptions(BaseModel):
    """Per-dataset options (the description's ``options``). ``credentials`` is a secret's name."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(pattern=_BUCKET)
    key: str = Field(min_length=1, max_length=1024)
    format: str | None = None
    metadata_key: str | None = Field(default=None, min_length=1, max_length=1024)
    endpoint_url: str | None = None
    region: str | None = Field(default=None, max_length=64)
    credentials: str | None = Field(default=None, min_length=1, max_length=128)
    #: Unsigned requests, for public buckets.
    anonymous: bool = False


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


def secret_destination_problem(name: str, ref: SecretRef, endpoint: str | None,
                               bucket: str) -> str | None:
    """Why the credentials secret ``name`` may not be used with ``endpoint`` and ``bucket``."""
    if not ref.endpoints or not ref.buckets:
        return (f"secret '{name}' lists no endpoints or no buckets, so the s3 adapter may use it "
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
