"""The fsspec filesystems a DuckDB connection reads remote datasets through, and their listing.

Built in the process that opens the target (an execution worker builds its own), never shared
between datasets. Every connection goes to an address checked after DNS resolution
(:func:`lomas_core.api.guarded_resolver`); the environment's proxies and credentials are never
used; HTTP redirects are refused (a redirect could leave the allowed prefix). Failures become
:class:`~lomas_core.api.DatasetUnavailable` with a reason that names no URL, secret or content.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from lomas_core.api import (
    AddressRefused,
    DatasetUnavailable,
)
from lomas_source_duckdb.access import RemoteAccess
from lomas_source_duckdb.remote import HttpOptions, RemotePath, S3Options

__all__ = ["build_filesystem", "check_ranges", "failure", "list_objects", "objects_version"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class RedirectRefused(Exception):
    """An HTTP server answered with a redirect (not followed: it could leave the allowed prefix)."""


class _ReadOnly:
    """Mixed into the filesystems: the connection reads, never writes, moves or deletes (a
    ``COPY ... TO`` inside the dataset's folder would otherwise write to the store)."""

    def open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if mode not in ("rb", "r"):
            raise PermissionError("the duckdb source reads remote files only")
        return super().open(path, mode, *args, **kwargs)  # type: ignore[misc]

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("the duckdb source reads remote files only")

    rm = rm_file = mv = mkdir = makedirs = touch = pipe = pipe_file = put = put_file = _refuse
    cp_file = copy = rmdir = _refuse


def failure(what: str, exc: BaseException) -> DatasetUnavailable:
    """Map an fsspec/s3fs/aiohttp failure to a message that names no secret, URL or content."""
    seen: BaseException | None = exc
    status = None
    # fsspec's HTTP filesystem reports any failure of its HEAD/GET as FileNotFoundError: the
    # cause tells a refused connection or a timeout from a 404.
    down = timeout = False
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return DatasetUnavailable(f"{what}: the store's address: {seen}")
        if isinstance(seen, RedirectRefused):
            return DatasetUnavailable(f"{what}: the server answered with a redirect, which the "
                                      "duckdb source does not follow")
        status = status or getattr(seen, "status", None)
        down = down or isinstance(seen, ConnectionError) or "Connect" in type(seen).__name__
        timeout = timeout or isinstance(seen, TimeoutError) or "Timeout" in type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    kind = type(exc).__name__
    if timeout:
        return DatasetUnavailable(f"{what}: the store did not answer in time")
    if down and status is None:
        return DatasetUnavailable(f"{what}: the store is unreachable", reason=kind)
    if (status in (401, 403) or isinstance(exc, PermissionError)
            or kind in ("NoCredentialsError", "PartialCredentialsError")):
        return DatasetUnavailable(f"{what}: the store refused access (check the dataset's "
                                  "credentials)")
    if isinstance(exc, FileNotFoundError | IsADirectoryError) or status in (404, 410):
        return DatasetUnavailable(f"{what}: source file not found")
    return DatasetUnavailable(f"{what}: the store is unreachable", reason=kind)


def build_filesystem(access: RemoteAccess, s3: S3Options | None, http: HttpOptions | None) -> Any:
    """A fresh fsspec filesystem for ``access`` (s3fs for ``s3``, fsspec's HTTP one otherwise);
    an HTTP dataset's headers go with every request (only to its own URL: redirects are refused)."""
    from lomas_core.api import guarded_resolver

    path, creds = access.path, access.credentials

    if path.scheme == "s3":
        assert s3 is not None
        import s3fs

        policy = s3.policy("adapters.duckdb.s3")
        kwargs: dict[str, Any] = {
            "anon": creds is None,
            "endpoint_url": s3.endpoint_url,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "client_kwargs": {"region_name": s3.region} if s3.region else {},
            "config_kwargs": {"connect_timeout": s3.connect_timeout,
                              "read_timeout": s3.read_timeout,
                              "retries": {"max_attempts": s3.max_attempts, "mode": "standard"},
                              "connector_args": {"resolver": guarded_resolver(policy)},
                              "proxies": {}},
        }
        if creds is not None:
            kwargs.update(key=creds.access_key_id, secret=creds.secret_access_key,
                          token=creds.session_token)
        fs = type("ReadOnlyS3FileSystem", (_ReadOnly, s3fs.S3FileSystem), {})(**kwargs)
        fs.retries = s3.max_attempts
        return fs
    assert http is not None
    from fsspec.implementations.http import HTTPFileSystem

    policy = http.policy("adapters.duckdb.http")
    connect, read, headers = http.connect_timeout, http.read_timeout, dict(access.headers)

    async def client(**kwargs: Any) -> Any:
        import aiohttp

        async def no_redirect(response: Any) -> None:  # other statuses: fsspec's own handling
            if 300 <= response.status < 400:
                raise RedirectRefused()

        kwargs.pop("loop", None)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=guarded_resolver(policy)),
            timeout=aiohttp.ClientTimeout(sock_connect=connect, sock_read=read),
            trust_env=False, raise_for_status=no_redirect, headers=headers, **kwargs)

    class _HTTPFileSystem(_ReadOnly, HTTPFileSystem):  # type: ignore[misc]
        def modified(self, path: str) -> datetime.datetime:
            """DuckDB asks for it; fsspec's HTTP filesystem has none (Last-Modified, else 1970)."""
            from email.utils import parsedate_to_datetime

            stamp = self.info(path).get("Last-Modified")
            try:
                return parsedate_to_datetime(stamp) if stamp else _EPOCH
            except (TypeError, ValueError):
                return _EPOCH

    return _HTTPFileSystem(get_client=client, skip_instance_cache=True, allow_redirects=False,
                           use_listings_cache=False)


