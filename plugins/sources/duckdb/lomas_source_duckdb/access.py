"""What a remote dataset of the ``duckdb`` source is read with: its checked path, its S3
credentials or its HTTP headers, resolved from the server's scoped secrets the way the ``s3``
and ``http`` adapters resolve theirs (the rules are :mod:`lomas_core.remote`'s).

A credentials secret must be scoped to the ``duckdb`` source (``adapters: [duckdb]``) and list
where it may be used: the endpoints and buckets (S3), the hosts or URL prefixes (HTTP headers).
Nothing here does network I/O; secret values never appear in messages or ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lomas_core.api import (
    ConfigError,
    Credentials,
    HeaderSecret,
    InvalidRequest,
    PluginContext,
    header_problems,
    http_secret_problem,
    parse_credentials,
    s3_secret_problem,
)
from lomas_source_duckdb.remote import HttpOptions, RemotePath, S3Options, parse_remote

__all__ = ["RemoteAccess", "remote_access"]

_OWNER = "the duckdb source"


@dataclass(frozen=True)
class RemoteAccess:
    """A remote dataset's checked path with its credentials (S3) or headers (HTTP)."""

    path: RemotePath
    credentials: Credentials | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def _refused(what: str) -> InvalidRequest:
    return InvalidRequest(f"duckdb source options: {what}")


def remote_access(raw: str, credentials: str | None, headers: dict[str, str | HeaderSecret],
                  s3: S3Options | None, http: HttpOptions | None, context: PluginContext, *,
                  values: bool = True) -> RemoteAccess:
    """The checked path of ``raw`` and what it is read with (without ``values``, only the
    secrets' scopes are checked, not their values: for a registration check of headers).

    Raises:
        InvalidRequest: the path, bucket, prefix, credentials or headers are refused.
    """
    try:
        path = parse_remote(raw, s3, http)
    except ValueError as exc:
        raise _refused(f"path: {exc}") from None
    if path.scheme != "s3":
        if credentials is not None:
            raise _refused("credentials are for s3:// paths (http(s) paths take headers)")
        return RemoteAccess(path, headers=_headers(path, headers, context, values))
    if headers:
        raise _refused("headers are for http(s):// paths (s3:// paths take credentials)")
    assert s3 is not None  # parse_remote refuses s3:// paths without adapters.duckdb.s3
    name = credentials or s3.default_credentials
    if name is None:
        return RemoteAccess(path)  # unsigned requests (a public bucket)
    creds = None
    try:
        ref = context.secret_ref(name)  # defined and scoped to this source
        problem = s3_secret_problem(name, ref, s3.endpoint_url, path.where, owner=_OWNER)
        if problem is None:
            creds = parse_credentials(context.secret(name))
    except ConfigError as exc:
        problem = exc.message
    if problem is None and creds is None:
        problem = f"secret '{name}' is not in a credentials format (JSON or KEY:SECRET)"
    if problem is not None:
        raise _refused(f"credentials: {problem}")
    return RemoteAccess(path, creds)


def _headers(path: RemotePath, headers: dict[str, str | HeaderSecret], context: PluginContext,
             values: bool) -> dict[str, str]:
    if problems := header_problems(headers):
        raise _refused("; ".join(problems))
    sent = {}
    for name, value in headers.items():
        if isinstance(value, str):
            sent[name] = value
            continue
        try:
            ref = context.secret_ref(value.secret)
            problem = http_secret_problem(value.secret, ref, path.pattern, owner=_OWNER)
            secret = context.secret(value.secret) if values and problem is None else ""
        except ConfigError as exc:
            problem, secret = exc.message, ""
        if problem is None and any(ch in secret + value.prefix for ch in "\r\n"):
            problem = "it has an invalid value"
        if problem is not None:
            raise _refused(f"header '{name}': {problem}")
        sent[name] = value.prefix + secret
    return sent
