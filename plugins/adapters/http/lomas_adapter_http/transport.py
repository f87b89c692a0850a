"""An httpx transport that connects only to addresses the adapter's policy allows.

httpcore asks its network backend for a TCP connection to ``(host, port)`` and then starts TLS with
the URL's host as server name. :class:`GuardedBackend` resolves ``host`` once, checks every address
with :class:`lomas_core.network.AddressPolicy` and connects to one of exactly those addresses, so
the Host header and SNI/certificate checks still use the name while a DNS answer that changes after
the check (rebinding) cannot send the request elsewhere. Every connection goes through it, including
each redirect hop and a re-connection of the pool.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from lomas_core.api import (
    AddressPolicy,
    AddressRefused,
    Resolver,
    resolve_checked,
)

__all__ = ["GuardedBackend", "GuardedTransport", "Refused"]


class Refused(httpcore.ConnectError):
    """The connection was not attempted: the host's address is refused by the policy."""


class GuardedBackend(httpcore.NetworkBackend):
    """A synchronous httpcore backend that checks and pins the peer address."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = socket.getaddrinfo) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            infos = resolve_checked(host, port, self._policy, resolver=self._resolver)
        except AddressRefused as exc:
            raise Refused(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(f"the host did not resolve ({type(exc).__name__})") from None
        last: Exception | None = None
        for info in infos:
            address = str(info[4][0])
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout,
                                               local_address=local_address,
                                               socket_options=socket_options)
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise Refused("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through :class:`GuardedBackend` (no proxy)."""

    def __init__(self, policy: AddressPolicy, *, verify: bool | str = True,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        # A CA bundle path becomes a context here (httpx deprecates verify=<path>).
        context = (ssl.create_default_context(cafile=verify) if isinstance(verify, str)
                   else httpx.create_ssl_context(verify=verify, trust_env=False))
        super().__init__(verify=context, trust_env=False, retries=0)
        limits = httpx.Limits()
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver))


def refusal(exc: BaseException) -> str | None:
    """The policy's reason when ``exc`` (an httpx error) comes from a refused address."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Refused):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
