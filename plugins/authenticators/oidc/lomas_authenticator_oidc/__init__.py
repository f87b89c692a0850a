"""lomas authenticator for OpenID Connect access tokens (entry point ``oidc``)."""

from __future__ import annotations

__all__: list[str] = []
