"""Options of the ``s3`` adapter (server config) and of its datasets; the credential and endpoint
rules are the core's (:mod:`lomas_core.remote`, shared with the ``duckdb`` source)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lomas_core.api import (
    AWS,
    AddressPolicy,
    Credentials,
    SecretRef,
    check_proxy_url,
    endpoint_key,
    endpoint_problem,
    parse_credentials,
    s3_secret_problem,
)

__all__ = ["AWS", "Credentials", "S3AdapterOptions", "S3DatasetOptions", "endpoint_key",
           "endpoint_problem", "parse_credentials", "secret_destination_problem"]

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


def secret_destination_problem(name: str, ref: SecretRef, endpoint: str | None,
                               bucket: str) -> str | None:
    """Why the credentials secret ``name`` may not be used with ``endpoint`` and ``bucket``."""
    return s3_secret_problem(name, ref, endpoint, bucket)