def list_objects(fs: Any, path: RemotePath, what: str) -> list[dict[str, Any]]:
    """The objects DuckDB will read for ``path`` (name, size, ETag...), sorted by name.

    Raises:
        DatasetUnavailable: the store refused or failed, or nothing matches (touched=False).
    """
    try:
        if path.kind == "file":
            info = fs.info(path.pattern)
            found = [dict(info, name=path.pattern)] if info.get("type", "file") == "file" else []
        elif path.kind == "folder":
            listed = fs.find(path.folder, detail=True)
            found = [dict(info, name=name) for name, info in listed.items()
                     if name.endswith(".parquet") and info.get("type") == "file"]
        else:
            listed = fs.glob(path.pattern, detail=True)
            found = [dict(info, name=name) for name, info in listed.items()
                     if info.get("type") == "file"]
    except DatasetUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore/aiohttp/fsspec raise many types
        raise failure(what, exc) from None
    if not found:
        raise DatasetUnavailable(f"{what}: source file not found")
    return sorted(found, key=lambda info: str(info["name"]))


def check_ranges(fs: Any, path: RemotePath, objects: Sequence[Mapping[str, Any]], what: str) -> None:
    """An HTTP server must answer range requests (DuckDB reads a Parquet footer, then the column
    chunks a query needs): probed with the file's second byte before DuckDB reads anything, so a
    server that cannot is refused without touching the data (S3 always can)."""
    if path.scheme == "s3" or int(objects[0].get("size") or 0) < 3:
        return
    try:
        with fs.open(path.pattern, "rb", block_size=2, cache_type="none") as handle:
            handle.seek(1)
            handle.read(1)
    except ValueError:  # fsspec: a whole body where a range was asked for
        raise DatasetUnavailable(f"{what}: the server does not answer range requests, which the "
                                 "duckdb source needs") from None
    except Exception as exc:  # noqa: BLE001 - aiohttp/fsspec raise many types
        raise failure(what, exc) from None


def objects_version(objects: Sequence[Mapping[str, Any]]) -> str:
    """A version of the objects from their listing: name, ETag/version id, size, modification."""
    digest = hashlib.sha256()
    for info in objects:
        tag = info.get("VersionId") or info.get("ETag") or info.get("etag") or ""
        modified = info.get("LastModified") or info.get("Last-Modified") or ""
        digest.update(f"{info['name']}|{tag}|{info.get('size')}|{modified}\n".encode())
    return digest.hexdigest()[:24]
