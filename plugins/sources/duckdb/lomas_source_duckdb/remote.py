"""Remote paths of the ``duckdb`` source: where ``s3://`` and ``http(s)://`` datasets may be.

DuckDB's own S3/HTTP reader (the ``httpfs`` extension) cannot be installed offline for the DuckDB
version in use, so the connection reads remote files through an fsspec filesystem registered on it
(:mod:`lomas_source_duckdb.remotefs`); DuckDB's ``read_parquet``/``read_csv`` still do the
reading. This module holds the server-side options (``adapters.duckdb.s3`` and
``adapters.duckdb.http``) and the checks made before any network I/O: the path's shape, the
bucket or URL prefix, the endpoint and the credentials secret's scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lomas_core.api import (
    AddressPolicy,
    endpoint_problem,
    url_under,
)

__all__ = ["HttpOptions", "RemotePath", "S3Options", "is_remote", "parse_remote"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_GLOB = "*?["


class _Network(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Connect to loopback, link-local, private and other non-public addresses too.
    allow_private_networks: bool = False
    #: Non-public networks (CIDR) the source may connect to anyway, e.g. [10.20.0.0/16].
    allowed_networks: list[str] = Field(default_factory=list)
    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    read_timeout: float = Field(default=60.0, gt=0, le=3600)

    def policy(self, section: str) -> AddressPolicy:
        return AddressPolicy.from_options(self.allow_private_networks, self.allowed_networks,
                                          section)


class S3Options(_Network):
    """``adapters.duckdb.s3``: the store datasets with ``s3://`` paths are read from."""

    #: The store's endpoint; none means AWS.
    endpoint_url: str | None = None
    region: str | None = Field(default=None, max_length=64)
    #: The only buckets datasets may name (deny by default).
    allowed_buckets: list[str] = Field(min_length=1)
    #: Secret name used when a dataset names no ``credentials``; with neither, requests are
    #: unsigned (public buckets). The environment's or the instance's credentials are never used.
    default_credentials: str | None = Field(default=None, min_length=1, max_length=128)
    #: Attempts per S3 call (botocore's and s3fs' retries on throttling and transient errors).
    max_attempts: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _check(self) -> S3Options:
        policy = self.policy("adapters.duckdb.s3")  # a CIDR that does not parse is a config error
        if self.endpoint_url is not None and (problem := endpoint_problem(self.endpoint_url,
                                                                          policy)):
            raise ValueError(problem)
        return self


class HttpOptions(_Network):
    """``adapters.duckdb.http``: the URL prefixes datasets with ``http(s)://`` paths may be under."""

    #: Every dataset URL must be under one of these (read as folders; deny by default).
    allowed_prefixes: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> HttpOptions:
        self.policy("adapters.duckdb.http")
        for prefix in self.allowed_prefixes:
            parts = urlsplit(prefix)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                raise ValueError("allowed_prefixes are http(s) URLs with a host and no credentials")
        return self


@dataclass(frozen=True)
class RemotePath:
    """A dataset's remote path, checked: ``folder`` is what the connection may read (a URL that
    ends with ``/``, or for HTTP the file itself), ``pattern`` what DuckDB reads."""

    scheme: str
    #: The bucket (S3) or host (HTTP).
    where: str
    folder: str
    pattern: str
    #: ``file``, ``folder`` (every ``*.parquet`` below) or ``glob``.
    kind: str


def is_remote(path: str) -> bool:
    """Whether ``path`` names a remote location (``s3://``, ``http://``, ``https://``)."""
    return path.lower().startswith(("s3://", "http://", "https://"))


def _segments_problem(path: str) -> str | None:
    lowered = path.lower()
    if "%" in path or "\\" in path or "\x00" in path:
        return "must not contain '%', '\\' or NUL"
    segments = lowered.split("/")
    if any(seg in (".", "..") for seg in segments):
        return "must not contain '.' or '..' segments"
    if any(seg == "" for seg in segments[:-1]):
        return "must not contain empty segments ('//')"
    return None


def parse_remote(raw: str, s3: S3Options | None, http: HttpOptions | None) -> RemotePath:
    """``raw`` checked against the server's options (no network I/O).

    Raises:
        ValueError: why it is refused (never echoes a secret; may name the bucket or the path's
            shape, which the dataset description already shows to administrators).
    """
    if raw.lower().startswith("s3://"):
        return _parse_s3(raw, s3)
    return _parse_http(raw, http)


def _parse_s3(raw: str, s3: S3Options | None) -> RemotePath:
    if s3 is None:
        raise ValueError("s3:// paths need adapters.duckdb.s3 in the server config")
    rest = raw.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError("the path does not name a valid bucket (s3://bucket/key)")
    if bucket not in s3.allowed_buckets:
        raise ValueError(f"bucket '{bucket}' is not in adapters.duckdb.s3.allowed_buckets")
    if "#" in key or (problem := _segments_problem(key)):
        raise ValueError(f"the path {problem or 'must not contain #'}")
    base = f"s3://{bucket}/"
    if key == "" or key.endswith("/"):
        return RemotePath("s3", bucket, base + key, base + key + "**/*.parquet", "folder")
    if any(ch in key for ch in _GLOB):
        first = min(key.index(ch) for ch in _GLOB if ch in key)
        folder = key[:key.rfind("/", 0, first) + 1]
        return RemotePath("s3", bucket, base + folder, base + key, "glob")
    return RemotePath("s3", bucket, base + key[:key.rfind("/") + 1], base + key, "file")


def _parse_http(raw: str, http: HttpOptions | None) -> RemotePath:
    if http is None:
        raise ValueError("http(s):// paths need adapters.duckdb.http in the server config")
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("the URL is malformed") from None
    if parts.query or parts.fragment:
        raise ValueError("the URL must not have a query or a fragment")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("the URL needs a host and must not carry credentials")
    if problem := _segments_problem(parts.path.removeprefix("/")):
        raise ValueError(f"the URL {problem}")
    if parts.path.endswith("/") or any(ch in parts.path for ch in _GLOB):
        raise ValueError("an http(s) path names one file (HTTP has no folder listing)")
    if not any(url_under(raw, prefix) for prefix in http.allowed_prefixes):
        raise ValueError("the URL is not under adapters.duckdb.http.allowed_prefixes")
    if problem := http.policy("adapters.duckdb.http").literal_problem(parts.hostname):
        raise ValueError(problem)
    return RemotePath(parts.scheme.lower(), parts.hostname.lower(), raw, raw, "file")
