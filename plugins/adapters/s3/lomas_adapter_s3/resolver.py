"""The aiohttp resolver that only hands out addresses the adapter's policy allows.

s3fs talks to S3 through aiobotocore and aiohttp; aiohttp asks its resolver for the addresses of
the endpoint's host and connects to exactly those (TLS still uses the host name). Checking there,
after DNS resolution and for every connection (a region redirect to another host included), means
a DNS answer that changes after a check cannot send the credentials' signed requests elsewhere.
aiohttp does not ask the resolver for IP literals: :func:`lomas_adapter_s3.options.endpoint_problem`
checks those statically. The resolver is the core's (:func:`lomas_core.api.guarded_resolver`).
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    AddressPolicy,
    guarded_resolver,
)

__all__ = ["GuardedResolver"]


def GuardedResolver(policy: AddressPolicy) -> Any:  # noqa: N802 - kept from when it was a class
    """Resolve in a thread, refuse the whole host when any address is refused (AddressRefused)."""
    return guarded_resolver(policy)
