"""The ``oidc`` authenticator's options (the config's ``authenticators.oidc`` section)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lomas_core.api import ConfigError

if TYPE_CHECKING:
    from lomas_core.api import PluginContext

__all__ = ["ASYMMETRIC_ALGORITHMS", "OidcOptions", "is_loopback_url", "parse_options"]

#: Signature algorithms that may be allowed: public-key ones only (never ``none``, never HMAC, whose
#: key would be the issuer's public key in an algorithm-confusion attack).
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "ES512", "EdDSA"})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (plain HTTP is allowed only there)."""
    return (urlsplit(url).hostname or "") in _LOOPBACK_HOSTS


class OidcOptions(BaseModel):
    """How access tokens of one OpenID provider are checked and mapped to lomas users."""

    model_config = ConfigDict(extra="forbid")

    #: The issuer URL exactly as in the tokens' ``iss`` (discovery is ``<issuer>/.well-known/...``).
    issuer: str = Field(min_length=1)
    #: Accepted ``aud`` values (the API's client id or audience in the provider).
    audience: list[str] = Field(min_length=1)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    #: Seconds of tolerance on ``exp``, ``nbf`` and ``iat`` (clocks drift).
    clock_skew_seconds: float = Field(default=30.0, ge=0, le=300)
    #: The claim holding the lomas user name (``preferred_username``, ``email``, ``sub``, ...);
    #: dotted paths reach nested claims.
    user_claim: str = "preferred_username"
    #: Create a user (no grants, not admin) on the first valid login of an unknown name.
    create_users: bool = False
    #: A claim (dotted path, e.g. ``realm_access.roles`` or ``groups``) whose value, or one of
    #: whose values, equals ``admin_value`` to grant the admin role. Unset: the store's role.
    admin_claim: str | None = None
    admin_value: str | None = None
    #: Keys are refetched after this long even when every ``kid`` is known.
    jwks_cache_seconds: float = Field(default=3600.0, ge=0)
    #: At most one refetch per this many seconds for a token with an unknown ``kid`` (an attacker
    #: sending random ``kid`` values cannot make the server fetch on every request).
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)
    #: Connect/read timeout of each request to the provider.
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: Largest discovery or JWKS document accepted.
    max_document_bytes: int = Field(default=1_048_576, ge=1024, le=16_777_216)
    #: A CA bundle for the provider's TLS certificate (a private CA); default the system's.
    ca_bundle: str | None = None

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [alg for alg in value if alg not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(f"algorithms {', '.join(refused)} are not allowed; choose among "
                             f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}")
        return value

    @model_validator(mode="after")
    def _checks(self) -> OidcOptions:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("issuer must be an https:// URL")
        if parts.scheme == "http" and not is_loopback_url(self.issuer):
            raise ValueError("issuer must use https:// (plain http only on loopback, for tests)")
        if (self.admin_claim is None) != (self.admin_value is None):
            raise ValueError("set both admin_claim and admin_value, or neither")
        return self

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_options(options: Mapping[str, Any], context: PluginContext | None = None) -> OidcOptions:
    """Validated options; ConfigError naming the field otherwise."""
    try:
        parsed = OidcOptions.model_validate(dict(options))
    except ValidationError as exc:
        lines = [f"{'.'.join(str(x) for x in e['loc']) or 'options'}: {e['msg']}"
                 for e in exc.errors()]
        raise ConfigError("authenticator 'oidc': " + "; ".join(lines)) from None
    if parsed.ca_bundle is not None and context is not None:
        parsed = parsed.model_copy(
            update={"ca_bundle": str(context.config.resolve_path(parsed.ca_bundle))})
    return parsed
