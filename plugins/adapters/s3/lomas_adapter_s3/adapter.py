"""Read CSV and Parquet objects from S3 and S3-compatible stores (MinIO, Ceph) through s3fs.

Credentials are named secrets resolved when a request is made; the filesystem objects are keyed
by a digest of the secret's value (so a rotated secret takes effect) and nothing about them is
ever logged, stored or put in an error message. The version the dataset cache compares comes from
a HEAD request: the object's VersionId when the bucket is versioned, else its ETag.

Deny by default: datasets may only use the configured endpoint (or ``allowed_endpoints``); every
connection goes to an address checked after DNS resolution (:mod:`lomas_adapter_s3.resolver`), so
loopback, link-local, private and other non-public addresses are refused unless the config allows
them; and a credentials secret is used only with the endpoints and buckets its entry lists.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from lomas_adapter_s3.options import (
    S3AdapterOptions,
    S3DatasetOptions,
    endpoint_key,
    endpoint_problem,
    parse_credentials,
    secret_destination_problem,
)
from lomas_core.api import (
    Adapter,
    AddressRefused,
    ConfigError,
    DatasetUnavailable,
    InvalidRequest,
    Loaded,
    PluginContext,
    check_format,
    detect_format,
    read_metadata_bytes,
    read_table_bytes,
    resolve_checked,
    validation_message,
)

if TYPE_CHECKING:
    import s3fs

__all__ = ["S3Adapter"]


def _failure(what: str, exc: BaseException) -> DatasetUnavailable:
    """Map an s3fs/botocore failure to a message that names no secret, URL or content."""
    kind = type(exc).__name__
    seen: BaseException | None = exc
    while seen is not None:  # the resolver refused the address (a name that changed since the check)
        if isinstance(seen, AddressRefused):
            return DatasetUnavailable(f"{what}: the store's endpoint: {seen}")
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, FileNotFoundError | IsADirectoryError):
        return DatasetUnavailable(f"{what}: the object was not found")
    if isinstance(exc, PermissionError) or kind in ("NoCredentialsError", "PartialCredentialsError"):
        return DatasetUnavailable(f"{what}: the store refused access (check the dataset's "
                                  "credentials)")
    if "Timeout" in kind or isinstance(exc, TimeoutError):
        return DatasetUnavailable(f"{what}: the store did not answer in time")
    return DatasetUnavailable(f"{what}: the store is unreachable", reason=kind)


class S3Adapter(Adapter):
    """Objects in buckets, optionally restricted to ``allowed_buckets``."""

    Options: ClassVar[type[BaseModel]] = S3AdapterOptions

    def __init__(self, options: S3AdapterOptions, context: PluginContext) -> None:
        self.opts = options  # validated by the core against ``Options``
        self._policy = self.opts.policy()
        for url in filter(None, [self.opts.endpoint_url, *self.opts.allowed_endpoints]):
            if problem := endpoint_problem(url, self._policy):
                raise ConfigError(f"adapters.s3: {problem}")
        self._endpoints = {endpoint_key(self.opts.endpoint_url),
                           *(endpoint_key(url) for url in self.opts.allowed_endpoints)}
        self._context = context
        if self.opts.default_credentials:
            try:
                context.secret_ref(self.opts.default_credentials)
            except ConfigError as exc:  # an unscoped entry from before scopes: say how to migrate
                context.logger.warning("adapters.s3.default_credentials: %s; datasets using it "
                                       "will be refused", exc.message)
        self._filesystems: dict[str, s3fs.S3FileSystem] = {}
        self._lock = threading.Lock()
        #: Said in the admin log when the server starts (see lomas_core.admin_log).
        self.startup_notices: list[str] = []
        if self.opts.proxy:
            self.startup_notices.append(
                "adapters.s3 sends requests through the proxy in 'proxy': endpoints are checked by "
                "name only; the proxy resolves them, so the address it connects to is not pinned")

    # -- options --------------------------------------------------------------------------------

    def _options(self, options: Mapping[str, Any]) -> S3DatasetOptions:
        try:
            return S3DatasetOptions.model_validate(dict(options))
        except ValidationError as exc:
            raise InvalidRequest(f"s3 adapter options: {validation_message(exc)}") from None

    def _secret_name(self, opts: S3DatasetOptions) -> str | None:
        return None if opts.anonymous else (opts.credentials or self.opts.default_credentials)

    def _endpoint(self, opts: S3DatasetOptions) -> str | None:
        return opts.endpoint_url or self.opts.endpoint_url

    def _destination_problems(self, opts: S3DatasetOptions) -> list[str]:
        """Why this dataset may not be read from where it says (no network I/O, no values)."""
        problems = []
        if self.opts.allowed_buckets is not None and opts.bucket not in self.opts.allowed_buckets:
            problems.append(f"bucket '{opts.bucket}' is not in adapters.s3.allowed_buckets")
        endpoint = self._endpoint(opts)
        if opts.endpoint_url and (problem := endpoint_problem(opts.endpoint_url, self._policy)):
            problems.append(problem)
        elif endpoint_key(endpoint) not in self._endpoints:
            problems.append("endpoint_url is neither adapters.s3.endpoint_url nor in "
                            "adapters.s3.allowed_endpoints")
        secret = self._secret_name(opts)
        if secret is not None:
            try:
                ref = self._context.secret_ref(secret)  # defined and scoped to this adapter
            except ConfigError as exc:
                problems.append(f"credentials: {exc.message}")
            else:
                if problem := secret_destination_problem(secret, ref, endpoint, opts.bucket):
                    problems.append(f"credentials: {problem}")
        return problems

    def _address_problem(self, opts: S3DatasetOptions) -> str | None:
        """The endpoint host's current addresses must be allowed (None when it does not resolve
        or is AWS's default, which the resolver checks when connecting)."""
        endpoint = self._endpoint(opts)
        if endpoint is None:
            return None
        parts = urlsplit(endpoint)
        try:
            resolve_checked(parts.hostname or "", parts.port or 443, self._policy)
        except AddressRefused as exc:
            return f"endpoint_url: {str(exc).replace('the host', 'the endpoint')}"
        except OSError:
            return None
        return None

    def check_options(self, options: Mapping[str, Any]) -> None:
        opts = self._options(options)
        problems = self._destination_problems(opts)
        if not problems and (problem := self._address_problem(opts)):
            problems.append(problem)
        secret = self._secret_name(opts)
        if secret is not None and not problems:
            try:
                value = self._context.secret(secret)
            except ConfigError:
                problems.append(f"secret '{secret}' cannot be read on the server")
            else:
                if parse_credentials(value) is None:
                    problems.append(f"secret '{secret}' is not in a credentials format "
                                    "(JSON or KEY:SECRET)")
        if problems:
            raise InvalidRequest("s3 adapter options: " + "; ".join(problems))
        check_format(opts.key, opts.format)

    # -- filesystem -----------------------------------------------------------------------------

    def _fs(self, what: str, opts: S3DatasetOptions) -> s3fs.S3FileSystem:
        # Checked again at every use (the config or the description may have changed since it
        # was registered), before any network I/O: refused datasets charge nothing.
        if problems := self._destination_problems(opts):
            raise DatasetUnavailable(f"{what}: " + "; ".join(problems))
        if problem := self._address_problem(opts):
            raise DatasetUnavailable(f"{what}: {problem}")
        endpoint = self._endpoint(opts)
        region = opts.region or self.opts.region
        secret_name = self._secret_name(opts)
        creds = None
        if secret_name is not None:
            try:
                creds = parse_credentials(self._context.secret(secret_name))
            except ConfigError:
                creds = None
            if creds is None:
                raise DatasetUnavailable(f"{what}: the credentials it names are not configured")
        ident = repr((endpoint, region, opts.anonymous, creds and
                      (creds.access_key_id, creds.secret_access_key, creds.session_token)))
        key = hashlib.sha256(ident.encode()).hexdigest()
        with self._lock:
            fs = self._filesystems.get(key)
            if fs is None:
                fs = self._build(endpoint, region, opts.anonymous, creds)
                self._filesystems[key] = fs
        return fs

    def _build(self, endpoint: str | None, region: str | None, anonymous: bool,
               creds: Any) -> s3fs.S3FileSystem:
        import s3fs

        from lomas_adapter_s3.resolver import GuardedResolver

        kwargs: dict[str, Any] = {
            "anon": anonymous,
            "endpoint_url": endpoint,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "client_kwargs": {"region_name": region} if region else {},
            "config_kwargs": {"connect_timeout": self.opts.connect_timeout,
                              "read_timeout": self.opts.read_timeout,
                              "retries": {"max_attempts": self.opts.max_attempts, "mode": "standard"},
                              # Every connection goes to an address checked after resolution.
                              "connector_args": {"resolver": GuardedResolver(self._policy)},
                              # Never the environment's proxies (botocore's default): only the
                              # one configured, if any.
                              "proxies": ({"http": self.opts.proxy, "https": self.opts.proxy}
                                          if self.opts.proxy else {})},
        }
        if creds is not None:
            kwargs.update(key=creds.access_key_id, secret=creds.secret_access_key,
                          token=creds.session_token)
        fs = s3fs.S3FileSystem(**kwargs)
        fs.retries = self.opts.max_attempts  # s3fs' own retry loop (default 5, with backoff)
        return fs

    def _head(self, what: str, fs: s3fs.S3FileSystem, path: str) -> dict[str, Any]:
        try:
            info = fs.info(path, refresh=True)
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp raise many types
            raise _failure(what, exc) from None
        if info.get("type") != "file":
            raise DatasetUnavailable(f"{what}: the object was not found")
        return dict(info)

    def _get(self, what: str, fs: s3fs.S3FileSystem, path: str, limit: int) -> tuple[bytes, str]:
        info = self._head(what, fs, path)
        if int(info.get("size") or 0) > limit:
            raise DatasetUnavailable(f"{what}: the object is larger than the {limit} bytes this "
                                     "server accepts (adapters.s3.max_bytes)")
        if int(info.get("size") or 0) == 0:
            return b"", _version(info)  # a range request on an empty object is refused (416)
        try:
            # One GET (no parallel ranged reads that could mix two versions of the object), and
            # never more than one byte past the cap even if the object grew since the HEAD.
            data = fs.cat_file(path, start=0, end=limit + 1)
        except Exception as exc:  # noqa: BLE001
            raise _failure(what, exc) from None
        if len(data) > limit:
            raise DatasetUnavailable(f"{what}: the object is larger than the {limit} bytes this "
                                     "server accepts (adapters.s3.max_bytes)")
        return data, _version(info)

    # -- Adapter --------------------------------------------------------------------------------

    def version(self, options: Mapping[str, Any]) -> str | None:
        opts = self._options(options)
        what = "dataset '?'"
        return _version(self._head(what, self._fs(what, opts), f"{opts.bucket}/{opts.key}"))

    def load(self, dataset: str, options: Mapping[str, Any]) -> Loaded:
        opts = self._options(options)
        what = f"dataset '{dataset}'"
        try:
            fmt = detect_format(opts.key, opts.format)
        except DatasetUnavailable as exc:
            raise DatasetUnavailable(f"{what}: {exc.message}") from None
        data, version = self._get(what, self._fs(what, opts), f"{opts.bucket}/{opts.key}",
                                  self.opts.max_bytes)
        return Loaded(read_table_bytes(dataset, data, fmt), version)

    def load_metadata(self, dataset: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
        opts = self._options(options)
        if not opts.metadata_key:
            return None
        what = f"dataset '{dataset}' (metadata)"
        data, _ = self._get(what, self._fs(what, opts), f"{opts.bucket}/{opts.metadata_key}",
                            self.opts.max_metadata_bytes)
        return read_metadata_bytes(dataset, data)

    def close(self) -> None:
        with self._lock:
            self._filesystems.clear()


def _version(info: Mapping[str, Any]) -> str:
    if info.get("VersionId"):
        return f"version:{info['VersionId']}"
    if info.get("ETag"):
        return f"etag:{info['ETag']}"
    return f"modified:{info.get('LastModified')}:{info.get('size')}"
