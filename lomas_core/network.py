"""Which network addresses adapters may connect to (no SSRF by default).

Network adapters (``http``, ``s3``) resolve a host name once, check every address it resolves to
with :class:`AddressPolicy`, and connect to an address they checked (so a DNS answer that changes
between the check and the connection cannot send them elsewhere). By default only globally routable
unicast addresses are allowed: loopback, link-local (cloud metadata at 169.254.169.254), private,
shared, multicast, unspecified and reserved addresses are refused, also when written in another form
(IPv4-mapped, 6to4, Teredo or NAT64 IPv6). An operator allows some of them with
``allow_private_networks: true`` or a CIDR list in ``allowed_networks``.

Messages say what kind of address was refused, never the address, the host or the URL (researchers
see the dataset's errors too).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AddressPolicy", "AddressRefused", "Resolver", "check_proxy_url", "resolve_checked"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``socket.getaddrinfo``'s signature (tests pass a resolver that answers what they need).
Resolver = Callable[..., list[tuple[Any, ...]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class AddressRefused(OSError):
    """A host resolved to an address the policy refuses (the message names neither)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _kind(ip: IPAddress) -> str | None:
    """What kind of non-public address ``ip`` is, or None for a global unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None and (kind := _kind(inner)) is not None:
            return kind
        if ip.is_site_local:
            return "private"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (e.g. cloud metadata)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Global unicast addresses only, unless ``allow_private`` or within ``allowed_networks``."""

    allow_private: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())
    #: Name of the option section, for messages (``adapters.http``).
    section: str = "the adapter"

    @classmethod
    def from_options(cls, allow_private: bool, networks: Sequence[str] | None,
                     section: str) -> AddressPolicy:
        """Raises ValueError naming a CIDR that does not parse."""
        parsed = []
        for text in networks or ():
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"{section}.allowed_networks: '{text}' is not an IP network "
                                 "(CIDR, e.g. 10.20.0.0/16)") from None
        return cls(allow_private, tuple(parsed), section)

    def problem(self, address: str | IPAddress) -> str | None:
        """Why connecting to ``address`` is refused, or None. Never names the address."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str)
                                      else address)
        except ValueError:
            return "the host resolved to something that is not an IP address"
        kind = _kind(ip)
        if kind is None or self.allow_private:
            return None
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
            candidates.append(inner)
        if any(c in net for c in candidates for net in self.allowed_networks
               if c.version == net.version):
            return None
        return (f"the host resolves to a {kind} address, which {self.section} does not allow "
                f"(see allow_private_networks and allowed_networks)")

    def literal_problem(self, host: str) -> str | None:
        """The check for a host written as an IP literal (None for a name: resolve it first)."""
        try:
            ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        return self.problem(ip)


def resolve_checked(host: str, port: int, policy: AddressPolicy, *,
                    resolver: Resolver = socket.getaddrinfo,
                    family: int = socket.AF_UNSPEC) -> list[tuple[Any, ...]]:
    """Resolve ``host`` once and check every address; ``getaddrinfo`` tuples to connect to.

    Raises AddressRefused when any address is refused (a name that mixes public and private
    addresses is refused as a whole), and OSError (``socket.gaierror``) when it does not resolve.
    """
    infos = resolver(host.strip("[]"), port, family, socket.SOCK_STREAM)
    if not infos:
        raise AddressRefused("the host did not resolve to any address")
    for info in infos:
        problem = policy.problem(str(info[4][0]))
        if problem is not None:
            raise AddressRefused(problem)
    return list(infos)


def check_proxy_url(url: str) -> None:
    """Refuse an adapter's ``proxy`` option unless it is a plain http(s) URL without credentials
    (credentials belong in a scoped secret, never in the config file).

    Raises:
        ValueError: with the reason, for pydantic validators to report.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("'proxy' must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("'proxy' must not carry credentials")
