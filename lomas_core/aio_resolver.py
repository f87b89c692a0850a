"""An aiohttp resolver that only hands out addresses an address policy allows (imported lazily,
by :func:`lomas_core.remote.guarded_resolver`: aiohttp comes with s3fs, not with the core).

aiohttp asks its resolver for the addresses of a request's host and connects to exactly those
(TLS still uses the host name). Checking here, after DNS resolution and for every connection (a
redirect to another host included), means a DNS answer that changes after a check cannot send a
request elsewhere. aiohttp does not ask the resolver for IP literals.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial

from aiohttp.abc import AbstractResolver, ResolveResult

from lomas_core.network import AddressPolicy, resolve_checked

__all__ = ["GuardedResolver"]


class GuardedResolver(AbstractResolver):
    """Resolve in a thread, refuse the whole host when any address is refused (AddressRefused)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(
            None, partial(resolve_checked, host, port, self._policy, family=family))
        return [ResolveResult(hostname=host, host=str(info[4][0]), port=int(info[4][1]),
                              family=info[0], proto=info[2],
                              flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for info in infos]

    async def close(self) -> None:
        return None
