"""An aiohttp resolver that only hands out addresses the adapter's policy allows.

s3fs talks to S3 through aiobotocore and aiohttp; aiohttp asks its resolver for the addresses of
the endpoint's host and connects to exactly those (TLS still uses the host name). Checking here,
after DNS resolution and for every connection (a region redirect to another host included), means
a DNS answer that changes after a check cannot send the credentials' signed requests elsewhere.
aiohttp does not ask the resolver for IP literals: :func:`lomas_adapter_s3.options.endpoint_problem`
checks those statically.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial

from aiohttp.abc import AbstractResolver, ResolveResult

from lomas_core.api import (
    AddressPolicy,
    resolve_checked,
)

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
