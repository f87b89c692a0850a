"""Options of the ``http`` adapter (server config) and of its datasets (descriptions)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lomas_core.api import (
    AddressPolicy,
    HeaderSecret,
    SecretRef,
    check_proxy_url,
    header_problems,
    http_secret_problem,
    url_under,
)

__all__ = [
    "HeaderSecret",
    "HttpAdapterOptions",
    "HttpDatasetOptions",
    "origin",
    "secret_destination_problem",
    "url_problem",
]

class HttpAdapterOptions(BaseModel):
    """Server-side options (config ``adapters.http``)."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    read_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: Whole download deadline (a slow trickle stops here even if each read is within read_timeout).
    total_timeout: float = Field(default=600.0, gt=0)
    max_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_metadata_bytes: int = Field(default=1024**2, ge=1)
    max_redirects: int = Field(default=3, ge=0, le=20)
    #: Every URL (and redirect target) must start with one of these prefixes. With neither this
    #: nor ``allowed_hosts`` the adapter reads from nowhere (deny by default).
    allowed_prefixes: list[str] | None = None
    #: Every URL (and redirect target) must be on one of these hosts.
    allowed_hosts: list[str] | None = None
    #: Connect to loopback, link-local, private and other non-public addresses too.
    allow_private_networks: bool = False
    #: Non-public networks (CIDR) the adapter may connect to anyway, e.g. [10.20.0.0/16].
    allowed_networks: list[str] = Field(default_factory=list)
    #: Environment proxies (HTTP_PROXY, ...) are ignored unless this is true. With a proxy (this,
    #: or ``proxy``) the proxy resolves names: destinations are checked by host name (allowed
    #: hosts/prefixes) and a local resolution, but the proxy's connection cannot be pinned.
    trust_env: bool = False
    #: An explicit proxy for every request (``http://host:port``; same caveat as ``trust_env``).
    proxy: str | None = Field(default=None, max_length=2048)
    #: TLS verification: true, false, or a CA bundle path.
    verify: bool | str = True

    @model_validator(mode="after")
    def _networks(self) -> HttpAdapterOptions:
        self.policy()  # a CIDR that does not parse is a config error
        if self.proxy is not None:
            check_proxy_url(self.proxy)
        return self

    @property
    def proxied(self) -> bool:
        """Whether requests go through a proxy (which then resolves the destination's name)."""
        return self.trust_env or self.proxy is not None

    def policy(self) -> AddressPolicy:
        return AddressPolicy.from_options(self.allow_private_networks, self.allowed_networks,
                                          "adapters.http")


class HttpDatasetOptions(BaseModel):
    """Per-dataset options (the description's ``options``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=4096)
    format: str | None = None
    metadata_url: str | None = Field(default=None, max_length=4096)
    headers: dict[str, str | HeaderSecret] = Field(default_factory=dict)

    def header_problems(self) -> list[str]:
        """Why the headers cannot be used (never echoes a value)."""
        return header_problems(self.headers)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``; headers are only sent to the dataset URL's origin."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def url_problem(url: str, opts: HttpAdapterOptions) -> str | None:
    """Why the adapter may not fetch ``url``, or None. The message never contains the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "the URL is malformed"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http and https URLs are supported"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed; use headers with {secret: <name>}"
    if opts.allowed_hosts is None and opts.allowed_prefixes is None:
        return ("adapters.http lists no allowed_hosts or allowed_prefixes, so it reads from "
                "nowhere; the operator must list the hosts datasets may come from")
    if opts.allowed_hosts is not None and parts.hostname.lower() not in {
            h.lower() for h in opts.allowed_hosts}:
        return "the URL's host is not in adapters.http.allowed_hosts"
    if opts.allowed_prefixes is not None and not any(url_under(url, p) for p in opts.allowed_prefixes):
        return "the URL is not under adapters.http.allowed_prefixes"
    return opts.policy().literal_problem(parts.hostname)


def secret_destination_problem(name: str, ref: SecretRef, url: str) -> str | None:
    """Why the secret ``name`` (entry ``ref``) may not be sent to ``url``, or None (never names
    the URL or the value; the rule is :func:`lomas_core.api.http_secret_problem`)."""
    return http_secret_problem(name, ref, url)
