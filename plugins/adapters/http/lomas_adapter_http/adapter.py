"""Download CSV and Parquet files (and their metadata) over HTTP(S) with httpx.

Every request has connect/read timeouts and a whole-download deadline, bodies stop at a byte cap
(whether or not the server sends Content-Length), redirects are followed by hand so that each hop
is checked against the allow-list, secret headers are only sent to the dataset URL's origin and
only where the secret's entry allows, and an https URL never redirects to plain http. Every
connection goes to an address checked after DNS resolution (:mod:`lomas_adapter_http.transport`):
loopback, link-local, private and other non-public addresses are refused unless the config allows
them. The version the dataset cache compares is the ETag (else Last-Modified) from a HEAD request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ValidationError

from lomas_adapter_http.options import (
    HeaderSecret,
    HttpAdapterOptions,
    HttpDatasetOptions,
    origin,
    secret_destination_problem,
    url_problem,
)
from lomas_core.api import (
    Adapter,
    AddressRefused,
    ConfigError,
    DatasetUnavailable,
    InvalidRequest,
    Loaded,
    PluginContext,
    SecretRef,
    check_format,
    detect_format,
    read_metadata_bytes,
    read_table_bytes,
    resolve_checked,
    validation_message,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpAdapter"]

_USER_AGENT = "lomas-adapter-http/0.1"


@dataclass(frozen=True)
class _Header:
    """A header to send; ``secret`` names the secret its value came from (checked on every hop)."""

    name: str
    value: str = field(repr=False)
    secret: str | None = None
    ref: SecretRef | None = field(default=None, repr=False)


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes | None


def _version(headers: Mapping[str, str]) -> str | None:
    etag = headers.get("etag")
    if etag:
        return f"etag:{etag}"
    modified = headers.get("last-modified")
    if modified:
        return f"modified:{modified}"
    return None


class HttpAdapter(Adapter):
    """Datasets served by a web server, object-store gateway or data portal."""

    Options: ClassVar[type[BaseModel]] = HttpAdapterOptions

    def __init__(self, options: HttpAdapterOptions, context: PluginContext) -> None:
        self.opts = options  # validated by the core against ``Options``
        self._context = context
        self._policy = self.opts.policy()
        import httpx

        from lomas_adapter_http.transport import GuardedTransport

        timeout = httpx.Timeout(connect=self.opts.connect_timeout, read=self.opts.read_timeout,
                                write=self.opts.read_timeout, pool=self.opts.connect_timeout)
        # Without a proxy every connection goes through the guarded transport (checked, pinned
        # address); environment proxies are ignored. With a proxy (``proxy`` or ``trust_env``)
        # the proxy resolves names: each hop is checked by host name and by resolving it here
        # first (see _precheck), which cannot pin the proxy's answer.
        transport = None if self.opts.proxied else GuardedTransport(self._policy,
                                                                    verify=self.opts.verify)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    trust_env=self.opts.trust_env, verify=self.opts.verify,
                                    transport=transport, proxy=self.opts.proxy,
                                    headers={"User-Agent": _USER_AGENT})
        #: Said in the admin log when the server starts (see lomas_core.admin_log).
        self.startup_notices: list[str] = []
        if self.opts.proxied:
            via = "the proxy in 'proxy'" if self.opts.proxy else "the environment's proxy"
            self.startup_notices.append(
                f"adapters.http sends requests through {via}: destinations are checked by host "
                "name (allowed_hosts/allowed_prefixes) and a local lookup, but the proxy resolves "
                "the name itself, so the address it connects to is not pinned")

    # -- options --------------------------------------------------------------------------------

    def _options(self, options: Mapping[str, Any]) -> HttpDatasetOptions:
        try:
            return HttpDatasetOptions.model_validate(dict(options))
        except ValidationError as exc:
            raise InvalidRequest(f"http adapter options: {validation_message(exc)}") from None

    def check_options(self, options: Mapping[str, Any]) -> None:
        opts = self._options(options)
        for field_name, url in (("url", opts.url), ("metadata_url", opts.metadata_url)):
            if url is not None and (problem := url_problem(url, self.opts) or
                                    self._address_problem(url)):
                raise InvalidRequest(f"http adapter options: {field_name}: {problem}")
        check_format(urlsplit(opts.url).path, opts.format)
        problems = opts.header_problems()
        targets = [opts.url]
        if opts.metadata_url and origin(opts.metadata_url) == origin(opts.url):
            targets.append(opts.metadata_url)  # the headers go there too
        for name, value in opts.headers.items():
            if not isinstance(value, HeaderSecret):
                continue
            problem = self._secret_problem(value.secret, targets)
            if problem is not None:
                problems.append(f"header '{name}': {problem}")
        if problems:
            raise InvalidRequest("http adapter options: " + "; ".join(problems))

    def _secret_problem(self, secret: str, urls: list[str]) -> str | None:
        """Why the named secret may not be sent to every URL in ``urls`` (never its value)."""
        try:
            ref = self._context.secret_ref(secret)  # defined and scoped to this adapter
        except ConfigError as exc:
            return exc.message
        for url in urls:
            if problem := secret_destination_problem(secret, ref, url):
                return problem
        return None

    def _address_problem(self, url: str) -> str | None:
        """At registration: the host's current addresses, when it resolves, must be allowed.

        A name that does not resolve now is not refused here; loading checks again anyway.
        """
        parts = urlsplit(url)
        try:
            resolve_checked(parts.hostname or "", parts.port or 443, self._policy)
        except AddressRefused as exc:
            return str(exc)
        except OSError:
            return None
        return None

    def _headers(self, dataset: str, opts: HttpDatasetOptions, url: str) -> list[_Header]:
        """The dataset's headers for a request to ``url``; secret ones only if their entries allow
        ``url``. Refused before any network I/O (DatasetUnavailable, nothing touched)."""
        headers = []
        for name, value in opts.headers.items():
            if isinstance(value, HeaderSecret):
                if problem := self._secret_problem(value.secret, [url]):
                    raise DatasetUnavailable(f"dataset '{dataset}': header '{name}': {problem}")
                try:
                    secret = self._context.secret(value.secret)
                except ConfigError:
                    raise DatasetUnavailable(
                        f"dataset '{dataset}': a secret its source needs is not configured") from None
                if "\r" in secret or "\n" in secret or "\r" in value.prefix or "\n" in value.prefix:
                    raise DatasetUnavailable(f"dataset '{dataset}': header '{name}' has an invalid value")
                headers.append(_Header(name, value.prefix + secret, value.secret,
                                       self._context.secret_ref(value.secret)))
            else:
                if "\r" in value or "\n" in value:
                    raise DatasetUnavailable(f"dataset '{dataset}': header '{name}' has an invalid value")
                headers.append(_Header(name, value))
        return headers

    def _precheck(self, dataset: str, url: str) -> None:
        """With a proxy: refuse a hop whose host resolves to a refused address."""
        parts = urlsplit(url)
        try:
            resolve_checked(parts.hostname or "", parts.port or 443, self._policy)
        except AddressRefused as exc:
            raise DatasetUnavailable(f"dataset '{dataset}': {exc}") from None
        except OSError:
            pass  # the proxy resolves; an unknown name fails there

    # -- transport ------------------------------------------------------------------------------

    def _request(self, dataset: str, method: str, url: str, headers: list[_Header],
                 limit: int) -> _Reply:
        """One logical request: redirects followed by hand, body capped at ``limit`` bytes.

        Error messages start with ``dataset '<dataset>'`` (the cache adds the name for
        :meth:`version`, which does not know it).
        """
        import httpx

        from lomas_adapter_http.transport import refusal

        home = origin(url)
        deadline = time.monotonic() + self.opts.total_timeout
        current = url
        for _ in range(self.opts.max_redirects + 1):
            if problem := url_problem(current, self.opts):
                raise DatasetUnavailable(f"dataset '{dataset}': the source redirected to a "
                                         f"location the adapter may not read ({problem})")
            send = self._hop_headers(dataset, headers, current) if origin(current) == home else {}
            if self.opts.proxied:
                self._precheck(dataset, current)
            try:
                request = self._client.build_request(method, current, headers=send)
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException:
                raise DatasetUnavailable(
                    f"dataset '{dataset}': the source did not answer in time") from None
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                if (reason := refusal(exc)) is not None:
                    where = "the source" if current == url else "the source redirected to a host that"
                    raise DatasetUnavailable(f"dataset '{dataset}': {where}: {reason}") from None
                raise DatasetUnavailable(f"dataset '{dataset}': the source is unreachable",
                                         reason=type(exc).__name__) from None
            try:
                if response.is_redirect:
                    target = urljoin(current, response.headers["location"])
                    if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
                        raise DatasetUnavailable(
                            f"dataset '{dataset}': the source redirected from https to http")
                    current = target
                    continue
                if method == "HEAD" and response.status_code in (405, 501):
                    return _Reply(response.status_code, {}, None)  # no HEAD: no version
                self._check_status(dataset, response.status_code)
                body = None if method == "HEAD" else self._read(dataset, response, limit, deadline)
                return _Reply(response.status_code, response.headers, body)
            finally:
                response.close()
        raise DatasetUnavailable(f"dataset '{dataset}': the source redirected more than "
                                 f"{self.opts.max_redirects} times")

    @staticmethod
    def _hop_headers(dataset: str, headers: list[_Header], url: str) -> dict[str, str]:
        """Headers for one hop on the home origin; a secret whose entry does not allow the hop's
        URL stops the request (a redirect within the origin but out of the secret's prefixes)."""
        send = {}
        for header in headers:
            if header.ref is not None and header.secret is not None and (
                    problem := secret_destination_problem(header.secret, header.ref, url)):
                raise DatasetUnavailable(f"dataset '{dataset}': the source redirected to a URL "
                                         f"where {problem.removeprefix('secret ')}")
            send[header.name] = header.value
        return send

    @staticmethod
    def _check_status(dataset: str, status: int) -> None:
        if status < 300:
            return
        if status in (404, 410):
            raise DatasetUnavailable(f"dataset '{dataset}': the source file was not found")
        if status in (401, 403):
            raise DatasetUnavailable(f"dataset '{dataset}': the source refused access "
                                     "(check the headers and secrets of the dataset)")
        raise DatasetUnavailable(f"dataset '{dataset}': the source answered HTTP {status}")

    def _too_large(self, dataset: str, limit: int) -> DatasetUnavailable:
        return DatasetUnavailable(f"dataset '{dataset}': the source file is larger than the "
                                  f"{limit} bytes this server accepts (adapters.http.max_bytes)")

    def _read(self, dataset: str, response: httpx.Response, limit: int, deadline: float) -> bytes:
        import httpx

        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(dataset, limit)
        buffer = bytearray()
        try:
            for chunk in response.iter_bytes():  # decoded: the cap bounds memory, not wire bytes
                buffer += chunk
                if len(buffer) > limit:
                    raise self._too_large(dataset, limit)
                if time.monotonic() > deadline:
                    raise DatasetUnavailable(f"dataset '{dataset}': the download took longer than "
                                             f"{self.opts.total_timeout:g} s")
        except httpx.TimeoutException:
            raise DatasetUnavailable(f"dataset '{dataset}': the source stopped sending") from None
        except httpx.HTTPError as exc:
            raise DatasetUnavailable(f"dataset '{dataset}': the download failed",
                                     reason=type(exc).__name__) from None
        return bytes(buffer)

    # -- Adapter --------------------------------------------------------------------------------

    def _usable(self, dataset: str, url: str) -> None:
        if problem := url_problem(url, self.opts):
            raise DatasetUnavailable(f"dataset '{dataset}': {problem}")

    def version(self, options: Mapping[str, Any]) -> str | None:
        opts = self._options(options)
        self._usable("?", opts.url)
        reply = self._request("?", "HEAD", opts.url, self._headers("?", opts, opts.url), 0)
        return _version(reply.headers)

    def load(self, dataset: str, options: Mapping[str, Any]) -> Loaded:
        opts = self._options(options)
        self._usable(dataset, opts.url)
        try:
            fmt = detect_format(urlsplit(opts.url).path, opts.format)
        except DatasetUnavailable as exc:
            raise DatasetUnavailable(f"dataset '{dataset}': {exc.message}") from None
        reply = self._request(dataset, "GET", opts.url, self._headers(dataset, opts, opts.url),
                              self.opts.max_bytes)
        assert reply.body is not None
        table = read_table_bytes(dataset, reply.body, fmt)
        # Without validators the cache reloads every revalidation interval; the digest still
        # tells two loads apart.
        version = _version(reply.headers) or "sha256:" + hashlib.sha256(reply.body).hexdigest()
        return Loaded(table, version)

    def load_metadata(self, dataset: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
        opts = self._options(options)
        if not opts.metadata_url:
            return None
        self._usable(dataset, opts.metadata_url)
        headers = (self._headers(dataset, opts, opts.metadata_url)
                   if origin(opts.metadata_url) == origin(opts.url) else [])
        reply = self._request(dataset, "GET", opts.metadata_url, headers, self.opts.max_metadata_bytes)
        assert reply.body is not None
        return read_metadata_bytes(dataset, reply.body)

    def close(self) -> None:
        self._client.close()
